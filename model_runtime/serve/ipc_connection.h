// ipc_connection.h: one nginx worker's connection to vlmd, and the server
// state every connection shares. A connection is a SOCK_SEQPACKET socket
// (handshake, doorbells) plus a sealed memfd vlmd creates and hands over at
// HELLO: header, request ring, result ring and two arenas (ipc/vlm_ipc.h).
// This file's functions run on the IPC thread: accept the handshake, read
// doorbells, drain the request ring and act on each entry (SUBMIT goes
// through the request decoder and, for a task, the task layer to the
// engine; CANCEL, STATS, PING), and close a connection (its running
// requests are cancelled, so their KV blocks are freed).
// Not here: writing results (result_writer.h), the loop (ipc_server.cpp).
//
// Threads: the IPC thread owns the sockets, the request rings and the
// connection table; the engine thread calls request sinks, which write
// results under the connection's mutex (the result ring's single producer is
// "whoever holds Conn::mu"). A connection's shared memory stays mapped while
// anything refers to it: the Conn (sinks hold it) and every ImageBytes::owner.
#pragma once

#include "ipc/vlm_ipc.h"
#include "serve/engine.h"
#include "serve/ipc_server.h"
#include "serve/poller.h"
#include "text/tokenizer.h"
#include "util/log.h"

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace vlm {

// Counters for STATS (ipc_stats.cpp); any thread.
struct IpcCounters {
    std::atomic<uint64_t> connections_total{0}, connections_active{0}, connections_refused{0};
    std::atomic<uint64_t> bytes_in{0}, bytes_out{0}, protocol_errors{0};
    std::atomic<uint64_t> requests{0}, requests_rejected{0}, doorbells_in{0}, doorbells_out{0};
    std::atomic<uint64_t> results_deferred{0}, backpressure_disconnects{0};
};

struct ShmMapping {
    uint8_t *base = nullptr;
    size_t   size = 0;
    ~ShmMapping();
};

// A result record waiting for room in the client's result ring and arena.
struct PendingResult {
    vlm_ipc_result_entry entry;
    std::string          payload;
};

struct SlotState {
    bool     active = false;   // a request runs; its final record is not written yet
    uint32_t gen = 0;
    uint64_t engine_id = 0;    // 0: not submitted (yet)
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

// The server: what connections, the loop and the sinks share.
struct IpcServer {
    Engine                 &engine;
    const Tokenizer        &tok;
    const IpcServerOptions &opt;
    Logger                 &log;
    IpcCounters             counters;
    Poller                  poller;
    Doorbell                wake;      // a sink found a full or broken ring: look
    uint64_t                epoch = 0;
    int64_t                 started_ms = 0;
    uint64_t                next_conn_id = 16;     // below 16: the loop's fixed keys
    std::atomic<uint64_t>   next_request_id{1};
    std::unordered_map<uint64_t, std::shared_ptr<Conn>> conns;
    bool                    draining = false;

    IpcServer(Engine &e, const Tokenizer &t, const IpcServerOptions &o, Logger &l)
        : engine(e), tok(t), opt(o), log(l) {}
};

int64_t steady_ms();

// A new socket from accept(): registered, or refused (503) when there are
// too many connections.
void accept_conn(IpcServer &s, int fd);
// Everything the socket has for us, then the request ring. Closes the
// connection on EOF, a socket error or a protocol violation.
void on_conn_readable(IpcServer &s, const std::shared_ptr<Conn> &c);
// Closes the socket, cancels the connection's running requests, forgets it.
// `reason` goes to the log; protocol_error counts it as the client's fault.
void close_conn(IpcServer &s, const std::shared_ptr<Conn> &c, LogWord reason, bool protocol_error);

}  // namespace vlm
