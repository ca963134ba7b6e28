// sampler.cpp: next-token choice and log-probabilities (see sampler.h). The
// vocabulary is at most a few hundred thousand entries, so full sorts of the
// candidates that survive top_k are cheap next to a decode step.
#include "generate/sampler.h"

#include <random>
#include <algorithm>
#include <cmath>
#include <limits>

namespace vlm {

static uint64_t splitmix64(uint64_t &x)
{
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t fresh_seed()
{
    std::random_device rd;   // getrandom(2) on Linux
    return (uint64_t(rd()) << 32) ^ uint64_t(rd());
}

Rng::Rng(uint64_t seed)
{
    for (auto &s : s_) s = splitmix64(seed);
}

uint64_t Rng::next()
{
    uint64_t result = rotl(s_[1] * 5, 7) * 9;
    uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
}

double Rng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

int32_t argmax(const float *logits, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

Sampler::Sampler(const SamplingParams &p) : p_(p), rng_(p.seed) {}

void Sampler::remember(int32_t id)
{
    if (p_.repetition_penalty == 1.0f || id < 0) return;
    if (size_t(id) >= is_seen_.size()) is_seen_.resize(size_t(id) + 1, 0);
    if (is_seen_[size_t(id)]) return;
    is_seen_[size_t(id)] = 1;
    seen_.push_back(id);
}

void Sampler::set_context(const std::vector<int32_t> &prompt_ids)
{
    for (int32_t id : prompt_ids) remember(id);
}

int32_t Sampler::sample(const float *raw_logits, int32_t n)
{
    const float *logits = raw_logits;
    if (p_.repetition_penalty != 1.0f && !seen_.empty()) {
        penalised_.assign(raw_logits, raw_logits + n);
        for (int32_t id : seen_) {
            if (id >= n) continue;
            float &l = penalised_[size_t(id)];
            l = l < 0.0f ? l * p_.repetition_penalty : l / p_.repetition_penalty;
        }
        logits = penalised_.data();
    }
    const int32_t id = choose(logits, n);
    remember(id);
    return id;
}

int32_t Sampler::choose(const float *logits, int32_t n)
{
    if (p_.temperature <= 0.0f || p_.top_k == 1) return argmax(logits, n);

    cand_.resize(size_t(n));
    for (int32_t i = 0; i < n; i++) cand_[size_t(i)] = {logits[i] / p_.temperature, i};
    // Highest first; ties by lower id so the order is total and reproducible.
    auto better = [](const std::pair<float, int32_t> &a,
                     const std::pair<float, int32_t> &b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    size_t keep = cand_.size();
    if (p_.top_k > 0 && size_t(p_.top_k) < keep) {
        keep = size_t(p_.top_k);
        std::partial_sort(cand_.begin(), cand_.begin() + long(keep), cand_.end(), better);
        cand_.resize(keep);
    } else {
        std::sort(cand_.begin(), cand_.end(), better);
    }

    // Softmax in double over the survivors, then the smallest prefix whose
    // mass reaches top_p (always at least one token, as transformers keeps).
    prob_.resize(keep);
    double max_logit = cand_[0].first, sum = 0.0;
    for (size_t i = 0; i < keep; i++) {
        prob_[i] = std::exp(double(cand_[i].first) - max_logit);
        sum += prob_[i];
    }
    size_t cut = keep;
    if (p_.top_p < 1.0f) {
        double acc = 0.0;
        for (size_t i = 0; i < keep; i++) {
            acc += prob_[i] / sum;
            if (acc >= double(p_.top_p)) { cut = i + 1; break; }
        }
    }
    double mass = 0.0;
    for (size_t i = 0; i < cut; i++) mass += prob_[i];
    double r = rng_.uniform() * mass;
    for (size_t i = 0; i < cut; i++) {
        r -= prob_[i];
        if (r < 0.0) return cand_[i].second;
    }
    return cand_[cut - 1].second;
}

TokenLogprob token_logprob(const float *logits, int32_t n, int32_t id, int top_n)
{
    double max_logit = -std::numeric_limits<double>::infinity();
    for (int32_t i = 0; i < n; i++) max_logit = std::max(max_logit, double(logits[i]));
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) sum += std::exp(double(logits[i]) - max_logit);
    double log_z = max_logit + std::log(sum);

    TokenLogprob out;
    out.id = id;
    out.logprob = float(double(logits[id]) - log_z);
    if (top_n > 0) {
        std::vector<int32_t> idx(static_cast<size_t>(n));
        for (int32_t i = 0; i < n; i++) idx[size_t(i)] = i;
        size_t k = std::min(size_t(top_n), idx.size());
        std::partial_sort(idx.begin(), idx.begin() + long(k), idx.end(),
                          [&](int32_t a, int32_t b) {
                              return logits[a] > logits[b] ||
                                     (logits[a] == logits[b] && a < b);
                          });
        for (size_t i = 0; i < k; i++)
            out.top.push_back({idx[i], float(double(logits[idx[i]]) - log_z)});
    }
    return out;
}

}  // namespace vlm
