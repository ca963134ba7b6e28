// ipc_server.cpp: vlmd's protocol server (see ipc_server.h and ipc/vlm_ipc.h).
// Threads: the IPC thread owns the sockets, the request rings and the
// connection table; the engine thread calls request sinks, which write
// results under the connection's mutex (the result ring's single producer is
// "whoever holds Conn::mu"). A connection's shared memory stays mapped while
// anything refers to it: the Conn (sinks hold it) and every ImageBytes::owner.
#include "serve/ipc_server.h"

#include "ipc/vlm_ipc.h"
#include "tasks/task_service.h"

#include <jansson.h>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace vlm {

namespace {

int64_t steady_ms()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct IpcCounters {
    std::atomic<uint64_t> connections_total{0}, connections_active{0}, connections_refused{0};
    std::atomic<uint64_t> bytes_in{0}, bytes_out{0}, protocol_errors{0};
    std::atomic<uint64_t> requests{0}, requests_rejected{0}, doorbells_in{0}, doorbells_out{0};
    std::atomic<uint64_t> results_deferred{0}, backpressure_disconnects{0};
};

struct ShmMapping {
    uint8_t *base = nullptr;
    size_t   size = 0;
    ~ShmMapping() { if (base) munmap(base, size); }
};

struct PendingResult {
    vlm_ipc_result_entry entry;
    std::string          payload;
};

struct SlotState {
    bool     active = false;
    uint32_t gen = 0;
    uint64_t engine_id = 0;
};

struct Conn {
    uint64_t                    id = 0;
    int                         fd = -1;
    int                         peer_pid = 0;
    bool                        attached = false;
    std::shared_ptr<ShmMapping> shm;
    vlm_ipc_shm_header          layout{};   // our copy; never re-read from shm
    vlm_ipc_shm_header         *hdr = nullptr;
    vlm_ipc_request_entry      *req_ring = nullptr;
    vlm_ipc_result_entry       *res_ring = nullptr;
    uint8_t                    *req_arena = nullptr, *res_arena = nullptr;
    uint64_t                    req_head = 0;          // IPC thread only

    std::mutex                  mu;                    // everything below
    bool                        dead = false;
    std::optional<LogWord>      broken;                // set by a producer: close it
    uint64_t                    res_tail = 0, res_arena_pos = 0;
    std::deque<PendingResult>   pending;
    size_t                      pending_bytes = 0;
    int64_t                     blocked_since_ms = 0;
    std::vector<SlotState>      slots;
};

struct Server {
    Engine                 &engine;
    const Tokenizer        &tok;
    const IpcServerOptions &opt;
    Logger                 &log;
    IpcCounters             counters;
    uint64_t                epoch = 0;
    int64_t                 started_ms = 0;
    int                     epoll_fd = -1, listen_fd = -1, wake_fd = -1, drained_fd = -1;
    uint64_t                next_conn_id = 16;     // below 16: fixed fds
    std::atomic<uint64_t>   next_request_id{1};
    std::unordered_map<uint64_t, std::shared_ptr<Conn>> conns;
    bool                    draining = false;

    Server(Engine &e, const Tokenizer &t, const IpcServerOptions &o, Logger &l)
        : engine(e), tok(t), opt(o), log(l) {}
};

enum : uint64_t { KEY_LISTEN = 1, KEY_STOP = 2, KEY_WAKE = 3, KEY_DRAINED = 4 };

void wake(int fd)
{
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n;
}

void send_msg(Conn &c, uint32_t type, IpcCounters &counters)
{
    vlm_ipc_msg m{};
    m.type = type;
    m.version = VLM_IPC_VERSION;
    // EAGAIN: unread doorbells are queued already, the client will look.
    if (c.fd >= 0 && send(c.fd, &m, sizeof m, MSG_DONTWAIT | MSG_NOSIGNAL) == ssize_t(sizeof m))
        counters.doorbells_out++;
}

enum class WriteResult { WRITTEN, FULL, BROKEN };

// Appends one result to the ring (payload into the arena). Caller holds mu.
WriteResult write_result(Conn &c, PendingResult &r, bool &doorbell)
{
    const uint64_t cap = c.layout.result_ring_capacity, size = c.layout.result_arena_size;
    uint64_t head = vlm_ipc_load_acquire(&c.hdr->result_head);
    if (head > c.res_tail || c.res_tail - head > cap) return WriteResult::BROKEN;
    if (c.res_tail - head == cap) return WriteResult::FULL;
    uint64_t len = r.payload.size(), pos = c.res_arena_pos;
    if (len > 0) {
        uint64_t phys = pos % size;
        if (phys + len > size) pos += size - phys;   // payloads never wrap
        uint64_t arena_head = vlm_ipc_load_acquire(&c.hdr->result_arena_head);
        if (arena_head > c.res_arena_pos || c.res_arena_pos - arena_head > size)
            return WriteResult::BROKEN;
        if (pos + len - arena_head > size) return WriteResult::FULL;
        std::memcpy(c.res_arena + pos % size, r.payload.data(), len);
        c.res_arena_pos = pos + len;
    }
    r.entry.payload_pos = pos;
    r.entry.payload_length = uint32_t(len);
    std::memcpy(&c.res_ring[c.res_tail & (cap - 1)], &r.entry, sizeof r.entry);
    uint64_t old_tail = c.res_tail++;
    vlm_ipc_store_release(&c.hdr->result_tail, c.res_tail);
    vlm_ipc_fence();
    if (vlm_ipc_load_acquire(&c.hdr->result_head) == old_tail) doorbell = true;
    return WriteResult::WRITTEN;
}

// Writes what fits; the rest waits (backpressure). Caller holds mu.
void flush_locked(Server &s, Conn &c)
{
    bool doorbell = false;
    while (!c.pending.empty() && !c.broken) {
        WriteResult w = write_result(c, c.pending.front(), doorbell);
        if (w == WriteResult::FULL) {
            // Tell the client we wait, then look once more: it may have made
            // room before it could see the flag.
            __atomic_store_n(&c.hdr->result_blocked, 1u, __ATOMIC_RELEASE);
            vlm_ipc_fence();
            w = write_result(c, c.pending.front(), doorbell);
        }
        if (w == WriteResult::BROKEN) {
            c.broken = LogWord("client corrupted the result ring indices");
            wake(s.wake_fd);
            break;
        }
        if (w == WriteResult::FULL) {
            if (c.blocked_since_ms == 0) {
                c.blocked_since_ms = steady_ms();
                wake(s.wake_fd);   // the IPC thread retries and times it out
            }
            break;
        }
        c.pending_bytes -= c.pending.front().payload.size();
        c.pending.pop_front();
    }
    if (c.pending.empty()) c.blocked_since_ms = 0;
    if (c.pending_bytes > s.opt.max_pending_result_bytes && !c.broken) {
        c.broken = LogWord("results not read (pending bytes over the limit)");
        wake(s.wake_fd);
    }
    if (doorbell) send_msg(c, VLM_IPC_MSG_DOORBELL_RESULT, s.counters);
}

void emit(Server &s, Conn &c, PendingResult r)
{
    std::lock_guard<std::mutex> lk(c.mu);
    if (c.dead) return;
    if (r.entry.kind != VLM_IPC_RES_DELTA && r.entry.slot < c.slots.size())
        c.slots[r.entry.slot].active = false;   // final: the slot is the client's again
    // Results never exceed a quarter of the arena (so they always fit once
    // the client reads); only error and stats text could, and is cut.
    size_t max_payload = size_t(c.layout.result_arena_size / 4);
    if (r.payload.size() > max_payload && r.entry.kind != VLM_IPC_RES_DELTA) {
        r.payload.resize(max_payload);
        r.entry.text_length = uint32_t(max_payload);
    }
    s.counters.bytes_out += r.payload.size();
    c.pending_bytes += r.payload.size();
    if (!c.pending.empty()) s.counters.results_deferred++;
    c.pending.push_back(std::move(r));
    flush_locked(s, c);
}

PendingResult make_result(uint32_t kind, uint32_t slot, uint32_t gen)
{
    PendingResult r;
    std::memset(&r.entry, 0, sizeof r.entry);
    r.entry.kind = kind;
    r.entry.slot = slot;
    r.entry.gen = gen;
    return r;
}

void emit_error(Server &s, Conn &c, uint32_t slot, uint32_t gen, int status, const std::string &msg)
{
    PendingResult r = make_result(VLM_IPC_RES_ERROR, slot, gen);
    r.entry.status = uint32_t(status);
    r.payload = msg;
    r.entry.text_length = uint32_t(msg.size());
    emit(s, c, std::move(r));
}

void put_u32(std::string &out, uint32_t v)
{
    char b[4];
    std::memcpy(b, &v, 4);
    out.append(b, 4);
}

void put_logprob_entry(std::string &out, const Tokenizer &tok, int32_t id, float logprob)
{
    put_u32(out, uint32_t(id));
    uint32_t lp;
    std::memcpy(&lp, &logprob, 4);
    put_u32(out, lp);
    std::string bytes = tok.token_bytes(id);
    put_u32(out, uint32_t(bytes.size()));
    out += bytes;
}

void copy_field(char *dst, size_t cap, const std::string &src)
{
    std::memset(dst, 0, cap);
    std::memcpy(dst, src.data(), std::min(cap, src.size()));
}

// The engine's finish reasons, as log words ("other" for one this list
// does not know yet).
LogWord finish_word(const std::string &reason)
{
    if (reason == "stop") return "stop";
    if (reason == "length") return "length";
    if (reason == "cancelled") return "cancelled";
    if (reason == "deadline") return "deadline";
    return "other";
}

// The engine's events for one request, turned into result records.
// A task's sink is wrapped by the task layer (tasks/task_service.h) first:
// it sends no DELTA and one DONE whose text is the whole answer.
EventSink make_sink(Server &s, std::shared_ptr<Conn> conn, uint32_t slot, uint32_t gen)
{
    int64_t start = steady_ms();
    Server *sp = &s;
    return [sp, conn, slot, gen, start](const EngineEvent &ev) {
        Server &s = *sp;
        if (ev.kind == EngineEvent::DELTA) {
            PendingResult r = make_result(VLM_IPC_RES_DELTA, slot, gen);
            r.payload = ev.text;
            r.entry.text_length = uint32_t(ev.text.size());
            for (int32_t id : ev.tokens) put_u32(r.payload, uint32_t(id));
            r.entry.n_tokens = uint32_t(ev.tokens.size());
            size_t lp_start = r.payload.size();
            for (const auto &lp : ev.logprobs) {
                put_logprob_entry(r.payload, s.tok, lp.id, lp.logprob);
                put_u32(r.payload, uint32_t(lp.top.size()));
                for (const auto &[id, p] : lp.top) put_logprob_entry(r.payload, s.tok, id, p);
            }
            r.entry.logprobs_length = uint32_t(r.payload.size() - lp_start);
            emit(s, *conn, std::move(r));
            return;
        }
        if (ev.kind == EngineEvent::DONE) {
            PendingResult r = make_result(VLM_IPC_RES_DONE, slot, gen);
            if (ev.whole_answer) {
                r.payload = ev.text;
                copy_field(r.entry.language, VLM_IPC_LANGUAGE_LEN, ev.language);
            }
            r.entry.text_length = uint32_t(r.payload.size());
            r.entry.prompt_tokens = uint32_t(ev.prompt_tokens);
            r.entry.completion_tokens = uint32_t(ev.completion_tokens);
            copy_field(r.entry.finish_reason, VLM_IPC_FINISH_LEN, ev.finish_reason);
            emit(s, *conn, std::move(r));
            s.log.info("request_done", {{"conn", conn->id}, {"slot", slot}, {"id", ev.request_id},
                                        {"finish", finish_word(ev.finish_reason)},
                                        {"prompt_tokens", ev.prompt_tokens},
                                        {"completion_tokens", ev.completion_tokens},
                                        {"answer_bytes", ev.text.size()}, {"ms", steady_ms() - start}});
            return;
        }
        // The error's text goes to the client only: it may quote the request.
        int status = ev.error_status ? ev.error_status : 500;
        s.log.info("request_error", {{"conn", conn->id}, {"slot", slot}, {"id", ev.request_id},
                                     {"status", status}, {"ms", steady_ms() - start}});
        emit_error(s, *conn, slot, gen, status, ev.error);
    };
}

std::string stats_json(Server &s)
{
    EngineMetrics m = s.engine.metrics();
    json_t *o = json_object();
    json_t *e = json_object();
    json_object_set_new(e, "queue_interactive", json_integer(m.queue_interactive));
    json_object_set_new(e, "queue_bulk", json_integer(m.queue_bulk));
    json_object_set_new(e, "running", json_integer(m.running));
    json_object_set_new(e, "kv_blocks_total", json_integer(m.kv_blocks_total));
    json_object_set_new(e, "kv_blocks_used", json_integer(m.kv_blocks_used));
    json_object_set_new(e, "requests_done", json_integer(json_int_t(m.requests_done)));
    json_object_set_new(e, "requests_cancelled", json_integer(json_int_t(m.requests_cancelled)));
    json_object_set_new(e, "requests_failed", json_integer(json_int_t(m.requests_failed)));
    json_object_set_new(e, "requests_coalesced", json_integer(json_int_t(m.requests_coalesced)));
    json_object_set_new(e, "tokens_generated", json_integer(json_int_t(m.tokens_generated)));
    json_object_set_new(e, "prompt_tokens", json_integer(json_int_t(m.prompt_tokens)));
    json_object_set_new(e, "prefix_cache_hit_tokens", json_integer(json_int_t(m.prefix_cache_hit_tokens)));
    json_object_set_new(e, "prefix_cache_lookup_tokens", json_integer(json_int_t(m.prefix_cache_lookup_tokens)));
    json_object_set_new(e, "vision_cache_hits", json_integer(json_int_t(m.vision_cache_hits)));
    json_object_set_new(e, "vision_cache_misses", json_integer(json_int_t(m.vision_cache_misses)));
    json_object_set_new(e, "ttft_ms_avg", json_real(m.ttft_ms_avg));
    json_object_set_new(e, "ttft_ms_p99", json_real(m.ttft_ms_p99));
    json_object_set_new(e, "decode_tokens_per_s", json_real(m.decode_tokens_per_s));
    json_object_set_new(o, "engine", e);
    json_t *i = json_object();
    const IpcCounters &c = s.counters;
    json_object_set_new(i, "connections_active", json_integer(json_int_t(c.connections_active.load())));
    json_object_set_new(i, "connections_total", json_integer(json_int_t(c.connections_total.load())));
    json_object_set_new(i, "connections_refused", json_integer(json_int_t(c.connections_refused.load())));
    json_object_set_new(i, "bytes_in", json_integer(json_int_t(c.bytes_in.load())));
    json_object_set_new(i, "bytes_out", json_integer(json_int_t(c.bytes_out.load())));
    json_object_set_new(i, "protocol_errors", json_integer(json_int_t(c.protocol_errors.load())));
    json_object_set_new(i, "requests", json_integer(json_int_t(c.requests.load())));
    json_object_set_new(i, "requests_rejected", json_integer(json_int_t(c.requests_rejected.load())));
    json_object_set_new(i, "doorbells_in", json_integer(json_int_t(c.doorbells_in.load())));
    json_object_set_new(i, "doorbells_out", json_integer(json_int_t(c.doorbells_out.load())));
    json_object_set_new(i, "results_deferred", json_integer(json_int_t(c.results_deferred.load())));
    json_object_set_new(i, "backpressure_disconnects", json_integer(json_int_t(c.backpressure_disconnects.load())));
    json_object_set_new(o, "ipc", i);
    char epoch[24];
    std::snprintf(epoch, sizeof epoch, "%016llx", (unsigned long long)s.epoch);
    json_object_set_new(o, "epoch", json_string(epoch));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "model", json_string(s.opt.model_name.c_str()));
    json_object_set_new(o, "uptime_s", json_real(double(steady_ms() - s.started_ms) / 1000.0));
    json_object_set_new(o, "draining", json_boolean(s.draining));
    char *text = json_dumps(o, JSON_COMPACT);
    std::string out = text ? text : "{}";
    std::free(text);
    json_decref(o);
    return out;
}

void close_conn(Server &s, const std::shared_ptr<Conn> &c, LogWord reason, bool protocol_error)
{
    std::vector<uint64_t> to_cancel;
    {
        std::lock_guard<std::mutex> lk(c->mu);
        if (c->dead) return;
        c->dead = true;
        epoll_ctl(s.epoll_fd, EPOLL_CTL_DEL, c->fd, nullptr);
        close(c->fd);
        c->fd = -1;
        c->pending.clear();
        c->pending_bytes = 0;
        for (auto &slot : c->slots)
            if (slot.active) {
                to_cancel.push_back(slot.engine_id);
                slot.active = false;
            }
    }
    for (uint64_t id : to_cancel)
        if (id != 0) s.engine.cancel(id);   // frees its KV blocks
    if (protocol_error) s.counters.protocol_errors++;
    s.counters.connections_active--;
    s.log.log(protocol_error ? LogLevel::WARN : LogLevel::INFO, "conn_close",
              {{"conn", c->id}, {"pid", c->peer_pid}, {"reason", reason}, {"cancelled", to_cancel.size()}});
    s.conns.erase(c->id);
}

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// The failed step of attach_conn, for the log (errno says the rest).
struct AttachError {
    LogWord step;
    int     err;
};

// Creates the connection's memfd, writes the layout, seals it and sends it.
bool attach_conn(Server &s, Conn &c, AttachError &fail)
{
    const IpcServerOptions &o = s.opt;
    vlm_ipc_shm_header h{};
    h.magic = VLM_IPC_MAGIC;
    h.version = VLM_IPC_VERSION;
    h.header_size = VLM_IPC_HEADER_SIZE;
    h.epoch = s.epoch;
    h.request_ring_capacity = o.request_ring_entries;
    h.result_ring_capacity = o.result_ring_entries;
    h.max_slots = o.max_slots;
    h.max_body_length = o.max_body_bytes;
    h.daemon_pid = uint32_t(getpid());
    h.heartbeat_ms = uint64_t(steady_ms());
    h.request_ring_offset = VLM_IPC_HEADER_SIZE;
    h.result_ring_offset = h.request_ring_offset + uint64_t(o.request_ring_entries) * 64;
    h.request_arena_offset = align_up(h.result_ring_offset + uint64_t(o.result_ring_entries) * 64, 4096);
    h.request_arena_size = align_up(o.request_arena_bytes, 4096);
    h.result_arena_offset = h.request_arena_offset + h.request_arena_size;
    h.result_arena_size = align_up(o.result_arena_bytes, 4096);
    h.shm_size = h.result_arena_offset + h.result_arena_size;

    int fd = memfd_create("vlm-ipc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        fail = {"memfd_create", errno};
        return false;
    }
    auto shm = std::make_shared<ShmMapping>();
    bool ok = ftruncate(fd, off_t(h.shm_size)) == 0;
    if (ok) {
        void *p = mmap(nullptr, h.shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ok = p != MAP_FAILED;
        if (ok) {
            shm->base = static_cast<uint8_t *>(p);
            shm->size = h.shm_size;
        }
    }
    // Sealed: the client cannot shrink it under us (that would be SIGBUS).
    ok = ok && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0;
    if (!ok) {
        fail = {"shared memory", errno};
        close(fd);
        return false;
    }
    std::memcpy(shm->base, &h, sizeof h);
    c.layout = h;
    c.shm = shm;
    c.hdr = reinterpret_cast<vlm_ipc_shm_header *>(shm->base);
    c.req_ring = reinterpret_cast<vlm_ipc_request_entry *>(shm->base + h.request_ring_offset);
    c.res_ring = reinterpret_cast<vlm_ipc_result_entry *>(shm->base + h.result_ring_offset);
    c.req_arena = shm->base + h.request_arena_offset;
    c.res_arena = shm->base + h.result_arena_offset;
    c.slots.assign(o.max_slots, SlotState{});

    vlm_ipc_msg m{};
    m.type = VLM_IPC_MSG_WELCOME;
    m.version = VLM_IPC_VERSION;
    m.epoch = s.epoch;
    m.shm_size = h.shm_size;
    m.pid = uint32_t(getpid());
    iovec iov{&m, sizeof m};
    char cbuf[CMSG_SPACE(sizeof(int))];
    std::memset(cbuf, 0, sizeof cbuf);
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    ssize_t n = sendmsg(c.fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    int send_errno = errno;
    close(fd);   // the client has its copy; our mapping keeps ours
    if (n != ssize_t(sizeof m)) {
        fail = {"welcome", send_errno};
        return false;
    }
    c.attached = true;
    return true;
}

void refuse(Conn &c, uint32_t status)
{
    vlm_ipc_msg m{};
    m.type = VLM_IPC_MSG_REFUSED;
    m.version = VLM_IPC_VERSION;
    m.status = status;
    ssize_t n = send(c.fd, &m, sizeof m, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
}

// The log's name for a submitted request's kind.
LogWord kind_word(const DecodedRequest &dec)
{
    if (!dec.task) return "chat";
    switch (dec.task->kind) {
    case TaskKind::ALT_TEXT: return "alt_text";
    case TaskKind::SUMMARY: return "summary";
    case TaskKind::SEO_DESCRIPTION: return "seo_description";
    case TaskKind::CHAT: break;
    }
    return "chat";
}

// SUBMIT: decode the body, let the task layer shape a task, submit.
// Returns a reason when the client broke the protocol (it is then closed).
std::optional<LogWord> submit(Server &s, const std::shared_ptr<Conn> &cp, const vlm_ipc_request_entry &e)
{
    Conn &c = *cp;
    if (e.body_length == 0 || e.body_length > c.layout.max_body_length ||
        !vlm_ipc_region_ok(e.body_offset, e.body_length, c.layout.request_arena_size))
        return LogWord("request body region outside the arena or over the size limit");
    // One copy of the (small) body: the client may rewrite it at any time.
    std::string body(reinterpret_cast<const char *>(c.req_arena + e.body_offset), size_t(e.body_length));
    RequestArena arena{c.req_arena, c.layout.request_arena_size, c.shm};
    DecodedRequest dec;
    std::string err;
    DecodeStatus st = decode_request_body(body, arena, s.opt.limits, dec, err);
    s.counters.requests++;
    s.counters.bytes_in += e.body_length;
    if (st == DecodeStatus::PROTOCOL_VIOLATION) return LogWord("image region outside the arena");
    EventSink sink = make_sink(s, cp, e.slot, e.gen);
    if (st == DecodeStatus::OK && dec.task &&
        !run_task(s.opt.templates, *dec.task, dec.engine.chat, sink, err))
        st = DecodeStatus::BAD_REQUEST;
    if (st == DecodeStatus::BAD_REQUEST) {
        s.counters.requests_rejected++;
        s.log.debug("request_rejected", {{"conn", c.id}, {"slot", e.slot}, {"status", 400}});
        emit_error(s, c, e.slot, e.gen, 400, err);
        return std::nullopt;
    }
    for (const auto &im : dec.engine.chat.images) s.counters.bytes_in += im.size;
    uint64_t id = s.next_request_id++;
    dec.engine.id = id;
    if (e.timeout_ms > 0) dec.engine.deadline_ms = steady_ms() + int64_t(e.timeout_ms);
    {
        std::lock_guard<std::mutex> lk(c.mu);
        c.slots[e.slot].engine_id = id;
    }
    s.log.debug("request_start", {{"conn", c.id}, {"slot", e.slot}, {"id", id}, {"kind", kind_word(dec)},
                                  {"priority", dec.engine.priority == Priority::BULK ? LogWord("bulk")
                                                                                     : LogWord("interactive")},
                                  {"images", dec.engine.chat.images.size()},
                                  {"max_tokens", dec.engine.chat.max_tokens}});
    SubmitResult sr = s.engine.submit(std::move(dec.engine), std::move(sink));
    if (sr.status != SubmitStatus::ACCEPTED) {
        s.counters.requests_rejected++;
        int status = sr.status == SubmitStatus::QUEUE_FULL ? 429
                   : sr.status == SubmitStatus::DRAINING   ? 503 : 400;
        std::string msg = sr.status == SubmitStatus::QUEUE_FULL
                              ? "queue full; retry after " + std::to_string(sr.retry_after_ms) + " ms"
                          : sr.status == SubmitStatus::DRAINING ? std::string("vlmd is shutting down")
                                                                : sr.error;
        s.log.debug("request_rejected", {{"conn", c.id}, {"slot", e.slot}, {"id", id}, {"status", status}});
        emit_error(s, c, e.slot, e.gen, status, msg);
    }
    return std::nullopt;
}

// Handles one request entry (already copied out of shared memory). Returns
// a reason when the client broke the protocol.
std::optional<LogWord> handle_request(Server &s, const std::shared_ptr<Conn> &cp,
                                      const vlm_ipc_request_entry &e)
{
    Conn &c = *cp;
    if (e.slot >= c.layout.max_slots) return LogWord("request slot out of range");
    if (e.kind == VLM_IPC_REQ_CANCEL) {
        uint64_t id = 0;
        {
            std::lock_guard<std::mutex> lk(c.mu);
            const SlotState &st = c.slots[e.slot];
            if (st.active && st.gen == e.gen) id = st.engine_id;
        }
        if (id != 0) s.engine.cancel(id);   // else it already finished: nothing to do
        return std::nullopt;
    }
    if (e.kind != VLM_IPC_REQ_SUBMIT && e.kind != VLM_IPC_REQ_STATS && e.kind != VLM_IPC_REQ_PING)
        return LogWord("unknown request kind");
    if (e.gen == 0) return LogWord("request generation 0");
    {
        std::lock_guard<std::mutex> lk(c.mu);
        SlotState &st = c.slots[e.slot];
        if (st.active) return LogWord("request slot already in use");
        st.active = true;
        st.gen = e.gen;
        st.engine_id = 0;
    }
    if (e.kind == VLM_IPC_REQ_PING) {
        emit(s, c, make_result(VLM_IPC_RES_PONG, e.slot, e.gen));
        return std::nullopt;
    }
    if (e.kind == VLM_IPC_REQ_STATS) {
        PendingResult r = make_result(VLM_IPC_RES_STATS, e.slot, e.gen);
        r.payload = stats_json(s);
        r.entry.text_length = uint32_t(r.payload.size());
        emit(s, c, std::move(r));
        return std::nullopt;
    }
    return submit(s, cp, e);
}

// Reads the request ring until it is empty (re-checking after publishing
// the head, so no doorbell is lost). Returns a reason on a protocol error.
std::optional<LogWord> drain_requests(Server &s, const std::shared_ptr<Conn> &c)
{
    const uint64_t cap = c->layout.request_ring_capacity;
    for (;;) {
        uint64_t tail = vlm_ipc_load_acquire(&c->hdr->request_tail);
        if (tail - c->req_head > cap) return LogWord("request ring tail out of range");
        if (tail == c->req_head) {
            vlm_ipc_store_release(&c->hdr->request_head, c->req_head);
            vlm_ipc_fence();
            if (vlm_ipc_load_acquire(&c->hdr->request_tail) == c->req_head) return std::nullopt;
            continue;
        }
        vlm_ipc_request_entry e;
        std::memcpy(&e, &c->req_ring[c->req_head & (cap - 1)], sizeof e);
        c->req_head++;
        if (std::optional<LogWord> why = handle_request(s, c, e)) return why;
        if (c->dead) return std::nullopt;
    }
}

void on_conn_readable(Server &s, const std::shared_ptr<Conn> &c)
{
    for (;;) {
        vlm_ipc_msg m;
        char cbuf[CMSG_SPACE(sizeof(int) * 4)];
        iovec iov{&m, sizeof m};
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
        ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n <= 0) {
            close_conn(s, c, n == 0 ? LogWord("client closed") : LogWord("socket error"), false);
            return;
        }
        bool had_fds = false;
        for (cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
            size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t k = 0; k < nfd; k++) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
                close(fd);
                had_fds = true;
            }
        }
        if (had_fds || n != ssize_t(sizeof m) || (mh.msg_flags & MSG_TRUNC)) {
            close_conn(s, c, "malformed socket message", true);
            return;
        }
        if (!c->attached) {
            if (m.type != VLM_IPC_MSG_HELLO || m.version != VLM_IPC_VERSION) {
                refuse(*c, 426);
                close_conn(s, c, "bad hello or protocol version", true);
                return;
            }
            AttachError fail{"", 0};
            if (!attach_conn(s, *c, fail)) {
                s.log.error("shm_error", {{"conn", c->id}, {"step", fail.step}, {"error", LogErrno{fail.err}}});
                refuse(*c, 503);
                close_conn(s, c, "cannot create shared memory", false);
                return;
            }
            s.log.info("conn_open", {{"conn", c->id}, {"pid", c->peer_pid}, {"shm_bytes", c->layout.shm_size}});
            continue;
        }
        if (m.type != VLM_IPC_MSG_DOORBELL_REQUEST && m.type != VLM_IPC_MSG_RESULT_SPACE) {
            close_conn(s, c, "unexpected socket message", true);
            return;
        }
        s.counters.doorbells_in++;
    }
    if (!c->attached) return;
    if (std::optional<LogWord> why = drain_requests(s, c)) {
        s.log.warn("protocol_error", {{"conn", c->id}, {"reason", *why}});
        close_conn(s, c, *why, true);
        return;
    }
    std::lock_guard<std::mutex> lk(c->mu);
    if (!c->dead && !c->pending.empty()) flush_locked(s, *c);
}

void on_accept(Server &s)
{
    for (;;) {
        int fd = accept4(s.listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        auto c = std::make_shared<Conn>();
        c->id = s.next_conn_id++;
        c->fd = fd;
        ucred cred{};
        socklen_t len = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) c->peer_pid = cred.pid;
        s.counters.connections_total++;
        s.counters.connections_active++;
        s.conns[c->id] = c;
        if (s.conns.size() > size_t(s.opt.max_connections)) {
            s.counters.connections_refused++;
            refuse(*c, 503);
            close_conn(s, c, "too many connections", false);
            continue;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = c->id;
        epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    }
}

// Retries held-back results, enforces the backpressure timeout, closes
// connections a producer found broken. Returns true if any still waits.
bool service_conns(Server &s)
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
        if (!c->pending.empty()) flush_locked(s, *c);
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
bool any_request_open(Server &s)
{
    for (auto &[id, c] : s.conns) {
        std::lock_guard<std::mutex> lk(c->mu);
        if (c->dead) continue;
        for (const auto &slot : c->slots)
            if (slot.active) return true;
    }
    return false;
}

void heartbeat(Server &s)
{
    uint64_t now = uint64_t(steady_ms());
    for (auto &[id, c] : s.conns)
        if (c->attached && !c->dead) __atomic_store_n(&c->hdr->heartbeat_ms, now, __ATOMIC_RELAXED);
}

bool open_listener(Server &s, std::string &err)
{
    const std::string &path = s.opt.socket_path;
    sockaddr_un addr{};
    if (path.empty() || path.size() >= sizeof addr.sun_path) {
        err = "socket path '" + path + "' is empty or too long";
        return false;
    }
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            err = path + ": exists and is not a socket";
            return false;
        }
        int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        bool live = connect(probe, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0;
        close(probe);
        if (live) {
            err = path + ": another vlmd is listening there";
            return false;
        }
        unlink(path.c_str());   // stale socket of a dead daemon
    }
    s.listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s.listen_fd < 0 || bind(s.listen_fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 ||
        listen(s.listen_fd, 256) != 0) {
        err = path + ": " + std::strerror(errno);
        return false;
    }
    return true;
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
    Server s(engine, tok, opt, log);
    s.started_ms = steady_ms();
    while (s.epoch == 0)
        if (getrandom(&s.epoch, sizeof s.epoch, 0) != ssize_t(sizeof s.epoch))
            s.epoch = uint64_t(std::chrono::system_clock::now().time_since_epoch().count()) ^
                      (uint64_t(getpid()) << 32);
    if (!open_listener(s, err)) {
        if (s.listen_fd >= 0) close(s.listen_fd);
        return false;
    }
    s.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    s.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s.drained_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    auto add = [&](int fd, uint64_t key) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = key;
        epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    };
    add(s.listen_fd, KEY_LISTEN);
    add(stop_fd, KEY_STOP);
    add(s.wake_fd, KEY_WAKE);
    add(s.drained_fd, KEY_DRAINED);
    log.info("listening", {{"socket", OperatorText(opt.socket_path)}, {"epoch", LogHex{s.epoch}},
                           {"pid", getpid()}});

    std::thread drainer;
    bool drained = false, waiting = false;
    int64_t last_heartbeat = 0, flush_deadline = 0;
    for (;;) {
        epoll_event evs[64];
        int n = epoll_wait(s.epoll_fd, evs, 64, waiting || drained ? 5 : 1000);
        for (int i = 0; i < n; i++) {
            uint64_t key = evs[i].data.u64;
            if (key == KEY_LISTEN) {
                on_accept(s);
            } else if (key == KEY_STOP) {
                uint8_t buf[256];
                ssize_t r = read(stop_fd, buf, sizeof buf);
                (void)r;
                if (!s.draining) {
                    s.draining = true;
                    log.info("drain_start", {{"connections", s.conns.size()}});
                    epoll_ctl(s.epoll_fd, EPOLL_CTL_DEL, s.listen_fd, nullptr);
                    close(s.listen_fd);
                    s.listen_fd = -1;
                    unlink(opt.socket_path.c_str());
                    drainer = std::thread([&s] {
                        s.engine.drain();
                        wake(s.drained_fd);
                    });
                }
            } else if (key == KEY_WAKE || key == KEY_DRAINED) {
                uint64_t v;
                ssize_t r = read(key == KEY_WAKE ? s.wake_fd : s.drained_fd, &v, sizeof v);
                (void)r;
                if (key == KEY_DRAINED && !drained) {
                    drained = true;
                    flush_deadline = steady_ms() + opt.drain_flush_timeout_ms;
                    log.info("drain_engine_done");
                }
            } else {
                auto it = s.conns.find(key);
                if (it == s.conns.end()) continue;
                std::shared_ptr<Conn> c = it->second;
                if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
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
    close(s.epoll_fd);
    close(s.wake_fd);
    close(s.drained_fd);
    log.info("stopped", {{"requests", s.counters.requests.load()}});
    return true;
}

}  // namespace vlm
