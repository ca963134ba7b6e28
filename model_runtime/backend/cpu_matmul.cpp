// cpu_matmul.cpp: the cpu backend's matmul driver: chooses between the
// streaming rows kernels (f32 or bf16 activations) and the bf16 GEMM (see cpu_matmul.h), splits the
// output rows over the thread pool, adds the bias.
#include "backend/cpu_matmul.h"
#include "backend/cpu_matmul_quant.h"
#include "core/quant.h"
#include "core/cpu_ops_ref.h"

#include <algorithm>

namespace vlm {

static void rows_kernel(CpuIsa isa, const MatmulJob &j, int64_t t0, int64_t t1, int64_t o0, int64_t o1)
{
    switch (isa) {
    case CpuIsa::Avx512: matmul_rows_avx512(j, t0, t1, o0, o1); break;
    case CpuIsa::Avx2: matmul_rows_avx2(j, t0, t1, o0, o1); break;
    case CpuIsa::Scalar: matmul_rows_scalar(j, t0, t1, o0, o1); break;
    }
}

static void add_bias(const Tensor &bias, const MatmulJob &j, int64_t o0, int64_t o1)
{
    for (int64_t t = 0; t < j.n; t++) {
        float *y = j.y + size_t(t) * size_t(j.y_stride);
        for (int64_t o = o0; o < o1; o++) y[o] += tensor_elem(bias, 0, o);
    }
}

// Q8/Q4 weights: round x once (tokens over the pool), then rows over the
// pool, each chunk doing every token (cpu_matmul_quant.h).
static void cpu_matmul_quant(CpuThreadPool &pool, CpuIsa isa, CpuMatmulScratch &scratch, const MatmulJob &j,
                             const Tensor &w, const Tensor *bias)
{
    QuantizedX qx;
    scratch.quant_x.reserve(j.n, quant_blocks(j.k), qx);
    const bool q4 = w.dtype == DType::Q4;
    const int threads = pool.size();
    const int64_t token_chunk = std::max<int64_t>(1, (j.n + 2 * threads - 1) / (2 * threads));
    pool.for_each((j.n + token_chunk - 1) / token_chunk, [&](int64_t c, int) {
        quantize_x_rows(j, qx, q4, c * token_chunk, std::min(j.n, (c + 1) * token_chunk));
    });
    const int64_t m = w.rows;
    int64_t rows_per_chunk = (m + 8 * threads - 1) / (8 * threads);
    rows_per_chunk = std::max<int64_t>(16, (rows_per_chunk + 3) / 4 * 4);
    const int64_t n_chunks = (m + rows_per_chunk - 1) / rows_per_chunk;
    const uint16_t *scales = static_cast<const uint16_t *>(w.scales);
    pool.for_each(n_chunks, [&](int64_t c, int) {
        const int64_t o0 = c * rows_per_chunk, o1 = std::min(m, o0 + rows_per_chunk);
        if (isa == CpuIsa::Scalar) matmul_quant_scalar(j, scales, qx, 0, j.n, o0, o1);
        else matmul_quant_avx2(j, scales, qx, 0, j.n, o0, o1);  // AVX-512 CPUs run AVX2 here
        if (bias) add_bias(*bias, j, o0, o1);
    });
}

void cpu_matmul(CpuThreadPool &pool, CpuIsa isa, bool use_bf16_dot, CpuMatmulScratch &scratch,
                const Tensor &x, const Tensor &w, const Tensor *bias, Tensor &y)
{
    MatmulJob j;
    j.x = static_cast<const float *>(x.data);
    j.x_stride = x.stride;
    j.n = x.rows;
    j.k = x.cols;
    j.w = w.data;
    j.w_dtype = w.dtype;
    j.w_stride = w.stride;
    j.y = static_cast<float *>(y.data);
    j.y_stride = y.stride;
    const int64_t m = w.rows;
    if (j.n == 0 || m == 0) return;
    if (dtype_is_quantized(w.dtype)) {
        cpu_matmul_quant(pool, isa, scratch, j, w, bias);
        return;
    }
    const int threads = pool.size();

    bool gemm = use_bf16_dot && isa == CpuIsa::Avx512 && w.dtype == DType::BF16 && j.n > kSmallN &&
                j.k % 2 == 0 && j.k > 0;
    if (gemm) {
        const int64_t pairs = j.k / 2;
        const int64_t n_panels = (j.n + kGemmTokens - 1) / kGemmTokens;
        size_t words = size_t(n_panels) * size_t(pairs) * kGemmTokens;
        if (scratch.panels.size() < words) scratch.panels.resize(words);  // grows once, then reused
        uint32_t *pack = scratch.panels.data();
        pool.for_each(n_panels, [&](int64_t pn, int) {
            pack_x_bf16_avx512(j, pn, pack + size_t(pn) * size_t(pairs) * kGemmTokens);
        });
        // Chunks of 64 rows (the GEMM's L2 row block), at least 4 per thread.
        int64_t rows_per_chunk = 64;
        while (rows_per_chunk > 8 && (m + rows_per_chunk - 1) / rows_per_chunk < 4 * threads)
            rows_per_chunk /= 2;
        int64_t n_chunks = (m + rows_per_chunk - 1) / rows_per_chunk;
        pool.for_each(n_chunks, [&](int64_t c, int) {
            int64_t o0 = c * rows_per_chunk, o1 = std::min(m, o0 + rows_per_chunk);
            gemm_bf16_avx512(j, pack, o0, o1);
            if (bias) add_bias(*bias, j, o0, o1);
        });
        return;
    }

    const bool dot_rows = use_bf16_dot && isa == CpuIsa::Avx512 && w.dtype == DType::BF16 && j.n <= kSmallN;
    uint16_t *xb = nullptr;
    if (dot_rows) {
        size_t halves = size_t(j.n) * size_t(even_odd_cols(j.k));
        if (scratch.bf16_rows.size() < halves) scratch.bf16_rows.resize(halves);  // grows once
        xb = scratch.bf16_rows.data();
        pack_x_bf16_rows_avx512(j, xb);
    }
    const bool even_odd = !dot_rows && isa == CpuIsa::Avx512 && w.dtype == DType::BF16 && j.n <= kSmallN;
    float *xp = nullptr;
    if (even_odd) {
        size_t floats = size_t(j.n) * size_t(even_odd_cols(j.k));
        if (scratch.even_odd.size() < floats) scratch.even_odd.resize(floats);  // grows once
        xp = scratch.even_odd.data();
        pack_x_even_odd_avx512(j, xp);
    }

    // Rows regime: ~8 chunks per thread (load balance when another process
    // takes a core), multiples of 8 rows, at least 16 rows per chunk.
    int64_t rows_per_chunk = (m + 8 * threads - 1) / (8 * threads);
    rows_per_chunk = std::max<int64_t>(16, (rows_per_chunk + 7) / 8 * 8);
    int64_t n_chunks = (m + rows_per_chunk - 1) / rows_per_chunk;
    pool.for_each(n_chunks, [&](int64_t c, int) {
        int64_t o0 = c * rows_per_chunk, o1 = std::min(m, o0 + rows_per_chunk);
        if (dot_rows) matmul_rows_bf16_dot_avx512(j, xb, o0, o1);
        else if (even_odd) matmul_rows_bf16_eo_avx512(j, xp, o0, o1);
        else rows_kernel(isa, j, 0, j.n, o0, o1);
        if (bias) add_bias(*bias, j, o0, o1);
    });
}

}  // namespace vlm
