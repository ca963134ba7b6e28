// Client for vlm's POST /v1/alt-text with bounded retries: backs off on 429/503/5xx and
// transport errors (honouring Retry-After, with jitter); gives up at once on auth failures.
// Leaves out: /v1/summary (bulk SEO descriptions are a later step).
#pragma once
#include <random>
#include <string>

#include "http_client.h"

namespace vlm::bulk {

struct VlmSettings {
    std::string endpoint;      // base URL (…/v1/alt-text is appended unless already there)
    std::string api_key;
    std::string language = "auto";
    int max_length = 125;      // screen-reader guidance: about 125 characters
    int max_retries = 5;
    double max_backoff_seconds = 60;
    long timeout_seconds = 180;
};

struct AltRequest {
    std::string image;         // raw bytes
    std::string mime;          // image/png, image/jpeg, ...
    std::string title;
    std::string context;
};

enum class AltStatus { ok, failed, auth_failed, unreachable };

struct AltResult {
    AltStatus status = AltStatus::failed;
    std::string alt_text;
    std::string error;         // one line: HTTP status + server message, or curl's reason
    int attempts = 0;
};

class VlmClient {
public:
    explicit VlmClient(const VlmSettings& settings, unsigned seed);
    AltResult generate(const AltRequest& req);
    // GET /v1/models with the key: tells "unreachable" and "bad key" apart before any work.
    AltStatus preflight(std::string& err);

private:
    std::string url(const char* path) const;
    double backoff_seconds(int attempt, double retry_after);
    const VlmSettings& settings_;
    HttpClient http_;
    std::mt19937 rng_;
};

// "image/png" etc. from magic bytes; empty when not an image type the service accepts.
std::string sniff_image_mime(const std::string& bytes);
std::string base64_encode(const std::string& bytes);

}  // namespace vlm::bulk
