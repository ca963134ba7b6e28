// vlmd's shared-memory protocol as clients see it, against the REAL vlmd
// binary ($VLM_BIN/vlmd) on the tiny fixture models, over a socket in a temp
// dir: greedy answers through vlmd equal vlm-run's alone (one at a time and
// 16 concurrent clients), a multi-process stress with random cancels leaves
// no KV blocks used, SIGKILL mid-stream fails clients at once and a restart
// (new epoch) serves again with nothing leaked, a hostile client is
// disconnected without harming others, a client that stops reading is
// disconnected after the backpressure timeout, SIGTERM drains, a task's
// answer arrives as one DONE record, log_level filters vlmd's lines.
#include "run_process.h"

#include "vlm_ipc_client.h"

#include <check.h>
#include <jansson.h>

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

static std::string fixtures, bin, tmpdir;

static double now_ms()
{
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Daemon {
    pid_t       pid = -1;
    std::string socket, log;
};

static vlm_ipc_client *try_connect(const std::string &sock)
{
    vlm_ipc_client *c = vlm_ipc_client_new();
    char err[256];
    if (vlm_ipc_client_connect(c, sock.c_str(), err, sizeof err) != VLM_IPC_OK) {
        vlm_ipc_client_free(c);
        return nullptr;
    }
    double t0 = now_ms();
    while (!vlm_ipc_client_ready(c) && now_ms() - t0 < 5000)
        if (vlm_ipc_client_wait(c, 100) == VLM_IPC_CLOSED) break;
    if (!vlm_ipc_client_ready(c)) {
        vlm_ipc_client_free(c);
        return nullptr;
    }
    return c;
}

static Daemon start_vlmd(const std::string &model, const std::string &name,
                         const std::vector<std::string> &extra = {})
{
    Daemon d;
    d.socket = tmpdir + "/" + name + ".sock";
    d.log = tmpdir + "/" + name + ".log";
    // a fixture model's name, or a directory
    const std::string model_dir = model.find('/') != std::string::npos ? model : fixtures + "/models/" + model;
    std::vector<std::string> argv{bin + "/vlmd", "--model", model_dir,
                                  "--socket", d.socket, "--threads", "2"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, d.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    std::vector<char *> args;
    for (auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    ck_assert_int_eq(posix_spawn(&d.pid, args[0], &fa, nullptr, args.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    double t0 = now_ms();
    for (;;) {
        if (vlm_ipc_client *c = try_connect(d.socket)) {
            vlm_ipc_client_free(c);
            break;
        }
        int st;
        ck_assert_msg(waitpid(d.pid, &st, WNOHANG) == 0, "vlmd exited at start: %s",
                      slurp(d.log).c_str());
        ck_assert_msg(now_ms() - t0 < 60000, "vlmd not ready in 60 s");
        usleep(20000);
    }
    return d;
}

static int stop_vlmd(Daemon &d, int sig = SIGTERM)
{
    kill(d.pid, sig);
    int st = 0;
    waitpid(d.pid, &st, 0);
    d.pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

static json_t *daemon_stats(const std::string &sock)
{
    vlm_ipc_client *c = try_connect(sock);
    ck_assert_msg(c != nullptr, "cannot connect for stats");
    ck_assert_int_eq(vlm_ipc_stats(c, nullptr, nullptr, nullptr), VLM_IPC_OK);
    vlm_ipc_event ev;
    while (!vlm_ipc_next_event(c, &ev)) ck_assert_int_ne(vlm_ipc_client_wait(c, 1000), VLM_IPC_CLOSED);
    ck_assert_int_eq(ev.kind, VLM_IPC_RES_STATS);
    json_error_t jerr;
    json_t *j = json_loadb(ev.text, ev.text_length, 0, &jerr);
    ck_assert_msg(j != nullptr, "stats not JSON: %s", jerr.text);
    vlm_ipc_client_free(c);
    return j;
}

static json_int_t stat_int(json_t *s, const char *group, const char *key)
{
    json_t *v = json_object_get(json_object_get(s, group), key);
    ck_assert_msg(json_is_integer(v), "stats has no %s.%s", group, key);
    return json_integer_value(v);
}

// Waits (polling STATS) until the engine has nothing running or queued.
static json_t *settled_stats(const std::string &sock)
{
    double t0 = now_ms();
    for (;;) {
        json_t *s = daemon_stats(sock);
        if ((stat_int(s, "engine", "running") == 0 && stat_int(s, "engine", "kv_blocks_used") == 0 &&
             stat_int(s, "engine", "queue_interactive") == 0) || now_ms() - t0 > 10000)
            return s;
        json_decref(s);
        usleep(20000);
    }
}

static int memfd_maps(pid_t pid)
{
    std::string maps = slurp("/proc/" + std::to_string(pid) + "/maps");
    int n = 0;
    for (size_t p = 0; (p = maps.find("memfd:vlm-ipc", p)) != std::string::npos; p++) n++;
    return n;
}

// The daemon notices a closed client asynchronously: give it a moment.
static int memfd_maps_settled(pid_t pid)
{
    double t0 = now_ms();
    int n;
    while ((n = memfd_maps(pid)) != 0 && now_ms() - t0 < 2000) usleep(10000);
    return n;
}

static int fd_count(pid_t pid)
{
    DIR *d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
    int n = 0;
    while (dirent *e = readdir(d))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

struct GoldenCase {
    std::string name, user, system;
    bool has_system = false;
    std::vector<std::string> images;
};

static std::vector<GoldenCase> load_cases(const std::string &model)
{
    json_error_t jerr;
    json_t *root = json_load_file((fixtures + "/models/" + model + "/golden/cases.json").c_str(), 0, &jerr);
    ck_assert_msg(root != nullptr, "%s: %s", model.c_str(), jerr.text);
    std::vector<GoldenCase> out;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(root, "cases"), i, c) {
        GoldenCase g;
        g.name = json_string_value(json_object_get(c, "name"));
        g.user = json_string_value(json_object_get(c, "user"));
        json_t *sys = json_object_get(c, "system");
        if (json_is_string(sys)) {
            g.system = json_string_value(sys);
            g.has_system = true;
        }
        size_t j;
        json_t *im;
        json_array_foreach(json_object_get(c, "images"), j, im)
            g.images.push_back(fixtures + "/images/" + json_string_value(im));
        out.push_back(g);
    }
    json_decref(root);
    ck_assert_msg(!out.empty(), "%s has no cases", model.c_str());
    return out;
}

static std::vector<std::string> case_argv(const std::string &model, const GoldenCase &g,
                                          const std::string *sock)
{
    std::vector<std::string> a{bin + "/vlm-run"};
    if (sock) {
        a.push_back("--daemon");
        a.push_back(*sock);
    } else {
        a.push_back("--model");
        a.push_back(fixtures + "/models/" + model);
        a.push_back("--threads");
        a.push_back("2");
    }
    for (const char *s : {"--json", "--ignore-eos", "--max-tokens", "32", "--prompt"}) a.push_back(s);
    a.push_back(g.user);
    if (g.has_system) {
        a.push_back("--system");
        a.push_back(g.system);
    }
    for (auto &im : g.images) {
        a.push_back("--image");
        a.push_back(im);
    }
    return a;
}

static std::string tokens_of(const std::string &out, const std::string &what)
{
    json_error_t jerr;
    json_t *j = json_loads(out.c_str(), 0, &jerr);
    ck_assert_msg(j != nullptr, "%s: output is not JSON: %s", what.c_str(), out.c_str());
    std::string s;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "tokens"), i, v) s += std::to_string(json_integer_value(v)) + " ";
    json_decref(j);
    ck_assert_msg(!s.empty(), "%s: no tokens", what.c_str());
    return s;
}

START_TEST(greedy_matches_standalone)
{
    DIR *d = opendir((fixtures + "/models").c_str());
    ck_assert_ptr_nonnull(d);
    std::vector<std::string> models;
    while (dirent *e = readdir(d))
        if (e->d_name[0] != '.') models.push_back(e->d_name);
    closedir(d);
    ck_assert_msg(!models.empty(), "no fixture models");
    int compared = 0;
    for (const auto &model : models) {
        std::vector<GoldenCase> cases = load_cases(model);
        std::vector<std::string> expected;
        for (auto &g : cases) {
            ProcessResult r = run_process(case_argv(model, g, nullptr));
            ck_assert_msg(r.exit_code == 0, "%s/%s alone: %s", model.c_str(), g.name.c_str(), r.err.c_str());
            expected.push_back(tokens_of(r.out, model + "/" + g.name + " alone"));
        }
        Daemon dm = start_vlmd(model, "greedy-" + model);
        for (size_t i = 0; i < cases.size(); i++) {
            ProcessResult r = run_process(case_argv(model, cases[i], &dm.socket));
            ck_assert_msg(r.exit_code == 0, "%s/%s via vlmd: %s", model.c_str(), cases[i].name.c_str(),
                          r.err.c_str());
            std::string got = tokens_of(r.out, model + "/" + cases[i].name);
            ck_assert_msg(got == expected[i], "%s/%s via vlmd:\n got %s\nwant %s", model.c_str(),
                          cases[i].name.c_str(), got.c_str(), expected[i].c_str());
            compared++;
        }
        // 16 concurrent clients, each its own process and connection.
        const int n = 16;
        std::vector<pid_t> pids(n);
        std::vector<std::string> outs(n);
        for (int k = 0; k < n; k++) {
            outs[k] = tmpdir + "/conc-" + std::to_string(k) + ".out";
            std::vector<std::string> argv = case_argv(model, cases[k % cases.size()], &dm.socket);
            posix_spawn_file_actions_t fa;
            posix_spawn_file_actions_init(&fa);
            posix_spawn_file_actions_addopen(&fa, 1, outs[k].c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            std::vector<char *> args;
            for (auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
            args.push_back(nullptr);
            ck_assert_int_eq(posix_spawn(&pids[k], args[0], &fa, nullptr, args.data(), environ), 0);
            posix_spawn_file_actions_destroy(&fa);
        }
        for (int k = 0; k < n; k++) {
            int st = 0;
            waitpid(pids[k], &st, 0);
            ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s concurrent client %d failed",
                          model.c_str(), k);
            std::string got = tokens_of(slurp(outs[k]), model + " concurrent");
            ck_assert_msg(got == expected[k % cases.size()], "%s/%s concurrent client %d:\n got %s\nwant %s",
                          model.c_str(), cases[k % cases.size()].name.c_str(), k, got.c_str(),
                          expected[k % cases.size()].c_str());
            compared++;
        }
        json_t *s = settled_stats(dm.socket);
        ck_assert_int_eq(stat_int(s, "engine", "kv_blocks_used"), 0);
        json_decref(s);
        ck_assert_int_eq(stop_vlmd(dm), 0);
    }
    std::printf("greedy via vlmd: %d answers token-for-token equal to vlm-run alone (max abs diff 0)\n",
                compared);
}
END_TEST

// Builds a small chat body in the arena and submits it.
static int submit_text(vlm_ipc_client *c, const std::string &prompt, int max_tokens, void *user,
                       uint32_t *slot, uint32_t *gen, uint32_t timeout_ms = 0)
{
    std::string body = "{\"messages\":[{\"role\":\"user\",\"content\":\"" + prompt +
                       "\"}],\"max_tokens\":" + std::to_string(max_tokens) + ",\"ignore_eos\":true}";
    uint64_t off;
    void *p = vlm_ipc_alloc(c, body.size(), &off);
    if (!p) return VLM_IPC_AGAIN;
    std::memcpy(p, body.data(), body.size());
    int rc = vlm_ipc_submit(c, off, body.size(), timeout_ms, 0, &off, 1, user, slot, gen);
    if (rc != VLM_IPC_OK) vlm_ipc_free(c, off);
    return rc;
}

// One stress client process: `total` requests, up to 8 in flight, ~1 in 5
// cancelled at a random point. Exit 0 when every request got its final event.
static int stress_client(const std::string &sock, int total, unsigned seed)
{
    vlm_ipc_client *c = try_connect(sock);
    if (!c) return 10;
    std::mt19937 rng(seed);
    std::map<uint32_t, uint32_t> live;   // slot -> gen
    int submitted = 0, finished = 0, cancelled_sent = 0;
    double t0 = now_ms();
    while (finished < total) {
        // A hang detector, not a speed test: under ASan beside other suites
        // on 2 loaded cores the run took over 60 s; the test case allows 300.
        if (now_ms() - t0 > 240000) return 11;
        while (submitted < total && live.size() < 8) {
            uint32_t slot, gen;
            int rc = submit_text(c, "stress " + std::to_string(submitted), 1 + int(rng() % 4), nullptr,
                                 &slot, &gen);
            if (rc == VLM_IPC_AGAIN) break;
            if (rc != VLM_IPC_OK) return 12;
            live[slot] = gen;
            submitted++;
            if (rng() % 5 == 0) {
                vlm_ipc_cancel(c, slot, gen);
                cancelled_sent++;
            }
        }
        vlm_ipc_event ev;
        bool any = false;
        while (vlm_ipc_next_event(c, &ev)) {
            any = true;
            if (ev.kind == VLM_IPC_RES_ERROR && ev.status != 429) return 13;
            // stop, length or cancelled: each crosses as a number vlmd named
            if (ev.kind == VLM_IPC_RES_DONE && vlm_ipc_finish_name(ev.finish_reason) == nullptr)
                return 16;
            if (ev.final) {
                live.erase(ev.slot);
                finished++;
            }
        }
        if (!any) {
            // A lost doorbell shows up as a wait that runs to its timeout
            // while requests are in flight.
            double w0 = now_ms();
            if (vlm_ipc_client_wait(c, 3000) == VLM_IPC_CLOSED) return 14;
            if (!live.empty() && now_ms() - w0 >= 2900) return 15;
        }
    }
    vlm_ipc_client_free(c);
    return 0;
}

START_TEST(multi_process_stress)
{
    Daemon dm = start_vlmd("tiny-flash", "stress");
    json_t *before = daemon_stats(dm.socket);
    const int procs = 4, each = 400;
    std::vector<pid_t> pids;
    double t0 = now_ms();
    for (int p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid == 0) _exit(stress_client(dm.socket, each, 1234u + unsigned(p)));
        pids.push_back(pid);
    }
    for (pid_t pid : pids) {
        int st = 0;
        waitpid(pid, &st, 0);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "stress client exit %d",
                      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    double ms = now_ms() - t0;
    json_t *after = settled_stats(dm.socket);
    json_int_t done = stat_int(after, "engine", "requests_done") - stat_int(before, "engine", "requests_done");
    json_int_t canc = stat_int(after, "engine", "requests_cancelled") -
                      stat_int(before, "engine", "requests_cancelled");
    json_int_t failed = stat_int(after, "engine", "requests_failed") - stat_int(before, "engine", "requests_failed");
    json_int_t rejected = stat_int(after, "ipc", "requests_rejected") - stat_int(before, "ipc", "requests_rejected");
    std::printf("stress: %d requests from %d processes in %.0f ms: done %lld cancelled %lld failed %lld "
                "rejected %lld, kv_blocks_used %lld\n", procs * each, procs, ms, (long long)done,
                (long long)canc, (long long)failed, (long long)rejected,
                (long long)stat_int(after, "engine", "kv_blocks_used"));
    ck_assert_int_eq(stat_int(after, "engine", "kv_blocks_used"), 0);
    ck_assert_int_eq(stat_int(after, "engine", "running"), 0);
    ck_assert_int_eq(done + canc + failed + rejected, procs * each);
    ck_assert_int_gt(canc, 0);
    ck_assert_int_eq(stat_int(after, "ipc", "protocol_errors"), 0);
    ck_assert_int_eq(memfd_maps_settled(dm.pid), 0);   // every client's memory released
    json_decref(before);
    json_decref(after);
    ck_assert_int_eq(stop_vlmd(dm), 0);
}
END_TEST

START_TEST(sigkill_restart)
{
    Daemon dm = start_vlmd("tiny-flash", "kill");
    int base_fds = fd_count(dm.pid);
    vlm_ipc_client *c = try_connect(dm.socket);
    ck_assert_ptr_nonnull(c);
    uint64_t epoch1 = vlm_ipc_client_epoch(c);
    uint32_t slot, gen;
    ck_assert_int_eq(submit_text(c, "a long answer please", 4000, nullptr, &slot, &gen), VLM_IPC_OK);
    vlm_ipc_event ev;
    int deltas = 0;
    while (deltas < 3) {
        while (vlm_ipc_next_event(c, &ev)) {
            ck_assert_int_eq(ev.kind, VLM_IPC_RES_DELTA);
            deltas++;
        }
        if (deltas < 3) ck_assert_int_ne(vlm_ipc_client_wait(c, 2000), VLM_IPC_CLOSED);
    }
    ck_assert_int_eq(stop_vlmd(dm, SIGKILL), -SIGKILL);
    double t0 = now_ms();
    bool got_error = false;
    while (!got_error && now_ms() - t0 < 2000) {
        vlm_ipc_client_wait(c, 100);
        while (vlm_ipc_next_event(c, &ev))
            if (ev.kind == VLM_IPC_RES_ERROR) {
                got_error = true;
                ck_assert_int_eq(ev.status, 503);
            }
    }
    double err_ms = now_ms() - t0;
    ck_assert_msg(got_error, "client got no error within 2 s of SIGKILL");
    ck_assert(vlm_ipc_client_closed(c));
    ck_assert_int_eq(memfd_maps(getpid()), 0);   // client unmapped the dead epoch
    vlm_ipc_client_free(c);

    dm = start_vlmd("tiny-flash", "kill");     // same socket path: stale file replaced
    c = try_connect(dm.socket);
    ck_assert_ptr_nonnull(c);
    uint64_t epoch2 = vlm_ipc_client_epoch(c);
    ck_assert_msg(epoch2 != epoch1, "epoch did not change on restart");
    ck_assert_int_eq(submit_text(c, "hello again", 4, nullptr, &slot, &gen), VLM_IPC_OK);
    bool done = false;
    while (!done) {
        while (vlm_ipc_next_event(c, &ev)) {
            ck_assert_msg(ev.kind != VLM_IPC_RES_ERROR, "after restart: %.*s", int(ev.text_length), ev.text);
            if (ev.kind == VLM_IPC_RES_DONE) {
                done = true;
                ck_assert_msg(ev.finish_reason == VLM_IPC_FINISH_STOP ||
                                  ev.finish_reason == VLM_IPC_FINISH_LENGTH,
                              "finish_reason %u", ev.finish_reason);
            }
        }
        if (!done) ck_assert_int_ne(vlm_ipc_client_wait(c, 2000), VLM_IPC_CLOSED);
    }
    // A client that dies mid-stream: its request is cancelled, memory freed.
    ck_assert_int_eq(submit_text(c, "abandon me", 4000, nullptr, &slot, &gen), VLM_IPC_OK);
    usleep(50000);
    vlm_ipc_client_free(c);
    json_t *s = settled_stats(dm.socket);
    ck_assert_int_eq(stat_int(s, "engine", "kv_blocks_used"), 0);
    ck_assert_int_eq(stat_int(s, "engine", "running"), 0);
    json_decref(s);
    usleep(50000);
    ck_assert_int_eq(memfd_maps_settled(dm.pid), 0);
    int fds = fd_count(dm.pid);
    std::printf("sigkill: client error after %.1f ms; restart epoch %016llx -> %016llx; vlmd fds %d "
                "(at start %d), memfd maps 0\n", err_ms, (unsigned long long)epoch1,
                (unsigned long long)epoch2, fds, base_fds);
    ck_assert_int_le(fds, base_fds);
    ck_assert_int_eq(stop_vlmd(dm), 0);
}
END_TEST

// A raw client that does the handshake itself and maps the memory, so it can
// write anything there.
struct RawClient {
    int fd = -1;
    uint8_t *base = nullptr;
    size_t size = 0;
};

static RawClient raw_connect(const std::string &sock)
{
    RawClient r;
    r.fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, sock.c_str());
    ck_assert_int_eq(connect(r.fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    vlm_ipc_msg m{};
    m.type = VLM_IPC_MSG_HELLO;
    m.version = VLM_IPC_VERSION;
    ck_assert_int_eq(send(r.fd, &m, sizeof m, 0), sizeof m);
    char cbuf[CMSG_SPACE(sizeof(int))];
    iovec iov{&m, sizeof m};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    ck_assert_int_eq(recvmsg(r.fd, &mh, 0), sizeof m);
    ck_assert_int_eq(m.type, VLM_IPC_MSG_WELCOME);
    int memfd;
    std::memcpy(&memfd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof memfd);
    r.size = m.shm_size;
    r.base = static_cast<uint8_t *>(mmap(nullptr, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0));
    ck_assert(r.base != MAP_FAILED);
    // The seal holds: the daemon's memory cannot be shrunk under it.
    ck_assert_int_ne(ftruncate(memfd, 4096), 0);
    close(memfd);
    return r;
}

static bool raw_closed_by_daemon(RawClient &r, int timeout_ms)
{
    vlm_ipc_msg m{};
    m.type = VLM_IPC_MSG_DOORBELL_REQUEST;
    m.version = VLM_IPC_VERSION;
    send(r.fd, &m, sizeof m, MSG_NOSIGNAL);
    pollfd p{r.fd, POLLIN, 0};
    double t0 = now_ms();
    while (now_ms() - t0 < timeout_ms) {
        if (poll(&p, 1, 50) > 0) {
            char b[64];
            ssize_t n = recv(r.fd, b, sizeof b, MSG_DONTWAIT);
            if (n == 0) return true;
        }
    }
    return false;
}

static void raw_free(RawClient &r)
{
    munmap(r.base, r.size);
    close(r.fd);
}

START_TEST(hostile_clients_are_disconnected)
{
    Daemon dm = start_vlmd("tiny-flash", "hostile");
    vlm_ipc_client *good = try_connect(dm.socket);
    ck_assert_ptr_nonnull(good);
    uint32_t gslot, ggen;
    ck_assert_int_eq(submit_text(good, "I am well behaved", 200, nullptr, &gslot, &ggen), VLM_IPC_OK);

    std::mt19937 rng(7);
    const char *attacks[] = {"garbage ring entries", "tail far ahead", "body outside the arena",
                             "image outside the arena", "bad socket message", "slot reuse"};
    for (int attack = 0; attack < 6; attack++) {
        RawClient r = raw_connect(dm.socket);
        auto *h = reinterpret_cast<vlm_ipc_shm_header *>(r.base);
        auto *ring = reinterpret_cast<vlm_ipc_request_entry *>(r.base + h->request_ring_offset);
        uint8_t *arena = r.base + h->request_arena_offset;
        if (attack == 0) {
            for (size_t i = 0; i < 4 * sizeof(vlm_ipc_request_entry); i++)
                reinterpret_cast<uint8_t *>(ring)[i] = uint8_t(rng());
            ring[0].kind = 99;
            __atomic_store_n(&h->request_tail, 4, __ATOMIC_RELEASE);
        } else if (attack == 1) {
            __atomic_store_n(&h->request_tail, uint64_t(1) << 40, __ATOMIC_RELEASE);
        } else if (attack == 2) {
            ring[0] = vlm_ipc_request_entry{VLM_IPC_REQ_SUBMIT, 0, 1, 0, h->request_arena_size - 8, 4096, {}};
            __atomic_store_n(&h->request_tail, 1, __ATOMIC_RELEASE);
        } else if (attack == 3) {
            std::string body = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"image\":0}]}],"
                                "\"images\":[{\"offset\":1024,\"length\":" +
                                std::to_string(h->request_arena_size) + "}]}";
            std::memcpy(arena, body.data(), body.size());
            ring[0] = vlm_ipc_request_entry{VLM_IPC_REQ_SUBMIT, 0, 1, 0, 0, body.size(), {}};
            __atomic_store_n(&h->request_tail, 1, __ATOMIC_RELEASE);
        } else if (attack == 4) {
            char junk[5] = {1, 2, 3, 4, 5};
            send(r.fd, junk, sizeof junk, MSG_NOSIGNAL);
        } else {
            std::string body = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":500,\"ignore_eos\":true}";
            std::memcpy(arena, body.data(), body.size());
            ring[0] = vlm_ipc_request_entry{VLM_IPC_REQ_SUBMIT, 3, 1, 0, 0, body.size(), {}};
            ring[1] = ring[0];
            ring[1].gen = 2;
            __atomic_store_n(&h->request_tail, 2, __ATOMIC_RELEASE);
        }
        ck_assert_msg(raw_closed_by_daemon(r, 3000), "attack '%s': connection not closed", attacks[attack]);
        raw_free(r);
    }
    // The good client is unaffected: its request completes normally.
    vlm_ipc_event ev;
    int tokens = 0;
    bool done = false;
    while (!done) {
        while (vlm_ipc_next_event(good, &ev)) {
            ck_assert_msg(ev.kind != VLM_IPC_RES_ERROR, "good client got: %.*s", int(ev.text_length), ev.text);
            tokens += int(ev.n_tokens);
            if (ev.kind == VLM_IPC_RES_DONE) {
                done = true;
                ck_assert_int_eq(ev.completion_tokens, 200);
            }
        }
        if (!done) ck_assert_int_ne(vlm_ipc_client_wait(good, 5000), VLM_IPC_CLOSED);
    }
    ck_assert_int_eq(tokens, 200);
    // A bad request body (not a lie about memory) is a 400, connection kept.
    uint32_t slot, gen;
    {
        std::string body = "{\"messages\":[],\"bogus\":1}";
        uint64_t off;
        std::memcpy(vlm_ipc_alloc(good, body.size(), &off), body.data(), body.size());
        ck_assert_int_eq(vlm_ipc_submit(good, off, body.size(), 0, 0, &off, 1, nullptr, &slot, &gen), VLM_IPC_OK);
        bool got = false;
        while (!got) {
            while (vlm_ipc_next_event(good, &ev)) {
                ck_assert_int_eq(ev.kind, VLM_IPC_RES_ERROR);
                ck_assert_int_eq(ev.status, 400);
                got = true;
            }
            if (!got) ck_assert_int_ne(vlm_ipc_client_wait(good, 2000), VLM_IPC_CLOSED);
        }
    }
    vlm_ipc_client_free(good);
    json_t *s = settled_stats(dm.socket);
    std::printf("hostile: %lld protocol errors counted, good client got all 200 tokens\n",
                (long long)stat_int(s, "ipc", "protocol_errors"));
    ck_assert_int_eq(stat_int(s, "ipc", "protocol_errors"), 6);
    ck_assert_int_eq(stat_int(s, "engine", "kv_blocks_used"), 0);
    json_decref(s);
    ck_assert_int_eq(stop_vlmd(dm), 0);
}
END_TEST

START_TEST(backpressure_and_drain)
{
    Daemon dm = start_vlmd("tiny-flash", "slow", {"--backpressure-timeout-ms", "300"});
    // A client that never reads: ~40 requests x 60 records overflow its ring.
    vlm_ipc_client *lazy = try_connect(dm.socket);
    ck_assert_ptr_nonnull(lazy);
    uint32_t slot, gen;
    for (int i = 0; i < 40; i++) ck_assert_int_eq(submit_text(lazy, "flood", 60, nullptr, &slot, &gen), VLM_IPC_OK);
    // Meanwhile a normal client keeps working.
    vlm_ipc_client *good = try_connect(dm.socket);
    ck_assert_ptr_nonnull(good);
    double t0 = now_ms();
    bool lazy_closed = false;
    while (now_ms() - t0 < 20000 && !lazy_closed) {
        usleep(100000);
        struct pollfd p{vlm_ipc_client_fd(lazy), POLLIN, 0};
        char b[64];
        if (poll(&p, 1, 0) > 0) {
            // Only look at the socket: drain doorbells, detect EOF.
            while (true) {
                ssize_t n = recv(vlm_ipc_client_fd(lazy), b, sizeof b, MSG_DONTWAIT);
                if (n == 0) lazy_closed = true;
                if (n <= 0) break;
            }
        }
    }
    ck_assert_msg(lazy_closed, "a client that stopped reading was not disconnected");
    vlm_ipc_client_free(lazy);
    ck_assert_int_eq(submit_text(good, "still served", 8, nullptr, &slot, &gen), VLM_IPC_OK);
    // SIGTERM while it runs: the request still finishes, then vlmd exits 0.
    ck_assert_int_eq(submit_text(good, "drain me", 300, nullptr, &slot, &gen), VLM_IPC_OK);
    usleep(20000);
    kill(dm.pid, SIGTERM);
    int finals = 0, errors = 0;
    std::string error_text;
    vlm_ipc_event ev;
    t0 = now_ms();
    while (finals < 2 && now_ms() - t0 < 20000) {
        while (vlm_ipc_next_event(good, &ev)) {
            if (ev.final) finals++;
            if (ev.kind == VLM_IPC_RES_ERROR) {
                errors++;
                error_text = std::to_string(ev.status) + " " + std::string(ev.text, ev.text_length);
            }
        }
        if (finals < 2) vlm_ipc_client_wait(good, 200);
    }
    ck_assert_int_eq(finals, 2);
    ck_assert_msg(errors == 0, "during drain: %s", error_text.c_str());
    vlm_ipc_client_free(good);
    int st = 0;
    waitpid(dm.pid, &st, 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "vlmd did not exit 0 after SIGTERM");
    std::string log = slurp(dm.log);
    ck_assert_msg(log.find("reason=\"backpressure timeout\"") != std::string::npos, "no backpressure close logged");
    ck_assert_msg(log.find("event=drain_start") != std::string::npos, "no drain logged");
    ck_assert_msg(log.find("flood") == std::string::npos && log.find("drain me") == std::string::npos,
                  "prompt text leaked into the log");
    std::printf("backpressure: lazy client closed; drain finished running requests, exit 0\n");
}
END_TEST

// Results the daemon wrote before it closed the socket are delivered, not
// replaced by "daemon closed the connection": a request that finished during
// a drain must not turn into a 503 just because the client read late.
START_TEST(results_written_before_exit_are_delivered)
{
    Daemon dm = start_vlmd("tiny-flash", "exit");
    vlm_ipc_client *c = try_connect(dm.socket);
    ck_assert_ptr_nonnull(c);
    uint32_t slot, gen;
    ck_assert_int_eq(submit_text(c, "short", 8, nullptr, &slot, &gen), VLM_IPC_OK);
    ck_assert_int_eq(submit_text(c, "longer", 16, nullptr, &slot, &gen), VLM_IPC_OK);
    // Read nothing until vlmd has drained both requests and exited.
    kill(dm.pid, SIGTERM);
    int st = 0;
    waitpid(dm.pid, &st, 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "vlmd did not exit 0 after SIGTERM");
    ck_assert_int_eq(vlm_ipc_client_wait(c, 1000), VLM_IPC_CLOSED);
    vlm_ipc_event ev;
    int tokens = 0, done = 0;
    std::string errors;
    while (vlm_ipc_next_event(c, &ev)) {
        if (ev.kind == VLM_IPC_RES_ERROR) errors += std::string(ev.text, ev.text_length) + "; ";
        tokens += int(ev.n_tokens);
        if (ev.kind == VLM_IPC_RES_DONE) done++;
    }
    ck_assert_msg(errors.empty(), "finished requests reported as: %s", errors.c_str());
    ck_assert_int_eq(done, 2);
    ck_assert_int_eq(tokens, 24);
    ck_assert_int_eq(vlm_ipc_client_in_flight(c), 0);
    vlm_ipc_client_free(c);
}
END_TEST

// A task's answer comes whole: no DELTA record crosses the ring, one DONE
// carries the post-processed text and its language. A task cannot ask for
// logprobs (there is no stream to attach them to).
START_TEST(task_answers_come_whole)
{
    Daemon dm = start_vlmd("tiny-flash", "tasks", {"--prompts", fixtures + "/../../conf/prompts"});
    vlm_ipc_client *c = try_connect(dm.socket);
    ck_assert(c != nullptr);
    std::string png = slurp(fixtures + "/images/tiny.png");
    ck_assert(!png.empty());
    auto submit_task = [&](const std::string &extra, uint32_t *slot, uint32_t *gen) {
        uint64_t img_off, body_off;
        void *ip = vlm_ipc_alloc(c, png.size(), &img_off);
        ck_assert(ip != nullptr);
        std::memcpy(ip, png.data(), png.size());
        std::string body = "{\"task\":\"alt_text\",\"language\":\"en\",\"title\":\"Harbour walk\","
                           "\"text\":\"Boats at dawn.\",\"images\":[{\"offset\":" + std::to_string(img_off) +
                           ",\"length\":" + std::to_string(png.size()) + "}],\"max_tokens\":24,"
                           "\"ignore_eos\":true" + extra + "}";
        void *bp = vlm_ipc_alloc(c, body.size(), &body_off);
        ck_assert(bp != nullptr);
        std::memcpy(bp, body.data(), body.size());
        uint64_t regions[2] = {body_off, img_off};
        ck_assert_int_eq(vlm_ipc_submit(c, body_off, body.size(), 0, 0, regions, 2, nullptr, slot, gen), VLM_IPC_OK);
    };
    // The answer: every record of the request, until the final one.
    auto records = [&](std::vector<vlm_ipc_event> &evs, std::vector<std::string> &texts) {
        double t0 = now_ms();
        for (;;) {
            vlm_ipc_event ev;
            while (vlm_ipc_next_event(c, &ev)) {
                evs.push_back(ev);
                texts.emplace_back(ev.text ? ev.text : "", ev.text_length);
                if (ev.final) return;
            }
            ck_assert_msg(now_ms() - t0 < 60000, "no final record in 60 s");
            ck_assert_int_ne(vlm_ipc_client_wait(c, 1000), VLM_IPC_CLOSED);
        }
    };
    uint32_t slot, gen;
    submit_task("", &slot, &gen);
    std::vector<vlm_ipc_event> evs;
    std::vector<std::string> texts;
    records(evs, texts);
    ck_assert_msg(evs.size() == 1, "%zu records for one task (want one DONE)", evs.size());
    const vlm_ipc_event &done = evs[0];
    ck_assert_int_eq(done.kind, VLM_IPC_RES_DONE);
    ck_assert_int_eq(done.slot, slot);
    ck_assert_int_eq(done.gen, gen);
    ck_assert_int_eq(done.n_tokens, 0);
    ck_assert_str_eq(done.language, "en");
    ck_assert_uint_eq(done.finish_reason, VLM_IPC_FINISH_LENGTH);
    ck_assert_int_eq(done.completion_tokens, 24);
    const std::string &answer = texts[0];
    // Post-processed: one line, trimmed, no thinking, no closing full stop.
    ck_assert_msg(answer.find('\n') == std::string::npos && answer.find("<think>") == std::string::npos &&
                      (answer.empty() || (answer.front() != ' ' && answer.back() != ' ' && answer.back() != '.')),
                  "not post-processed: \"%s\"", answer.c_str());
    std::printf("alt_text through vlmd: one DONE record, %zu bytes: \"%s\"\n", answer.size(), answer.c_str());

    evs.clear();
    texts.clear();
    submit_task(",\"logprobs\":2", &slot, &gen);
    records(evs, texts);
    ck_assert_uint_eq(evs.size(), 1);
    ck_assert_int_eq(evs[0].kind, VLM_IPC_RES_ERROR);
    ck_assert_int_eq(evs[0].status, 400);
    ck_assert_msg(texts[0].find("logprobs are for chat") != std::string::npos, "%s", texts[0].c_str());
    vlm_ipc_client_free(c);
    ck_assert_int_eq(stop_vlmd(dm), 0);
}
END_TEST

// vlmd.conf's log_level decides which lines vlmd writes: at warn a served
// request leaves no line at all, at debug each request also logs its start.
START_TEST(log_level_filters_lines)
{
    auto serve_one = [&](const char *level) {
        Daemon dm = start_vlmd("tiny-flash", std::string("level-") + level, {"--log-level", level});
        vlm_ipc_client *c = try_connect(dm.socket);
        ck_assert(c != nullptr);
        uint32_t slot, gen;
        ck_assert_int_eq(submit_text(c, "log level probe", 4, nullptr, &slot, &gen), VLM_IPC_OK);
        vlm_ipc_event ev;
        bool done = false;
        while (!done) {
            while (vlm_ipc_next_event(c, &ev)) done = done || ev.final;
            if (!done) ck_assert_int_ne(vlm_ipc_client_wait(c, 5000), VLM_IPC_CLOSED);
        }
        vlm_ipc_client_free(c);
        ck_assert_int_eq(stop_vlmd(dm), 0);
        return slurp(dm.log);
    };
    std::string warn = serve_one("warn");
    ck_assert_msg(warn.find("level=info") == std::string::npos && warn.find("level=debug") == std::string::npos,
                  "log_level warn wrote:\n%s", warn.c_str());
    std::string debug = serve_one("debug");
    for (const char *want : {"level=debug event=request_start", "level=info event=request_done",
                             "level=info event=listening", "log_level=debug"})
        ck_assert_msg(debug.find(want) != std::string::npos, "log_level debug: no \"%s\" in:\n%s", want,
                      debug.c_str());
    ck_assert_msg(debug.find("log level probe") == std::string::npos, "prompt text in the log");
}
END_TEST

// vlmd loads the model directory's chat template at start: a construct the
// renderer does not support stops it with the file, line and construct; a
// directory without a template serves with the built-in format and a warning
// line; one with a template names it in an info line.
START_TEST(chat_template_checked_at_start)
{
    const std::string dir = tmpdir + "/template-model";
    mkdir(dir.c_str(), 0755);
    for (const char *f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                          "preprocessor_config.json", "generation_config.json"})
        ck_assert_int_eq(symlink((fixtures + "/models/tiny-flash/" + f).c_str(), (dir + "/" + f).c_str()), 0);
    {
        std::ofstream t(dir + "/chat_template.jinja");
        t << "{{ '[gMASK]<sop>' }}\n{% for m in messages %}{{ m.content }}{% endfor %}\n{% do messages.append(1) %}";
    }
    ProcessResult r = run_process({bin + "/vlmd", "--model", dir, "--socket", tmpdir + "/template.sock"});
    ck_assert_msg(r.exit_code == 1, "vlmd exit %d with an unsupported template: %s", r.exit_code, r.err.c_str());
    ck_assert_msg(r.err.find(dir + "/chat_template.jinja: line 3: ") != std::string::npos &&
                      r.err.find("'do'") != std::string::npos, "%s", r.err.c_str());
    std::printf("vlmd refused to start: %s", r.err.c_str());

    unlink((dir + "/chat_template.jinja").c_str());
    Daemon dm = start_vlmd(dir, "no-template");
    vlm_ipc_client *c = try_connect(dm.socket);
    ck_assert(c != nullptr);
    uint32_t slot, gen;
    ck_assert_int_eq(submit_text(c, "hello", 3, nullptr, &slot, &gen), VLM_IPC_OK);
    vlm_ipc_event ev;
    bool done = false;
    while (!done) {
        while (vlm_ipc_next_event(c, &ev)) {
            ck_assert_int_ne(ev.kind, VLM_IPC_RES_ERROR);
            done = done || ev.final;
        }
        if (!done) ck_assert_int_ne(vlm_ipc_client_wait(c, 5000), VLM_IPC_CLOSED);
    }
    vlm_ipc_client_free(c);
    ck_assert_int_eq(stop_vlmd(dm), 0);
    std::string log = slurp(dm.log);
    ck_assert_msg(log.find("level=warn event=chat_template_missing model=" + dir) != std::string::npos, "%s",
                  log.c_str());

    Daemon with = start_vlmd("tiny-flash", "with-template");
    ck_assert_int_eq(stop_vlmd(with), 0);
    log = slurp(with.log);
    ck_assert_msg(log.find("level=info event=chat_template file=" + fixtures + "/models/tiny-flash/chat_template.jinja") !=
                      std::string::npos, "%s", log.c_str());
    ck_assert(log.find("chat_template_missing") == std::string::npos);
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv)
{
    vlm_check_default_env();
    fixtures = env_or_die("VLM_FIXTURES");
    bin = env_or_die("VLM_BIN");
    char tmpl[] = "/tmp/vlm-ipc-test-XXXXXX";
    if (!mkdtemp(tmpl)) {
        std::perror("mkdtemp");
        return 2;
    }
    tmpdir = tmpl;
    signal(SIGPIPE, SIG_IGN);
    const int status = vlm_check_main(argc, argv, "ipc_protocol", {
        {"vlmd", 300, {
            greedy_matches_standalone,
            multi_process_stress,
            sigkill_restart,
            hostile_clients_are_disconnected,
            backpressure_and_drain,
            results_written_before_exit_are_delivered,
            task_answers_come_whole,
            log_level_filters_lines,
            chat_template_checked_at_start,
        }},
    });
    std::string rm = "rm -rf " + tmpdir;
    if (std::system(rm.c_str()) != 0) return 1;
    return status;
}
