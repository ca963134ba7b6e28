// selftest.cpp: `vlm-run --backend cuda --selftest`: every op of a CUDA
// backend against the cpu backend on random inputs (through the Backend
// interface, so uploads, staging of host arrays and views are exercised too),
// then one model step (vision encode of a small image, a short prefill and
// one decode step) on both backends. Prints a pass/fail table. The inputs
// are kept small (at most 16 rows per matrix product where weights are bf16)
// so both backends compute in f32 and the tolerances stay tight.
#include "backend_cuda.h"
#include "backend/backend_cpu.h"
#include "core/cpu_ops_ref.h"
#include "model/model.h"
#include "tools/cuda_selftest.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <vector>

namespace vlm {
namespace {

struct SelfRng {
    uint64_t s;
    explicit SelfRng(uint64_t seed) : s(seed ^ 0x2545f4914f6cdd1dull) {}
    float uniform()
    {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return float(int32_t(s >> 32)) / 2147483648.0f;
    }
};

// The same tensor on both backends, filled with the same values.
struct Twin {
    DeviceBuffer a, b;  // a: cuda, b: cpu
    Twin(Backend &cuda, Backend &cpu, DType dt, int64_t rows, int64_t cols, SelfRng *rng, float scale = 1.0f)
        : a(cuda, dt, rows, cols), b(cpu, dt, rows, cols)
    {
        if (!rng) return;
        const size_t n = size_t(rows) * size_t(cols);
        std::vector<uint8_t> bytes(n * dtype_size(dt));
        for (size_t i = 0; i < n; i++) {
            float v = rng->uniform() * scale;
            if (dt == DType::F32) std::memcpy(bytes.data() + 4 * i, &v, 4);
            else {
                uint16_t h = dt == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
                std::memcpy(bytes.data() + 2 * i, &h, 2);
            }
        }
        cuda.upload(a.t.data, bytes.data(), bytes.size());
        cpu.upload(b.t.data, bytes.data(), bytes.size());
    }
    bool ok() const { return a.t.data && b.t.data; }
};

// Max abs diff between the f32 contents of a twin's two sides.
float twin_diff(Backend &cuda, const Twin &t, float *ref_max)
{
    const size_t n = size_t(t.a.t.rows) * size_t(t.a.t.cols);
    std::vector<float> x(n), y(n);
    cuda.download(x.data(), t.a.t.data, n * 4);
    std::memcpy(y.data(), t.b.t.data, n * 4);
    float d = 0.0f, m = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float e = std::fabs(x[i] - y[i]);
        if (!(e <= d)) d = e;
        m = std::max(m, std::fabs(y[i]));
    }
    if (ref_max) *ref_max = m;
    return d;
}

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

int run_cuda_selftest(Backend &cuda, const std::string &model_dir)
{
    std::string err;
    BackendOptions opt;
    auto cpu_ptr = make_cpu_backend_isa(opt, cpu_best_isa(), false, err);
    if (!cpu_ptr) {
        std::fprintf(stderr, "selftest: %s\n", err.c_str());
        return 1;
    }
    Backend &cpu = *cpu_ptr;
    SelfRng rng(7);
    std::vector<Row> rows;
    // Runs `op` on both sides, compares `out`, records a row with relative
    // tolerance `rel` of the largest reference magnitude.
    auto check = [&](const std::string &name, Twin &out, float rel, const std::function<void(bool cuda_side)> &op) {
        op(true);
        op(false);
        float ref_max = 0;
        Row r;
        r.name = name;
        r.diff = twin_diff(cuda, out, &ref_max);
        r.tol = rel * std::max(1.0f, ref_max);
        r.pass = r.diff <= r.tol;
        rows.push_back(r);
    };
    auto side = [](Twin &t, bool c) -> Tensor & { return c ? t.a.t : t.b.t; };

    for (DType wt : {DType::F32, DType::BF16, DType::F16}) {
        const std::string tag = std::string(" (") + dtype_name(wt) + ")";
        for (int64_t n : {3, 40}) {
            if (n > 16 && wt != DType::F32) continue;  // bf16 GEMM rounds x: covered by the model tests
            Twin x(cuda, cpu, DType::F32, n, 200, &rng), w(cuda, cpu, wt, 77, 200, &rng), b(cuda, cpu, wt, 1, 77, &rng),
                y(cuda, cpu, DType::F32, n, 77, nullptr);
            check("matmul+bias n=" + std::to_string(n) + tag, y, 1e-5f, [&](bool c) {
                (c ? cuda : cpu).matmul(side(x, c), side(w, c), &side(b, c), side(y, c));
            });
        }
        Twin x(cuda, cpu, DType::F32, 5, 300, &rng, 3.0f), w(cuda, cpu, wt, 1, 300, &rng), b(cuda, cpu, wt, 1, 300, &rng),
            y(cuda, cpu, DType::F32, 5, 300, nullptr);
        check("rms_norm" + tag, y, 1e-5f, [&](bool c) { (c ? cuda : cpu).rms_norm(side(x, c), side(w, c), 1e-5f, side(y, c)); });
        check("layer_norm" + tag, y, 1e-5f,
              [&](bool c) { (c ? cuda : cpu).layer_norm(side(x, c), side(w, c), side(b, c), 1e-5f, side(y, c)); });
        Twin table(cuda, cpu, wt, 30, 300, &rng);
        const int32_t ids[5] = {0, 29, 7, 7, 13};
        check("embed" + tag, y, 0.0f, [&](bool c) { (c ? cuda : cpu).embed(side(table, c), ids, 5, side(y, c)); });
        Twin pos(cuda, cpu, wt, 16, 300, &rng);
        const int32_t prow[5] = {0, 1, 2, 3, 4}, pcol[5] = {4, 3, 2, 1, 0}, gh[5] = {5, 5, 5, 5, 5}, gw[5] = {6, 6, 6, 6, 6};
        check("add_pos_embed_bicubic" + tag, y, 1e-5f, [&](bool c) {
            (c ? cuda : cpu).add_pos_embed_bicubic(side(pos, c), 4, prow, pcol, gh, gw, side(y, c));
        });
    }
    {
        Twin g(cuda, cpu, DType::F32, 7, 130, &rng, 4.0f), u(cuda, cpu, DType::F32, 7, 130, &rng),
            y(cuda, cpu, DType::F32, 7, 130, nullptr);
        check("silu_mul", y, 1e-6f, [&](bool c) { (c ? cuda : cpu).silu_mul(side(g, c), side(u, c), side(y, c)); });
        check("gelu", y, 1e-6f, [&](bool c) { (c ? cuda : cpu).gelu(side(g, c), side(y, c)); });
        check("add", y, 0.0f, [&](bool c) { (c ? cuda : cpu).add(side(g, c), side(u, c), side(y, c)); });
        Twin cache(cuda, cpu, DType::F32, 20, 130, &rng);
        check("copy (KV-cache rows)", cache, 0.0f, [&](bool c) {
            Tensor dst = side(cache, c).row_slice(9, 7);
            (c ? cuda : cpu).copy(side(g, c), dst);
        });
    }
    {
        const int64_t n = 9;
        Twin x(cuda, cpu, DType::F32, n, 4 * 32, &rng);
        std::vector<int32_t> positions(3 * n);
        for (size_t i = 0; i < positions.size(); i++) positions[i] = int32_t((i * 37) % 500);
        TextRopeParams rp;
        rp.n_head = 4;
        rp.head_dim = 32;
        rp.rotary_dim = 16;
        rp.theta = 500000.0;
        rp.section[0] = 4;
        rp.section[1] = 2;
        rp.section[2] = 2;
        check("rope_text", x, 1e-5f, [&](bool c) { (c ? cuda : cpu).rope_text(side(x, c), positions.data(), rp); });
        const int32_t row[n] = {0, 1, 2, 3, 4, 5, 6, 7, 8}, col[n] = {8, 7, 6, 5, 4, 3, 2, 1, 0};
        check("rope_vision", x, 1e-5f, [&](bool c) { (c ? cuda : cpu).rope_vision(side(x, c), row, col, 4, 32, 10000.0); });
    }
    for (int64_t n_q : {1, 3, 37}) {
        const int64_t n_kv = n_q == 37 ? 37 : (n_q == 1 ? 600 : 50);  // 600: split-KV decode
        Twin q(cuda, cpu, DType::F32, n_q, 4 * 64, &rng), k(cuda, cpu, DType::F32, n_kv, 2 * 64, &rng),
            v(cuda, cpu, DType::F32, n_kv, 2 * 64, &rng), o(cuda, cpu, DType::F32, n_q, 4 * 64, nullptr);
        AttentionParams ap;
        ap.n_head = 4;
        ap.n_kv_head = 2;
        ap.head_dim = 64;
        ap.scale = 0.125f;
        ap.kv_offset = n_kv - n_q;
        check("attention causal q=" + std::to_string(n_q) + " kv=" + std::to_string(n_kv), o, 1e-5f,
              [&](bool c) { (c ? cuda : cpu).attention(side(q, c), side(k, c), side(v, c), ap, side(o, c)); });
        if (n_q == 37) {
            const int32_t seg[3] = {16, 5, 16};
            ap.causal = false;
            ap.segments = seg;
            ap.n_segments = 3;
            check("attention segments q=37", o, 1e-5f,
                  [&](bool c) { (c ? cuda : cpu).attention(side(q, c), side(k, c), side(v, c), ap, side(o, c)); });
        }
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
            for (float &v : px.values) v = rng.uniform();
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
