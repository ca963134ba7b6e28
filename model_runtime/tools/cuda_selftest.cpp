// cuda_selftest.cpp: `vlm-run --backend cuda --selftest`: the op table
// (backend/op_suite.h: every op, every weight dtype, odd sizes and strided
// views, against the plain reference) on the CUDA backend, then one model
// step (vision encode of a small image, a short prefill and one decode step)
// against the cpu backend. Prints a summary per op (and any failing case)
// and a pass/fail table for the model step. The model step's inputs are
// kept small (at most 16 rows per matrix product) so both backends compute
// in f32 and the tolerances stay tight.
#include "backend/backend_cpu.h"
#include "backend/op_suite.h"
#include "model/model.h"
#include "tools/cuda_selftest.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

namespace vlm {
namespace {

struct Row {
    std::string name;
    float diff = 0, tol = 0;
    bool pass = false;
};

void print_table(const std::vector<Row> &rows, const char *backend)
{
    std::printf("%-44s %12s %12s  %s\n", (std::string("selftest ") + backend + " vs cpu").c_str(), "max|diff|",
                "tolerance", "result");
    for (const Row &r : rows)
        std::printf("%-44s %12.3g %12.3g  %s\n", r.name.c_str(), r.diff, r.tol, r.pass ? "PASS" : "FAIL");
}

}  // namespace

int run_cuda_selftest(Backend &cuda, const std::string &model_dir, bool op_table)
{
    std::string err;
    BackendOptions opt;
    auto cpu_ptr = make_cpu_backend_isa(opt, cpu_best_isa(), false, err);
    if (!cpu_ptr) {
        std::fprintf(stderr, "selftest: %s\n", err.c_str());
        return 1;
    }
    Backend &cpu = *cpu_ptr;
    std::vector<Row> rows;
    if (op_table) {
        OpCases cases = op_suite_cases();
        const SuiteTotals ops = run_op_suite(cuda, cases, std::string(cuda.name()) + " ops", {}, false, stdout);
        Row r;
        r.name = "op table: " + std::to_string(ops.pass) + " of " + std::to_string(ops.pass + ops.fail + ops.skip) +
                 " cases pass (" + std::to_string(ops.skip) + " skipped)";
        r.pass = ops.fail == 0;
        rows.push_back(r);
    }

    if (!model_dir.empty()) {
        std::unique_ptr<Model> mc, mh;
        bool ok = load_model(model_dir, cuda, mc, err) && load_model(model_dir, cpu, mh, err);
        Row r;
        r.name = "model load";
        r.pass = ok;
        if (!ok) std::fprintf(stderr, "selftest: %s\n", err.c_str());
        rows.push_back(r);
        if (ok) {
            // A 4x4-patch image (4 merged tokens): at most 16 rows per product.
            const VisionConfig &vc = mc->config().vision;
            const int merge = vc.spatial_merge_size;
            PixelBatch px;
            px.grids = {{1, 2 * merge, 2 * merge}};
            px.n_patch = int64_t(4) * merge * merge;
            px.patch_dim = vc.in_channels * vc.temporal_patch_size * vc.patch_size * vc.patch_size;
            px.values.resize(size_t(px.n_patch) * size_t(px.patch_dim));
            for (size_t i = 0; i < px.values.size(); i++) px.values[i] = float(int(i * 7919 % 2001) - 1000) / 1000.0f;
            std::vector<float> va, vb;
            bool enc = mc->encode_images(px, va, err) && mh->encode_images(px, vb, err);
            Row rv;
            rv.name = "model: vision encode (4 patches/token)";
            if (enc && va.size() == vb.size()) {
                float m = 0;
                for (size_t i = 0; i < va.size(); i++) {
                    rv.diff = std::max(rv.diff, std::fabs(va[i] - vb[i]));
                    m = std::max(m, std::fabs(vb[i]));
                }
                rv.tol = 1e-4f * std::max(1.0f, m);
                rv.pass = rv.diff <= rv.tol;
            }
            rows.push_back(rv);
            // A 8-token prompt, then one decode step.
            const int64_t vocab = mc->config().text.vocab_size;
            std::vector<int32_t> ids;
            for (int i = 0; i < 8; i++) ids.push_back(int32_t((i * 131 + 7) % vocab));
            std::vector<int32_t> pos(3 * ids.size());
            for (size_t i = 0; i < pos.size(); i++) pos[i] = int32_t(i % ids.size());
            KvCache ca, cb;
            std::vector<float> la, lb;
            const char *names[2] = {"model: prefill logits (8 tokens)", "model: decode step logits"};
            bool step_ok = mc->new_cache(16, ca, err) && mh->new_cache(16, cb, err);
            for (int step = 0; step < 2 && step_ok; step++) {
                if (step == 1) {
                    ids = {ids[0]};
                    pos = {8, 8, 8};
                }
                step_ok = mc->forward(ids, pos, nullptr, 0, ca, false, la, err) &&
                          mh->forward(ids, pos, nullptr, 0, cb, false, lb, err);
                Row rl;
                rl.name = names[step];
                if (step_ok && la.size() == lb.size()) {
                    float m = 0;
                    for (size_t i = 0; i < la.size(); i++) {
                        rl.diff = std::max(rl.diff, std::fabs(la[i] - lb[i]));
                        m = std::max(m, std::fabs(lb[i]));
                    }
                    rl.tol = 1e-4f * std::max(1.0f, m);
                    rl.pass = rl.diff <= rl.tol;
                }
                rows.push_back(rl);
            }
            if (!step_ok) std::fprintf(stderr, "selftest: %s\n", err.c_str());
        }
    }
    print_table(rows, cuda.name());
    int failed = 0;
    for (const Row &r : rows) failed += !r.pass;
    std::printf("selftest: %d of %zu checks passed\n", int(rows.size()) - failed, rows.size());
    return failed == 0 ? 0 : 1;
}

}  // namespace vlm
