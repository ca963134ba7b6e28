// test_backend_cuda_emu.cpp: the model golden suite on the "cuda-emu" backend
// (the CUDA kernels and cuBLAS calls run by the SIMT emulator): for every
// fixture model, vision output and prompt logits against transformers'
// goldens, and greedy tokens identical to the cpu backend run in the same
// process; and the engine's batched paged-KV forward against the cpu
// backend. Every comparison prints the max abs diff it measured.
//
// Tolerances, as for the cpu backend (test_model_golden.cpp):
//  - fp32 models: 1e-4 against transformers' fp32 eager goldens.
//  - bf16 weights: matrix products over more than 16 rows round the
//    activations to bf16 before the bf16 GEMM (cuBLAS needs one dtype for
//    both operands), like the cpu backend's bf16 GEMM path: logits and
//    vision output may drift from the fp32-math golden at most 1.5x as far as
//    torch's own native-bf16 run does (4 bf16 steps of the largest value
//    when there is no native golden). Against the cpu backend, tokens must
//    be identical except where the cpu logits show a near-tie (the two
//    tokens closer than the tolerance).
#include "backend/backend_cpu.h"
#include "backend_cuda.h"
#include "model/model.h"
#include "model_golden_cases.h"
#include "model/safetensors.h"
#include "tools/cuda_selftest.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <check.h>

using namespace vlm;

namespace {

const char *const kModels[] = {"tiny-flash", "tiny-alt", "tiny-flash-bf16"};
constexpr float kTolExact = 1e-4f;
constexpr float kNativeGapMargin = 1.5f;
constexpr float kVisionBf16Steps = 4.0f;
constexpr int kNewTokens = 32;

float max_abs(const float *x, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
    return m;
}

float max_abs_diff(const float *a, const float *b, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; ++i) {
        float d = std::fabs(a[i] - b[i]);
        if (!(d <= m)) m = d;  // NaN propagates as a failure
    }
    return m;
}

int32_t argmax_of(const float *x, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
        if (x[i] > x[best]) best = i;
    return int32_t(best);
}

std::string model_dir(const char *name) { return fixtures_dir() + "/models/" + name; }

bool fixture_is_bf16(const std::string &dir)
{
    std::ifstream cfg(dir + "/config.json");
    std::string text((std::istreambuf_iterator<char>(cfg)), std::istreambuf_iterator<char>());
    return text.find("\"bfloat16\"") != std::string::npos;
}

// One fixture model loaded on cuda-emu and on the cpu backend.
struct Fixture {
    std::string name;
    std::unique_ptr<Backend> cuda, cpu;
    std::unique_ptr<Model> cuda_model, cpu_model;
    std::vector<GoldenCase> cases;
    SafetensorsSet golden;
    bool is_bf16 = false;
    std::map<std::string, std::unique_ptr<SafetensorsSet>> pixel_files;

    const float *values(const std::string &key, int64_t rows, int64_t cols) const
    {
        const TensorView *t = golden.find(key);
        ck_assert_msg(t != nullptr, "golden tensor %s missing", key.c_str());
        ck_assert_msg(t->dtype == DType::F32 && t->numel() == rows * cols, "golden tensor %s: want f32 %lldx%lld",
                      key.c_str(), (long long)rows, (long long)cols);
        return static_cast<const float *>(t->data);
    }
};

void load_fixture(const char *name, Fixture &f)
{
    ck_assert_msg(!fixtures_dir().empty(), "VLM_FIXTURES is not set");
    std::string err;
    const std::string dir = model_dir(name);
    f.name = name;
    ck_assert_msg(load_golden_cases(dir, f.cases, err), "%s", err.c_str());
    ck_assert_msg(f.golden.open_file(dir + "/golden/golden.safetensors", err), "%s", err.c_str());
    f.is_bf16 = fixture_is_bf16(dir);
    BackendOptions opt;
    f.cuda = make_cuda_backend(true, opt, err);
    ck_assert_msg(f.cuda != nullptr, "cuda-emu backend: %s", err.c_str());
    // The cpu variant that rounds where we do: its bf16 GEMM (when the CPU
    // has avx512_bf16) rounds activations of GEMMs over 16 rows, as ours.
    f.cpu = make_cpu_backend_isa(opt, cpu_best_isa(), true, err);
    ck_assert_msg(f.cpu != nullptr, "cpu backend: %s", err.c_str());
    ck_assert_msg(load_model(dir, *f.cuda, f.cuda_model, err), "load_model(%s) on cuda-emu: %s", dir.c_str(),
                  err.c_str());
    ck_assert_msg(load_model(dir, *f.cpu, f.cpu_model, err), "load_model(%s) on cpu: %s", dir.c_str(), err.c_str());
}

PixelBatch case_pixels(Fixture &f, const GoldenCase &c)
{
    PixelBatch px;
    px.grids = c.grids;
    for (const ImageGrid &g : c.grids) px.n_patch += int64_t(g.t) * g.h * g.w;
    const VisionConfig &vc = f.cuda_model->config().vision;
    px.patch_dim = vc.in_channels * vc.temporal_patch_size * vc.patch_size * vc.patch_size;
    const SafetensorsSet *file = &f.golden;
    if (!c.pixel_values_file.empty()) {
        auto &slot = f.pixel_files[c.pixel_values_file];
        if (!slot) {
            slot = std::make_unique<SafetensorsSet>();
            std::string err;
            ck_assert_msg(slot->open_file(fixtures_dir() + "/" + c.pixel_values_file, err), "%s", err.c_str());
        }
        file = slot.get();
    }
    const TensorView *pv = file->find(c.pixel_values_key);
    ck_assert_msg(pv && pv->dtype == DType::F32 && pv->numel() == px.n_patch * int64_t(px.patch_dim),
                  "%s: pixel values %s missing or malformed", c.name.c_str(), c.pixel_values_key.c_str());
    const float *p = static_cast<const float *>(pv->data);
    px.values.assign(p, p + pv->numel());
    return px;
}

// Logits tolerance of a case (see the top of the file).
float logits_tolerance(const Fixture &f, const GoldenCase &c, int64_t n, int64_t vocab)
{
    if (!f.is_bf16) return kTolExact;
    const float *exact = f.values(c.name + ".logits", n, vocab);
    const float *native = f.values(c.name + ".logits_bf16", n, vocab);
    return std::max(kTolExact, kNativeGapMargin * max_abs_diff(exact, native, size_t(n * vocab)));
}

// Prefill of the case on `model` (its own vision output spliced in).
void prefill(Fixture &f, Model &model, const GoldenCase &c, const std::vector<int32_t> &positions,
             int64_t capacity, bool all_logits, KvCache &cache, std::vector<float> &logits)
{
    std::vector<float> image_rows;
    std::string err;
    if (!c.grids.empty()) {
        PixelBatch px = case_pixels(f, c);
        ck_assert_msg(model.encode_images(px, image_rows, err), "encode_images: %s", err.c_str());
    }
    const int64_t d = model.config().text.hidden_size;
    ck_assert_msg(model.new_cache(capacity, cache, err), "%s", err.c_str());
    ck_assert_msg(model.forward(c.prompt_ids, positions, image_rows.empty() ? nullptr : image_rows.data(),
                                int64_t(image_rows.size()) / d, cache, all_logits, logits, err),
                  "forward: %s", err.c_str());
}

double seconds_since(std::chrono::steady_clock::time_point t0)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

START_TEST(vision_output_matches_reference)
{
    int compared = 0;
    for (const char *name : kModels) {
        Fixture f;
        load_fixture(name, f);
        for (const GoldenCase &c : f.cases) {
            if (c.grids.empty()) continue;
            PixelBatch px = case_pixels(f, c);
            std::vector<float> ours, cpu;
            std::string err;
            auto t0 = std::chrono::steady_clock::now();
            ck_assert_msg(f.cuda_model->encode_images(px, ours, err), "encode_images: %s", err.c_str());
            double ms = 1e3 * seconds_since(t0);
            ck_assert_msg(f.cpu_model->encode_images(px, cpu, err), "cpu encode_images: %s", err.c_str());
            const int64_t d = f.cuda_model->config().text.hidden_size;
            const int64_t n_tok = int64_t(ours.size()) / d;
            ck_assert_int_eq(int64_t(cpu.size()), int64_t(ours.size()));
            const float *want = f.values(c.name + ".vision_output", n_tok, d);
            float diff = max_abs_diff(ours.data(), want, ours.size());
            float tol = kTolExact;
            if (f.is_bf16) {
                const std::string native_key = c.name + ".vision_output_bf16";
                tol = f.golden.find(native_key)
                          ? std::max(kTolExact, kNativeGapMargin * max_abs_diff(want, f.values(native_key, n_tok, d),
                                                                                 ours.size()))
                          : kVisionBf16Steps * max_abs(want, ours.size()) / 256.0f;
            }
            std::printf("[%s cuda-emu/%s] vision output (%lld x %lld): max abs diff %.3g vs golden (tol %.2g), "
                        "%.3g vs cpu backend, %.0f ms\n",
                        name, c.name.c_str(), (long long)n_tok, (long long)d, diff, tol,
                        max_abs_diff(ours.data(), cpu.data(), ours.size()), ms);
            ck_assert_msg(diff <= tol, "%s/%s: vision diff %g > %g", name, c.name.c_str(), diff, tol);
            ++compared;
        }
    }
    ck_assert_int_gt(compared, 0);
}
END_TEST

START_TEST(prompt_logits_match_reference)
{
    int compared = 0;
    for (const char *name : kModels) {
        Fixture f;
        load_fixture(name, f);
        const int64_t vocab = f.cuda_model->config().text.vocab_size;
        for (const GoldenCase &c : f.cases) {
            const int64_t n = int64_t(c.prompt_ids.size());
            KvCache cache;
            std::vector<float> logits;
            auto t0 = std::chrono::steady_clock::now();
            prefill(f, *f.cuda_model, c, c.positions, n, true, cache, logits);
            double ms = 1e3 * seconds_since(t0);
            ck_assert_int_eq(int64_t(logits.size()), n * vocab);
            const float *want = f.values(c.name + ".logits", n, vocab);
            float diff = max_abs_diff(logits.data(), want, logits.size());
            float tol = logits_tolerance(f, c, n, vocab);
            std::printf("[%s cuda-emu/%s] prompt logits (%lld x %lld): max abs diff %.3g (tol %.2g), %.0f ms\n",
                        name, c.name.c_str(), (long long)n, (long long)vocab, diff, tol, ms);
            ck_assert_msg(diff <= tol, "%s/%s: logits diff %g > %g", name, c.name.c_str(), diff, tol);
            // The last-row-only path gives the same last row.
            KvCache cache2;
            std::vector<float> last;
            prefill(f, *f.cuda_model, c, c.positions, n, false, cache2, last);
            ck_assert_int_eq(int64_t(last.size()), vocab);
            float dl = max_abs_diff(last.data(), logits.data() + (n - 1) * vocab, size_t(vocab));
            ck_assert_msg(dl <= tol, "%s/%s: last-row logits differ by %g", name, c.name.c_str(), dl);
            ++compared;
        }
    }
    ck_assert_int_gt(compared, 0);
}
END_TEST

START_TEST(greedy_tokens_match_cpu_backend)
{
    int compared = 0;
    for (const char *name : kModels) {
        Fixture f;
        load_fixture(name, f);
        const int64_t vocab = f.cuda_model->config().text.vocab_size;
        for (const GoldenCase &c : f.cases) {
            const int64_t n = int64_t(c.prompt_ids.size());
            std::vector<int32_t> positions;
            int rope_delta = 0;
            compute_mrope_positions(f.cuda_model->config(), c.prompt_ids, c.grids, positions, rope_delta);
            const float tol = logits_tolerance(f, c, n, vocab);
            // Both backends decode their own greedy continuations.
            std::vector<int32_t> tokens[2];
            std::vector<std::vector<float>> cpu_logits;
            Model *models[2] = {f.cuda_model.get(), f.cpu_model.get()};
            double ms_per_tok = 0;
            for (int b = 0; b < 2; b++) {
                KvCache cache;
                std::vector<float> logits;
                prefill(f, *models[b], c, positions, n + kNewTokens, false, cache, logits);
                cache.rope_delta = rope_delta;
                auto t0 = std::chrono::steady_clock::now();
                std::string err;
                while (true) {
                    if (b == 1) cpu_logits.push_back(logits);
                    tokens[b].push_back(argmax_of(logits.data(), vocab));
                    if (int(tokens[b].size()) == kNewTokens) break;
                    const int32_t pos = int32_t(cache.n_past + cache.rope_delta);
                    ck_assert_msg(models[b]->forward({tokens[b].back()}, {pos, pos, pos}, nullptr, 0, cache, false,
                                                     logits, err),
                                  "%s", err.c_str());
                }
                if (b == 0) ms_per_tok = 1e3 * seconds_since(t0) / (kNewTokens - 1);
            }
            int first_diff = -1;
            for (int i = 0; i < kNewTokens && first_diff < 0; i++)
                if (tokens[0][size_t(i)] != tokens[1][size_t(i)]) first_diff = i;
            float margin = 0.0f;
            if (first_diff >= 0) {
                const std::vector<float> &l = cpu_logits[size_t(first_diff)];
                margin = l[size_t(tokens[1][size_t(first_diff)])] - l[size_t(tokens[0][size_t(first_diff)])];
            }
            bool golden_same = c.greedy_tokens.size() >= size_t(kNewTokens) &&
                               std::equal(tokens[0].begin(), tokens[0].end(), c.greedy_tokens.begin());
            std::printf("[%s cuda-emu/%s] greedy %d tokens vs cpu backend: %s; vs transformers: %s "
                        "(decode %.1f ms/token emulated)\n",
                        name, c.name.c_str(), kNewTokens,
                        first_diff < 0 ? "identical"
                                       : ("first differs at " + std::to_string(first_diff) + ", cpu logit margin " +
                                          std::to_string(margin))
                                             .c_str(),
                        golden_same ? "identical" : "differs", ms_per_tok);
            if (f.is_bf16)
                ck_assert_msg(first_diff < 0 || margin <= tol, "%s/%s: token %d is %d, cpu %d (margin %g > %g)", name,
                              c.name.c_str(), first_diff, tokens[0][size_t(first_diff)],
                              tokens[1][size_t(first_diff)], margin, tol);
            else {
                ck_assert_msg(first_diff < 0, "%s/%s: token %d is %d, cpu %d", name, c.name.c_str(), first_diff,
                              tokens[0][size_t(first_diff)], tokens[1][size_t(first_diff)]);
                ck_assert_msg(golden_same, "%s/%s: greedy tokens differ from transformers'", name, c.name.c_str());
            }
            ++compared;
        }
    }
    ck_assert_int_gt(compared, 0);
}
END_TEST

START_TEST(batched_paged_forward_matches_cpu_backend)
{
    // The engine's continuous-batching path (forward_batch over a paged KV
    // pool, scattered block tables) on cuda-emu against each sequence's
    // contiguous forward on the cpu backend, prefill then three decode rounds.
    std::string err;
    BackendOptions opt;
    auto cuda = make_cuda_backend(true, opt, err);
    ck_assert_msg(cuda != nullptr, "%s", err.c_str());
    auto cpu = make_cpu_backend_isa(opt, cpu_best_isa(), false, err);
    ck_assert_msg(cpu != nullptr, "%s", err.c_str());
    std::unique_ptr<Model> mc, mh;
    ck_assert_msg(load_model(model_dir("tiny-flash"), *cuda, mc, err), "%s", err.c_str());
    ck_assert_msg(load_model(model_dir("tiny-flash"), *cpu, mh, err), "%s", err.c_str());
    const int64_t vocab = mc->config().text.vocab_size;
    KvPool pool;
    ck_assert_msg(mc->new_kv_pool(48, 4, pool, err), "%s", err.c_str());
    const std::vector<std::vector<int32_t>> prompts = {
        {5, 9, 13, 17, 21, 25, 29}, {100, 7, 8, 300, 12, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52}, {3, 4}};
    const size_t n_seq = prompts.size();
    std::vector<std::vector<int32_t>> tables(n_seq), ids(n_seq), pos(n_seq);
    for (size_t s = 0; s < n_seq; ++s) {
        for (int b = 0; b < 16; ++b) tables[s].push_back(int32_t(s) + 3 * b);
        std::reverse(tables[s].begin(), tables[s].end());
    }
    std::vector<KvCache> caches(n_seq);
    std::vector<int64_t> n_past(n_seq, 0);
    float max_diff = 0.0f;
    for (int round = 0; round < 4; ++round) {
        std::vector<SeqStep> steps;
        std::vector<std::vector<float>> want(n_seq);
        for (size_t s = 0; s < n_seq; ++s) {
            ids[s] = round == 0 ? prompts[s] : std::vector<int32_t>{int32_t(10 + 7 * round + int(s))};
            pos[s].assign(3 * ids[s].size(), 0);
            for (size_t p = 0; p < 3; ++p)
                for (size_t i = 0; i < ids[s].size(); ++i) pos[s][p * ids[s].size() + i] = int32_t(n_past[s] + int64_t(i));
            if (round == 0) ck_assert(mh->new_cache(64, caches[s], err));
            ck_assert_msg(mh->forward(ids[s], pos[s], nullptr, 0, caches[s], false, want[s], err), "%s", err.c_str());
            SeqStep st;
            st.ids = ids[s].data();
            st.positions = pos[s].data();
            st.n = int64_t(ids[s].size());
            st.blocks = tables[s].data();
            st.n_blocks = int64_t(tables[s].size());
            st.n_past = n_past[s];
            st.want_logits = true;
            steps.push_back(st);
        }
        std::vector<float> logits;
        ck_assert_msg(mc->forward_batch(steps, pool, logits, err), "%s", err.c_str());
        ck_assert_int_eq(int64_t(logits.size()), int64_t(n_seq) * vocab);
        for (size_t s = 0; s < n_seq; ++s) {
            max_diff = std::max(max_diff, max_abs_diff(logits.data() + s * size_t(vocab), want[s].data(), size_t(vocab)));
            n_past[s] += steps[s].n;
        }
    }
    std::printf("[tiny-flash cuda-emu] batched paged forward vs cpu contiguous forward, 3 sequences x 4 rounds: "
                "max abs diff %.3g (tol %.2g)\n", max_diff, kTolExact);
    ck_assert_msg(max_diff <= kTolExact, "batched logits differ by %g", max_diff);
}
END_TEST

START_TEST(selftest_passes)
{
    std::string err;
    BackendOptions opt;
    auto cuda = make_cuda_backend(true, opt, err);
    ck_assert_msg(cuda != nullptr, "%s", err.c_str());
    // The model steps; the op table part runs in test_backend_ops (every
    // target) and, through the program, in test_vlm_run.
    ck_assert_int_eq(run_cuda_selftest(*cuda, model_dir("tiny-flash"), false), 0);
    ck_assert_int_eq(run_cuda_selftest(*cuda, model_dir("tiny-flash-bf16"), false), 0);
    // The wrong flavour is refused with a reason.
    ck_assert(make_cuda_backend(false, opt, err) == nullptr);
    ck_assert_msg(!err.empty(), "no reason given");
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv)
{
    return vlm_check_main(argc, argv, "backend_cuda_emu", {
        {"golden", 1200, {
            vision_output_matches_reference,
            prompt_logits_match_reference,
            greedy_tokens_match_cpu_backend,
            batched_paged_forward_matches_cpu_backend,
            selftest_passes,
        }},
    });
}
