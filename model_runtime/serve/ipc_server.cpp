// ipc_server.cpp: the IPC thread's loop (see ipc_server.h): accept, hand
// readable connections to ipc_connection.cpp, retry held-back results and
// time out clients that stop reading, write the heartbeat, drain on stop.
#include "serve/ipc_server.h"
#include "serve/ipc_connection.h"
#include "serve/result_writer.h"

#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace vlm {

namespace {

// The loop's fixed keys; connections use their ids (>= 16).
enum : uint64_t { KEY_LISTEN = 1, KEY_STOP = 2, KEY_WAKE = 3, KEY_DRAINED = 4 };

void on_accept(IpcServer &s, int listen_fd)
{
    for (;;) {
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        accept_conn(s, fd);
    }
}

// Retries held-back results, enforces the backpressure timeout, closes
// connections a producer found broken. Returns true if any still waits.
bool service_conns(IpcServer &s)
{
    int64_t now = steady_ms();
    bool waiting = false;
    struct ToClose {
        std::shared_ptr<Conn> c;
        LogWord               why;
        bool                  protocol_error;
    };
    std::vector<ToClose> to_close;
    for (auto &[id, c] : s.conns) {
        std::lock_guard<std::mutex> lk(c->mu);
        if (c->dead || !c->attached) continue;
        if (!c->pending.empty()) flush_results_locked(s, *c);
        if (c->broken) {
            to_close.push_back({c, *c->broken, true});
        } else if (c->blocked_since_ms && now - c->blocked_since_ms > s.opt.backpressure_timeout_ms) {
            to_close.push_back({c, "backpressure timeout", false});
            s.counters.backpressure_disconnects++;
        } else if (!c->pending.empty()) {
            waiting = true;
        }
    }
    for (auto &t : to_close) close_conn(s, t.c, t.why, t.protocol_error);
    return waiting;
}

// True while some request has not sent its final record yet (the engine may
// deliver the last events just after drain() returns).
bool any_request_open(IpcServer &s)
{
    for (auto &[id, c] : s.conns) {
        std::lock_guard<std::mutex> lk(c->mu);
        if (c->dead) continue;
        for (const auto &slot : c->slots)
            if (slot.active) return true;
    }
    return false;
}

void heartbeat(IpcServer &s)
{
    uint64_t now = uint64_t(steady_ms());
    for (auto &[id, c] : s.conns)
        if (c->attached && !c->dead) __atomic_store_n(&c->hdr->heartbeat_ms, now, __ATOMIC_RELAXED);
}

// The listening socket, or -1 with a reason (a live vlmd on the path, a
// path that is not a socket, bind errors). A stale socket is replaced.
int open_listener(const std::string &path, std::string &err)
{
    sockaddr_un addr{};
    if (path.empty() || path.size() >= sizeof addr.sun_path) {
        err = "socket path '" + path + "' is empty or too long";
        return -1;
    }
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            err = path + ": exists and is not a socket";
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        bool live = connect(probe, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0;
        close(probe);
        if (live) {
            err = path + ": another vlmd is listening there";
            return -1;
        }
        unlink(path.c_str());   // stale socket of a dead daemon
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 || listen(fd, 256) != 0) {
        err = path + ": " + std::strerror(errno);
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

uint64_t random_epoch()
{
    uint64_t epoch = 0;
    while (epoch == 0)
        if (getrandom(&epoch, sizeof epoch, 0) != ssize_t(sizeof epoch))
            epoch = uint64_t(std::chrono::system_clock::now().time_since_epoch().count()) ^
                    (uint64_t(getpid()) << 32);
    return epoch;
}

}  // namespace

bool run_ipc_server(Engine &engine, const Tokenizer &tok, const IpcServerOptions &opt, Logger &log,
                    int stop_fd, std::string &err)
{
    auto is_pow2 = [](uint32_t v) { return v && !(v & (v - 1)); };
    if (!is_pow2(opt.request_ring_entries) || !is_pow2(opt.result_ring_entries) ||
        opt.max_slots == 0 || opt.max_slots > 65536 || opt.result_arena_bytes < 65536 ||
        opt.request_arena_bytes < 65536 || opt.max_body_bytes == 0) {
        err = "IPC options: ring sizes must be powers of two, slots in [1, 65536], arenas >= 64 KiB";
        return false;
    }
    IpcServer s(engine, tok, opt, log);
    Doorbell drained_bell;   // the drainer thread: the engine has finished
    if (!s.poller.ok() || !s.wake.ok() || !drained_bell.ok()) {
        err = std::string("epoll/eventfd: ") + std::strerror(errno);
        return false;
    }
    s.started_ms = steady_ms();
    s.epoch = random_epoch();
    int listen_fd = open_listener(opt.socket_path, err);
    if (listen_fd < 0) return false;
    s.poller.add(listen_fd, KEY_LISTEN);
    s.poller.add(stop_fd, KEY_STOP);
    s.poller.add(s.wake.fd(), KEY_WAKE);
    s.poller.add(drained_bell.fd(), KEY_DRAINED);
    log.info("listening", {{"socket", OperatorText(opt.socket_path)}, {"epoch", LogHex{s.epoch}},
                           {"pid", getpid()}});

    std::thread drainer;
    bool drained = false, waiting = false;
    int64_t last_heartbeat = 0, flush_deadline = 0;
    for (;;) {
        uint64_t keys[64];
        int n = s.poller.wait(keys, 64, waiting || drained ? 5 : 1000);
        for (int i = 0; i < n; i++) {
            uint64_t key = keys[i];
            if (key == KEY_LISTEN) {
                on_accept(s, listen_fd);
            } else if (key == KEY_STOP) {
                uint8_t buf[256];
                ssize_t r = read(stop_fd, buf, sizeof buf);
                (void)r;
                if (!s.draining) {
                    s.draining = true;
                    log.info("drain_start", {{"connections", s.conns.size()}});
                    s.poller.remove(listen_fd);
                    close(listen_fd);
                    listen_fd = -1;
                    unlink(opt.socket_path.c_str());
                    drainer = std::thread([&s, &drained_bell] {
                        s.engine.drain();
                        drained_bell.ring();
                    });
                }
            } else if (key == KEY_WAKE) {
                s.wake.clear();
            } else if (key == KEY_DRAINED) {
                drained_bell.clear();
                if (!drained) {
                    drained = true;
                    flush_deadline = steady_ms() + opt.drain_flush_timeout_ms;
                    log.info("drain_engine_done");
                }
            } else {
                auto it = s.conns.find(key);
                if (it == s.conns.end()) continue;
                std::shared_ptr<Conn> c = it->second;
                on_conn_readable(s, c);
            }
        }
        waiting = service_conns(s);
        int64_t now = steady_ms();
        if (now - last_heartbeat >= 1000) {
            heartbeat(s);
            last_heartbeat = now;
        }
        if (drained && ((!waiting && !any_request_open(s)) || now > flush_deadline)) break;
    }
    drainer.join();
    std::vector<std::shared_ptr<Conn>> left;
    for (auto &[id, c] : s.conns) left.push_back(c);
    for (auto &c : left) close_conn(s, c, "shutdown", false);
    log.info("stopped", {{"requests", s.counters.requests.load()}});
    return true;
}

}  // namespace vlm
