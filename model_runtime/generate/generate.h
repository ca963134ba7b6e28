// generate.h: one request end to end on a loaded model: image bytes ->
// pixels -> prompt ids -> vision encoder -> prefill -> decode loop, streaming
// text as it is produced. vlm-run calls it directly; vlmd's engine
// (serve/engine.h) runs the same steps (prompt_prep.h, sequence_output.h)
// for many requests at once. The request itself is in request.h.
#pragma once

#include "generate/request.h"
#include "model/model.h"
#include "text/tokenizer.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace vlm {

struct GenerationTimings {
    double image_ms   = 0;   // decode + preprocess
    double vision_ms  = 0;   // vision encoder + merger
    double prefill_ms = 0;
    double decode_ms  = 0;   // after the first token
    double ttft_ms    = 0;   // request start to first token
};

struct GenerationResult {
    std::string               text;
    std::vector<int32_t>      tokens;
    std::vector<int32_t>      prompt_ids;
    std::vector<TokenLogprob> logprobs;
    std::string               finish_reason;   // "stop", "length", "cancelled"
    GenerationTimings         timings;
};

// Receives each new piece of text (valid UTF-8); returning false cancels.
using TextSink = std::function<bool(const std::string &delta)>;

bool generate(Model &model, const Tokenizer &tok, const ChatRequest &req,
              const TextSink &sink, GenerationResult &out, std::string &err);

// Prefill work per forward call (tokens); the engine's default is the same,
// so vlmd and vlm-run split prompts alike.
constexpr int kDefaultPrefillChunk = 256;

// generate() with prefill chunks ending at multiples of prefill_chunk_tokens.
bool generate_chunked(Model &model, const Tokenizer &tok, const ChatRequest &req,
                      int prefill_chunk_tokens, const TextSink &sink,
                      GenerationResult &out, std::string &err);

// Holds back text that could be the start of a stop string so that a stop
// string is never streamed, even when split across tokens.
class StopStringFilter {
public:
    explicit StopStringFilter(std::vector<std::string> stops);
    // Adds text; returns what is safe to emit. Sets `stopped` when a stop
    // string completed (the stop string and anything after it are dropped).
    std::string push(const std::string &text, bool &stopped);
    std::string flush();   // the held-back text at the end of generation
private:
    std::vector<std::string> stops_;
    std::string              held_;
};

}  // namespace vlm
