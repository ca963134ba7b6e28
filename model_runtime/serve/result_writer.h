// result_writer.h: vlmd's writing side of a connection: result records into
// the client's result ring, payloads into its result arena (never wrapping),
// a doorbell when the client may be asleep. When the ring or arena is full
// the records wait in vlmd's memory, in order (backpressure); the IPC loop
// retries them and disconnects a client that stays full too long
// (ipc_server.cpp). Also the sink that turns a request's engine events into
// records: DELTA (text, token ids, logprobs), DONE, ERROR.
// Not here: what a task answers (tasks/task_service.h wraps the sink first).
#pragma once

#include "generate/request_events.h"
#include "serve/ipc_connection.h"

#include <cstdint>
#include <memory>
#include <string>

namespace vlm {

PendingResult make_result(uint32_t kind, uint32_t slot, uint32_t gen);

// Queues `r` and writes what fits. A final record (anything but DELTA) frees
// its slot. Any thread.
void emit(IpcServer &s, Conn &c, PendingResult r);
void emit_error(IpcServer &s, Conn &c, uint32_t slot, uint32_t gen, int status, const std::string &msg);

// Writes queued records while they fit. Caller holds c.mu.
void flush_results_locked(IpcServer &s, Conn &c);

// The sink for request `slot`/`gen` on `conn`: every engine event becomes
// one record. DONE carries text only when the event is a whole answer
// (EngineEvent::whole_answer: a task's); a chat's text went out as DELTAs.
// Logs request_done / request_error.
EventSink reply_sink(IpcServer &s, std::shared_ptr<Conn> conn, uint32_t slot, uint32_t gen);

}  // namespace vlm
