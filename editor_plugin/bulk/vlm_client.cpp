// /v1/alt-text requests (JSON with a data: URL) and the retry policy around them.
// Leaves out: multipart uploads (JSON keeps one code path; bodies are ~4/3 of the image).
#include "vlm_client.h"

#include <jansson.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

namespace vlm::bulk {

std::string base64_encode(const std::string& in) {
    static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        uint32_t v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8)
                     | static_cast<unsigned char>(in[i + 2]);
        out += abc[v >> 18]; out += abc[(v >> 12) & 63]; out += abc[(v >> 6) & 63]; out += abc[v & 63];
    }
    if (i < in.size()) {
        uint32_t v = static_cast<unsigned char>(in[i]) << 16;
        if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
        out += abc[v >> 18]; out += abc[(v >> 12) & 63];
        out += i + 1 < in.size() ? abc[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::string sniff_image_mime(const std::string& b) {
    auto starts = [&](const char* magic, size_t n, size_t at = 0) {
        return b.size() >= at + n && b.compare(at, n, magic, n) == 0;
    };
    if (starts("\x89PNG\r\n\x1a\n", 8)) return "image/png";
    if (starts("\xff\xd8\xff", 3)) return "image/jpeg";
    if (starts("GIF87a", 6) || starts("GIF89a", 6)) return "image/gif";
    if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return "image/webp";
    return {};
}

VlmClient::VlmClient(const VlmSettings& settings, unsigned seed) : settings_(settings), rng_(seed) {}

std::string VlmClient::url(const char* path) const {
    std::string base = settings_.endpoint;
    const std::string suffix = "/v1/alt-text";
    if (base.size() >= suffix.size() && base.compare(base.size() - suffix.size(), suffix.size(), suffix) == 0)
        base.resize(base.size() - suffix.size());
    while (!base.empty() && base.back() == '/') base.pop_back();
    return base + path;
}

double VlmClient::backoff_seconds(int attempt, double retry_after) {
    double exp = std::min(settings_.max_backoff_seconds, 0.5 * std::pow(2.0, attempt));
    double base = std::max(exp, retry_after);
    // Jitter upward only, so Retry-After is always honoured but clients do not return in lockstep.
    std::uniform_real_distribution<double> jitter(0.0, 0.25 * base + 0.1);
    return std::min(settings_.max_backoff_seconds, base) + jitter(rng_);
}

static std::string server_message(const HttpResponse& r) {
    json_t* root = json_loadb(r.body.data(), r.body.size(), 0, nullptr);
    std::string msg;
    if (root) {
        json_t* m = json_object_get(json_object_get(root, "error"), "message");
        if (json_is_string(m)) msg = json_string_value(m);
        json_decref(root);
    }
    if (msg.empty()) msg = r.body.substr(0, 200);
    for (char& c : msg)
        if (c == '\n' || c == '\r') c = ' ';
    return "HTTP " + std::to_string(r.status) + ": " + msg;
}

AltStatus VlmClient::preflight(std::string& err) {
    HttpRequest req;
    req.url = url("/v1/models");
    req.headers = {"Authorization: Bearer " + settings_.api_key};
    req.timeout_seconds = 20;
    HttpResponse res;
    http_.perform(req, res);
    if (res.status == 0) {
        err = req.url + ": " + res.transport_error;
        return AltStatus::unreachable;
    }
    if (res.status == 401 || res.status == 403) {
        err = req.url + ": " + server_message(res);
        return AltStatus::auth_failed;
    }
    return AltStatus::ok;  // other statuses: let the real requests tell
}

AltResult VlmClient::generate(const AltRequest& in) {
    AltResult result;
    json_t* body = json_object();
    std::string data_url = "data:" + in.mime + ";base64," + base64_encode(in.image);
    json_object_set_new(body, "image", json_stringn(data_url.data(), data_url.size()));
    json_object_set_new(body, "language", json_string(settings_.language.c_str()));
    json_object_set_new(body, "max_length", json_integer(settings_.max_length));
    if (!in.title.empty()) json_object_set_new(body, "title", json_string(in.title.c_str()));
    if (!in.context.empty()) json_object_set_new(body, "context", json_string(in.context.c_str()));
    char* text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) {
        result.error = "could not encode request (title/context not UTF-8?)";
        return result;
    }
    HttpRequest req;
    req.method = "POST";
    req.url = url("/v1/alt-text");
    req.headers = {"Authorization: Bearer " + settings_.api_key, "Content-Type: application/json",
                   "Expect:"};
    req.body = text;
    req.timeout_seconds = settings_.timeout_seconds;
    free(text);

    for (int attempt = 0; attempt <= settings_.max_retries; ++attempt) {
        result.attempts = attempt + 1;
        HttpResponse res;
        http_.perform(req, res);
        double retry_after = -1;
        if (res.status == 200) {
            json_t* root = json_loadb(res.body.data(), res.body.size(), 0, nullptr);
            json_t* alt = json_object_get(root, "alt_text");
            if (json_is_string(alt)) {
                result.status = AltStatus::ok;
                result.alt_text = json_string_value(alt);
            } else {
                result.error = "HTTP 200 without alt_text";
            }
            json_decref(root);
            return result;
        }
        if (res.status == 401 || res.status == 403) {
            result.status = AltStatus::auth_failed;
            result.error = server_message(res);
            return result;
        }
        bool retryable = res.status == 0 || res.status == 429 || res.status == 502 || res.status == 503
                         || res.status == 504 || res.status == 500;
        // A 503 that outlasts the retries means the daemon is down, not that this image is bad.
        result.status = res.status == 0 || res.status == 503 ? AltStatus::unreachable : AltStatus::failed;
        result.error = res.status == 0 ? res.transport_error : server_message(res);
        if (!retryable) return result;
        auto it = res.headers.find("retry-after");
        if (it != res.headers.end()) retry_after = parse_retry_after(it->second);
        if (attempt == settings_.max_retries) break;
        double wait = backoff_seconds(attempt, retry_after);
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(wait * 1000)));
    }
    result.error += " (gave up after " + std::to_string(result.attempts) + " attempts)";
    return result;
}

}  // namespace vlm::bulk
