// test_backend_cpu.cpp: the cpu backend's own properties, beside the op
// table (test_backend_ops.cpp runs every op against the reference on every
// cpu kernel path): hand-computed values and torch's values for each op, a
// token's matmul output bit-identical whatever the batch around it (the
// engine's batched decode relies on it), dtype conversions, and
// make_backend / DeviceBuffer / in-place weight adoption.
#include "test_rng.h"
#include "core/backend.h"
#include "backend/backend_cpu.h"
#include "core/cpu_ops_ref.h"
#include "backend/registry.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

// After the C++ headers: check.h defines a `fail` macro.
#include <check.h>

using namespace vlm;

namespace {

// Host tensor owned by a vector (the cpu backend works on host pointers).
struct HostTensor {
    std::vector<float> f;
    std::vector<uint16_t> h;
    Tensor t;
    HostTensor(DType dt, int64_t rows, int64_t cols, int64_t stride = -1)
    {
        if (stride < 0) stride = cols;
        size_t total = size_t(rows) * size_t(stride) + 16;
        t.dtype = dt;
        t.rows = rows;
        t.cols = cols;
        t.stride = stride;
        if (dt == DType::F32) {
            f.assign(total, 0.0f);
            t.data = f.data();
        } else {
            h.assign(total, 0);
            t.data = h.data();
        }
    }
    void set(int64_t r, int64_t c, float v)
    {
        size_t i = size_t(r) * size_t(t.stride) + size_t(c);
        if (t.dtype == DType::F32) f[i] = v;
        else if (t.dtype == DType::BF16) h[i] = f32_to_bf16(v);
        else h[i] = f32_to_f16(v);
    }
    void fill(Rng &rng, float scale = 1.0f)
    {
        for (int64_t r = 0; r < t.rows; r++)
            for (int64_t c = 0; c < t.stride; c++) set(r, c, rng.uniform() * scale);
    }
    float at(int64_t r, int64_t c) const { return tensor_elem(t, r, c); }
};

std::unique_ptr<Backend> backend_for(CpuIsa isa, bool bf16_dot, int threads = 2)
{
    std::string err;
    BackendOptions opt;
    opt.n_threads = threads;
    auto b = make_cpu_backend_isa(opt, isa, bf16_dot, err);
    ck_assert_msg(b != nullptr, "make_cpu_backend_isa: %s", err.c_str());
    return b;
}

std::vector<std::pair<CpuIsa, bool>> supported_paths()
{
    std::vector<std::pair<CpuIsa, bool>> paths = {{CpuIsa::Scalar, false}};
    if (int(cpu_best_isa()) >= int(CpuIsa::Avx2)) paths.push_back({CpuIsa::Avx2, false});
    if (cpu_best_isa() == CpuIsa::Avx512) {
        paths.push_back({CpuIsa::Avx512, false});
        if (cpu_has_avx512_bf16()) paths.push_back({CpuIsa::Avx512, true});
    }
    return paths;
}

}  // namespace

// ---------------------------------------------------------------- hand values

START_TEST(test_hand_matmul)
{
    for (auto [isa, dot] : supported_paths()) {
        auto be = backend_for(isa, dot);
        HostTensor x(DType::F32, 2, 3), w(DType::F32, 2, 3), b(DType::F32, 1, 2), y(DType::F32, 2, 2);
        float xv[] = {1, 2, 3, -1, 0.5f, 2};
        float wv[] = {1, 0, -1, 2, 1, 0.25f};
        for (int i = 0; i < 6; i++) {
            x.set(i / 3, i % 3, xv[i]);
            w.set(i / 3, i % 3, wv[i]);
        }
        b.set(0, 0, 10);
        b.set(0, 1, -1);
        be->matmul(x.t, w.t, &b.t, y.t);
        float want[] = {1 - 3 + 10, 2 + 2 + 0.75f - 1, -1 - 2 + 10, -2 + 0.5f + 0.5f - 1};
        for (int i = 0; i < 4; i++)
            ck_assert_msg(std::fabs(y.at(i / 2, i % 2) - want[i]) < 1e-6, "%s: y[%d]=%g want %g",
                          cpu_isa_name(isa), i, y.at(i / 2, i % 2), want[i]);
    }
}
END_TEST

START_TEST(test_hand_norms_and_activations)
{
    auto be = backend_for(cpu_best_isa(), true);
    HostTensor x(DType::F32, 1, 4), w(DType::BF16, 1, 4), b(DType::F32, 1, 4), y(DType::F32, 1, 4);
    float xv[] = {1, 2, 3, 4}, wv[] = {1, 2, 0.5f, -1}, bv[] = {0, 1, 0, 0};
    for (int i = 0; i < 4; i++) {
        x.set(0, i, xv[i]);
        w.set(0, i, wv[i]);
        b.set(0, i, bv[i]);
    }
    be->rms_norm(x.t, w.t, 0.0f, y.t);
    float inv = 1.0f / std::sqrt(7.5f);  // mean of squares = 30 / 4
    for (int i = 0; i < 4; i++) ck_assert(std::fabs(y.at(0, i) - wv[i] * xv[i] * inv) < 1e-6);
    be->layer_norm(x.t, w.t, b.t, 0.0f, y.t);
    float rstd = 1.0f / std::sqrt(1.25f);  // biased variance of 1..4
    for (int i = 0; i < 4; i++)
        ck_assert(std::fabs(y.at(0, i) - ((xv[i] - 2.5f) * rstd * wv[i] + bv[i])) < 1e-6);
    float gv[] = {1.0f, -0.5f, 0.0f, 3.0f};
    for (int i = 0; i < 4; i++) x.set(0, i, gv[i]);
    be->gelu(x.t, y.t);
    float gelu_want[] = {0.841344746f, -0.154268639f, 0.0f, 2.99595031f};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(std::fabs(y.at(0, i) - gelu_want[i]) < 1e-6, "gelu(%g)=%.9g", gv[i], y.at(0, i));
    be->silu_mul(x.t, b.t, y.t);  // up = (0, 1, 0, 0)
    ck_assert(std::fabs(y.at(0, 1) - (-0.5f / (1.0f + std::exp(0.5f)))) < 1e-7);
    ck_assert(y.at(0, 0) == 0.0f);
    be->add(x.t, b.t, x.t);  // aliasing y == a
    ck_assert(x.at(0, 1) == 0.5f);
}
END_TEST

START_TEST(test_hand_rope)
{
    auto be = backend_for(cpu_best_isa(), true);
    // Text: 2 heads of 6 dims, rotary 4 (frequencies 1 and 1/100 for theta 1e4),
    // sections {1, 1, 0}: freq 0 uses plane t, freq 1 plane h.
    HostTensor x(DType::F32, 1, 12);
    for (int c = 0; c < 12; c++) x.set(0, c, float(c + 1));
    int32_t pos[3] = {2, 5, 9};
    TextRopeParams p;
    p.n_head = 2;
    p.head_dim = 6;
    p.rotary_dim = 4;
    p.theta = 10000.0;
    p.section[0] = 1;
    p.section[1] = 1;
    be->rope_text(x.t, pos, p);
    for (int h = 0; h < 2; h++) {
        float a0 = float(6 * h + 1), b0 = a0 + 1, a1 = a0 + 2, b1 = a0 + 3;
        float c0 = std::cos(2.0f), s0 = std::sin(2.0f), c1 = std::cos(0.05f), s1 = std::sin(0.05f);
        float want[6] = {a0 * c0 - b0 * s0, b0 * c0 + a0 * s0, a1 * c1 - b1 * s1, b1 * c1 + a1 * s1,
                         a0 + 4, a0 + 5};
        for (int d = 0; d < 6; d++)
            ck_assert_msg(std::fabs(x.at(0, 6 * h + d) - want[d]) < 2e-6, "rope_text h%d d%d %.9g want %.9g", h,
                          d, x.at(0, 6 * h + d), want[d]);
    }
    // Vision: 1 head of 8 dims: d0 row (freq 1), d1 row (freq 1/100),
    // d2 col (freq 1), d3 col (freq 1/100); d pairs with d + 4.
    HostTensor v(DType::F32, 1, 8);
    for (int c = 0; c < 8; c++) v.set(0, c, float(c + 1));
    int32_t row = 3, col = 7;
    be->rope_vision(v.t, &row, &col, 1, 8, 10000.0);
    float ang[4] = {3.0f, 0.03f, 7.0f, 0.07f};
    for (int d = 0; d < 4; d++) {
        float a = float(d + 1), b = float(d + 5);
        ck_assert(std::fabs(v.at(0, d) - (a * std::cos(ang[d]) - b * std::sin(ang[d]))) < 2e-6);
        ck_assert(std::fabs(v.at(0, d + 4) - (b * std::cos(ang[d]) + a * std::sin(ang[d]))) < 2e-6);
    }
}
END_TEST

START_TEST(test_hand_attention)
{
    for (auto [isa, dot] : supported_paths()) {
        auto be = backend_for(isa, dot);
        // 1 head, head_dim 2; keys (1,0),(0,1),(1,1); query (2,0), scale 0.5.
        HostTensor q(DType::F32, 1, 2), k(DType::F32, 3, 2), v(DType::F32, 3, 2), o(DType::F32, 1, 2);
        q.set(0, 0, 2);
        float kv[] = {1, 0, 0, 1, 1, 1}, vv[] = {1, 0, 0, 1, 2, 2};
        for (int i = 0; i < 6; i++) {
            k.set(i / 2, i % 2, kv[i]);
            v.set(i / 2, i % 2, vv[i]);
        }
        AttentionParams p;
        p.n_head = p.n_kv_head = 1;
        p.head_dim = 2;
        p.scale = 0.5f;
        p.causal = true;
        p.kv_offset = 2;  // sees all 3 keys: scores 1, 0, 1
        be->attention(q.t, k.t, v.t, p, o.t);
        double e = std::exp(1.0), z = 2 * e + 1;
        ck_assert(std::fabs(o.at(0, 0) - (e + 2 * e) / z) < 1e-6);
        ck_assert(std::fabs(o.at(0, 1) - (1 + 2 * e) / z) < 1e-6);
        p.kv_offset = 1;  // sees keys 0, 1 only
        be->attention(q.t, k.t, v.t, p, o.t);
        ck_assert(std::fabs(o.at(0, 0) - e / (e + 1)) < 1e-6);
        ck_assert(std::fabs(o.at(0, 1) - 1 / (e + 1)) < 1e-6);
    }
}
END_TEST

START_TEST(test_hand_bicubic)
{
    // Values from torch 2.x F.grid_sample(bicubic, align_corners=False,
    // border) of this 4x4 table sampled on a 3x5 grid (float32).
    const float table_v[16] = {0.0f, 3.0f, 6.0f, 9.0f, 7.25f, 10.25f, 2.25f, 5.25f,
                               3.5f, 6.5f, 9.5f, 1.5f, 10.75f, 2.75f, 5.75f, 8.75f};
    const float want[15] = {0.923363328f, 3.13297153f, 4.7028718f,  6.36186314f, 8.72076321f,
                            5.13010216f,  8.67085171f, 8.34960938f, 4.50046349f, 2.1292274f,
                            10.0344839f,  4.66282845f, 4.1012373f,  7.10912848f, 7.71913099f};
    auto be = backend_for(cpu_best_isa(), true);
    for (DType dt : {DType::F32, DType::BF16}) {
        HostTensor tab(dt, 16, 1);
        for (int i = 0; i < 16; i++) tab.set(i, 0, table_v[i]);  // all exact in bf16
        HostTensor y(DType::F32, 15, 1);
        std::vector<int32_t> row(15), col(15), gh(15, 3), gw(15, 5);
        for (int i = 0; i < 15; i++) {
            row[size_t(i)] = i / 5;
            col[size_t(i)] = i % 5;
            y.set(i, 0, 100.0f);  // accumulates
        }
        be->add_pos_embed_bicubic(tab.t, 4, row.data(), col.data(), gh.data(), gw.data(), y.t);
        double worst = 0;
        for (int i = 0; i < 15; i++) {
            double d = std::fabs(y.at(i, 0) - 100.0f - want[i]);
            worst = std::max(worst, d);
            ck_assert_msg(d < 2e-5, "bicubic[%d] %.9g want %.9g", i, y.at(i, 0) - 100.0f, want[i]);
        }
        printf("bicubic vs torch (%s table): max abs diff %.3g\n", dtype_name(dt), worst);
    }
}
END_TEST

// ------------------------------------------------------------ batch parity

// The small-n bf16 dot path: a token's outputs are bit-identical whatever
// n (1..16) and whatever its position in the batch, because the engine's
// batched decode must match a lone decode exactly. (exact_f32_activations,
// which keeps activations f32, is an op-table target: test_backend_ops.)
START_TEST(test_matmul_small_n_bit_identical)
{
    const int64_t shapes[][2] = {{37, 2100}, {13, 70}, {64, 4096}};
    for (auto [isa, dot] : supported_paths()) {
        if (isa == CpuIsa::Scalar) continue;  // trivially per-token
        auto be = backend_for(isa, dot);
        for (auto &s : shapes) {
            const int64_t m = s[0], k = s[1];
            Rng rng{uint64_t(m * 11 + k)};
            HostTensor x16(DType::F32, 16, k);
            x16.fill(rng);
            HostTensor w(DType::BF16, m, k);
            w.fill(rng, 0.5f);
            HostTensor y16(DType::F32, 16, m);
            be->matmul(x16.t, w.t, nullptr, y16.t);
            int compared = 0;
            for (int64_t n : {1, 3, 8, 16})
                for (int64_t pos : {int64_t(0), n - 1, n / 2}) {
                    // Token `src` of x16 placed at row `pos` of an n-row batch
                    // whose other rows are other tokens of x16.
                    const int64_t src = (pos * 5 + n) % 16;
                    HostTensor xn(DType::F32, n, k);
                    for (int64_t r = 0; r < n; r++) {
                        const int64_t from = r == pos ? src : (src + 1 + r) % 16;
                        for (int64_t c = 0; c < k; c++) xn.set(r, c, x16.at(from, c));
                    }
                    HostTensor yn(DType::F32, n, m);
                    be->matmul(xn.t, w.t, nullptr, yn.t);
                    for (int64_t o = 0; o < m; o++) {
                        float a = yn.at(pos, o), b = y16.at(src, o);
                        ck_assert_msg(std::memcmp(&a, &b, 4) == 0,
                                      "%s%s m=%lld k=%lld n=%lld pos=%lld o=%lld: %.9g vs %.9g (n=16)",
                                      cpu_isa_name(isa), dot ? "+bf16dot" : "", (long long)m, (long long)k,
                                      (long long)n, (long long)pos, (long long)o, a, b);
                        compared++;
                    }
                }
            printf("small-n %s%s m=%lld k=%lld: %d outputs bit-identical across n = 1, 3, 8, 16\n",
                   cpu_isa_name(isa), dot ? "+bf16dot" : "", (long long)m, (long long)k, compared);
        }
    }
}
END_TEST

START_TEST(test_conversions)
{
    ck_assert(bf16_to_f32(f32_to_bf16(1.0f)) == 1.0f);
    ck_assert(f32_to_bf16(1.0f + 1.0f / 256) == f32_to_bf16(1.0f));  // tie to even
    ck_assert(bf16_to_f32(f32_to_bf16(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256);
    for (float v : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333251953f})
        ck_assert_msg(f16_to_f32(f32_to_f16(v)) == v, "f16 round trip %g", v);
    ck_assert(std::isinf(f16_to_f32(f32_to_f16(1e6f))));
    float inv[4];
    rope_inv_freq(500000.0, 8, inv);
    ck_assert(inv[0] == 1.0f);
    ck_assert(std::fabs(inv[1] - 1.0 / std::pow(500000.0, 0.25)) < 1e-7 * inv[1] * 10);
}
END_TEST

START_TEST(test_make_backend)
{
    std::string err;
    BackendOptions opt;
    auto be = make_backend("cpu", opt, err);
    ck_assert_msg(be != nullptr, "%s", err.c_str());
    ck_assert_str_eq(be->name(), "cpu");
    ck_assert(make_backend("tpu", opt, err) == nullptr);
    ck_assert(!err.empty());
    // DeviceBuffer: zero-filled, 64-byte aligned, moves ownership.
    DeviceBuffer a(*be, DType::F32, 3, 5);
    ck_assert(reinterpret_cast<uintptr_t>(a.t.data) % 64 == 0);
    for (int i = 0; i < 15; i++) ck_assert(static_cast<float *>(a.t.data)[i] == 0.0f);
    DeviceBuffer b = std::move(a);
    ck_assert(a.t.data == nullptr && b.t.data != nullptr);
    // Weights adopted in place on cpu.
    static const uint16_t host[6] = {1, 2, 3, 4, 5, 6};
    Tensor w = be->adopt_weight(host, DType::BF16, 2, 3);
    ck_assert(w.data == host && w.stride == 3);
    be->release_weight(w);
    ck_assert(w.empty());
    Tensor s = b.t.row_slice(1, 2).col_slice(2, 3);
    ck_assert(s.data == static_cast<float *>(b.t.data) + 7 && s.rows == 2 && s.cols == 3 && s.stride == 5);
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv)
{
    return vlm_check_main(argc, argv, "backend_cpu", {
        {"ops", 600, {
            test_make_backend,
            test_conversions,
            test_hand_matmul,
            test_hand_norms_and_activations,
            test_hand_rope,
            test_hand_attention,
            test_hand_bicubic,
            test_matmul_small_n_bit_identical,
        }},
    });
}
