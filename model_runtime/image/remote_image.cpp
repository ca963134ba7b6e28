// remote_image.cpp: the guarded http(s) image fetch described in
// remote_image.h: URL checks with curl's URL parser, our own resolution and
// address policy, one libcurl transfer per hop with the address pinned.
#include "image/remote_image.h"

#include <curl/curl.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>

namespace vlm {

const char *remote_image_error_name(RemoteImageError e) {
    switch (e) {
    case RemoteImageError::NONE: return "none";
    case RemoteImageError::DISABLED: return "disabled";
    case RemoteImageError::BAD_URL: return "bad_url";
    case RemoteImageError::NOT_ALLOWED: return "not_allowed";
    case RemoteImageError::TOO_LARGE: return "too_large";
    case RemoteImageError::TIMEOUT: return "timeout";
    case RemoteImageError::FETCH_FAILED: return "fetch_failed";
    }
    return "?";
}

int remote_image_error_http_status(RemoteImageError e) {
    switch (e) {
    case RemoteImageError::NONE: return 200;
    case RemoteImageError::DISABLED:
    case RemoteImageError::BAD_URL: return 400;
    case RemoteImageError::NOT_ALLOWED: return 403;
    case RemoteImageError::TOO_LARGE: return 413;
    case RemoteImageError::TIMEOUT: return 504;
    case RemoteImageError::FETCH_FAILED: return 502;
    }
    return 500;
}

namespace {

std::string lower(std::string s) {
    for (char &c : s)
        if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    return s;
}

std::string normalise_host(std::string h) {
    h = lower(std::move(h));
    if (!h.empty() && h.back() == '.') h.pop_back();
    return h;
}

bool in_v4(const uint8_t a[4], uint32_t net, int prefix) {
    uint32_t v = (uint32_t(a[0]) << 24) | (uint32_t(a[1]) << 16) | (uint32_t(a[2]) << 8) | a[3];
    uint32_t mask = prefix == 0 ? 0 : ~uint32_t(0) << (32 - prefix);
    return (v & mask) == (net & mask);
}

constexpr uint32_t v4(int a, int b, int c, int d) {
    return (uint32_t(a) << 24) | (uint32_t(b) << 16) | (uint32_t(c) << 8) | uint32_t(d);
}

const char *refused_v4(const uint8_t a[4]) {
    static const struct {
        uint32_t    net;
        int         prefix;
        const char *why;
    } ranges[] = {
        {v4(0, 0, 0, 0), 8, "unspecified/this-network"},  {v4(10, 0, 0, 0), 8, "private"},
        {v4(100, 64, 0, 0), 10, "shared address space"},   {v4(127, 0, 0, 0), 8, "loopback"},
        {v4(169, 254, 0, 0), 16, "link-local"},            {v4(172, 16, 0, 0), 12, "private"},
        {v4(192, 0, 0, 0), 24, "IETF protocol assignments"}, {v4(192, 0, 2, 0), 24, "documentation"},
        {v4(192, 88, 99, 0), 24, "6to4 relay"},            {v4(192, 168, 0, 0), 16, "private"},
        {v4(198, 18, 0, 0), 15, "benchmarking"},           {v4(198, 51, 100, 0), 24, "documentation"},
        {v4(203, 0, 113, 0), 24, "documentation"},         {v4(224, 0, 0, 0), 4, "multicast"},
        {v4(240, 0, 0, 0), 4, "reserved/broadcast"},
    };
    for (const auto &r : ranges)
        if (in_v4(a, r.net, r.prefix)) return r.why;
    return nullptr;
}

bool v6_prefix(const uint8_t a[16], std::initializer_list<uint8_t> bytes, int prefix_bits) {
    uint8_t want[16] = {};
    size_t i = 0;
    for (uint8_t b : bytes) want[i++] = b;
    for (int bit = 0; bit < prefix_bits; bit++) {
        int byte = bit / 8, shift = 7 - bit % 8;
        if (((a[byte] >> shift) & 1) != ((want[byte] >> shift) & 1)) return false;
    }
    return true;
}

const char *refused_v6(const uint8_t a[16]) {
    static const uint8_t zero[16] = {};
    if (std::memcmp(a, zero, 16) == 0) return "unspecified";
    uint8_t one[16] = {};
    one[15] = 1;
    if (std::memcmp(a, one, 16) == 0) return "loopback";
    if (v6_prefix(a, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96)) return "IPv4-mapped";
    if (v6_prefix(a, {}, 96)) return "IPv4-compatible";
    if (v6_prefix(a, {0x00, 0x64, 0xff, 0x9b}, 96)) return "NAT64";
    if (v6_prefix(a, {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48)) return "NAT64 local";
    if (v6_prefix(a, {0x01, 0x00}, 64)) return "discard-only";
    if (v6_prefix(a, {0x20, 0x01, 0x00, 0x00}, 32)) return "Teredo";
    if (v6_prefix(a, {0x20, 0x01, 0x0d, 0xb8}, 32)) return "documentation";
    if (v6_prefix(a, {0x20, 0x02}, 16)) return "6to4";
    if (v6_prefix(a, {0xfc}, 7)) return "unique local (private)";
    if (v6_prefix(a, {0xfe, 0x80}, 10)) return "link-local";
    if (v6_prefix(a, {0xfe, 0xc0}, 10)) return "site-local";
    if (v6_prefix(a, {0xff}, 8)) return "multicast";
    // Only global unicast (2000::/3) is reachable on the internet.
    if (!v6_prefix(a, {0x20}, 3)) return "reserved";
    return nullptr;
}

bool is_loopback(const std::string &addr) {
    uint8_t b[16];
    if (inet_pton(AF_INET, addr.c_str(), b) == 1) return b[0] == 127;
    if (inet_pton(AF_INET6, addr.c_str(), b) == 1) {
        uint8_t one[16] = {};
        one[15] = 1;
        return std::memcmp(b, one, 16) == 0;
    }
    return false;
}

bool address_ok(const RemoteImagePolicy &p, const std::string &addr, long port, std::string &why) {
    if (is_loopback(addr) &&
        std::find(p.allow_loopback_for_tests_ports.begin(), p.allow_loopback_for_tests_ports.end(), port) !=
            p.allow_loopback_for_tests_ports.end())
        return true;
    return remote_address_public(addr, why);
}

std::string sockaddr_text(const struct sockaddr *sa) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in *>(sa)->sin_addr, buf, sizeof buf);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6 *>(sa)->sin6_addr, buf, sizeof buf);
    return buf;
}

struct UrlParts {
    std::string scheme, host, url;   // host: normalised, no brackets
    long        port = 0;
};

bool parse_url(const std::string &url, UrlParts &out, std::string &err) {
    if (url.size() > 8192) {
        err = "URL longer than 8192 bytes";
        return false;
    }
    CURLU *u = curl_url();
    if (!u) {
        err = "out of memory";
        return false;
    }
    bool ok = false;
    char *scheme = nullptr, *host = nullptr, *port = nullptr, *user = nullptr, *pass = nullptr, *full = nullptr;
    do {
        CURLUcode rc = curl_url_set(u, CURLUPART_URL, url.c_str(), 0);
        if (rc != CURLUE_OK) {
            err = std::string("not a valid http(s) URL: ") + curl_url_strerror(rc);
            break;
        }
        if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
            err = "URL has no scheme";
            break;
        }
        out.scheme = lower(scheme);
        if (out.scheme != "http" && out.scheme != "https") {
            err = "scheme \"" + out.scheme + "\" refused (only http and https)";
            break;
        }
        if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
            curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK) {
            err = "credentials in URLs are refused";
            break;
        }
        char *zone = nullptr;
        bool has_zone = curl_url_get(u, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK;
        curl_free(zone);
        if (has_zone) {   // an interface scope only makes sense for local addresses
            err = "IPv6 zone ids are refused";
            break;
        }
        if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
            err = "URL has no host";
            break;
        }
        std::string h = host;
        if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
        h = normalise_host(h);
        bool plain = !h.empty() && h.size() <= 253;
        for (char c : h)
            plain = plain && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':');
        if (!plain) {   // IDN (use punycode in the allowlist), zone ids, odd bytes
            err = "host \"" + h + "\" is not a plain ASCII host name or address";
            break;
        }
        out.host = h;
        if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
            err = "URL has no port";
            break;
        }
        out.port = std::strtol(port, nullptr, 10);
        if (out.port <= 0 || out.port > 65535) {
            err = "bad port";
            break;
        }
        if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK) {
            err = "URL cannot be rebuilt";
            break;
        }
        out.url = full;
        ok = true;
    } while (false);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    curl_free(pass);
    curl_free(full);
    curl_url_cleanup(u);
    return ok;
}

// The checked address of `host` (every resolved address must pass; a name
// answering with one public and one private address is refused outright).
bool resolve_checked(const RemoteImagePolicy &p, const UrlParts &url, std::string &address, std::string &err) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo *res = nullptr;
    int rc = getaddrinfo(url.host.c_str(), nullptr, &hints, &res);
    if (rc != 0) {
        err = "cannot resolve " + url.host + ": " + gai_strerror(rc);
        return false;
    }
    address.clear();
    bool ok = true;
    for (addrinfo *ai = res; ai; ai = ai->ai_next) {
        std::string a = sockaddr_text(ai->ai_addr);
        std::string why;
        if (a.empty()) continue;
        if (!address_ok(p, a, url.port, why)) {
            err = (a == url.host ? a : url.host + " resolves to " + a) + " (" + why + "): refused";
            ok = false;
            break;
        }
        if (address.empty()) address = a;
    }
    freeaddrinfo(res);
    if (ok && address.empty()) {
        err = "cannot resolve " + url.host + ": no IPv4/IPv6 address";
        ok = false;
    }
    return ok;
}

struct Transfer {
    std::vector<uint8_t> *body = nullptr;
    size_t                max_bytes = 0;
    bool                  too_large = false;
    std::string           pinned_address;
    bool                  socket_refused = false;
    std::string           refused_address;
};

size_t on_body(char *data, size_t size, size_t n, void *user) {
    auto *t = static_cast<Transfer *>(user);
    size_t bytes = size * n;
    if (bytes > t->max_bytes - t->body->size()) {
        t->too_large = true;
        return 0;   // aborts the transfer
    }
    t->body->insert(t->body->end(), reinterpret_cast<uint8_t *>(data), reinterpret_cast<uint8_t *>(data) + bytes);
    return bytes;
}

// The last line of defence: whatever curl was about to connect to must be
// the address we checked.
curl_socket_t on_open_socket(void *user, curlsocktype purpose, struct curl_sockaddr *addr) {
    auto *t = static_cast<Transfer *>(user);
    std::string a = sockaddr_text(&addr->addr);
    if (purpose != CURLSOCKTYPE_IPCXN || a.empty() || a != t->pinned_address) {
        t->socket_refused = true;
        t->refused_address = a;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype, addr->protocol);
}

void curl_init_once() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

bool remote_address_public(const std::string &numeric_address, std::string &why) {
    uint8_t b[16];
    const char *r = nullptr;
    if (inet_pton(AF_INET, numeric_address.c_str(), b) == 1) r = refused_v4(b);
    else if (inet_pton(AF_INET6, numeric_address.c_str(), b) == 1) r = refused_v6(b);
    else r = "not a numeric address";
    if (r) why = r;
    return r == nullptr;
}

bool remote_host_allowed(const std::vector<std::string> &allowlist, const std::string &host) {
    std::string h = normalise_host(host);
    if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    for (const std::string &entry : allowlist) {
        std::string e = normalise_host(entry);
        if (e.rfind("*.", 0) == 0) {
            std::string suffix = e.substr(1);   // ".example.com"
            if (h.size() > suffix.size() && h.compare(h.size() - suffix.size(), suffix.size(), suffix) == 0)
                return true;
        } else if (!e.empty() && h == e) {
            return true;
        }
    }
    return false;
}

bool validate_remote_allowlist(const std::vector<std::string> &allowlist, std::string &err) {
    for (const std::string &entry : allowlist) {
        std::string e = normalise_host(entry);
        std::string name = e.rfind("*.", 0) == 0 ? e.substr(2) : e;
        bool ok = !name.empty() && name.size() <= 253 && name.front() != '.' && name.back() != '.';
        for (char c : name)
            ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':');
        // "*.com" would allow a whole top-level domain.
        if (ok && e.rfind("*.", 0) == 0 && name.find('.') == std::string::npos) ok = false;
        if (!ok) {
            err = "allowlist entry \"" + entry + "\" is not a host name, an address or *.domain.tld";
            return false;
        }
    }
    return true;
}

bool fetch_remote_image(const RemoteImagePolicy &policy, const std::string &url_in, RemoteImage &out,
                        RemoteImageError &code, std::string &err) {
    out = RemoteImage{};
    code = RemoteImageError::NONE;
    if (!policy.enabled) {
        code = RemoteImageError::DISABLED;
        err = "remote image URLs are disabled; send the image as a data: URL";
        return false;
    }
    curl_init_once();
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::milliseconds(policy.timeout_ms);
    std::string url = url_in;
    for (int hop = 0;; hop++) {
        UrlParts parts;
        if (!parse_url(url, parts, err)) {
            code = RemoteImageError::BAD_URL;
            if (hop > 0) err = "redirect target: " + err;
            return false;
        }
        if (!remote_host_allowed(policy.allowed_hosts, parts.host)) {
            code = RemoteImageError::NOT_ALLOWED;
            err = "host " + parts.host + " is not on the remote image allowlist" +
                  (hop > 0 ? " (redirect target)" : "");
            return false;
        }
        std::string address;
        if (!resolve_checked(policy, parts, address, err)) {
            code = err.find("refused") != std::string::npos ? RemoteImageError::NOT_ALLOWED
                                                            : RemoteImageError::FETCH_FAILED;
            if (hop > 0) err = "redirect target: " + err;
            return false;
        }
        long remaining_ms = long(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count());
        if (remaining_ms <= 0) {
            code = RemoteImageError::TIMEOUT;
            err = "fetching from " + parts.host + " took longer than " + std::to_string(policy.timeout_ms) + " ms";
            return false;
        }

        CURL *c = curl_easy_init();
        if (!c) {
            code = RemoteImageError::FETCH_FAILED;
            err = "curl_easy_init failed";
            return false;
        }
        out.bytes.clear();
        Transfer t;
        t.body = &out.bytes;
        t.max_bytes = policy.max_bytes;
        t.pinned_address = address;
        // IPv6 literals are bracketed in CURLOPT_RESOLVE entries.
        const std::string entry_host = parts.host.find(':') != std::string::npos ? "[" + parts.host + "]" : parts.host;
        std::string resolve_entry = entry_host + ":" + std::to_string(parts.port) + ":" +
                                    (address.find(':') != std::string::npos ? "[" + address + "]" : address);
        curl_slist *resolve = curl_slist_append(nullptr, resolve_entry.c_str());
        curl_easy_setopt(c, CURLOPT_URL, parts.url.c_str());
        curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
        curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
        curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &t);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c, CURLOPT_PROXY, "");         // no proxy from the environment:
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");      // it would resolve names for us
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, remaining_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, std::min<long>(remaining_ms, policy.connect_timeout_ms));
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(policy.max_bytes));
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "vlmd (image fetch)");
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 0L);
        // No Accept-Encoding: a compressed body could expand past the cap.
        CURLcode rc = curl_easy_perform(c);
        curl_slist_free_all(resolve);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        char *ctype = nullptr, *location = nullptr;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
        curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location);
        std::string content_type = ctype ? ctype : "", next = location ? location : "";
        curl_easy_cleanup(c);

        if (t.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
            code = RemoteImageError::TOO_LARGE;
            err = "image from " + parts.host + " is larger than " + std::to_string(policy.max_bytes) + " bytes";
            return false;
        }
        if (t.socket_refused) {
            code = RemoteImageError::NOT_ALLOWED;
            err = "connection to " + parts.host + " at " + t.refused_address + " refused (not the checked address)";
            return false;
        }
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            code = RemoteImageError::TIMEOUT;
            err = "fetching from " + parts.host + " took longer than " + std::to_string(policy.timeout_ms) + " ms";
            return false;
        }
        if (rc != CURLE_OK) {
            code = RemoteImageError::FETCH_FAILED;
            err = "fetching from " + parts.host + ": " + curl_easy_strerror(rc);
            return false;
        }
        if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
            if (next.empty()) {
                code = RemoteImageError::FETCH_FAILED;
                err = parts.host + " answered " + std::to_string(status) + " without a Location";
                return false;
            }
            if (out.redirects >= policy.max_redirects) {
                code = RemoteImageError::FETCH_FAILED;
                err = "more than " + std::to_string(policy.max_redirects) + " redirects from " + parts.host;
                return false;
            }
            out.redirects++;
            url = next;
            continue;
        }
        if (status != 200) {
            code = RemoteImageError::FETCH_FAILED;
            err = parts.host + " answered HTTP " + std::to_string(status);
            out.bytes.clear();
            return false;
        }
        out.final_url = parts.url;
        out.content_type = content_type;
        return true;
    }
}

}  // namespace vlm
