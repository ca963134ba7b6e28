// result_writer.cpp: see result_writer.h.
#include "serve/result_writer.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace vlm {

namespace {

void send_doorbell(IpcServer &s, Conn &c)
{
    vlm_ipc_msg m{};
    m.type = VLM_IPC_MSG_DOORBELL_RESULT;
    m.version = VLM_IPC_VERSION;
    // EAGAIN: unread doorbells are queued already, the client will look.
    if (c.fd >= 0 && send(c.fd, &m, sizeof m, MSG_DONTWAIT | MSG_NOSIGNAL) == ssize_t(sizeof m))
        s.counters.doorbells_out++;
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

PendingResult delta_record(const Tokenizer &tok, const EngineEvent &ev, uint32_t slot, uint32_t gen)
{
    PendingResult r = make_result(VLM_IPC_RES_DELTA, slot, gen);
    r.payload = ev.text;
    r.entry.text_length = uint32_t(ev.text.size());
    for (int32_t id : ev.tokens) put_u32(r.payload, uint32_t(id));
    r.entry.n_tokens = uint32_t(ev.tokens.size());
    size_t lp_start = r.payload.size();
    for (const auto &lp : ev.logprobs) {
        put_logprob_entry(r.payload, tok, lp.id, lp.logprob);
        put_u32(r.payload, uint32_t(lp.top.size()));
        for (const auto &[id, p] : lp.top) put_logprob_entry(r.payload, tok, id, p);
    }
    r.entry.logprobs_length = uint32_t(r.payload.size() - lp_start);
    return r;
}

PendingResult done_record(const EngineEvent &ev, uint32_t slot, uint32_t gen)
{
    PendingResult r = make_result(VLM_IPC_RES_DONE, slot, gen);
    if (ev.whole_answer) {
        r.payload = ev.text;
        copy_field(r.entry.language, VLM_IPC_LANGUAGE_LEN, ev.language);
    }
    r.entry.text_length = uint32_t(r.payload.size());
    r.entry.prompt_tokens = uint32_t(ev.prompt_tokens);
    r.entry.completion_tokens = uint32_t(ev.completion_tokens);
    r.entry.finish_reason = vlm_ipc_finish_code(ev.finish_reason.c_str());
    return r;
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

}  // namespace

PendingResult make_result(uint32_t kind, uint32_t slot, uint32_t gen)
{
    PendingResult r;
    std::memset(&r.entry, 0, sizeof r.entry);
    r.entry.kind = kind;
    r.entry.slot = slot;
    r.entry.gen = gen;
    return r;
}

void flush_results_locked(IpcServer &s, Conn &c)
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
            s.wake.ring();
            break;
        }
        if (w == WriteResult::FULL) {
            if (c.blocked_since_ms == 0) {
                c.blocked_since_ms = steady_ms();
                s.wake.ring();   // the IPC thread retries and times it out
            }
            break;
        }
        c.pending_bytes -= c.pending.front().payload.size();
        c.pending.pop_front();
    }
    if (c.pending.empty()) c.blocked_since_ms = 0;
    if (c.pending_bytes > s.opt.max_pending_result_bytes && !c.broken) {
        c.broken = LogWord("results not read (pending bytes over the limit)");
        s.wake.ring();
    }
    if (doorbell) send_doorbell(s, c);
}

void emit(IpcServer &s, Conn &c, PendingResult r)
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
    flush_results_locked(s, c);
}

void emit_error(IpcServer &s, Conn &c, uint32_t slot, uint32_t gen, int status, const std::string &msg)
{
    PendingResult r = make_result(VLM_IPC_RES_ERROR, slot, gen);
    r.entry.status = uint32_t(status);
    r.payload = msg;
    r.entry.text_length = uint32_t(msg.size());
    emit(s, c, std::move(r));
}

EventSink reply_sink(IpcServer &s, std::shared_ptr<Conn> conn, uint32_t slot, uint32_t gen)
{
    int64_t start = steady_ms();
    IpcServer *sp = &s;
    return [sp, conn = std::move(conn), slot, gen, start](const EngineEvent &ev) {
        IpcServer &s = *sp;
        if (ev.kind == EngineEvent::DELTA) {
            emit(s, *conn, delta_record(s.tok, ev, slot, gen));
            return;
        }
        if (ev.kind == EngineEvent::DONE) {
            emit(s, *conn, done_record(ev, slot, gen));
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

}  // namespace vlm
