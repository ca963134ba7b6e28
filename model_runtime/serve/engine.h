// engine.h: the serving engine inside vlmd. Requests are queued by priority,
// run together with continuous batching (requests join and leave the running
// batch between steps, prefill is chunked so a large image does not stall
// everyone's decoding) over a paged KV cache with prefix reuse, an LRU cache
// of vision-encoder outputs, and coalescing of identical deterministic
// requests. Transport-agnostic: vlmd's IPC layer and in-process tests both
// drive it through this header.
//
// Threading: submit(), cancel() and metrics() may be called from any thread;
// the engine runs its steps on its own thread and calls each request's sink
// from that thread only. A sink must not block for long (copy and return).
#pragma once

#include "generate/generate.h"
#include "generate/request_events.h"
#include "model/model.h"
#include "text/tokenizer.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace vlm {

enum class Priority : uint8_t { INTERACTIVE = 0, BULK = 1 };

struct EngineOptions {
    int     max_batch            = 16;     // sequences decoding together
    int     kv_block_tokens      = 16;     // tokens per KV block
    size_t  kv_cache_bytes       = size_t(1) << 30;
    int     prefill_chunk_tokens = kDefaultPrefillChunk;  // prefill work per step
    int     queue_limit_interactive = 64;
    int     queue_limit_bulk        = 256;
    size_t  vision_cache_bytes   = size_t(256) << 20;
    bool    prefix_cache         = true;
    // Threads that decode and preprocess images off the engine thread, so a
    // large image does not stall everyone's decoding; 0: the engine thread
    // decodes them when it admits the request.
    int     image_workers        = 1;
    // Within a priority, admit first the client with the fewest sequences
    // running (ties: first come); false: first come, first served.
    bool    fair_admission       = true;
};

struct EngineRequest {
    uint64_t    id = 0;                 // unique per engine, chosen by the caller
    Priority    priority = Priority::INTERACTIVE;
    uint64_t    client = 0;             // whose request, for fair admission; 0: unknown
    ChatRequest chat;
    int64_t     deadline_ms = 0;        // steady-clock ms; 0: none
};

enum class SubmitStatus : uint8_t { ACCEPTED, QUEUE_FULL, INVALID, DRAINING };

struct SubmitResult {
    SubmitStatus status = SubmitStatus::ACCEPTED;
    int          retry_after_ms = 0;   // QUEUE_FULL: a hint for the client
    std::string  error;                // INVALID: why
};

struct EngineMetrics {
    int      queue_interactive = 0, queue_bulk = 0;
    int      running = 0;                  // sequences in the batch now
    int64_t  kv_blocks_total = 0, kv_blocks_used = 0;
    uint64_t requests_done = 0, requests_cancelled = 0, requests_failed = 0;
    uint64_t requests_coalesced = 0;
    uint64_t tokens_generated = 0, prompt_tokens = 0;
    uint64_t prefix_cache_hit_tokens = 0, prefix_cache_lookup_tokens = 0;
    uint64_t vision_cache_hits = 0, vision_cache_misses = 0;
    double   ttft_ms_avg = 0, ttft_ms_p99 = 0;
    double   decode_tokens_per_s = 0;      // recent aggregate
    uint64_t steps = 0;                    // forward steps run so far
};

class Engine {
public:
    virtual ~Engine() = default;
    // Queues a request; events arrive on `sink` until exactly one DONE or
    // ERROR. Never blocks on the model.
    virtual SubmitResult submit(EngineRequest req, EventSink sink) = 0;
    // Cancels a queued or running request: its KV blocks are freed before the
    // next step and its sink gets DONE with finish_reason "cancelled".
    virtual void cancel(uint64_t request_id) = 0;
    virtual EngineMetrics metrics() const = 0;
    // Stops accepting requests, finishes the running and queued ones, then
    // returns. The destructor cancels whatever is left.
    virtual void drain() = 0;
};

// Starts the engine thread. The model and tokenizer must outlive the engine.
std::unique_ptr<Engine> start_engine(Model &model, const Tokenizer &tok,
                                     const EngineOptions &opt, std::string &err);

}  // namespace vlm
