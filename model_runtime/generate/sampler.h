// sampler.h: picks the next token from a row of logits: the repetition
// penalty (transformers' RepetitionPenaltyLogitsProcessor: every token id
// seen in the prompt or generated so far has its logit divided by the
// penalty when positive, multiplied when negative), then greedy, or
// temperature -> top_k -> top_p (the order transformers applies its warpers)
// with a seeded generator, and reports log-probabilities of the model's own
// distribution (raw logits, before the penalty, temperature and truncation).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace vlm {

struct SamplingParams {
    float    temperature = 0.0f;   // 0: greedy (argmax, lowest id on ties)
    float    top_p       = 1.0f;   // (0, 1]
    int      top_k       = 0;      // 0: off
    uint64_t seed        = 0;
    bool     seeded      = false;  // the client chose `seed`: the same seed, the same answer
    float    repetition_penalty = 1.0f;   // > 0; 1: off
};

struct TokenLogprob {
    int32_t                               id = 0;
    float                                 logprob = 0.0f;
    std::vector<std::pair<int32_t, float>> top;   // best first, when asked
};

// A small deterministic generator (splitmix64 seeding xoshiro256**): the same
// seed gives the same tokens on every machine, unlike std distributions.
class Rng {
public:
    explicit Rng(uint64_t seed);
    uint64_t next();
    double   uniform();   // [0, 1) with 53 random bits
private:
    uint64_t s_[4];
};

// A seed nobody can predict (getrandom), for a request that gave none: two
// unseeded sampling requests must not return the same text.
uint64_t fresh_seed();

class Sampler {
public:
    explicit Sampler(const SamplingParams &p);
    // The prompt's ids, for the repetition penalty (generated ids are added
    // by sample() itself).
    void set_context(const std::vector<int32_t> &prompt_ids);
    // Chooses a token from `logits` (n entries). Scratch is reused across calls.
    int32_t sample(const float *logits, int32_t n);
    const SamplingParams &params() const { return p_; }
private:
    SamplingParams                         p_;
    Rng                                    rng_;
    std::vector<std::pair<float, int32_t>> cand_;
    std::vector<double>                    prob_;
    std::vector<int32_t>                   seen_;      // distinct ids, for the penalty
    std::vector<uint8_t>                   is_seen_;   // by id
    std::vector<float>                     penalised_;
    void remember(int32_t id);
    int32_t choose(const float *logits, int32_t n);
};

// log_softmax(logits)[id] and, when top_n > 0, the top_n entries.
TokenLogprob token_logprob(const float *logits, int32_t n, int32_t id, int top_n);

int32_t argmax(const float *logits, int32_t n);

}  // namespace vlm
