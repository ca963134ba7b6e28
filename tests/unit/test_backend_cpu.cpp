// test_backend_cpu.cpp: the cpu backend's ops against hand-computed values
// and against the plain reference (cpu_ops_ref.h), on every kernel path the
// CPU supports (scalar, AVX2, AVX-512 with and without vdpbf16ps), weight
// dtypes F32/BF16/F16, odd sizes, n = 1..300 and non-contiguous views.
//
// Tolerances: f32 paths differ from the double-summed reference only by the
// order of float sums: |y - ref| <= 1e-5 * sum_c |x_c w_c| (+1e-30). The bf16
// paths (bf16 weights with avx512_bf16: the GEMM for n > 16 and the dot rows
// kernel for n <= 16) round activations to bf16
// (relative error <= 2^-9 each), so against an f32 reference it is held to
// 2^-8 * sum_c |x_c w_c|, and against a reference fed the same bf16-rounded
// activations to the f32 bound.
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

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 6364136223846793005ull + 1442695040888963407ull) {}
    float uniform()  // [-1, 1)
    {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return float(int32_t(s >> 32)) / 2147483648.0f;
    }
};

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

// max |a - b| over a tensor pair, asserting each element within
// abs_tol + rel_tol * |b|.
double compare(const Tensor &a, const Tensor &b, double rel_tol, double abs_tol, const char *what)
{
    double worst = 0.0;
    for (int64_t r = 0; r < a.rows; r++)
        for (int64_t c = 0; c < a.cols; c++) {
            double x = tensor_elem(a, r, c), y = tensor_elem(b, r, c);
            double d = std::fabs(x - y);
            worst = std::max(worst, d);
            ck_assert_msg(d <= abs_tol + rel_tol * std::fabs(y) && !std::isnan(x),
                          "%s: (%lld,%lld) got %.9g want %.9g", what, (long long)r, (long long)c, x, y);
        }
    return worst;
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

// ------------------------------------------------------------ vs reference

// One matmul case on one path: x (n, k) viewed with stride k + 3, w a
// column slice of a fused (m, k + 5) matrix, y written into columns
// [2, 2 + m) of a wider output whose other columns must stay untouched.
static void check_matmul(Backend &be, CpuIsa isa, bool dot, DType wdt, int64_t n, int64_t m, int64_t k,
                         bool with_bias)
{
    Rng rng{uint64_t(n * 131 + m * 7 + k)};
    HostTensor x(DType::F32, n, k, k + 3);
    x.fill(rng);
    HostTensor wf(wdt, m, k + 5);
    wf.fill(rng, 0.5f);
    Tensor w = wf.t.col_slice(2, k);
    HostTensor bias(DType::BF16, 1, m);
    bias.fill(rng);
    HostTensor yfull(DType::F32, n, m + 4);
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < m + 4; c++) yfull.set(r, c, -7.0f);
    Tensor y = yfull.t.col_slice(2, m);
    be.matmul(x.t, w, with_bias ? &bias.t : nullptr, y);

    // bf16 weights with vdpbf16ps round x to bf16: the GEMM (n > 16, even
    // k) and the small-n dot rows kernel (n <= 16, any k).
    const bool rounds_x = dot && isa == CpuIsa::Avx512 && wdt == DType::BF16 && (n <= 16 || k % 2 == 0);
    HostTensor xr(DType::F32, n, k);  // activations as the kernel sees them
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < k; c++) {
            float v = x.at(r, c);
            xr.set(r, c, rounds_x ? bf16_to_f32(f32_to_bf16(v)) : v);
        }
    HostTensor want(DType::F32, n, m), want_f32(DType::F32, n, m);
    ref_matmul(xr.t, w, with_bias ? &bias.t : nullptr, want.t);
    ref_matmul(x.t, w, with_bias ? &bias.t : nullptr, want_f32.t);
    double worst = 0, worst_f32 = 0;
    for (int64_t r = 0; r < n; r++)
        for (int64_t o = 0; o < m; o++) {
            double mag = 1e-30;
            for (int64_t c = 0; c < k; c++) mag += std::fabs(double(x.at(r, c)) * tensor_elem(w, o, c));
            if (with_bias) mag += std::fabs(bias.at(0, o));
            double got = tensor_elem(y, r, o);
            double d = std::fabs(got - want.at(r, o));
            double d32 = std::fabs(got - want_f32.at(r, o));
            worst = std::max(worst, d);
            worst_f32 = std::max(worst_f32, d32);
            ck_assert_msg(d <= 1e-5 * mag, "matmul %s%s %s n=%lld m=%lld k=%lld (%lld,%lld): %.9g want %.9g",
                          cpu_isa_name(isa), dot ? "+bf16dot" : "", dtype_name(wdt), (long long)n,
                          (long long)m, (long long)k, (long long)r, (long long)o, got, want.at(r, o));
            ck_assert(d32 <= (rounds_x ? 1.0 / 256 : 1e-5) * mag);
        }
    for (int64_t r = 0; r < n; r++)
        for (int64_t c : {int64_t(0), int64_t(1), m + 2, m + 3})
            ck_assert_msg(yfull.at(r, c) == -7.0f, "matmul wrote outside its output view");
    printf("matmul %-6s%-8s %-4s n=%-3lld m=%-3lld k=%-4lld bias=%d: max abs diff %.3g (vs f32 x: %.3g)\n",
           cpu_isa_name(isa), dot ? "+bf16dot" : "", dtype_name(wdt), (long long)n, (long long)m, (long long)k,
           int(with_bias), worst, worst_f32);
}

START_TEST(test_matmul_vs_reference)
{
    const int64_t ns[] = {1, 3, 8, 17, 64, 300};
    // k = 2100 spans two k blocks of the bf16 GEMM (1024 pairs each).
    const int64_t shapes[][2] = {{13, 37}, {70, 100}, {33, 258}, {9, 2100}};
    for (auto [isa, dot] : supported_paths()) {
        auto be = backend_for(isa, dot);
        for (DType wdt : {DType::F32, DType::BF16, DType::F16})
            for (int64_t n : ns)
                for (auto &s : shapes) {
                    if (isa == CpuIsa::Scalar && n > 64 && s[1] > 100) continue;  // slow, covered by n=64
                    check_matmul(*be, isa, dot, wdt, n, s[0], s[1], (n + s[0]) % 2 == 1);
                }
    }
}
END_TEST

START_TEST(test_matmul_single_thread_and_many_threads)
{
    for (int threads : {1, 3}) {
        auto be = backend_for(cpu_best_isa(), true, threads);
        check_matmul(*be, cpu_best_isa(), cpu_has_avx512_bf16(), DType::BF16, 300, 70, 100, true);
        check_matmul(*be, cpu_best_isa(), cpu_has_avx512_bf16(), DType::BF16, 1, 70, 100, false);
    }
}
END_TEST

// The small-n bf16 dot path: a token's outputs are bit-identical whatever
// n (1..16) and whatever its position in the batch, because the engine's
// batched decode must match a lone decode exactly. Also the exact-f32 option
// keeps activations f32 (matches the f32 reference to 1e-5).
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
    // exact_f32_activations: bf16 weights at n = 8 match the f32 reference
    // to the f32 bound even on a CPU with vdpbf16ps.
    std::string err;
    BackendOptions opt;
    opt.n_threads = 2;
    opt.exact_f32_activations = true;
    auto be = make_cpu_backend(opt, err);
    ck_assert_msg(be != nullptr, "%s", err.c_str());
    for (int64_t n : {8, 40}) check_matmul(*be, cpu_best_isa(), false, DType::BF16, n, 33, 258, true);
}
END_TEST

START_TEST(test_elementwise_vs_reference)
{
    auto be = backend_for(cpu_best_isa(), true);
    for (int64_t n : {1, 3, 17, 300}) {
        const int64_t d = 77;
        Rng rng{uint64_t(n)};
        HostTensor x(DType::F32, n, d, d + 5), fused(DType::F32, n, 2 * d + 1), b(DType::F32, n, d);
        x.fill(rng, 3.0f);
        fused.fill(rng, 4.0f);
        b.fill(rng);
        HostTensor wn(DType::BF16, 1, d), bn(DType::F32, 1, d);
        wn.fill(rng);
        bn.fill(rng);
        HostTensor y(DType::F32, n, d), want(DType::F32, n, d);
        double m1, m2, m3, m4, m5;
        be->rms_norm(x.t, wn.t, 1e-5f, y.t);
        ref_rms_norm(x.t, wn.t, 1e-5f, want.t);
        m1 = compare(y.t, want.t, 1e-5, 1e-6, "rms_norm");
        be->layer_norm(x.t, wn.t, bn.t, 1e-5f, y.t);
        ref_layer_norm(x.t, wn.t, bn.t, 1e-5f, want.t);
        m2 = compare(y.t, want.t, 1e-5, 1e-6, "layer_norm");
        Tensor gate = fused.t.col_slice(0, d), up = fused.t.col_slice(d, d);
        be->silu_mul(gate, up, y.t);
        ref_silu_mul(gate, up, want.t);
        m3 = compare(y.t, want.t, 1e-6, 1e-7, "silu_mul");
        be->gelu(x.t, y.t);
        ref_gelu(x.t, want.t);
        m4 = compare(y.t, want.t, 1e-6, 1e-7, "gelu");
        be->add(x.t, b.t, y.t);
        ref_add(x.t, b.t, want.t);
        m5 = compare(y.t, want.t, 0, 0, "add");
        printf("n=%lld rms %.3g layer %.3g silu_mul %.3g gelu %.3g add %.3g\n", (long long)n, m1, m2, m3, m4, m5);
    }
}
END_TEST

START_TEST(test_embed_and_copy)
{
    auto be = backend_for(cpu_best_isa(), true);
    Rng rng{5};
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
        HostTensor table(dt, 50, 9);
        table.fill(rng);
        int32_t ids[] = {3, 49, 0, 3, 17};
        HostTensor y(DType::F32, 5, 9, 12), want(DType::F32, 5, 9);
        be->embed(table.t, ids, 5, y.t);
        ref_embed(table.t, ids, 5, want.t);
        compare(y.t, want.t, 0, 0, "embed");
    }
    HostTensor src(DType::F32, 20, 8, 11), dst(DType::F32, 20, 8, 9);
    src.fill(rng);
    be->copy(src.t, dst.t);
    compare(dst.t, src.t, 0, 0, "copy");
}
END_TEST

START_TEST(test_rope_vs_reference)
{
    auto be = backend_for(cpu_best_isa(), true);
    for (int64_t n : {1, 3, 64, 300}) {
        Rng rng{uint64_t(n) + 77};
        TextRopeParams p;
        p.n_head = 3;
        p.head_dim = 16;
        p.rotary_dim = 8;
        p.theta = 500000.0;
        p.section[0] = 1;
        p.section[1] = 2;
        p.section[2] = 1;
        HostTensor x(DType::F32, n, 48, 50), want(DType::F32, n, 48, 50);
        x.fill(rng);
        std::memcpy(want.f.data(), x.f.data(), x.f.size() * 4);
        std::vector<int32_t> pos(static_cast<size_t>(3 * n));
        for (size_t i = 0; i < pos.size(); i++) pos[i] = int32_t((i * 7919) % 4000);
        be->rope_text(x.t, pos.data(), p);
        ref_rope_text(want.t, pos.data(), p);
        double mt = compare(x.t, want.t, 0, 0, "rope_text");
        HostTensor v(DType::F32, n, 64), vw(DType::F32, n, 64);
        v.fill(rng);
        std::memcpy(vw.f.data(), v.f.data(), v.f.size() * 4);
        std::vector<int32_t> row(static_cast<size_t>(n)), col(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; i++) {
            row[size_t(i)] = int32_t(i / 9);
            col[size_t(i)] = int32_t(i % 9);
        }
        be->rope_vision(v.t, row.data(), col.data(), 2, 32, 10000.0);
        ref_rope_vision(vw.t, row.data(), col.data(), 2, 32, 10000.0);
        double mv = compare(v.t, vw.t, 0, 0, "rope_vision");
        printf("rope n=%lld: text %.3g vision %.3g\n", (long long)n, mt, mv);
    }
}
END_TEST

// head_dim 24 takes the generic path, 32 and 128 the AVX-512 blocked one.
static void check_attention(Backend &be, int64_t n_q, int64_t n_kv, bool causal, std::vector<int32_t> segs,
                            int hd = 24)
{
    AttentionParams p;
    p.n_head = 4;
    p.n_kv_head = 2;
    p.head_dim = hd;
    p.scale = 1.0f / std::sqrt(float(hd));
    p.causal = causal;
    p.kv_offset = n_kv - n_q;
    p.segments = segs.empty() ? nullptr : segs.data();
    p.n_segments = int(segs.size());
    Rng rng{uint64_t(n_q * 1000 + n_kv)};
    // k and v: views of a fused kv projection; q with a padded stride.
    HostTensor q(DType::F32, n_q, 4 * hd, 4 * hd + 4), kv(DType::F32, n_kv, 4 * hd);
    q.fill(rng, 2.0f);
    kv.fill(rng, 2.0f);
    Tensor k = kv.t.col_slice(0, 2 * hd), v = kv.t.col_slice(2 * hd, 2 * hd);
    HostTensor o(DType::F32, n_q, 4 * hd), want(DType::F32, n_q, 4 * hd);
    be.attention(q.t, k, v, p, o.t);
    ref_attention(q.t, k, v, p, want.t);
    // Outputs are convex combinations of values |v| <= 2 that may cancel to
    // near 0: the bound is relative to that scale (2e-6 * 2), not to |out|.
    double worst = compare(o.t, want.t, 1e-5, 4e-6, "attention");
    printf("attention hd=%d n_q=%lld n_kv=%lld causal=%d segments=%zu: max abs diff %.3g\n", hd, (long long)n_q,
           (long long)n_kv, int(causal), segs.size(), worst);
}

START_TEST(test_attention_vs_reference)
{
    for (auto [isa, dot] : supported_paths()) {
        auto be = backend_for(isa, dot);
        check_attention(*be, 1, 1, true, {});
        check_attention(*be, 1, 40, true, {});
        check_attention(*be, 3, 10, true, {});
        check_attention(*be, 64, 64, true, {});
        check_attention(*be, 300, 317, true, {});
        check_attention(*be, 17, 17, false, {});
        check_attention(*be, 300, 300, false, {100, 36, 164});
        check_attention(*be, 8, 8, false, {1, 7});
        for (int hd : {32, 128}) {
            check_attention(*be, 8, 8, false, {1, 7}, hd);
            check_attention(*be, 3, 10, true, {}, hd);
            check_attention(*be, 1, 1000, true, {}, hd);
            check_attention(*be, 17, 40, true, {}, hd);
            check_attention(*be, 64, 64, true, {}, hd);
            check_attention(*be, 300, 317, true, {}, hd);
            check_attention(*be, 33, 33, false, {}, hd);
            check_attention(*be, 300, 300, false, {100, 36, 164}, hd);
        }
    }
}
END_TEST

START_TEST(test_bicubic_vs_reference)
{
    auto be = backend_for(cpu_best_isa(), true);
    Rng rng{9};
    for (DType dt : {DType::F32, DType::BF16}) {
        const int side = 6;
        HostTensor tab(dt, side * side, 20);
        tab.fill(rng);
        // Two images: 4x10 and 14x2 grids, in arbitrary row order.
        std::vector<int32_t> row, col, gh, gw;
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 10; c++) {
                row.push_back(r);
                col.push_back(c);
                gh.push_back(4);
                gw.push_back(10);
            }
        for (int r = 0; r < 14; r++)
            for (int c = 0; c < 2; c++) {
                row.push_back(r);
                col.push_back(c);
                gh.push_back(14);
                gw.push_back(2);
            }
        int64_t n = int64_t(row.size());
        HostTensor y(DType::F32, n, 20, 23), want(DType::F32, n, 20);
        y.fill(rng);
        for (int64_t r = 0; r < n; r++)
            for (int64_t c = 0; c < 20; c++) want.set(r, c, y.at(r, c));
        be->add_pos_embed_bicubic(tab.t, side, row.data(), col.data(), gh.data(), gw.data(), y.t);
        ref_add_pos_embed_bicubic(tab.t, side, row.data(), col.data(), gh.data(), gw.data(), want.t);
        double worst = compare(y.t, want.t, 0, 0, "bicubic");
        printf("bicubic %s: max abs diff vs reference %.3g\n", dtype_name(dt), worst);
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
            test_matmul_vs_reference,
            test_matmul_single_thread_and_many_threads,
            test_matmul_small_n_bit_identical,
            test_elementwise_vs_reference,
            test_embed_and_copy,
            test_rope_vs_reference,
            test_attention_vs_reference,
            test_bicubic_vs_reference,
        }},
    });
}
