// --fetch-remote downloads through the worker thread's HttpClient.
// Leaves out: retries (a failed download is a failed row; the next run tries again).
#include "image_download.h"

#include <algorithm>
#include <cctype>

#include "image_source.h"
#include "vlm_client.h"

namespace vlm::bulk {

namespace {

constexpr long download_timeout_seconds = 30;
constexpr long download_max_redirects = 5;

bool is_image_content_type(std::string type) {
    std::transform(type.begin(), type.end(), type.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return type.rfind("image/", 0) == 0;
}

// A header value fit for a one-line report message: printable ASCII, at most 100 bytes.
std::string printable(const std::string& value) {
    std::string out;
    for (char c : value) {
        if (out.size() >= 100) break;
        out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
    }
    return out;
}

}  // namespace

bool download_image(HttpClient& http, const std::string& url, std::string& bytes, std::string& err) {
    HttpRequest req;
    req.url = url;
    req.timeout_seconds = download_timeout_seconds;
    req.max_redirects = download_max_redirects;
    req.max_response_bytes = max_image_bytes;
    HttpResponse res;
    if (!http.perform(req, res) || res.status == 0) {
        err = url + ": download failed: " + res.transport_error;
        return false;
    }
    if (res.status < 200 || res.status > 299) {
        err = url + ": download failed: HTTP " + std::to_string(res.status);
        return false;
    }
    auto type = res.headers.find("content-type");
    std::string content_type = type == res.headers.end() ? "" : type->second;
    if (!is_image_content_type(content_type) && sniff_image_mime(res.body).empty()) {
        err = url + ": not an image (Content-Type " + (content_type.empty() ? "missing" : printable(content_type)) + ")";
        return false;
    }
    bytes = std::move(res.body);
    return true;
}

}  // namespace vlm::bulk
