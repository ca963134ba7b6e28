// Sampler, log-probabilities, stop strings and UTF-8 repair: the parts of
// generation a user sees directly (same seed -> same text, stop strings never
// leak into the stream, top_k/top_p never pick an excluded token).
#include "generate/generate.h"
#include "generate/request.h"
#include "generate/sampler.h"
#include "util/utf8.h"

#include <check.h>

#include <cmath>
#include <map>
#include <vector>

using namespace vlm;

START_TEST(greedy_picks_argmax_lowest_id_on_ties)
{
    std::vector<float> l{0.1f, 3.0f, -1.0f, 3.0f};
    Sampler s(SamplingParams{});
    ck_assert_int_eq(s.sample(l.data(), 4), 1);
}
END_TEST

START_TEST(same_seed_same_tokens_different_seed_differs)
{
    std::vector<float> l(50);
    for (size_t i = 0; i < l.size(); i++) l[i] = float(std::sin(double(i)));
    SamplingParams p;
    p.temperature = 1.0f;
    p.seed = 42;
    Sampler a(p), b(p);
    p.seed = 43;
    Sampler c(p);
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        int32_t x = a.sample(l.data(), 50), y = b.sample(l.data(), 50);
        ck_assert_int_eq(x, y);
        differ += x != c.sample(l.data(), 50);
    }
    ck_assert_int_gt(differ, 50);
}
END_TEST

START_TEST(top_k_and_top_p_exclude_the_tail)
{
    // probs ~ 0.5, 0.25, 0.125, ... : top_p 0.7 keeps exactly the first two.
    std::vector<float> l;
    for (int i = 0; i < 10; i++) l.push_back(float(-i * std::log(2.0)));
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_p = 0.7f;
    p.seed = 1;
    Sampler s(p);
    std::map<int, int> seen;
    for (int i = 0; i < 4000; i++) seen[s.sample(l.data(), 10)]++;
    ck_assert_int_eq(int(seen.size()), 2);
    // Renormalised over the two survivors: 2/3 and 1/3.
    double f0 = seen[0] / 4000.0;
    ck_assert_msg(std::fabs(f0 - 2.0 / 3.0) < 0.04, "token 0 frequency %f", f0);

    p.top_p = 1.0f;
    p.top_k = 3;
    Sampler k(p);
    for (int i = 0; i < 2000; i++) ck_assert_int_lt(k.sample(l.data(), 10), 3);
}
END_TEST

// transformers' RepetitionPenaltyLogitsProcessor: seen ids (prompt and
// generated) have positive logits divided, negative ones multiplied, before
// greedy or sampling; the penalty also applies to greedy decoding.
START_TEST(repetition_penalty_as_transformers)
{
    std::vector<float> l{2.0f, 1.9f, -0.5f, -0.6f};
    SamplingParams p;
    p.repetition_penalty = 1.1f;
    Sampler s(p);
    s.set_context({0});
    ck_assert_int_eq(s.sample(l.data(), 4), 1);   // 2.0 / 1.1 = 1.82 < 1.9
    ck_assert_int_eq(s.sample(l.data(), 4), 0);   // 1 chosen, now penalised too: 1.82 > 1.73
    // Negative logits are multiplied: -0.5 * 1.1 = -0.55 > -0.6 still.
    std::vector<float> neg{-0.5f, -0.52f};
    Sampler n(p);
    n.set_context({0});
    ck_assert_int_eq(n.sample(neg.data(), 2), 1);   // -0.55 < -0.52
    // Off (1.0): the prompt does not matter.
    SamplingParams off;
    Sampler o(off);
    o.set_context({0});
    ck_assert_int_eq(o.sample(l.data(), 4), 0);
}
END_TEST

// Chat settings a client leaves out come from generation_config.json, field
// by field as transformers merges generate() kwargs; given ones stay.
START_TEST(generation_defaults_fill_what_the_client_left_out)
{
    GenerationConfig gen;                       // file: do_sample true, temperature 0.8, top_p 0.6
    gen.do_sample = true;
    gen.temperature = 0.8;
    gen.top_p = 0.6;                            // top_k absent: transformers' 50
    gen.repetition_penalty = 1.1;
    ChatRequest req;
    req.sampling.temperature = 0.3f;            // given by the client
    req.from_model = {false, true, true, true, false};
    apply_generation_defaults(gen, req);
    ck_assert(req.sampling.temperature == 0.3f && req.sampling.top_p == 0.6f);
    ck_assert(req.sampling.top_k == 50 && req.sampling.repetition_penalty == 1.1f);
    ck_assert(!req.from_model.any());
    apply_generation_defaults(gen, req);        // idempotent
    ck_assert(req.sampling.temperature == 0.3f);

    ChatRequest all;
    all.from_model = {true, true, true, true, false};
    ck_assert(resolved_sampling(gen, all).temperature == 0.8f);
    gen.do_sample = false;                      // greedy: temperature/top_k/top_p unused
    const SamplingParams g = resolved_sampling(gen, all);
    ck_assert(g.temperature == 0.0f && g.top_k == 0 && g.top_p == 1.0f && g.repetition_penalty == 1.1f);
    ChatRequest task;                           // tasks: nothing from the model
    task.sampling.temperature = 0.0f;
    ck_assert(resolved_sampling(gen, task).repetition_penalty == 1.0f);
}
END_TEST

// issue 12: without a seed, temperature 1.0 returned the same text every time
// (the seed defaulted to 0), so "regenerate" never changed anything.
START_TEST(a_request_without_seed_gets_a_fresh_one)
{
    GenerationConfig gen;
    ChatRequest a, b, seeded;
    a.sampling.temperature = b.sampling.temperature = seeded.sampling.temperature = 1.0f;
    a.from_model.seed = b.from_model.seed = true;
    seeded.sampling.seed = 7;
    seeded.sampling.seeded = true;
    apply_generation_defaults(gen, a);
    apply_generation_defaults(gen, b);
    apply_generation_defaults(gen, seeded);
    ck_assert_msg(a.sampling.seed != b.sampling.seed, "two unseeded requests drew seed %llu",
                  (unsigned long long)a.sampling.seed);
    ck_assert(!a.sampling.seeded && seeded.sampling.seeded && seeded.sampling.seed == 7);
    const uint64_t drawn = a.sampling.seed;
    apply_generation_defaults(gen, a);          // drawn once
    ck_assert(a.sampling.seed == drawn);

    // Different seeds sample differently from a flat distribution.
    std::vector<float> flat(1000, 0.0f);
    Sampler sa(a.sampling), sb(b.sampling);
    int same = 0;
    for (int i = 0; i < 32; i++) same += sa.sample(flat.data(), 1000) == sb.sample(flat.data(), 1000);
    ck_assert_int_lt(same, 8);
}
END_TEST

START_TEST(logprobs_are_normalised_and_sorted)
{
    std::vector<float> l{1.0f, 2.0f, 3.0f, 0.5f};
    TokenLogprob lp = token_logprob(l.data(), 4, 1, 3);
    double z = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + std::exp(0.5));
    ck_assert(std::fabs(lp.logprob - (2.0 - z)) < 1e-6);
    ck_assert_int_eq(int(lp.top.size()), 3);
    ck_assert_int_eq(lp.top[0].first, 2);
    ck_assert_int_eq(lp.top[1].first, 1);
    ck_assert_int_eq(lp.top[2].first, 0);
    double sum = 0;
    for (int i = 0; i < 4; i++) sum += std::exp(token_logprob(l.data(), 4, i, 0).logprob);
    ck_assert(std::fabs(sum - 1.0) < 1e-6);
}
END_TEST

START_TEST(stop_string_split_across_pieces_never_streams)
{
    StopStringFilter f({"END", "\n\n"});
    bool stopped = false;
    std::string out;
    for (const char *piece : {"Hello wor", "ld E", "N", "D and more"}) {
        out += f.push(piece, stopped);
        if (stopped) break;
    }
    ck_assert(stopped);
    ck_assert_str_eq(out.c_str(), "Hello world ");

    StopStringFilter g({"END"});
    out = g.push("an EN", stopped);
    ck_assert(!stopped);
    ck_assert_str_eq(out.c_str(), "an ");
    out += g.push("TRY", stopped);   // "ENTRY" is not "END": released
    ck_assert(!stopped);
    std::string all = out + g.flush();   // ck_assert_str_eq keeps the pointer
    ck_assert_str_eq(all.c_str(), "an ENTRY");
}
END_TEST

START_TEST(utf8_lossy_repairs_only_invalid_bytes)
{
    ck_assert(utf8_valid("caf\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80"));
    ck_assert(!utf8_valid("\xC3"));
    ck_assert(!utf8_valid("\xED\xA0\x80"));   // surrogate
    ck_assert(!utf8_valid("\xC0\xAF"));       // overlong
    std::string repaired = utf8_lossy("a\xFF" "b\xE4\xB8");
    ck_assert_str_eq(repaired.c_str(),
                     "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD");
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv)
{
    return vlm_check_main(argc, argv, "sampler", {
        {"core", 0, {
            greedy_picks_argmax_lowest_id_on_ties,
            same_seed_same_tokens_different_seed_differs,
            top_k_and_top_p_exclude_the_tail,
            repetition_penalty_as_transformers,
            generation_defaults_fill_what_the_client_left_out,
            a_request_without_seed_gets_a_fresh_one,
            logprobs_are_normalised_and_sorted,
            stop_string_split_across_pieces_never_streams,
            utf8_lossy_repairs_only_invalid_bytes,
        }},
    });
}
