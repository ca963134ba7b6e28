// request_events.h: what a running request reports to whoever asked for it:
// DELTA events with text as it is generated, then exactly one DONE or ERROR.
// vlmd's engine (serve/engine.h) produces them; the task layer
// (tasks/task_service.h) reshapes a task's events into its one answer; the
// IPC result writer (serve/result_writer.h) turns them into result records.
// Here, below all three, so each can name them without seeing the others.
#pragma once

#include "generate/sampler.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace vlm {

struct EngineEvent {
    enum Kind : uint8_t { DELTA, DONE, ERROR } kind = DELTA;
    uint64_t                  request_id = 0;
    std::string               text;          // DELTA: new text; DONE: whole text
    std::vector<int32_t>      tokens;        // DELTA: the new token ids
    std::vector<TokenLogprob> logprobs;      // DELTA: for the new tokens, when asked
    std::string               finish_reason; // DONE: stop, length, cancelled, deadline
    int                       prompt_tokens = 0;
    int                       completion_tokens = 0;
    int                       error_status = 0;  // ERROR: HTTP-like status (400, 413, 503...)
    std::string               error;             // ERROR: one-line reason
    // DONE from the task layer: `text` is the post-processed answer, to be
    // sent whole, no DELTA of this request was passed on, and `language`
    // ("en", "zh") is the answer's. The engine leaves them unset.
    bool                      whole_answer = false;
    std::string               language;
};

// Called on the engine thread; must not block for long (copy and return).
using EventSink = std::function<void(const EngineEvent &)>;

}  // namespace vlm
