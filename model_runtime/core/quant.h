// quant.h: the block-quantized weight formats (DType::Q8, DType::Q4), their
// reference quantizer, and the exact definition of a matmul on them, which
// every backend's kernels are held to.
//
// Layout of a (rows, cols) quantized tensor, one allocation:
//  - each row is ceil(cols / 32) blocks of 32 weights along k (the last one
//    zero-padded); Tensor::stride is that padded width, in weights;
//  - quants first, row after row: Q8 stores one int8 in [-127, 127] per weight
//    (32 bytes per block); Q4 one 4-bit u = q + 8, q in [-8, 7], 16 bytes per
//    block with weight i in the low nibble of byte i and weight i + 16 in its
//    high nibble (one 16-byte load and a shift give all 32 in order);
//  - then the scales, one IEEE f16 per block, row after row (Tensor::scales).
// A weight is scale * q. 8.5 and 4.5 bits per weight, as ggml's q8_0/q4_0.
//
// Why this layout (against ggml's q8_0/q4_0: the same block and scale, but
// interleaved as 34- and 18-byte structs; q4_K: 256-weight super-blocks with
// 6-bit sub-scales and minimums; AWQ/GPTQ: 128-weight groups with zero
// points, fitted on calibration data): quants and scales in separate planes
// keep every block's quants 16- or 32-byte aligned for vector loads on the
// CPU and coalesced 16-byte loads on the GPU; 32-weight blocks keep the
// 4-bit error at q4_0's bits per weight while one block is one AVX2 register
// of int8s; symmetric blocks need no zero point, so a block's dot product is
// one integer sum times one float. We fit each block's scale by search
// (quantize_rows) instead of q4_0's fixed rule, which lowers the error at
// the same size; no calibration data is needed, so it runs at load.
//
// The product. matmul(x, w) with quantized w is defined as ggml's q8_0 x
// q8_0 dot: each row of x is cut into the same 32-wide blocks and rounded to
// int8 per block (quantize_x_block), then
//   y[t][o] = sum over blocks b of (scale_w[o][b] * scale_x[t][b]) * isum
// with isum the exact integer dot of the block's quants. A token's result
// depends only on its own row (batch-invariant); kernels differ from the
// reference (double sums) only in the order of the float additions.
#pragma once

#include "core/backend.h"

#include <cstdint>

namespace vlm {

constexpr int64_t kQuantBlock = 32;

bool    dtype_is_quantized(DType t);
int64_t quant_blocks(int64_t cols);            // ceil(cols / 32)
int64_t quant_padded_cols(int64_t cols);       // quant_blocks(cols) * 32
size_t  quant_row_bytes(DType t, int64_t cols);  // quant bytes of one row
// Bytes of a whole (rows, cols) quantized tensor: quants, then scales.
size_t  quant_tensor_bytes(DType t, int64_t rows, int64_t cols);
// Sets stride and scales of a quantized tensor whose data, dtype, rows and
// cols are set (the layout above).
void    quant_set_layout(Tensor &t);

// Quantizes rows [r0, r1) of src (a weight of any float dtype: F32, BF16,
// F16; `src_stride` elements between rows) into the quantized tensor `dst`
// (layout set). Per block, the scale is the one of a small set of
// candidates (absmax / levels for several level counts, both signs for Q4,
// each refined once by least squares) with the least squared error after
// rounding the scale to f16. Deterministic; threads may run disjoint rows.
void quantize_rows(const void *src, DType src_dtype, int64_t src_stride, Tensor &dst,
                   int64_t r0, int64_t r1);

// Element (r, c) of a quantized tensor as float: f16 scale * q, exactly.
float quant_elem(const Tensor &t, int64_t r, int64_t c);

// One 32-wide block of an activation row (n <= 32 values, zero past n) to
// int8: amax = max |x|, q = round-to-nearest-even(x * (127 / amax)), scale =
// amax / 127, both factors computed in float; all zero when amax is 0 or so
// small (< ~3.7e-37) that 127 / amax overflows; a NaN value gives q = 0.
// Kernels must produce exactly these q and scale.
void quantize_x_block(const float *x, int64_t n, int8_t q[32], float &scale);

// The reference product of the definition above (bias added after), in
// double; what ref_matmul runs for quantized w.
void ref_matmul_quant(const Tensor &x, const Tensor &w, const Tensor *bias, Tensor &y);

}  // namespace vlm
