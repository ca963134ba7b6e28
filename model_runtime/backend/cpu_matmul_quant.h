// cpu_matmul_quant.h: the cpu backend's products with block-quantized
// weights (Q8, Q4; core/quant.h defines the layout and the exact result).
//
// Shape of the work: the activations are rounded once per call to int8 per
// 32-block (QuantizedX: quants, scales, and for Q4 8 x the block's sum);
// then each weight block is loaded once per group of rows and used for every
// token. Block sums come from vpmaddubsw (32 multiply-adds, u8 x s8 -> s16
// pairs) and vpmaddwd (pairs -> int32), so a block's integer sum is exact
// and only the float sum over blocks (one FMA with the product of the two
// scales per block) rounds.
// Every (row, token) accumulator sees the same instructions in the same
// order whatever n and whichever rows share its group: a token's result
// does not depend on its batch (the engine's batch parity).
//  - Q8 (rows x tokens register tiles, 8 lanes of partial sums per row):
//    vpmaddubsw needs one unsigned operand: |x_q| against w_q with x_q's
//    sign moved onto it (vpsignb); w_q is kept in [-127, 127] so the move
//    never overflows.
//  - Q4 (eight rows in the eight lanes, cpu_matmul_quant_avx2.cpp): the
//    nibbles u = q + 8 are unsigned already: sum((u - 8) x_q) =
//    sum(u x_q) - 8 sum(x_q); the second term is computed once per token and
//    block (QuantizedX::sum8) and subtracted as int32.
#pragma once

#include "backend/cpu_matmul.h"

#include <cstdint>
#include <vector>

namespace vlm {

// Rounds tokens [t0, t1) of job.x into qx (rows laid out as above).
void quantize_x_rows(const MatmulJob &job, const QuantizedX &qx, bool with_offset, int64_t t0, int64_t t1);

// y[t][o] for t in [t0, t1), o in [o0, o1) with Q8/Q4 weights (job.w is the
// quants, `scales` the f16 scales, job.w_dtype Q8 or Q4); no bias.
void matmul_quant_scalar(const MatmulJob &job, const uint16_t *scales, const QuantizedX &qx, int64_t t0,
                         int64_t t1, int64_t o0, int64_t o1);
void matmul_quant_avx2(const MatmulJob &job, const uint16_t *scales, const QuantizedX &qx, int64_t t0,
                       int64_t t1, int64_t o0, int64_t o1);

}  // namespace vlm
