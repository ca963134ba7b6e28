// backend_cpu.cpp: the "cpu" backend. Host memory, weights adopted in place
// (the mmap), every op split over rows on a persistent thread pool, matmul
// kernels chosen at run time (cpu_matmul.h). Numerics follow cpu_ops_ref.h
// (float32, transformers' eager formulas); sums here run in float with
// several lanes, so results differ from the reference by rounding only.
// Arguments arrive checked (core/backend_checked.cpp); nothing here re-checks.
// Leaves out: async execution (every op finishes before it returns).
#include "backend/backend_cpu.h"
#include "backend/cpu_attention.h"
#include "backend/cpu_elementwise.h"
#include "backend/cpu_matmul.h"
#include "core/quant.h"
#include "core/cpu_ops_ref.h"
#include "backend/cpu_thread_pool.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace vlm {

const char *cpu_isa_name(CpuIsa isa)
{
    switch (isa) {
    case CpuIsa::Scalar: return "scalar";
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::Avx512: return "avx512";
    }
    return "?";
}

CpuIsa cpu_best_isa()
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return CpuIsa::Avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return CpuIsa::Avx2;
    return CpuIsa::Scalar;
}

bool cpu_has_avx512_bf16()
{
    __builtin_cpu_init();
    return cpu_best_isa() == CpuIsa::Avx512 && __builtin_cpu_supports("avx512bf16");
}

namespace {

float *frow(Tensor &t, int64_t r) { return static_cast<float *>(t.data) + size_t(r) * size_t(t.stride); }
const float *frow(const Tensor &t, int64_t r)
{
    return static_cast<const float *>(t.data) + size_t(r) * size_t(t.stride);
}

// Sum of squares of n floats in 16 independent lanes (vectorisable without
// -ffast-math; rounding differs from a serial sum by ~1e-7 relative).
float sum_squares(const float *x, int64_t n)
{
    float lane[16] = {};
    int64_t c = 0;
    for (; c + 16 <= n; c += 16)
        for (int i = 0; i < 16; i++) lane[i] += x[c + i] * x[c + i];
    float s = 0.0f;
    for (; c < n; c++) s += x[c] * x[c];
    for (int i = 0; i < 16; i++) s += lane[i];
    return s;
}

float sum_of(const float *x, int64_t n)
{
    float lane[16] = {};
    int64_t c = 0;
    for (; c + 16 <= n; c += 16)
        for (int i = 0; i < 16; i++) lane[i] += x[c + i];
    float s = 0.0f;
    for (; c < n; c++) s += x[c];
    for (int i = 0; i < 16; i++) s += lane[i];
    return s;
}

float sum_sq_dev(const float *x, int64_t n, float mean)
{
    float lane[16] = {};
    int64_t c = 0;
    for (; c + 16 <= n; c += 16)
        for (int i = 0; i < 16; i++) {
            float d = x[c + i] - mean;
            lane[i] += d * d;
        }
    float s = 0.0f;
    for (; c < n; c++) s += (x[c] - mean) * (x[c] - mean);
    for (int i = 0; i < 16; i++) s += lane[i];
    return s;
}

// Weight/bias vector (1, n) of any float dtype as f32 into `out`.
void widen_row(const Tensor &t, int64_t n, float *out)
{
    for (int64_t c = 0; c < n; c++) out[c] = tensor_elem(t, 0, c);
}

class CpuBackend final : public Backend {
public:
    CpuBackend(int n_threads, CpuIsa isa, bool bf16_dot)
        : pool_(n_threads), isa_(isa), bf16_dot_(bf16_dot),
          scratch_(size_t(pool_.size()))
    {
    }

    const char *name() const override { return "cpu"; }

    void *alloc(size_t bytes) override
    {
        size_t rounded = (bytes + 63) / 64 * 64;
        if (rounded < bytes) return nullptr;  // overflow
        if (rounded == 0) rounded = 64;
        void *p = std::aligned_alloc(64, rounded);
        if (p) std::memset(p, 0, rounded);
        return p;
    }
    void free(void *ptr) override { std::free(ptr); }
    void upload(void *dst, const void *src, size_t bytes) override { std::memcpy(dst, src, bytes); }
    void download(void *dst, const void *src, size_t bytes) override { std::memcpy(dst, src, bytes); }

    void run_copy(const Tensor &src, Tensor &dst) override
    {
        size_t bytes = size_t(src.cols) * dtype_size(src.dtype);
        for_rows(src.rows, 64, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; r++)
                std::memcpy(static_cast<char *>(dst.data) + size_t(r) * dst.row_bytes(),
                            static_cast<const char *>(src.data) + size_t(r) * src.row_bytes(), bytes);
        });
    }

    // Weights stay in the caller's (mmap'd) memory: no copy, nothing to free.
    Tensor adopt_weight(const void *host, DType dtype, int64_t rows, int64_t cols) override
    {
        Tensor t;
        t.data = const_cast<void *>(host);
        t.dtype = dtype;
        t.rows = rows;
        t.cols = cols;
        t.stride = cols;
        if (dtype_is_quantized(dtype)) quant_set_layout(t);
        return t;
    }
    void release_weight(Tensor &t) override { t = Tensor{}; }

    // supports(): the default (F32/BF16/F16 weights, any head_dim), and
    // matmul and embed on Q8/Q4 weights (embed widens each row's blocks). recover(): the default (nothing on the host
    // can fail half-way).
    bool supports(const OpQuery &q) const override
    {
        if ((q.op == Op::Matmul || q.op == Op::Embed) && dtype_is_quantized(q.dtype)) return true;
        return Backend::supports(q);
    }
    // vdpbf16ps rounds x to bf16: the GEMM (n > kSmallN, even k) and the
    // small-n dot rows kernel; see cpu_matmul.h.
    bool matmul_rounds_x(DType w, int64_t n, int64_t k) const override
    {
        return bf16_dot_ && isa_ == CpuIsa::Avx512 && w == DType::BF16 && (n <= kSmallN || k % 2 == 0);
    }

    void run_matmul(const Tensor &x, const Tensor &w, const Tensor *bias, Tensor &y) override
    {
        cpu_matmul(pool_, isa_, bf16_dot_, matmul_scratch_, x, w, bias, y);
    }

    void run_rms_norm(const Tensor &x, const Tensor &w, float eps, Tensor &y) override
    {
        const int64_t d = x.cols;
        float *wf = widened(0, w, d);
        for_rows(x.rows, 4, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; r++) {
                const float *xr = frow(x, r);
                float *yr = frow(y, r);
                float mean = sum_squares(xr, d) / float(d);
                float inv = 1.0f / std::sqrt(mean + eps);
                for (int64_t c = 0; c < d; c++) yr[c] = wf[c] * (xr[c] * inv);
            }
        });
    }

    void run_layer_norm(const Tensor &x, const Tensor &w, const Tensor &b, float eps, Tensor &y) override
    {
        const int64_t d = x.cols;
        float *wf = widened(0, w, d);
        float *bf = widened(1, b, d);
        for_rows(x.rows, 4, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; r++) {
                const float *xr = frow(x, r);
                float *yr = frow(y, r);
                float mean = sum_of(xr, d) / float(d);
                float var = sum_sq_dev(xr, d, mean) / float(d);
                float rstd = 1.0f / std::sqrt(var + eps);
                for (int64_t c = 0; c < d; c++) yr[c] = ((xr[c] - mean) * rstd) * wf[c] + bf[c];
            }
        });
    }

    void run_add(const Tensor &a, const Tensor &b, Tensor &y) override
    {
        for_rows(a.rows, 16, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; r++) {
                const float *ar = frow(a, r), *br = frow(b, r);
                float *yr = frow(y, r);
                for (int64_t c = 0; c < a.cols; c++) yr[c] = ar[c] + br[c];
            }
        });
    }

    void run_silu_mul(const Tensor &gate, const Tensor &up, Tensor &y) override
    {
        for_rows(gate.rows, 1, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; r++) {
                const float *g = frow(gate, r), *u = frow(up, r);
                float *yr = frow(y, r);
                if (isa_ == CpuIsa::Avx512) {
                    silu_mul_row_avx512(g, u, yr, gate.cols);
                    continue;
                }
                for (int64_t c = 0; c < gate.cols; c++) yr[c] = g[c] / (1.0f + std::exp(-g[c])) * u[c];
            }
        });
    }

    void run_gelu(const Tensor &x, Tensor &y) override
    {
        for_rows(x.rows, 1, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; r++) {
                const float *xr = frow(x, r);
                float *yr = frow(y, r);
                for (int64_t c = 0; c < x.cols; c++)
                    yr[c] = 0.5f * xr[c] * (1.0f + std::erf(xr[c] * float(M_SQRT1_2)));
            }
        });
    }

    void run_embed(const Tensor &table, const int32_t *ids, int64_t n, Tensor &y) override
    {
        for_rows(n, 4, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; r++) {
                float *yr = frow(y, r);
                if (table.dtype == DType::F32) {
                    std::memcpy(yr, frow(table, ids[r]), size_t(table.cols) * 4);
                } else {
                    for (int64_t c = 0; c < table.cols; c++) yr[c] = tensor_elem(table, ids[r], c);
                }
            }
        });
    }

    void run_rope_text(Tensor &x, const int32_t *positions, const TextRopeParams &p) override
    {
        const int n_freq = p.rotary_dim / 2;
        float *inv_freq = scratch_row(0, 2, size_t(n_freq));
        rope_inv_freq(p.theta, p.rotary_dim, inv_freq);
        const int64_t n = x.rows;
        for_rows(n, 4, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; r++) {
                float *xr = frow(x, r);
                for (int i = 0; i < n_freq; i++) {
                    int plane = i < p.section[0] ? 0 : (i < p.section[0] + p.section[1] ? 1 : 2);
                    float angle = float(positions[size_t(plane) * size_t(n) + size_t(r)]) * inv_freq[i];
                    float cs = std::cos(angle), sn = std::sin(angle);
                    for (int h = 0; h < p.n_head; h++) {
                        float *v = xr + size_t(h) * size_t(p.head_dim) + size_t(2 * i);
                        float a = v[0], b = v[1];
                        v[0] = a * cs - b * sn;
                        v[1] = b * cs + a * sn;
                    }
                }
            }
        });
    }

    void run_rope_vision(Tensor &x, const int32_t *row, const int32_t *col, int n_head, int head_dim,
                         double theta) override
    {
        const int quarter = head_dim / 4, half = head_dim / 2;
        float *inv_freq = scratch_row(0, 2, size_t(quarter));
        rope_inv_freq(theta, half, inv_freq);
        for_rows(x.rows, 4, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; r++) {
                float *xr = frow(x, r);
                for (int d = 0; d < half; d++) {
                    float angle = d < quarter ? float(row[r]) * inv_freq[d] : float(col[r]) * inv_freq[d - quarter];
                    float cs = std::cos(angle), sn = std::sin(angle);
                    for (int h = 0; h < n_head; h++) {
                        float *v = xr + size_t(h) * size_t(head_dim);
                        float a = v[d], b = v[d + half];
                        v[d] = a * cs - b * sn;
                        v[d + half] = b * cs + a * sn;
                    }
                }
            }
        });
    }

    void run_attention(const Tensor &q, const Tensor &k, const Tensor &v, const AttentionParams &p,
                       Tensor &out) override
    {
        cpu_attention(pool_, isa_, attn_scratch_, q, k, v, p, out);
    }

    void run_add_pos_embed_bicubic(const Tensor &table, int side, const int32_t *row, const int32_t *col,
                                   const int32_t *grid_h, const int32_t *grid_w, Tensor &y) override
    {
        const int64_t d = table.cols;
        for_rows(y.rows, 1, [&](int64_t r0, int64_t r1) {
            for (int64_t i = r0; i < r1; i++) {
                float gx = (float(col[i]) + 0.5f) / float(grid_w[i]) * 2.0f - 1.0f;
                float gy = (float(row[i]) + 0.5f) / float(grid_h[i]) * 2.0f - 1.0f;
                float half = float(side) / 2.0f;
                float sx = std::fma(gx + 1.0f, half, -0.5f);
                float sy = std::fma(gy + 1.0f, half, -0.5f);
                float fx0 = std::floor(sx), fy0 = std::floor(sy);
                float wx[4], wy[4];
                bicubic_weights(sx - fx0, wx);
                bicubic_weights(sy - fy0, wy);
                int64_t tap[4][4];
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++) {
                        int64_t ty = std::clamp<int64_t>(int64_t(fy0) - 1 + a, 0, side - 1);
                        int64_t tx = std::clamp<int64_t>(int64_t(fx0) - 1 + b, 0, side - 1);
                        tap[a][b] = ty * side + tx;
                    }
                float *yr = frow(y, i);
                for (int64_t c = 0; c < d; c++) {
                    float rows4[4];
                    for (int a = 0; a < 4; a++) {
                        float acc = tensor_elem(table, tap[a][0], c) * wx[0];
                        for (int b = 1; b < 4; b++) acc = std::fma(tensor_elem(table, tap[a][b], c), wx[b], acc);
                        rows4[a] = acc;
                    }
                    float s = rows4[0] * wy[0];
                    for (int a = 1; a < 4; a++) s = std::fma(rows4[a], wy[a], s);
                    yr[c] += s;
                }
            }
        });
    }

private:
    // Runs f(r0, r1) over [0, rows) in chunks of at least `min_rows`.
    template <class F>
    void for_rows(int64_t rows, int64_t min_rows, F &&f)
    {
        if (rows <= 0) return;
        int64_t per = std::max<int64_t>(min_rows, (rows + 4 * pool_.size() - 1) / (4 * pool_.size()));
        int64_t chunks = (rows + per - 1) / per;
        pool_.for_each(chunks, [&](int64_t c, int) { f(c * per, std::min(rows, c * per + per)); });
    }

    // Host-side f32 copy of a (1, n) weight in reusable slot `slot`.
    float *widened(int slot, const Tensor &t, int64_t n)
    {
        float *out = scratch_row(0, slot, size_t(n));
        widen_row(t, n, out);
        return out;
    }

    // Reusable per-thread buffer `slot` (0..2) of at least `n` floats.
    float *scratch_row(int thread, int slot, size_t n)
    {
        auto &v = scratch_[size_t(thread)][size_t(slot)];
        if (v.size() < n) v.resize(n);
        return v.data();
    }

    CpuThreadPool pool_;
    CpuIsa isa_;
    bool bf16_dot_;
    CpuMatmulScratch matmul_scratch_;
    std::vector<std::array<std::vector<float>, 3>> scratch_;
    CpuAttentionScratch attn_scratch_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend_isa(const BackendOptions &opt, CpuIsa isa, bool allow_bf16_dot,
                                              std::string &err)
{
    if (int(isa) > int(cpu_best_isa())) {
        err = std::string("cpu backend: this CPU lacks ") + cpu_isa_name(isa);
        return nullptr;
    }
    if (opt.n_threads < 0 || opt.n_threads > 1024) {
        err = "cpu backend: n_threads out of range (0..1024)";
        return nullptr;
    }
    // Rounding activations to bf16 (vdpbf16ps) is what both exact_f32_activations
    // and allow_bf16_dot = false turn off, for small and large n alike.
    bool bf16_dot = allow_bf16_dot && !opt.exact_f32_activations && isa == CpuIsa::Avx512 &&
                    cpu_has_avx512_bf16();
    return std::make_unique<CpuBackend>(opt.n_threads, isa, bf16_dot);
}

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions &opt, std::string &err)
{
    return make_cpu_backend_isa(opt, cpu_best_isa(), true, err);
}

}  // namespace vlm
