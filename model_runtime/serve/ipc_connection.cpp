// ipc_connection.cpp: see ipc_connection.h.
#include "serve/ipc_connection.h"
#include "serve/ipc_request.h"
#include "serve/ipc_stats.h"
#include "serve/result_writer.h"
#include "tasks/task_service.h"
#include "util/hash.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace vlm {

int64_t steady_ms()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

ShmMapping::~ShmMapping()
{
    if (base) munmap(base, size);
}

namespace {

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

void refuse(Conn &c, uint32_t status)
{
    vlm_ipc_msg m{};
    m.type = VLM_IPC_MSG_REFUSED;
    m.version = VLM_IPC_VERSION;
    m.status = status;
    ssize_t n = send(c.fd, &m, sizeof m, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
}

// The failed step of attach_conn, for the log (errno says the rest).
struct AttachError {
    LogWord step;
    int     err;
};

// Creates the connection's memfd, writes the layout, seals it and sends it.
bool attach_conn(IpcServer &s, Conn &c, AttachError &fail)
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
std::optional<LogWord> submit(IpcServer &s, const std::shared_ptr<Conn> &cp, const vlm_ipc_request_entry &e)
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
    EventSink sink = reply_sink(s, cp, e.slot, e.gen);
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
    // Whose request, for fair admission: the client's key (nginx: a hash of
    // the API subject, odd), else this connection (even, so never equal).
    dec.engine.client = e.client ? e.client : (mix64(c.id) & ~uint64_t(1));
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
std::optional<LogWord> handle_request(IpcServer &s, const std::shared_ptr<Conn> &cp,
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
std::optional<LogWord> drain_requests(IpcServer &s, const std::shared_ptr<Conn> &c)
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

}  // namespace

void accept_conn(IpcServer &s, int fd)
{
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
        return;
    }
    s.poller.add(fd, c->id, true);
}

void on_conn_readable(IpcServer &s, const std::shared_ptr<Conn> &c)
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
    if (!c->dead && !c->pending.empty()) flush_results_locked(s, *c);
}

void close_conn(IpcServer &s, const std::shared_ptr<Conn> &c, LogWord reason, bool protocol_error)
{
    std::vector<uint64_t> to_cancel;
    {
        std::lock_guard<std::mutex> lk(c->mu);
        if (c->dead) return;
        c->dead = true;
        s.poller.remove(c->fd);
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

}  // namespace vlm
