// ipc_server.h: vlmd's side of the shared-memory protocol (ipc/vlm_ipc.h).
// One thread runs the loop over the listening socket and every client
// connection: handshake and memfd hand-off, request-ring draining, SUBMIT /
// CANCEL / STATS / PING, client death (EOF/HUP -> Engine::cancel of its
// requests), backpressure (results kept in vlmd's memory while a client's
// result ring or arena is full, disconnect after a timeout), a heartbeat in
// shared memory, and graceful drain. The IPC layer moves bytes only: a
// task's request and answer are shaped by the task layer
// (tasks/task_service.h), between the request decoder and the engine.
// Files: poller (epoll, doorbells), ipc_connection (handshake, requests),
// result_writer (result records, backpressure), ipc_stats (STATS),
// ipc_request (the SUBMIT body), ipc_server.cpp (the loop and drain).
// Not here: the engine, model loading and flags (vlmd_main.cpp).
#pragma once

#include "serve/engine.h"
#include "serve/ipc_request.h"
#include "tasks/templates.h"
#include "text/tokenizer.h"
#include "util/log.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace vlm {

struct IpcServerOptions {
    std::string socket_path;
    uint32_t    request_ring_entries   = 256;    // power of two
    uint32_t    result_ring_entries    = 1024;   // power of two
    uint32_t    max_slots              = 128;    // requests in flight per connection
    uint64_t    request_arena_bytes    = uint64_t(64) << 20;
    uint64_t    result_arena_bytes     = uint64_t(4) << 20;
    uint32_t    max_body_bytes         = 1u << 20;
    int         max_connections        = 256;
    int         backpressure_timeout_ms = 10000;  // full result ring this long: disconnect
    size_t      max_pending_result_bytes = size_t(64) << 20;  // per connection
    int         drain_flush_timeout_ms = 5000;   // after drain, for slow readers
    RequestLimits        limits;
    const TaskTemplates *templates = nullptr;    // null: tasks answer 400
    std::string          model_name;             // for STATS
};

// Serves until `stop_fd` (a signalfd, or any fd that becomes readable)
// fires, then drains: stops accepting, lets running requests finish, flushes
// results, closes. Every line it logs goes through `log`. Returns false with
// a reason when it cannot start (socket in use, bind failure).
bool run_ipc_server(Engine &engine, const Tokenizer &tok, const IpcServerOptions &opt, Logger &log,
                    int stop_fd, std::string &err);

}  // namespace vlm
