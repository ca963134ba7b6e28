// test_remote_image.cpp: the remote image fetch refuses what a server-side
// request forgery needs and fetches what it should. A real HTTP server runs
// in a thread on 127.0.0.1 (allowed only through the test-only
// allow_loopback_for_tests_ports) and serves fixed responses: an image,
// redirects (to itself, to private addresses, to file:), a huge body with and
// without Content-Length, a body that trickles, a 404.
#include "image/remote_image.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <check.h>   // after the standard headers: it defines a fail() macro

using namespace vlm;

namespace {

std::string image_body() {
    std::string b = "\x89PNG\r\n\x1a\n";
    while (b.size() < 1000) b += char('a' + b.size() % 26);
    return b;
}

bool send_all(int fd, const std::string &s) {
    size_t off = 0;
    while (off < s.size()) {
        ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return false;
        off += size_t(n);
    }
    return true;
}

class TestServer {
public:
    TestServer() {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert(bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
        ck_assert(listen(fd_, 16) == 0);
        socklen_t len = sizeof a;
        getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len);
        port_ = ntohs(a.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }
    ~TestServer() {
        stop_ = true;
        acceptor_.join();
        for (auto &t : workers_) t.join();
        close(fd_);
    }
    uint16_t port() const { return port_; }
    int      requests() const { return requests_; }
    std::string url(const std::string &path) const {
        return "http://127.0.0.1:" + std::to_string(port_) + path;
    }

private:
    void accept_loop() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 50) <= 0) continue;
            int c = accept(fd_, nullptr, nullptr);
            if (c < 0) continue;
            std::lock_guard<std::mutex> lock(m_);
            workers_.emplace_back([this, c] {
                handle(c);
                close(c);
            });
        }
    }

    void redirect(int c, const std::string &location) {
        send_all(c, "HTTP/1.1 302 Found\r\nLocation: " + location + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }

    void handle(int c) {
        std::string req;
        char buf[2048];
        timeval tv{2, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        while (req.find("\r\n\r\n") == std::string::npos && req.size() < 16384) {
            ssize_t n = recv(c, buf, sizeof buf, 0);
            if (n <= 0) return;
            req.append(buf, size_t(n));
        }
        requests_++;
        size_t sp1 = req.find(' '), sp2 = req.find(' ', sp1 + 1);
        std::string path = req.substr(sp1 + 1, sp2 - sp1 - 1);
        const std::string body = image_body();
        if (path == "/ok") {
            send_all(c, "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
        } else if (path == "/redirect-ok") {
            redirect(c, "/ok");
        } else if (path.rfind("/chain/", 0) == 0) {
            int n = std::atoi(path.c_str() + 7);   // n redirects, then the image
            if (n > 0) redirect(c, "/chain/" + std::to_string(n - 1));
            else send_all(c, "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
        } else if (path == "/redirect-private") {
            redirect(c, "http://10.0.0.1/image.png");
        } else if (path == "/redirect-metadata") {
            redirect(c, "http://169.254.169.254/latest/meta-data/");
        } else if (path == "/redirect-other-port") {
            redirect(c, "http://127.0.0.1:" + std::to_string(port_ == 65535 ? 1 : port_ + 1) + "/ok");
        } else if (path == "/redirect-localhost") {
            redirect(c, "http://localhost:" + std::to_string(port_) + "/ok");
        } else if (path == "/redirect-file") {
            redirect(c, "file:///etc/passwd");
        } else if (path == "/redirect-elsewhere") {
            redirect(c, "https://evil.example.net/x.png");
        } else if (path == "/huge-declared" || path == "/huge-chunked") {
            std::string head = "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n";
            if (path == "/huge-declared") head += "Content-Length: 104857600\r\n";
            if (!send_all(c, head + "\r\n")) return;
            std::string chunk(65536, 'x');
            for (int i = 0; i < 800 && !stop_; i++)   // up to 50 MiB, until the client gives up
                if (!send_all(c, chunk)) return;
        } else if (path == "/slow") {
            if (!send_all(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n")) return;
            for (int i = 0; i < 100 && !stop_; i++) {
                if (!send_all(c, "x")) return;
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
        } else {
            send_all(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    }

    int                      fd_ = -1;
    uint16_t                 port_ = 0;
    std::atomic<bool>        stop_{false};
    std::atomic<int>         requests_{0};
    std::thread              acceptor_;
    std::mutex               m_;
    std::vector<std::thread> workers_;
};

RemoteImagePolicy test_policy(const TestServer &s) {
    RemoteImagePolicy p;
    p.enabled = true;
    p.allowed_hosts = {"127.0.0.1", "localhost", "10.0.0.1", "169.254.169.254", "::1", "0.0.0.0",
                       "::ffff:127.0.0.1", "fc00::1", "*.example.net"};
    p.allow_loopback_for_tests_ports = {s.port()};
    p.timeout_ms = 3000;
    return p;
}

struct Outcome {
    bool             ok;
    RemoteImageError code;
    std::string      err;
    RemoteImage      img;
    double           ms;
};

Outcome fetch(const RemoteImagePolicy &p, const std::string &url) {
    Outcome o;
    auto t0 = std::chrono::steady_clock::now();
    o.ok = fetch_remote_image(p, url, o.img, o.code, o.err);
    o.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return o;
}

void expect_refused(const Outcome &o, RemoteImageError want, const char *want_text, const std::string &url) {
    ck_assert_msg(!o.ok, "%s was fetched", url.c_str());
    ck_assert_msg(o.code == want, "%s: code %s, want %s (%s)", url.c_str(), remote_image_error_name(o.code),
                  remote_image_error_name(want), o.err.c_str());
    ck_assert_msg(o.err.find(want_text) != std::string::npos, "%s: \"%s\" lacks \"%s\"", url.c_str(),
                  o.err.c_str(), want_text);
}

}  // namespace

START_TEST(disabled_by_default)
{
    RemoteImagePolicy p;   // defaults
    ck_assert(!p.enabled);
    Outcome o = fetch(p, "https://images.example.com/a.png");
    expect_refused(o, RemoteImageError::DISABLED, "disabled", "default policy");
    ck_assert_int_eq(remote_image_error_http_status(o.code), 400);
}
END_TEST

START_TEST(allowlist_matching)
{
    std::vector<std::string> list = {"images.example.com", "*.cdn.example.org", "203.0.113.7"};
    struct {
        const char *host;
        bool        want;
    } cases[] = {
        {"images.example.com", true},   {"IMAGES.Example.COM", true},   {"images.example.com.", true},
        {"example.com", false},         {"evil-images.example.com", false}, {"images.example.com.evil.net", false},
        {"a.cdn.example.org", true},    {"a.b.cdn.example.org", true},  {"cdn.example.org", false},
        {"xcdn.example.org", false},    {"cdn.example.org.evil", false}, {"203.0.113.7", true},
        {"203.0.113.8", false},         {"", false},
    };
    for (const auto &c : cases)
        ck_assert_msg(remote_host_allowed(list, c.host) == c.want, "%s: want %d", c.host, c.want);
    ck_assert(!remote_host_allowed({}, "images.example.com"));
    std::string err;
    ck_assert_msg(validate_remote_allowlist(list, err), "%s", err.c_str());
    for (const char *bad : {"*.com", "*", "ex ample.com", "", ".example.com", "*.", "exa/mple.com", "user@host"}) {
        ck_assert_msg(!validate_remote_allowlist({bad}, err), "accepted \"%s\"", bad);
        ck_assert(err.find("allowlist entry") != std::string::npos);
    }
    TestServer s;
    RemoteImagePolicy p = test_policy(s);
    p.allowed_hosts = {"images.example.com"};
    Outcome o = fetch(p, s.url("/ok"));
    expect_refused(o, RemoteImageError::NOT_ALLOWED, "not on the remote image allowlist", "off-list host");
    ck_assert_int_eq(remote_image_error_http_status(o.code), 403);
    ck_assert_int_eq(s.requests(), 0);
}
END_TEST

START_TEST(scheme_and_credentials_refused)
{
    TestServer s;
    RemoteImagePolicy p = test_policy(s);
    const std::string port = std::to_string(s.port());
    struct {
        std::string url;
        const char *want;
    } cases[] = {
        {"ftp://127.0.0.1:" + port + "/ok", "scheme \"ftp\" refused"},
        {"file:///etc/passwd", "scheme \"file\" refused"},
        {"gopher://127.0.0.1:" + port + "/", "scheme \"gopher\" refused"},
        {"dict://127.0.0.1:" + port + "/", "scheme \"dict\" refused"},
        {"javascript:alert(1)", "not a valid http(s) URL"},
        {"data:image/png;base64,AAAA", "not a valid http(s) URL"},
        {"//127.0.0.1:" + port + "/ok", "not a valid http(s) URL"},
        {"http://user:secret@127.0.0.1:" + port + "/ok", "credentials in URLs are refused"},
        {"http://user@127.0.0.1:" + port + "/ok", "credentials in URLs are refused"},
        {"http://127.0.0.1:" + port + "/ok\r\nX-Injected: 1", "not a valid http(s) URL"},
        {"http://ex\xc3\xa4mple.com/a.png", "not a plain ASCII host"},
        {"http://[fe80::1%25eth0]/a.png", "zone ids are refused"},
    };
    for (const auto &c : cases) {
        Outcome o = fetch(p, c.url);
        ck_assert_msg(!o.ok, "%s fetched", c.url.c_str());
        ck_assert_msg(o.code == RemoteImageError::BAD_URL || o.code == RemoteImageError::NOT_ALLOWED,
                      "%s: %s", c.url.c_str(), remote_image_error_name(o.code));
        ck_assert_msg(o.err.find(c.want) != std::string::npos, "%s: \"%s\" lacks \"%s\"", c.url.c_str(),
                      o.err.c_str(), c.want);
    }
    ck_assert_int_eq(s.requests(), 0);
}
END_TEST

START_TEST(private_addresses_refused)
{
    struct {
        const char *addr;
        bool        want_public;
    } table[] = {
        {"127.0.0.1", false},      {"127.255.0.9", false},   {"10.1.2.3", false},       {"169.254.169.254", false},
        {"0.0.0.0", false},        {"100.64.0.1", false},    {"172.16.0.1", false},     {"172.31.255.255", false},
        {"192.168.1.1", false},    {"224.0.0.1", false},     {"255.255.255.255", false}, {"198.18.0.1", false},
        {"::1", false},            {"::", false},            {"fc00::1", false},        {"fd12:3456::1", false},
        {"fe80::1", false},        {"ff02::1", false},       {"::ffff:127.0.0.1", false}, {"::ffff:8.8.8.8", false},
        {"::127.0.0.1", false},    {"64:ff9b::7f00:1", false}, {"2002:7f00:1::1", false}, {"2001::1", false},
        {"2001:db8::1", false},    {"8.8.8.8", true},        {"1.1.1.1", true},         {"172.32.0.1", true},
        {"2606:4700:4700::1111", true}, {"not-an-address", false},
    };
    for (const auto &c : table) {
        std::string why;
        ck_assert_msg(remote_address_public(c.addr, why) == c.want_public, "%s: want public=%d (%s)", c.addr,
                      c.want_public, why.c_str());
        if (!c.want_public) ck_assert(!why.empty());
    }

    // Through fetch: every host is on the allowlist, the address decides.
    TestServer s;
    RemoteImagePolicy p = test_policy(s);
    const std::string port = std::to_string(s.port());
    struct {
        std::string url;
        const char *want;
    } urls[] = {
        {"http://10.0.0.1/image.png", "10.0.0.1 (private): refused"},
        {"http://169.254.169.254/latest/meta-data/", "(link-local)"},
        {"http://0.0.0.0:" + port + "/ok", "(unspecified/this-network)"},
        {"http://[::1]:81/ok", "(loopback)"},                         // port not test-allowed
        {"http://127.0.0.1:81/ok", "(loopback)"},
        {"http://[fc00::1]/image.png", "(unique local (private))"},
        {"http://[::ffff:127.0.0.1]:" + port + "/ok", "(IPv4-mapped)"},   // even on the test port
        {"http://localhost:81/ok", "localhost resolves to"},          // our resolution, then the check
        {"http://2130706433:81/ok", "(loopback)"},                    // 127.0.0.1 as one number
    };
    for (const auto &u : urls) {
        RemoteImagePolicy pu = p;
        pu.allowed_hosts.push_back("2130706433");
        Outcome o = fetch(pu, u.url);
        ck_assert_msg(!o.ok, "%s fetched", u.url.c_str());
        ck_assert_msg(o.code == RemoteImageError::NOT_ALLOWED, "%s: %s (%s)", u.url.c_str(),
                      remote_image_error_name(o.code), o.err.c_str());
        ck_assert_msg(o.err.find(u.want) != std::string::npos, "%s: \"%s\" lacks \"%s\"", u.url.c_str(),
                      o.err.c_str(), u.want);
        ck_assert_msg(o.ms < 1000, "%s: refusal took %.0f ms (it must not try to connect)", u.url.c_str(), o.ms);
        std::printf("refused %s in %.2f ms: %s\n", u.url.c_str(), o.ms, o.err.c_str());
    }
    ck_assert_int_eq(s.requests(), 0);
}
END_TEST

START_TEST(redirects_rechecked)
{
    TestServer s;
    RemoteImagePolicy p = test_policy(s);
    struct {
        const char      *path;
        RemoteImageError code;
        const char      *want;
    } cases[] = {
        {"/redirect-private", RemoteImageError::NOT_ALLOWED, "redirect target: 10.0.0.1 (private): refused"},
        {"/redirect-metadata", RemoteImageError::NOT_ALLOWED, "(link-local)"},
        {"/redirect-other-port", RemoteImageError::NOT_ALLOWED, "(loopback)"},
        {"/redirect-file", RemoteImageError::BAD_URL, "redirect target"},
        {"/chain/4", RemoteImageError::FETCH_FAILED, "more than 3 redirects"},
    };
    for (const auto &c : cases) {
        Outcome o = fetch(p, s.url(c.path));
        expect_refused(o, c.code, c.want, c.path);
    }
    // A redirect off the allowlist.
    RemoteImagePolicy strict = p;
    strict.allowed_hosts = {"127.0.0.1"};
    expect_refused(fetch(strict, s.url("/redirect-elsewhere")), RemoteImageError::NOT_ALLOWED,
                   "evil.example.net is not on the remote image allowlist (redirect target)", "/redirect-elsewhere");
    expect_refused(fetch(strict, s.url("/redirect-localhost")), RemoteImageError::NOT_ALLOWED,
                   "localhost is not on the remote image allowlist", "/redirect-localhost");
    Outcome ok = fetch(p, s.url("/chain/3"));
    ck_assert_msg(ok.ok, "%s", ok.err.c_str());
    ck_assert_int_eq(ok.img.redirects, 3);
    p.max_redirects = 0;
    expect_refused(fetch(p, s.url("/redirect-ok")), RemoteImageError::FETCH_FAILED, "more than 0 redirects",
                   "max_redirects 0");
}
END_TEST

START_TEST(byte_cap)
{
    TestServer s;
    RemoteImagePolicy p = test_policy(s);
    p.max_bytes = 1 << 20;
    for (const char *path : {"/huge-declared", "/huge-chunked"}) {
        Outcome o = fetch(p, s.url(path));
        expect_refused(o, RemoteImageError::TOO_LARGE, "larger than 1048576 bytes", path);
        ck_assert_int_eq(remote_image_error_http_status(o.code), 413);
        ck_assert_msg(o.img.bytes.size() <= p.max_bytes, "%zu bytes kept", o.img.bytes.size());
        std::printf("%s: refused after %.1f ms, %zu bytes kept (cap %zu)\n", path, o.ms, o.img.bytes.size(),
                    p.max_bytes);
    }
    p.max_bytes = image_body().size() - 1;
    expect_refused(fetch(p, s.url("/ok")), RemoteImageError::TOO_LARGE, "larger than", "one byte over");
    p.max_bytes = image_body().size();
    Outcome exact = fetch(p, s.url("/ok"));
    ck_assert_msg(exact.ok, "exactly at the cap: %s", exact.err.c_str());
}
END_TEST

START_TEST(time_cap)
{
    TestServer s;
    RemoteImagePolicy p = test_policy(s);
    p.timeout_ms = 500;
    Outcome o = fetch(p, s.url("/slow"));   // would take 10 s
    expect_refused(o, RemoteImageError::TIMEOUT, "longer than 500 ms", "/slow");
    ck_assert_int_eq(remote_image_error_http_status(o.code), 504);
    std::printf("/slow: timed out after %.0f ms (cap 500)\n", o.ms);
    ck_assert_msg(o.ms >= 400 && o.ms < 2000, "timed out after %.0f ms", o.ms);
}
END_TEST

START_TEST(happy_path)
{
    TestServer s;
    RemoteImagePolicy p = test_policy(s);
    Outcome o = fetch(p, s.url("/ok"));
    ck_assert_msg(o.ok, "%s", o.err.c_str());
    ck_assert(std::string(o.img.bytes.begin(), o.img.bytes.end()) == image_body());
    ck_assert_str_eq(o.img.content_type.c_str(), "image/png");
    ck_assert_int_eq(o.img.redirects, 0);
    std::printf("fetched %zu bytes in %.2f ms\n", o.img.bytes.size(), o.ms);

    Outcome r = fetch(p, s.url("/redirect-ok"));
    ck_assert_msg(r.ok, "%s", r.err.c_str());
    ck_assert_int_eq(r.img.redirects, 1);
    const std::string want_final = s.url("/ok");
    ck_assert_str_eq(r.img.final_url.c_str(), want_final.c_str());
    ck_assert_uint_eq(r.img.bytes.size(), image_body().size());

    // A name we resolve ourselves, allowed through the test port.
    Outcome l = fetch(p, "http://localhost:" + std::to_string(s.port()) + "/ok");
    if (!l.ok) std::printf("localhost fetch: %s\n", l.err.c_str());

    expect_refused(fetch(p, s.url("/missing")), RemoteImageError::FETCH_FAILED, "answered HTTP 404", "/missing");
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv) {
    return vlm_check_main(argc, argv, "remote_image", {
        {"remote_image", 60, {
            disabled_by_default,
            allowlist_matching,
            scheme_and_credentials_refused,
            private_addresses_refused,
            redirects_rechecked,
            byte_cap,
            time_cap,
            happy_path,
        }},
    });
}
