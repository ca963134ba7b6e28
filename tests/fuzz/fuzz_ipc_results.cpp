// libFuzzer target for the client side of vlmd's shared-memory protocol
// (model_runtime/ipc/vlm_ipc_client.c): the fuzzer plays a hostile daemon
// through the real client API and a real socket and memfd. Per input it
// accepts the client's connection, answers the HELLO (WELCOME with a memfd
// whose header is raw input bytes or a well-formed layout with fuzzed sizes,
// or a broken handshake), submits a few requests, then writes result entries,
// tails, arena bytes, doorbells and an EOF as the input says, interleaved with
// client turns (vlm_ipc_client_process + vlm_ipc_next_event).
//
// Checks: every byte of every event (text, tokens via vlm_ipc_event_token,
// logprob records via vlm_ipc_logprob_next/count) lies inside the client's
// own mapping of the result arena (found in /proc/self/maps) and is read;
// events only name requests in flight, with their user pointer; in_flight
// equals the requests without a final event; after a close every request has
// exactly one final event; an accepted layout really is valid. Inputs that
// only use well-formed records ("pure" inputs) are also checked against a
// model: the events are the published records for open requests, in order,
// with their bytes, before any close error (EOF keeps results written
// before it). No fd or mapping may outlive an input. FUZZ_IPC_DEBUG=1 prints
// what each input did.
//
// Input: byte 0 bits 0-1 header mode (0: 512 raw header bytes; else a valid
// layout from the next bytes), bit 2 overrides of layout fields, bit 3 a
// fuzzed WELCOME shm_size; then a handshake variant byte (mod 32: 0 REFUSED,
// 1 no fd, 2 version, 3 short, 4 two fds, 5 a socket, 6 type, 7 EOF, 8 an
// unsealed memfd shrunk after the handshake, else WELCOME), the requests, and
// up to 48 daemon operations (see run_ops); the last byte says how it ends
// (see run). Reads past the end give 0.
#include "ipc/vlm_ipc_client.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace {

#define CHECK(c) do { if (!(c)) { std::fprintf(stderr, "fuzz_ipc_results: check failed: %s (line %d)\n", #c, __LINE__); __builtin_trap(); } } while (0)

constexpr uint64_t kMaxShm = 1u << 20;
constexpr const char *kMemfdName = "fuzz-ipc-results";

struct Input {
    const uint8_t *p;
    size_t n, i = 0;
    uint8_t u8() { return i < n ? p[i++] : 0; }
    // little endian; each byte read in its own statement (operand order is unspecified)
    uint16_t u16() { uint16_t lo = u8(); return uint16_t(lo | u8() << 8); }
    uint32_t u32() { uint32_t lo = u16(); return lo | uint32_t(u16()) << 16; }
    uint64_t u64() { uint64_t lo = u32(); return lo | uint64_t(u32()) << 32; }
    void bytes(void *dst, size_t k)
    {
        auto *d = static_cast<uint8_t *>(dst);
        for (size_t j = 0; j < k; j++) d[j] = u8();
    }
    bool more() const { return i < n; }
};

int g_listen = -1;
std::string g_path;
int g_fds = -1;   // count_fds() between inputs

// Open sockets and memfds (libFuzzer's own fds, e.g. symbolizer pipes, come
// and go, so only these kinds are counted).
int count_fds()
{
    DIR *d = opendir("/proc/self/fd");
    if (d == nullptr) return -1;
    int n = 0;
    char path[64], target[256];
    while (dirent *e = readdir(d)) {
        std::snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(path, target, sizeof target - 1);
        if (k <= 0) continue;
        target[k] = '\0';
        n += std::strncmp(target, "socket:", 7) == 0 || std::strstr(target, kMemfdName) != nullptr;
    }
    closedir(d);
    return n;
}

// Start addresses of this process's mappings of the memfd.
std::vector<uintptr_t> memfd_mappings()
{
    std::vector<uintptr_t> out;
    FILE *f = std::fopen("/proc/self/maps", "r");
    if (f == nullptr) return out;
    char line[512];
    while (std::fgets(line, sizeof line, f) != nullptr) {
        if (std::strstr(line, kMemfdName) != nullptr) out.push_back(std::strtoull(line, nullptr, 16));
    }
    std::fclose(f);
    return out;
}

void init_once()
{
    if (g_listen >= 0) return;
    char tmpl[] = "/tmp/vlm-fuzz-ipc.XXXXXX";
    CHECK(mkdtemp(tmpl) != nullptr);
    g_path = std::string(tmpl) + "/vlmd.sock";
    g_listen = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(g_listen >= 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, g_path.c_str(), g_path.size());
    CHECK(bind(g_listen, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
    CHECK(listen(g_listen, 8) == 0);
    g_fds = count_fds();
    std::atexit([] {
        unlink(g_path.c_str());
        rmdir(g_path.substr(0, g_path.rfind('/')).c_str());
    });
}

struct Req {
    uint32_t slot, gen;
    void *user;
    bool open;
    int finals;
};

struct Record {   // a well-formed record, as written
    vlm_ipc_result_entry e;
    std::vector<uint8_t> payload;
};

bool layout_valid(const vlm_ipc_shm_header &h, uint64_t memfd_size, const vlm_ipc_msg &w)
{
    auto pow2 = [](uint32_t v) { return v != 0 && (v & (v - 1)) == 0; };
    auto inside = [&](uint64_t off, unsigned __int128 len) {
        return (unsigned __int128) off + len <= memfd_size;
    };
    return h.magic == VLM_IPC_MAGIC && h.version == VLM_IPC_VERSION &&
           h.header_size == VLM_IPC_HEADER_SIZE && h.shm_size == memfd_size &&
           w.shm_size == memfd_size && h.epoch == w.epoch && pow2(h.request_ring_capacity) &&
           pow2(h.result_ring_capacity) && h.max_slots != 0 &&
           inside(h.request_ring_offset, (unsigned __int128) h.request_ring_capacity * 64) &&
           inside(h.result_ring_offset, (unsigned __int128) h.result_ring_capacity * 64) &&
           inside(h.request_arena_offset, h.request_arena_size) &&
           inside(h.result_arena_offset, h.result_arena_size) && h.request_arena_size > 0 &&
           h.result_arena_size > 0 && h.request_ring_offset % 8 == 0 &&
           h.result_ring_offset % 8 == 0;
}

struct Harness {
    Input in;
    vlm_ipc_client *c = nullptr;
    int dfd = -1;                  // the daemon's end
    uint8_t *shm = nullptr;        // the daemon's mapping
    uint64_t shm_size = 0;
    vlm_ipc_shm_header *hdr = nullptr;
    vlm_ipc_shm_header lay{};      // the layout the client accepted
    uintptr_t cbase = 0;           // the client's mapping
    std::vector<Req> reqs;
    uint64_t local_tail = 0, arena_tail = 0;
    std::vector<Record> pending;   // written, tail not yet published
    std::deque<Record> expected;   // published
    bool pure = true, closed_by_us = false;
    uint64_t events = 0;
    std::vector<uint8_t> user_tags = std::vector<uint8_t>(64);

    uint8_t end = 0;   // the last input byte: how the input ends (see run)

    explicit Harness(const uint8_t *d, size_t n) : in{d, n > 0 ? n - 1 : 0}, end(n > 0 ? d[n - 1] : 0) {}

    ~Harness()
    {
        vlm_ipc_client_free(c);
        if (dfd >= 0) close(dfd);
        if (shm != nullptr) munmap(shm, shm_size);
    }

    Req *find(uint32_t slot, uint32_t gen)
    {
        for (auto &r : reqs)
            if (r.open && r.slot == slot && r.gen == gen) return &r;
        return nullptr;
    }

    size_t n_open() const
    {
        size_t k = 0;
        for (auto &r : reqs) k += r.open;
        return k;
    }

    void drain_doorbells()
    {
        vlm_ipc_msg m;
        ssize_t n;
        while (dfd >= 0 && (n = recv(dfd, &m, sizeof m, MSG_DONTWAIT)) > 0) {
            CHECK(n == sizeof m);
            CHECK(m.type == VLM_IPC_MSG_DOORBELL_REQUEST || m.type == VLM_IPC_MSG_RESULT_SPACE);
        }
    }

    bool in_client_map(const void *p, size_t len) const
    {
        auto a = reinterpret_cast<uintptr_t>(p);
        return cbase != 0 && a >= cbase && a - cbase <= shm_size && len <= shm_size - (a - cbase);
    }

    bool in_client_arena(const void *p, size_t len) const
    {
        uintptr_t lo = cbase + lay.result_arena_offset;
        auto a = reinterpret_cast<uintptr_t>(p);
        return a >= lo && a - lo <= lay.result_arena_size && len <= lay.result_arena_size - (a - lo);
    }

    // Reads every byte the event exposes; returns a checksum so it is not dropped.
    static uint32_t touch(const vlm_ipc_event &ev)
    {
        uint32_t sum = 0;
        for (size_t i = 0; i < ev.text_length; i++) sum += uint8_t(ev.text[i]);
        for (uint32_t i = 0; i < ev.n_tokens; i++) sum += uint32_t(vlm_ipc_event_token(&ev, i));
        CHECK(vlm_ipc_event_token(&ev, ev.n_tokens) == 0);
        size_t pos = 0;
        vlm_ipc_logprob lp;
        for (size_t guard = 0; guard <= ev.logprobs_length; guard++) {
            size_t before = pos;
            if (!vlm_ipc_logprob_next(&ev, &pos, &lp)) break;
            CHECK(pos > before && pos <= ev.logprobs_length);
            CHECK(lp.bytes >= ev.logprobs && lp.bytes + lp.n_bytes <= ev.logprobs + ev.logprobs_length);
            sum += uint32_t(lp.id);
            for (uint32_t j = 0; j < lp.n_bytes; j++) sum += lp.bytes[j];
            uint32_t n_top = 0;
            if (!vlm_ipc_logprob_count(&ev, &pos, &n_top)) break;
            CHECK(pos <= ev.logprobs_length);
            for (uint32_t k = 0; k < n_top; k++) {
                if (!vlm_ipc_logprob_next(&ev, &pos, &lp)) break;
                CHECK(pos <= ev.logprobs_length);
                CHECK(lp.bytes >= ev.logprobs && lp.bytes + lp.n_bytes <= ev.logprobs + ev.logprobs_length);
                for (uint32_t j = 0; j < lp.n_bytes; j++) sum += lp.bytes[j];
            }
        }
        sum += ev.finish_reason;
        CHECK(std::memchr(ev.language, 0, sizeof ev.language) != nullptr);
        return sum;
    }

    void on_event(const vlm_ipc_event &ev)
    {
        CHECK(++events < (1u << 20));
        bool from_ring = in_client_map(ev.text, 0);
        if (from_ring) {
            CHECK(in_client_arena(ev.text, ev.text_length));
            CHECK(ev.tokens == reinterpret_cast<const uint8_t *>(ev.text) + ev.text_length);
            CHECK(in_client_arena(ev.tokens, size_t(ev.n_tokens) * 4));
            CHECK(ev.logprobs == ev.tokens + size_t(ev.n_tokens) * 4);
            CHECK(in_client_arena(ev.logprobs, ev.logprobs_length));
            CHECK(ev.final == (ev.kind != VLM_IPC_RES_DELTA));
        } else {
            // a request failed by the client itself after a close
            CHECK(vlm_ipc_client_closed(c));
            CHECK(ev.kind == VLM_IPC_RES_ERROR && ev.status == 503 && ev.final);
            CHECK(ev.n_tokens == 0 && ev.logprobs_length == 0);
            CHECK(ev.text != nullptr && std::strlen(ev.text) == ev.text_length);
        }
        volatile uint32_t sink = touch(ev);
        (void) sink;

        Req *r = find(ev.slot, ev.gen);
        CHECK(r != nullptr);   // only requests in flight get events
        CHECK(ev.user == r->user);
        if (pure) {
            if (from_ring) {
                while (!expected.empty() && find(expected.front().e.slot, expected.front().e.gen) == nullptr)
                    expected.pop_front();   // stale: skipped by the client
                CHECK(!expected.empty());
                const Record &x = expected.front();
                CHECK(ev.kind == x.e.kind && ev.slot == x.e.slot && ev.gen == x.e.gen);
                CHECK(ev.status == x.e.status && ev.n_tokens == x.e.n_tokens);
                CHECK(ev.text_length == x.e.text_length && ev.logprobs_length == x.e.logprobs_length);
                CHECK(ev.prompt_tokens == x.e.prompt_tokens && ev.completion_tokens == x.e.completion_tokens);
                CHECK(ev.finish_reason == x.e.finish_reason);
                CHECK(std::memcmp(ev.language, x.e.language, VLM_IPC_LANGUAGE_LEN) == 0);
                size_t used = ev.text_length + size_t(ev.n_tokens) * 4 + ev.logprobs_length;
                CHECK(used <= x.payload.size());
                CHECK(used == 0 || std::memcmp(ev.text, x.payload.data(), used) == 0);
                expected.pop_front();
            } else {
                // results published before the EOF come before the close errors
                for (const Record &x : expected) CHECK(find(x.e.slot, x.e.gen) == nullptr);
                expected.clear();
            }
        }
        if (ev.final) {
            r->open = false;
            r->finals++;
        }
        CHECK(vlm_ipc_client_in_flight(c) == n_open());
    }

    // One client turn: process the socket and take up to `limit` events; with
    // events_first, take events before looking at the socket (the daemon may
    // have died since the last look).
    void client_turn(bool events_first, size_t limit)
    {
        vlm_ipc_event ev;
        size_t k = 0;
        for (int round = events_first ? 0 : 1; round < 2; round++) {
            if (round == 1) {
                int rc = vlm_ipc_client_process(c);
                CHECK(rc == VLM_IPC_OK || rc == VLM_IPC_AGAIN || rc == VLM_IPC_CLOSED);
            }
            while (k < limit) {
                if (!vlm_ipc_next_event(c, &ev)) {
                    // the client has read up to the published tail: whatever
                    // it did not hand out was stale when it read it
                    if (pure) {
                        for (const Record &x : expected) CHECK(find(x.e.slot, x.e.gen) == nullptr);
                        expected.clear();
                    }
                    break;
                }
                on_event(ev);
                k++;
            }
        }
        CHECK(vlm_ipc_client_in_flight(c) == n_open());
        drain_doorbells();
    }

    void submit_one()
    {
        if (reqs.size() >= user_tags.size()) return;
        uint8_t how = in.u8();
        uint32_t slot = 0, gen = 0;
        void *user = &user_tags[reqs.size()];
        int rc;
        if (how % 4 < 2) {
            uint64_t regions[2], off = 0;
            size_t n = 0;
            uint64_t body_len = 1 + in.u8() * 4u;
            void *p = vlm_ipc_alloc(c, body_len, &off);
            if (p != nullptr) {
                CHECK(in_client_map(p, body_len));
                std::memset(p, '{', body_len);   // the client writes only its own arena
                regions[n++] = off;
                if (how & 0x10) {
                    uint64_t off2;
                    if (vlm_ipc_alloc(c, 1 + in.u8(), &off2) != nullptr) regions[n++] = off2;
                }
            }
            rc = vlm_ipc_submit(c, off, p ? body_len : 0, in.u8(), in.u8(), regions, n, user, &slot, &gen);
            if (rc != VLM_IPC_OK)
                for (size_t j = 0; j < n; j++) vlm_ipc_free(c, regions[j]);
        } else if (how % 4 == 2) {
            rc = vlm_ipc_stats(c, user, &slot, &gen);
        } else {
            rc = vlm_ipc_ping(c, user, &slot, &gen);
        }
        CHECK(rc == VLM_IPC_OK || rc == VLM_IPC_AGAIN || rc == VLM_IPC_CLOSED);
        if (rc == VLM_IPC_OK) {
            CHECK(slot < lay.max_slots && gen != 0);
            CHECK(find(slot, gen) == nullptr);
            for (auto &r : reqs) CHECK(!(r.open && r.slot == slot));
            reqs.push_back(Req{slot, gen, user, true, 0});
        }
        CHECK(vlm_ipc_client_in_flight(c) == n_open());
    }

    // A record with consistent lengths whose payload fits the arena producer.
    void op_record()
    {
        uint8_t t = in.u8();
        vlm_ipc_result_entry e{};
        e.kind = (t & 0x80) ? in.u8() : 1 + in.u8() % 5;
        if (!reqs.empty() && (t & 0x40) == 0) {
            const Req &r = reqs[in.u8() % reqs.size()];
            e.slot = r.slot;
            e.gen = r.gen + ((t & 0x20) ? 1 : 0);
        } else {
            e.slot = in.u16();
            e.gen = in.u8();
        }
        e.status = (t & 0x10) ? in.u16() : 0;
        std::vector<uint8_t> pl(in.u8() % 64);
        e.text_length = uint32_t(pl.size());
        in.bytes(pl.data(), pl.size());
        e.n_tokens = in.u8() % 6;
        for (uint32_t k = 0; k < e.n_tokens * 4; k++) pl.push_back(in.u8());
        size_t lp0 = pl.size();
        auto put32 = [&](uint32_t v) { for (int b = 0; b < 4; b++) pl.push_back(uint8_t(v >> (8 * b))); };
        auto entry = [&]() {
            put32(in.u32());
            put32(in.u32());
            uint32_t nb = in.u8() % 8;
            put32(nb);
            for (uint32_t b = 0; b < nb; b++) pl.push_back(in.u8());
        };
        for (uint32_t k = in.u8() % 3; k > 0; k--) {
            entry();
            uint32_t n_top = in.u8() % 3;
            put32(n_top);
            for (uint32_t j = 0; j < n_top; j++) entry();
        }
        if (t & 0x08) {   // a truncated record: the client must stop at the end
            size_t cut = in.u8() % 8;
            pl.resize(pl.size() - std::min(cut, pl.size() - lp0));
        }
        e.logprobs_length = uint32_t(pl.size() - lp0);
        for (uint32_t k = in.u8() % 4; k > 0; k--) pl.push_back(0xee);   // slack
        e.payload_length = uint32_t(pl.size());
        e.prompt_tokens = in.u8();
        e.completion_tokens = in.u8();
        if (t & 0x04) {   // any number: the client passes it on unchecked
            e.finish_reason = in.u32();
            in.bytes(e.reserved, sizeof e.reserved);
            in.bytes(e.language, VLM_IPC_LANGUAGE_LEN);
        } else {
            e.finish_reason = VLM_IPC_FINISH_STOP + (t & 3);
            std::memcpy(e.language, (t & 1) ? "zh" : "en", 2);
        }

        // ring room, as a daemon sees it
        uint64_t head = vlm_ipc_load_acquire(&hdr->result_head);
        if (local_tail - head >= lay.result_ring_capacity) return;
        // arena room: a payload never wraps; skip to the next lap instead
        uint64_t size = lay.result_arena_size, pos = arena_tail;
        if (pl.size() > size) return;
        if (pl.size() > size - pos % size) pos += size - pos % size;
        uint64_t ahead = vlm_ipc_load_acquire(&hdr->result_arena_head);
        if (pos + pl.size() - ahead > size) return;
        e.payload_pos = pos;
        if (!pl.empty()) std::memcpy(shm + lay.result_arena_offset + pos % size, pl.data(), pl.size());
        arena_tail = pos + pl.size();
        std::memcpy(shm + lay.result_ring_offset + (local_tail & (lay.result_ring_capacity - 1)) * 64, &e, 64);
        local_tail++;
        pending.push_back(Record{e, std::move(pl)});
    }

    void publish()
    {
        vlm_ipc_store_release(&hdr->result_tail, local_tail);
        for (auto &r : pending) expected.push_back(std::move(r));
        pending.clear();
        if (dfd >= 0) {
            vlm_ipc_msg m{};
            m.type = VLM_IPC_MSG_DOORBELL_RESULT;
            m.version = VLM_IPC_VERSION;
            (void) send(dfd, &m, sizeof m, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
    }

    void run_ops()
    {
        for (int k = 0; k < 48 && in.more(); k++) {
            uint8_t op = in.u8();
            if (closed_by_us && op % 10 != 8) pure = false;   // a dead daemon writes nothing more
            switch (op % 10) {
            case 0:
            case 1:
                op_record();
                break;
            case 2:
                publish();
                break;
            case 3: {   // a raw entry
                pure = false;
                in.bytes(shm + lay.result_ring_offset + (local_tail & (lay.result_ring_capacity - 1)) * 64, 64);
                local_tail++;
                break;
            }
            case 4: {   // a raw tail
                pure = false;
                uint8_t v = in.u8();
                local_tail = (v & 0x80) ? in.u64() : local_tail + int8_t(v << 1) / 2;
                vlm_ipc_store_release(&hdr->result_tail, local_tail);
                break;
            }
            case 5: {   // raw arena bytes
                pure = false;
                uint64_t off = in.u16() % lay.result_arena_size;
                size_t len = std::min<uint64_t>(in.u8(), lay.result_arena_size - off);
                in.bytes(shm + lay.result_arena_offset + off, len);
                break;
            }
            case 6:
                if (op & 0x10) {
                    pure = false;   // RESULT_SPACE to a dead daemon may close the client
                    __atomic_store_n(&hdr->result_blocked, 1, __ATOMIC_RELEASE);
                } else {   // the daemon takes the requests
                    vlm_ipc_store_release(&hdr->request_head, vlm_ipc_load_acquire(&hdr->request_tail));
                }
                break;
            case 7:
                if (dfd >= 0) {
                    close(dfd);
                    dfd = -1;
                    closed_by_us = true;
                }
                break;
            case 8:
                client_turn(op & 0x10, 1 + in.u8() % 8);
                break;
            case 9:
                if (op & 0x10) {
                    if (!reqs.empty()) {
                        const Req &r = reqs[in.u8() % reqs.size()];
                        int rc = vlm_ipc_cancel(c, r.slot, r.gen);
                        CHECK(r.open || rc != VLM_IPC_OK);
                    }
                } else {
                    submit_one();
                }
                break;
            }
            drain_doorbells();
        }
    }

    void run()
    {
        uint8_t mode = in.u8();
        vlm_ipc_shm_header h{};
        if ((mode & 3) == 0) {
            pure = false;
            in.bytes(&h, sizeof h);
            shm_size = (h.shm_size >= VLM_IPC_HEADER_SIZE && h.shm_size <= kMaxShm)
                           ? h.shm_size : VLM_IPC_HEADER_SIZE + in.u16() * 8u;
        } else {
            uint8_t caps = in.u8();
            h.magic = VLM_IPC_MAGIC;
            h.version = VLM_IPC_VERSION;
            h.header_size = VLM_IPC_HEADER_SIZE;
            h.epoch = in.u64();
            h.request_ring_capacity = 1u << (caps & 7);
            h.result_ring_capacity = 1u << ((caps >> 3) & 7);
            uint8_t s = in.u8();
            h.max_slots = s < 240 ? 1 + s % 16 : 65536 + 1 - (256 - s);   // 65521..65536
            h.max_body_length = 4096;
            h.request_ring_offset = VLM_IPC_HEADER_SIZE;
            h.result_ring_offset = h.request_ring_offset + h.request_ring_capacity * 64ull;
            h.request_arena_offset = h.result_ring_offset + h.result_ring_capacity * 64ull + in.u8() % 64;
            h.request_arena_size = 64 + in.u16() % 4096;
            h.result_arena_offset = h.request_arena_offset + h.request_arena_size + in.u8() % 64;
            h.result_arena_size = 1 + in.u16() % 8192;
            shm_size = h.result_arena_offset + h.result_arena_size + in.u8() % 16;
            h.shm_size = shm_size;
            static const uint64_t bases[] = {0, 0xffffffffull, ~0ull - 2};
            uint8_t b = in.u8();
            uint64_t base = b % 4 < 3 ? bases[b % 4] : in.u64();
            h.request_tail = h.request_head = (b & 0x10) ? base : 0;
            h.result_tail = h.result_head = base;
            // below 2^63: arena positions must not wrap (pos % size would jump)
            h.result_arena_head = ((b & 0x20) ? base : in.u64()) >> 1;
            if (mode & 4) {   // break one layout field
                pure = false;
                uint64_t *f64[] = {&h.shm_size, &h.request_ring_offset, &h.result_ring_offset,
                                   &h.request_arena_offset, &h.request_arena_size,
                                   &h.result_arena_offset, &h.result_arena_size, &h.epoch};
                uint32_t *f32[] = {&h.request_ring_capacity, &h.result_ring_capacity, &h.max_slots,
                                   &h.header_size, &h.version};
                uint8_t which = in.u8(), how = in.u8();
                if (which % 13 < 8) {
                    uint64_t &v = *f64[which % 13];
                    v = (how & 0x80) ? in.u64() : v + int8_t(how << 1) / 2;
                } else {
                    uint32_t &v = *f32[which % 13 - 8];
                    v = (how & 0x80) ? in.u32() : v + int8_t(how << 1) / 2;
                }
            }
        }

        int mfd = memfd_create(kMemfdName, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHECK(mfd >= 0);
        CHECK(ftruncate(mfd, off_t(shm_size)) == 0);
        void *p = mmap(nullptr, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        CHECK(p != MAP_FAILED);
        shm = static_cast<uint8_t *>(p);
        hdr = reinterpret_cast<vlm_ipc_shm_header *>(shm);
        std::memcpy(shm, &h, sizeof h);

        c = vlm_ipc_client_new();
        CHECK(c != nullptr);
        char err[256];
        int rc = vlm_ipc_client_connect(c, g_path.c_str(), err, sizeof err);
        CHECK(rc == VLM_IPC_OK);
        dfd = accept4(g_listen, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        CHECK(dfd >= 0);
        vlm_ipc_msg hello{};
        CHECK(recv(dfd, &hello, sizeof hello, MSG_DONTWAIT) == sizeof hello);
        CHECK(hello.type == VLM_IPC_MSG_HELLO && hello.version == VLM_IPC_VERSION);

        // The handshake: mostly a WELCOME with the memfd.
        vlm_ipc_msg w{};
        w.type = VLM_IPC_MSG_WELCOME;
        w.version = VLM_IPC_VERSION;
        w.epoch = h.epoch;
        w.shm_size = shm_size;
        w.pid = uint32_t(getpid());
        if (mode & 8) {
            pure = false;
            uint8_t how = in.u8();
            w.shm_size = (how & 0x80) ? in.u64() : shm_size + int8_t(how << 1) / 2;
        }
        uint8_t hs = in.u8();
        // vlmd seals the memfd; variant 8 does not, and shrinks it once the
        // client has mapped it (a client that accepts that takes SIGBUS)
        bool sealed = hs % 32 != 8;
        if (sealed) CHECK(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0);
        int fds[2] = {mfd, mfd};
        int n_fds = 1;
        size_t len = sizeof w;
        bool welcome = true;
        switch (hs % 32) {
        case 0: w.type = VLM_IPC_MSG_REFUSED; w.status = 503; welcome = false; break;
        case 1: n_fds = 0; welcome = false; break;
        case 2: w.version = in.u32(); welcome = w.version == VLM_IPC_VERSION; break;
        case 3: len = in.u8() % sizeof w; welcome = false; break;
        case 4: n_fds = 2; break;                   // an extra fd is closed by the client
        case 5: fds[0] = dfd; welcome = false; break;   // not a memfd
        case 6: w.type = in.u32(); welcome = w.type == VLM_IPC_MSG_WELCOME; break;
        default: break;
        }
        if (hs % 32 == 7) {
            close(dfd);   // EOF instead of an answer
            dfd = -1;
            welcome = false;
        } else {
            msghdr mh{};
            iovec iov{&w, len};
            alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof fds)];
            mh.msg_iov = &iov;
            mh.msg_iovlen = 1;
            if (n_fds > 0) {
                mh.msg_control = cbuf;
                mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
                cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
                std::memcpy(CMSG_DATA(cm), fds, n_fds * sizeof(int));
            }
            CHECK(sendmsg(dfd, &mh, MSG_NOSIGNAL) == ssize_t(len));
        }

        for (int k = 0; k < 4 && !vlm_ipc_client_ready(c) && !vlm_ipc_client_closed(c); k++) {
            rc = vlm_ipc_client_process(c);
            CHECK(rc == VLM_IPC_OK || rc == VLM_IPC_AGAIN || rc == VLM_IPC_CLOSED);
        }
        if (!sealed && vlm_ipc_client_ready(c)) {
            CHECK(ftruncate(mfd, 0) == 0);
            uint32_t slot, gen;   // the client reads the header (request_head)
            if (vlm_ipc_ping(c, nullptr, &slot, &gen) == VLM_IPC_OK) reqs.push_back(Req{slot, gen, nullptr, true, 0});
        }
        close(mfd);   // our mapping keeps the memory
        if (!vlm_ipc_client_ready(c)) {
            if (std::getenv("FUZZ_IPC_DEBUG") != nullptr)
                std::fprintf(stderr, "fuzz_ipc_results: not attached: %s\n", vlm_ipc_client_error(c));
            CHECK(vlm_ipc_client_in_flight(c) == 0);
            vlm_ipc_event ev;
            CHECK(vlm_ipc_next_event(c, &ev) == 0);
            CHECK(vlm_ipc_client_closed(c) && vlm_ipc_client_error(c)[0] != '\0');
            CHECK(vlm_ipc_submit(c, 0, 0, 0, 0, nullptr, 0, nullptr, nullptr, nullptr) != VLM_IPC_OK);
            return;
        }
        // accepted: the layout must be valid and the client must map it once
        CHECK(welcome && layout_valid(h, shm_size, w));
        CHECK(vlm_ipc_client_epoch(c) == h.epoch);
        lay = h;
        std::vector<uintptr_t> maps = memfd_mappings();
        for (uintptr_t a : maps)
            if (a != reinterpret_cast<uintptr_t>(shm)) {
                CHECK(cbase == 0);
                cbase = a;
            }
        CHECK(cbase != 0);
        local_tail = vlm_ipc_load_acquire(&hdr->result_tail);
        arena_tail = vlm_ipc_load_acquire(&hdr->result_arena_head);

        for (int k = 1 + in.u8() % 6; k > 0; k--) submit_one();
        drain_doorbells();
        run_ops();

        // the end (last input byte): publish what is written, bit 0: the
        // daemon dies, bit 1: events are taken before the socket is read
        if (!pending.empty() && !closed_by_us) publish();
        if ((end & 1) && dfd >= 0) {
            close(dfd);
            dfd = -1;
            closed_by_us = true;
        }
        for (int k = 0; k < 8; k++) {
            uint64_t before = events;
            client_turn(end & 2, SIZE_MAX);
            if (k > 0 && events == before) break;
        }
        CHECK(vlm_ipc_client_in_flight(c) == n_open());
        if (vlm_ipc_client_closed(c)) {
            vlm_ipc_event ev;
            CHECK(vlm_ipc_next_event(c, &ev) == 0);
            for (const Req &r : reqs) CHECK(r.finals == 1 && !r.open);
            CHECK(vlm_ipc_client_in_flight(c) == 0);
        } else if (pure) {
            for (const Record &x : expected) CHECK(find(x.e.slot, x.e.gen) == nullptr);
        }
        for (const Req &r : reqs) CHECK(r.finals <= 1);
        if (pure && closed_by_us) CHECK(vlm_ipc_client_closed(c));
        if (std::getenv("FUZZ_IPC_DEBUG") != nullptr)
            std::fprintf(stderr, "fuzz_ipc_results: %zu requests, %llu events, %s%s, in flight %u: %s\n",
                         reqs.size(), (unsigned long long) events, pure ? "pure" : "not pure",
                         closed_by_us ? ", daemon closed" : "", vlm_ipc_client_in_flight(c),
                         vlm_ipc_client_error(c));
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    {
        Harness hs(data, size);
        hs.run();
    }
    // nothing of this input survives: no fd, no mapping of the memfd
    CHECK(count_fds() == g_fds);
    CHECK(memfd_mappings().empty());
    return 0;
}
