// Thin blocking HTTP helper over one libcurl easy handle (one per thread).
// Leaves out: connection sharing across threads, cookies; redirects only when a request asks.
#pragma once
#include <map>
#include <string>
#include <vector>

typedef void CURL;

namespace vlm::bulk {

struct HttpResponse {
    long status = 0;                             // 0 when the transfer itself failed
    std::string body;
    std::map<std::string, std::string> headers;  // names lower-cased, last value wins
    std::string transport_error;                 // curl's reason when status == 0
};

struct HttpRequest {
    std::string method = "GET";
    std::string url;
    std::vector<std::string> headers;            // "Name: value"
    std::string body;
    std::string basic_auth;                      // "user:password", empty for none
    long timeout_seconds = 120;
    long max_redirects = 0;                      // redirects followed (http/https only); 0: none
    size_t max_response_bytes = size_t{64} << 20;
};

class HttpClient {
public:
    HttpClient();
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;
    // Returns false only when the handle could not be created; HTTP errors are in `out`.
    bool perform(const HttpRequest& req, HttpResponse& out);

private:
    CURL* curl_ = nullptr;
};

// Seconds from a Retry-After value (delta-seconds or HTTP-date); -1 if absent/unparseable.
double parse_retry_after(const std::string& value);

}  // namespace vlm::bulk
