// test_quant.cpp: the block-quantized weight formats (core/quant.h) and the
// cpu backend's Q8/Q4 products: the quantizer's error bound and its choice
// of scale, every cpu kernel path against the reference product, and a
// token's result bit-identical whatever batch it runs in (continuous
// batching relies on it).
#include "test_rng.h"
#include "backend/backend_cpu.h"
#include "core/backend.h"
#include "core/cpu_ops_ref.h"
#include "core/quant.h"

#include "check_main.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace vlm;

namespace {

std::vector<uint16_t> random_bf16(Rng &rng, int64_t rows, int64_t cols, float scale)
{
    std::vector<uint16_t> w(size_t(rows * cols));
    for (auto &v : w) v = f32_to_bf16(rng.normal() * scale);
    return w;
}

// A quantized tensor in host memory (what the cpu backend adopts in place).
struct HostQuant {
    std::vector<uint8_t> bytes;
    Tensor t;
    HostQuant(DType dt, int64_t rows, int64_t cols, const std::vector<uint16_t> &bf16)
    {
        bytes.assign(quant_tensor_bytes(dt, rows, cols), 0);
        t.data = bytes.data();
        t.dtype = dt;
        t.rows = rows;
        t.cols = cols;
        quant_set_layout(t);
        quantize_rows(bf16.data(), DType::BF16, cols, t, 0, rows);
    }
};

Tensor f32_view(std::vector<float> &v, int64_t rows, int64_t cols)
{
    Tensor t;
    t.data = v.data();
    t.rows = rows;
    t.cols = cols;
    t.stride = cols;
    return t;
}

double rel_rms(const std::vector<uint16_t> &w, const Tensor &q)
{
    double num = 0, den = 0;
    for (int64_t r = 0; r < q.rows; r++)
        for (int64_t c = 0; c < q.cols; c++) {
            double a = bf16_to_f32(w[size_t(r * q.cols + c)]), e = a - quant_elem(q, r, c);
            num += e * e;
            den += a * a;
        }
    return std::sqrt(num / den);
}

std::vector<std::unique_ptr<Backend>> cpu_paths()
{
    std::vector<std::unique_ptr<Backend>> out;
    for (CpuIsa isa : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512}) {
        if (int(isa) > int(cpu_best_isa())) continue;
        BackendOptions opt;
        opt.n_threads = 2;
        std::string err;
        auto b = make_cpu_backend_isa(opt, isa, true, err);
        ck_assert_msg(b != nullptr, "%s", err.c_str());
        out.push_back(std::move(b));
    }
    return out;
}

}  // namespace

// Each weight is within two steps of its block's scale (half a step but for
// a clamped extreme), and the relative RMS error is what 255 and 16 levels
// give on Gaussian weights (bounds with margin over the measured values).
START_TEST(quantizer_error_is_bounded)
{
    Rng rng(1);
    const int64_t rows = 64, cols = 200;  // 200: a padded last block
    auto w = random_bf16(rng, rows, cols, 0.02f);
    for (DType dt : {DType::Q8, DType::Q4}) {
        HostQuant q(dt, rows, cols, w);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                const float d = std::fabs(f16_to_f32(static_cast<const uint16_t *>(q.t.scales)[r * quant_blocks(cols) + c / 32]));
                const float e = std::fabs(bf16_to_f32(w[size_t(r * cols + c)]) - quant_elem(q.t, r, c));
                // Half a step, except a block's extreme, which a least-squares
                // scale may clamp: never beyond two steps.
                ck_assert_msg(e <= d * 2.0001f, "%s (%lld,%lld): error %g > scale %g", dtype_name(dt),
                              (long long)r, (long long)c, e, d);
            }
        const double err = rel_rms(w, q.t);
        ck_assert_msg(err < (dt == DType::Q8 ? 0.007 : 0.11), "%s rel rms %g", dtype_name(dt), err);
    }
}
END_TEST

// The scale search does clearly better than q4_0's fixed rule (d = the
// extreme / -8) on Gaussian blocks (measured: 10% less squared error).
START_TEST(scale_search_beats_absmax_rule)
{
    Rng rng(2);
    const int64_t rows = 32, cols = 256;
    auto w = random_bf16(rng, rows, cols, 1.0f);
    HostQuant q(DType::Q4, rows, cols, w);
    double sse_fit = 0, sse_absmax = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < cols / 32; b++) {
            float amax = 0, smax = 0;
            for (int i = 0; i < 32; i++) {
                float v = bf16_to_f32(w[size_t(r * cols + b * 32 + i)]);
                if (std::fabs(v) > amax) amax = std::fabs(v), smax = v;
            }
            const float d = f16_to_f32(f32_to_f16(smax / -8.0f));  // q4_0's rule
            for (int i = 0; i < 32; i++) {
                float v = bf16_to_f32(w[size_t(r * cols + b * 32 + i)]);
                int qv = std::max(-8, std::min(7, int(std::nearbyint(v / d))));
                sse_absmax += (v - d * qv) * double(v - d * qv);
                double e = v - quant_elem(q.t, r, b * 32 + i);
                sse_fit += e * e;
            }
        }
    ck_assert_msg(sse_fit < 0.93 * sse_absmax, "fitted %g vs absmax rule %g", sse_fit, sse_absmax);
}
END_TEST

// All-zero and constant blocks, and a row shorter than one block.
START_TEST(degenerate_blocks)
{
    std::vector<uint16_t> w(2 * 40, f32_to_bf16(0.0f));
    for (int c = 0; c < 40; c++) w[size_t(40 + c)] = f32_to_bf16(0.5f);
    for (DType dt : {DType::Q8, DType::Q4}) {
        HostQuant q(dt, 2, 40, w);
        for (int c = 0; c < 40; c++) {
            ck_assert_float_eq(quant_elem(q.t, 0, c), 0.0f);
            ck_assert_float_eq_tol(quant_elem(q.t, 1, c), 0.5f, 1e-3f);
        }
    }
    std::vector<uint16_t> small(3 * 5);
    Rng rng(3);
    for (auto &v : small) v = f32_to_bf16(rng.uniform());
    HostQuant q(DType::Q4, 3, 5, small);
    ck_assert_int_eq(q.t.stride, 32);
    ck_assert(rel_rms(small, q.t) < 0.2);
}
END_TEST

// Every cpu path against ref_matmul (the definition in core/quant.h), for
// token counts around each kernel's tile edges, k with and without a
// padded last block, with and without bias. Tolerance: float summation
// order over blocks, 1e-5 of sum |block terms|.
START_TEST(cpu_paths_match_reference)
{
    auto backends = cpu_paths();
    Rng rng(4);
    for (DType dt : {DType::Q8, DType::Q4})
        for (int64_t k : {32, 80, 512})
            for (int64_t n : {1, 2, 3, 4, 5, 8, 16, 17, 65, 70}) {
                const int64_t m = 37;
                auto wb = random_bf16(rng, m, k, 0.05f);
                HostQuant w(dt, m, k, wb);
                std::vector<float> x(size_t(n * k)), bias(size_t(m), 0.0f), y(size_t(n * m)), ref(size_t(n * m), 0.0f);
                for (auto &v : x) v = rng.normal();
                for (auto &v : bias) v = rng.uniform();
                Tensor xt = f32_view(x, n, k), bt = f32_view(bias, 1, m), rt = f32_view(ref, n, m);
                const bool with_bias = n % 2 == 1;
                ref_matmul(xt, w.t, with_bias ? &bt : nullptr, rt);
                // |terms| bound: sum |x| * max |w| over the row.
                for (auto &b : backends) {
                    std::fill(y.begin(), y.end(), NAN);
                    Tensor yt = f32_view(y, n, m);
                    b->matmul(xt, w.t, with_bias ? &bt : nullptr, yt);
                    ck_assert_msg(!b->failed(), "%s", b->fault_message().c_str());
                    for (int64_t t = 0; t < n; t++) {
                        double xa = 0;
                        for (int64_t c = 0; c < k; c++) xa += std::fabs(x[size_t(t * k + c)]);
                        for (int64_t o = 0; o < m; o++) {
                            const double tol = 1e-5 * xa * 0.25 + 1e-6;
                            const double d = std::fabs(double(y[size_t(t * m + o)]) - ref[size_t(t * m + o)]);
                            ck_assert_msg(d <= tol, "%s %s n=%lld k=%lld (%lld,%lld): %g vs ref %g", b->name(),
                                          dtype_name(dt), (long long)n, (long long)k, (long long)t, (long long)o,
                                          double(y[size_t(t * m + o)]), double(ref[size_t(t * m + o)]));
                        }
                    }
                }
            }
}
END_TEST

// A token's output is the same bits whether it runs alone or as any row of
// a batch of 1..20 or 70 (continuous batching adds and drops sequences
// between steps; greedy decoding must not change with them).
START_TEST(token_result_does_not_depend_on_batch)
{
    auto backends = cpu_paths();
    Rng rng(5);
    const int64_t k = 4096 + 64, m = 45;
    for (DType dt : {DType::Q8, DType::Q4}) {
        auto wb = random_bf16(rng, m, k, 0.02f);
        HostQuant w(dt, m, k, wb);
        std::vector<float> x(size_t(70 * k));
        for (auto &v : x) v = rng.normal();
        for (auto &b : backends) {
            std::vector<float> alone(size_t(70 * m));
            for (int64_t t = 0; t < 70; t++) {
                std::vector<float> xr(x.begin() + t * k, x.begin() + (t + 1) * k);
                std::vector<float> yr(size_t(m), 0.0f);
                Tensor xt = f32_view(xr, 1, k), yt = f32_view(yr, 1, m);
                b->matmul(xt, w.t, nullptr, yt);
                std::memcpy(&alone[size_t(t * m)], yr.data(), size_t(m) * sizeof(float));
            }
            for (int64_t n : {2, 3, 4, 5, 7, 8, 9, 16, 20, 70}) {
                std::vector<float> y(size_t(n * m));
                Tensor xt = f32_view(x, n, k), yt = f32_view(y, n, m);
                b->matmul(xt, w.t, nullptr, yt);
                ck_assert(!b->failed());
                ck_assert_msg(std::memcmp(y.data(), alone.data(), y.size() * sizeof(float)) == 0,
                              "%s %s: batch of %lld differs from tokens run alone", b->name(), dtype_name(dt),
                              (long long)n);
            }
        }
    }
}
END_TEST

// The checked front refuses a quantized weight whose layout is not the
// one of core/quant.h, and y placed inside the weight's allocation.
START_TEST(checked_front_refuses_bad_quant_layout)
{
    auto backends = cpu_paths();
    Rng rng(6);
    auto wb = random_bf16(rng, 8, 64, 0.1f);
    HostQuant w(DType::Q8, 8, 64, wb);
    std::vector<float> x(64), y(8);
    Tensor xt = f32_view(x, 1, 64), yt = f32_view(y, 1, 8);
    Tensor bad = w.t;
    bad.scales = static_cast<char *>(bad.scales) + 2;
    backends[0]->matmul(xt, bad, nullptr, yt);
    ck_assert(backends[0]->failed());
    ck_assert_int_eq(int(backends[0]->fault()), int(BackendFault::BadArgument));
    std::string why;
    ck_assert(backends[0]->recover(why));
    Tensor inside = yt;
    inside.data = w.bytes.data();
    backends[0]->matmul(xt, w.t, nullptr, inside);
    ck_assert(backends[0]->failed());
}
END_TEST

int main(int argc, char **argv)
{
    return vlm_check_main(argc, argv, "quant", {
        {"format", 0, {quantizer_error_is_bounded, scale_search_beats_absmax_rule, degenerate_blocks}},
        {"cpu", 60, {cpu_paths_match_reference, token_result_does_not_depend_on_batch,
                     checked_front_refuses_bad_quant_layout}},
    });
}
