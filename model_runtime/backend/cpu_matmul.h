// cpu_matmul.h: internal interface between the cpu backend's matmul driver
// (cpu_matmul.cpp: regime choice, threading, bias) and its per-ISA kernels
// (cpu_matmul_scalar.cpp, cpu_matmul_avx2.cpp, cpu_matmul_avx512.cpp).
//
// Two regimes:
//  - "rows" kernels (any n; used for n <= kSmallN and whenever no bf16 dot
//    product is available): each weight row is widened to f32 in registers
//    and FMA'd with f32 activations; several rows x up to 4 tokens per step,
//    k blocked so the weights stream from memory once for all small-n tokens
//    (bf16 on AVX-512: even/odd split, see pack_x_even_odd_avx512).
//    Activations stay f32, so this path matches an f32 reference to the
//    rounding of the sums.
//  - bf16 dot rows (AVX-512 with avx512_bf16, bf16 weights, n <= kSmallN,
//    unless BackendOptions::exact_f32_activations): the activations are
//    rounded to bf16 once per call and each weight row streams once past
//    all tokens through vdpbf16ps (fp32 accumulation). At 16 tokens the
//    f32 FMA path is compute-bound on Zen 4; this one does twice the
//    multiply-adds per instruction. A token's result does not depend on n
//    (see rows_tile_bf16_dot), which the engine's batch parity relies on.
//  - bf16 GEMM (AVX-512 with avx512_bf16, bf16 weights, n > kSmallN): the
//    activations are rounded to bf16 (like torch running in bf16) and packed
//    into 48-token panels; a register-tiled vdpbf16ps microkernel (8 weight
//    rows x 48 tokens, fp32 accumulation) broadcasts weight pairs read in
//    place. Relative error vs f32 is bounded by bf16 rounding of x (2^-9
//    per element) and is what torch bf16 inference does too.
//  - Q8/Q4 weights (any n): the activations are rounded to int8 blocks and
//    multiplied in integers (cpu_matmul_quant.h).
#pragma once

#include "core/backend.h"

#include <cstdint>
#include <vector>

namespace vlm {

// Up to this many tokens a matmul is memory-bandwidth bound (decode).
constexpr int64_t kSmallN = 16;
// bf16 GEMM tile shape.
constexpr int64_t kGemmRows = 8;     // weight rows per microkernel
constexpr int64_t kGemmTokens = 48;  // tokens per packed panel (3 x 16 lanes)

struct MatmulJob {
    const float *x = nullptr;
    int64_t      x_stride = 0;
    int64_t      n = 0;  // tokens
    int64_t      k = 0;  // inner dimension
    const void  *w = nullptr;
    DType        w_dtype = DType::F32;
    int64_t      w_stride = 0;
    float       *y = nullptr;
    int64_t      y_stride = 0;
};

// y[t][o] = sum_c x[t][c] * w[o][c] for t in [t0, t1), o in [o0, o1); no bias.
void matmul_rows_scalar(const MatmulJob &job, int64_t t0, int64_t t1, int64_t o0, int64_t o1);
void matmul_rows_avx2(const MatmulJob &job, int64_t t0, int64_t t1, int64_t o0, int64_t o1);
void matmul_rows_avx512(const MatmulJob &job, int64_t t0, int64_t t1, int64_t o0, int64_t o1);

// Small n with bf16 weights on AVX-512: x packed per 32-column chunk as
// [16 even columns][16 odd columns], zero padded to even_odd_cols(k).
int64_t even_odd_cols(int64_t k);
void pack_x_even_odd_avx512(const MatmulJob &job, float *dst);
// y for all job.n tokens (n <= kSmallN) and weight rows [o0, o1); BF16 weights.
void matmul_rows_bf16_eo_avx512(const MatmulJob &job, const float *xp, int64_t o0, int64_t o1);

// Small n, bf16 weights, vdpbf16ps: dst row t (even_odd_cols(k) wide) is
// bf16(x[t]) rounded to nearest even, zero padded past k.
void pack_x_bf16_rows_avx512(const MatmulJob &job, uint16_t *dst);
// y for all job.n tokens (n <= kSmallN) and weight rows [o0, o1); BF16 weights.
void matmul_rows_bf16_dot_avx512(const MatmulJob &job, const uint16_t *xb, int64_t o0, int64_t o1);

// Packs tokens [48*panel, 48*panel + 48) of x as bf16 pairs:
// dst[p * 48 + t] = (bf16(x[t][2p]), bf16(x[t][2p+1])) as one 32-bit word,
// zero for tokens past n. k must be even; dst holds k/2 * 48 words.
void pack_x_bf16_avx512(const MatmulJob &job, int64_t panel, uint32_t *dst);
// y for all tokens (panels of 48 in `xpack`) and weight rows [o0, o1); the
// weights must be BF16 with even k.
void gemm_bf16_avx512(const MatmulJob &job, const uint32_t *xpack, int64_t o0, int64_t o1);

}  // namespace vlm

#include "backend/backend_cpu.h"
#include "backend/cpu_thread_pool.h"

#include <vector>

namespace vlm {

// x (n, k) rounded per 32-block as quantize_x_block; nb = quant_blocks(k).
struct QuantizedX {
    int64_t  n = 0, nb = 0;
    int8_t  *q = nullptr;       // n * nb * 32
    float   *scale = nullptr;   // n * nb
    int32_t *sum8 = nullptr;    // n * nb: 8 * sum(q) of the block, Q4 only (its nibble offset)
};

struct QuantXBuffers {
    std::vector<int8_t>  q;
    std::vector<float>   scale;
    std::vector<int32_t> sum8;
    // Grows (never shrinks) and points `qx` at the buffers.
    void reserve(int64_t n, int64_t nb, QuantizedX &qx);
};

// Reusable packed-activation buffers (grow only, so no allocation per op
// once the largest shapes have been seen).
struct CpuMatmulScratch {
    std::vector<uint32_t> panels;   // bf16 pairs for the GEMM
    std::vector<float>    even_odd; // small-n bf16 rows kernel, f32 activations
    std::vector<uint16_t> bf16_rows; // small-n bf16 rows kernel, vdpbf16ps
    QuantXBuffers         quant_x;   // int8-rounded activations for Q8/Q4 weights
};

// y = x w^T [+ bias] on the pool: picks the regime and kernel for `isa`.
// `use_bf16_dot`: bf16 weights may round activations to bf16 and use
// vdpbf16ps (both regimes); false keeps f32 activations everywhere.
void cpu_matmul(CpuThreadPool &pool, CpuIsa isa, bool use_bf16_dot,
                CpuMatmulScratch &scratch, const Tensor &x, const Tensor &w,
                const Tensor *bias, Tensor &y);

}  // namespace vlm
