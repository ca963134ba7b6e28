// generate.cpp: a single request, start to finish (see generate.h), on the
// same per-step code as the engine. No batching here: that is the engine's.
#include "generate/generate.h"

#include "generate/prompt_prep.h"
#include "generate/sequence_output.h"

#include <algorithm>
#include <chrono>

namespace vlm {

static double ms_since(std::chrono::steady_clock::time_point t0)
{
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now() - t0).count();
}

StopStringFilter::StopStringFilter(std::vector<std::string> stops)
{
    for (auto &s : stops)
        if (!s.empty()) stops_.push_back(std::move(s));
}

std::string StopStringFilter::push(const std::string &text, bool &stopped)
{
    held_ += text;
    stopped = false;
    size_t first = std::string::npos;
    for (const auto &s : stops_) first = std::min(first, held_.find(s));
    if (first != std::string::npos) {
        std::string out = held_.substr(0, first);
        held_.clear();
        stopped = true;
        return out;
    }
    // Keep the longest tail that is a proper prefix of some stop string.
    size_t keep = 0;
    for (const auto &s : stops_) {
        size_t max_len = std::min(s.size() - 1, held_.size());
        for (size_t len = max_len; len > keep; len--) {
            if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
                keep = len;
                break;
            }
        }
    }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
}

std::string StopStringFilter::flush()
{
    std::string out;
    out.swap(held_);
    return out;
}

bool generate(Model &model, const Tokenizer &tok, const ChatRequest &req,
              const TextSink &sink, GenerationResult &out, std::string &err)
{
    return generate_chunked(model, tok, req, kDefaultPrefillChunk, sink, out, err);
}

// The same per-step code as the engine (prompt_prep, forward_batch over a
// paged pool, sequence_output), so one request through vlmd gives the tokens
// it gives here.
bool generate_chunked(Model &model, const Tokenizer &tok, const ChatRequest &req,
                      int prefill_chunk_tokens, const TextSink &sink,
                      GenerationResult &out, std::string &err)
{
    auto t_start = std::chrono::steady_clock::now();
    const ModelConfig &cfg = model.config();
    PreparedPrompt prep;
    int status = 0;
    if (!prepare_prompt(model, tok, req, nullptr, prep, status, err)) return false;
    out.timings.image_ms = prep.image_ms;
    out.timings.vision_ms = prep.vision_ms;
    out.prompt_ids = prep.ids;
    const int64_t n_prompt = int64_t(prep.ids.size());

    constexpr int kBlockTokens = 16;
    const int64_t n_blocks = (n_prompt + req.max_tokens + kBlockTokens - 1) / kBlockTokens;
    KvPool pool;
    if (!model.new_kv_pool(n_blocks, kBlockTokens, pool, err)) return false;
    std::vector<int32_t> blocks(static_cast<size_t>(n_blocks));
    for (int64_t b = 0; b < n_blocks; b++) blocks[size_t(b)] = int32_t(b);

    std::vector<float> logits;
    std::vector<int32_t> positions;
    auto t_prefill = std::chrono::steady_clock::now();
    for (int64_t start = 0; start < n_prompt;) {
        int64_t end = prefill_chunk_end(start, n_prompt, prefill_chunk_tokens);
        std::vector<SeqStep> step{prefill_step(prep, start, end, blocks, positions,
                                               cfg.text.hidden_size, cfg.image_token_id)};
        if (!model.forward_batch(step, pool, logits, err)) return false;
        start = end;
    }
    out.timings.prefill_ms = ms_since(t_prefill);

    const int32_t vocab = cfg.text.vocab_size;
    SequenceOutput seq(model, tok, req, prep.ids);
    auto t_decode = std::chrono::steady_clock::now();
    int64_t n_past = n_prompt;
    for (int step = 0;; step++) {
        TokenOutcome o;
        seq.accept(logits.data(), vocab, o);
        if (step == 0) {
            out.timings.ttft_ms = ms_since(t_start);
            t_decode = std::chrono::steady_clock::now();
        }
        if (!o.text.empty() && sink && !sink(o.text)) {
            seq.stop_early("cancelled");
            break;
        }
        if (o.done) break;
        int32_t id = o.id;
        int32_t pos = int32_t(n_past) + prep.rope_delta;
        int32_t next_pos[3] = {pos, pos, pos};
        SeqStep st;
        st.ids = &id;
        st.positions = next_pos;
        st.n = 1;
        st.blocks = blocks.data();
        st.n_blocks = n_blocks;
        st.n_past = n_past;
        st.want_logits = true;
        if (!model.forward_batch({st}, pool, logits, err)) return false;
        n_past++;
    }
    out.text = seq.text();
    out.tokens = seq.tokens();
    out.logprobs = seq.logprobs();
    out.finish_reason = seq.finish_reason();
    out.timings.decode_ms = ms_since(t_decode);
    return true;
}

}  // namespace vlm
