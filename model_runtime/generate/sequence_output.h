// sequence_output.h: what happens to one sequence's logits after each
// forward step, shared by generate() and the engine so both produce the same
// tokens and text: sampling, end-of-sequence ids (from the model directory's
// files: generation_config.json, config.json, tokenizer_config.json), the
// max_tokens limit, the
// UTF-8 stream decoder and stop strings (never streamed, even when split
// across tokens), logprobs. Leaves out: running the model.
#pragma once

#include "generate/generate.h"
#include "model/model.h"
#include "generate/sampler.h"
#include "text/tokenizer.h"

#include <set>
#include <string>
#include <vector>

namespace vlm {

struct TokenOutcome {
    int32_t      id = -1;
    bool         appended = false;   // part of the answer (not EOS)
    std::string  text;               // new text that is safe to show
    bool         has_logprob = false;
    TokenLogprob logprob;
    bool         done = false;       // no more steps for this sequence
};

class SequenceOutput {
public:
    // `prompt_ids` feed the repetition penalty. Settings left to the model
    // (req.from_model) take its generation config; generation ends at
    // stop_token_ids() (model_config.h) unless req.ignore_eos.
    SequenceOutput(const Model &model, const Tokenizer &tok, const ChatRequest &req,
                   const std::vector<int32_t> &prompt_ids);
    // Picks the next token from `logits` (vocab entries) and advances.
    void accept(const float *logits, int32_t vocab, TokenOutcome &out);
    bool done() const { return done_; }
    const std::string &finish_reason() const { return finish_reason_; }
    const std::string &text() const { return text_; }
    const std::vector<int32_t> &tokens() const { return tokens_; }
    const std::vector<TokenLogprob> &logprobs() const { return logprobs_; }
    // Ends early (cancelled, deadline): held-back text is dropped.
    void stop_early(const std::string &reason);

private:
    const ChatRequest   &req_;
    std::set<int32_t>    eos_;
    Sampler              sampler_;
    TokenStreamDecoder   decoder_;
    StopStringFilter     stop_filter_;
    std::string          text_;
    std::vector<int32_t> tokens_;
    std::vector<TokenLogprob> logprobs_;
    std::string          finish_reason_ = "length";
    bool                 done_ = false;
};

}  // namespace vlm
