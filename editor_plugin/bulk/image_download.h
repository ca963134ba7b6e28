// Downloads one http(s) image for `files --fetch-remote`.
// Leaves out: caching between runs, conditional requests, and host allow/deny lists (the URLs
// come from the site owner's own documents).
#pragma once
#include <string>

#include "http_client.h"

namespace vlm::bulk {

// GET with a 30 s timeout, at most 5 redirects (http/https only) and max_image_bytes of body.
// Succeeds only for a 2xx answer whose Content-Type is image/* or whose bytes start like an
// image; otherwise `err` says why in one line (HTTP status, transport error, not an image).
bool download_image(HttpClient& http, const std::string& url, std::string& bytes, std::string& err);

}  // namespace vlm::bulk
