// remote_image.h: fetching an `image_url` given as http(s) (DESIGN decision
// 8: off by default). Every step that a server-side request forgery needs is
// closed: only http/https, no credentials in URLs, a host allowlist, our own
// DNS resolution with every resolved address checked (loopback, private,
// link-local, multicast, unspecified, IPv4-mapped/-compatible, NAT64, 6to4,
// Teredo, documentation and reserved ranges refused), the connection pinned
// to the checked address (CURLOPT_RESOLVE) and re-checked at connect time
// (CURLOPT_OPENSOCKETFUNCTION) so DNS rebinding cannot slip in, proxies
// ignored, redirects followed by us (each hop checked again, at most
// max_redirects), a byte cap (Content-Length and the streamed body) and a
// time cap over all hops. Blocking; call it from a worker thread.
// Not here: decoding (image.h), caching of fetched bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vlm {

struct RemoteImagePolicy {
    bool                     enabled = false;
    // Exact host names ("images.example.com"), or "*.example.com" for every
    // subdomain of example.com (not example.com itself). IP literals match
    // exactly. Empty: nothing is allowed.
    std::vector<std::string> allowed_hosts;
    size_t                   max_bytes = size_t(10) << 20;
    int                      timeout_ms = 10000;        // whole fetch, all hops
    int                      connect_timeout_ms = 3000;
    int                      max_redirects = 3;
    // TESTS ONLY, never set from configuration: loopback addresses
    // (127.0.0.0/8, ::1) are allowed on exactly these ports, so the tests can
    // run a real HTTP server on 127.0.0.1. Every other refusal still applies.
    std::vector<uint16_t>    allow_loopback_for_tests_ports;
};

enum class RemoteImageError {
    NONE,
    DISABLED,       // remote images are off
    BAD_URL,        // not a URL we accept (scheme, credentials, syntax)
    NOT_ALLOWED,    // host not on the allowlist, or a refused address
    TOO_LARGE,      // over max_bytes
    TIMEOUT,        // over timeout_ms
    FETCH_FAILED,   // connection failure, HTTP status other than 200, too many redirects
};

const char *remote_image_error_name(RemoteImageError e);
// The status vlmd answers with: 400, 403, 413, 504, 502 (DISABLED: 400).
int remote_image_error_http_status(RemoteImageError e);

struct RemoteImage {
    std::vector<uint8_t> bytes;
    std::string          final_url;      // after redirects
    std::string          content_type;   // as the server said (not trusted)
    int                  redirects = 0;
};

// Fetches `url` under `policy`. False with `code` and a one-line reason that
// names the URL's host (never the body).
bool fetch_remote_image(const RemoteImagePolicy &policy, const std::string &url, RemoteImage &out,
                        RemoteImageError &code, std::string &err);

// The pieces, exposed for tests and for validating configuration:
// `host` matches an allowlist entry (case-insensitive, trailing dot ignored).
bool remote_host_allowed(const std::vector<std::string> &allowlist, const std::string &host);
// Allowlist entries are well formed ("host", "*.suffix" with a dot in suffix).
bool validate_remote_allowlist(const std::vector<std::string> &allowlist, std::string &err);
// A numeric IPv4/IPv6 address (as text) is a public unicast address we may
// connect to; `why` names the refused range otherwise.
bool remote_address_public(const std::string &numeric_address, std::string &why);

}  // namespace vlm
