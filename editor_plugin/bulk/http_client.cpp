// Blocking HTTP over libcurl: request/response structs, header capture, a body size cap.
// Leaves out: retries and backoff (callers decide, see vlm_client.cpp).
#include "http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace vlm::bulk {

namespace {

struct Sink {
    HttpResponse* out;
    size_t cap;
    bool overflow = false;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
    auto* sink = static_cast<Sink*>(user);
    size_t len = size * n;
    if (sink->out->body.size() + len > sink->cap) {
        sink->overflow = true;
        return 0;  // aborts the transfer
    }
    sink->out->body.append(data, len);
    return len;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
    auto* out = static_cast<HttpResponse*>(user);
    size_t len = size * n;
    std::string line(data, len);
    if (line.rfind("HTTP/", 0) == 0) out->headers.clear();  // a new response (e.g. after 100)
    size_t colon = line.find(':');
    if (colon == std::string::npos) return len;
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
        value.pop_back();
    out->headers[name] = value;
    return len;
}

}  // namespace

HttpClient::HttpClient() : curl_(curl_easy_init()) {}

HttpClient::~HttpClient() {
    if (curl_) curl_easy_cleanup(curl_);
}

bool HttpClient::perform(const HttpRequest& req, HttpResponse& out) {
    out = HttpResponse{};
    if (!curl_) {
        out.transport_error = "curl_easy_init failed";
        return false;
    }
    curl_easy_reset(curl_);
    Sink sink{&out, req.max_response_bytes};
    curl_slist* headers = nullptr;
    for (const auto& h : req.headers) headers = curl_slist_append(headers, h.c_str());
    curl_easy_setopt(curl_, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT, req.timeout_seconds);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &out);
    curl_easy_setopt(curl_, CURLOPT_USERAGENT, "vlm-bulk/1");
    if (req.max_redirects > 0) {
        curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(curl_, CURLOPT_MAXREDIRS, req.max_redirects);
        curl_easy_setopt(curl_, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    }
    if (headers) curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    if (req.method != "GET") {
        curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, req.body.data());
        curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    }
    if (!req.basic_auth.empty()) {
        curl_easy_setopt(curl_, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(curl_, CURLOPT_USERPWD, req.basic_auth.c_str());
    }
    CURLcode rc = curl_easy_perform(curl_);
    if (headers) curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
        out.status = 0;
        out.transport_error = sink.overflow ? "response larger than limit" : curl_easy_strerror(rc);
        return true;
    }
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &out.status);
    return true;
}

double parse_retry_after(const std::string& value) {
    if (value.empty()) return -1;
    bool digits = std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); });
    if (digits) {
        if (value.size() > 6) return 86400;  // absurdly long: callers clamp anyway
        return std::stod(value);
    }
    time_t when = curl_getdate(value.c_str(), nullptr);
    if (when < 0) return -1;
    double delta = difftime(when, time(nullptr));
    return delta < 0 ? 0 : delta;
}

}  // namespace vlm::bulk
