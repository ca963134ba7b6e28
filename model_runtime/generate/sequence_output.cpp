// sequence_output.cpp: see sequence_output.h.
#include "generate/sequence_output.h"

namespace vlm {

SequenceOutput::SequenceOutput(const Model &model, const Tokenizer &tok, const ChatRequest &req,
                               const std::vector<int32_t> &prompt_ids)
    : req_(req), sampler_(resolved_sampling(model.generation(), req)), decoder_(tok, true),
      stop_filter_(req.stop_strings) {
    for (int id : stop_token_ids(model.config(), model.generation(), tok.eos_token_id()))
        eos_.insert(id);
    sampler_.set_context(prompt_ids);
}

void SequenceOutput::accept(const float *logits, int32_t vocab, TokenOutcome &out) {
    out = TokenOutcome{};
    if (done_) {
        out.done = true;
        return;
    }
    const int32_t id = sampler_.sample(logits, vocab);
    out.id = id;
    if (req_.logprobs_top >= 0) {
        out.has_logprob = true;
        out.logprob = token_logprob(logits, vocab, id, req_.logprobs_top);
        logprobs_.push_back(out.logprob);
    }
    bool stopped = false;
    if (!req_.ignore_eos && eos_.count(id)) {
        finish_reason_ = "stop";
        done_ = true;
    } else {
        tokens_.push_back(id);
        out.appended = true;
        out.text = stop_filter_.push(decoder_.push(id), stopped);
        if (stopped) {
            finish_reason_ = "stop";
            done_ = true;
        } else if (int(tokens_.size()) >= req_.max_tokens) {
            finish_reason_ = "length";
            done_ = true;
        }
    }
    // At EOS or the length limit, text held for an incomplete UTF-8 sequence
    // or a possible stop-string prefix is still part of the answer.
    if (done_ && !stopped) {
        bool tail_stopped = false;
        std::string tail = stop_filter_.push(decoder_.finish(), tail_stopped);
        if (!tail_stopped) tail += stop_filter_.flush();
        out.text += tail;
    }
    text_ += out.text;
    out.done = done_;
}

void SequenceOutput::stop_early(const std::string &reason) {
    finish_reason_ = reason;
    done_ = true;
}

}  // namespace vlm
