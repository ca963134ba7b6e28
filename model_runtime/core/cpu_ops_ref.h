// cpu_ops_ref.h: plain, single-threaded reference versions of every backend op.
// They define the numerics the fast cpu kernels (and the tests) are held to:
// float32 results that mirror transformers' float32 eager GLM-4V code; sums
// run in double so the reference is at least as accurate as torch's float
// reductions. Not fast, not threaded: used by tests and as the scalar path.
#pragma once

#include "core/backend.h"

#include <cstdint>

namespace vlm {

// Element (r, c) of a tensor of any float dtype, widened to float exactly.
float tensor_elem(const Tensor &t, int64_t r, int64_t c);
float bf16_to_f32(uint16_t v);
float f16_to_f32(uint16_t v);
uint16_t f32_to_bf16(float f);  // round to nearest even (torch's .to(bf16))
uint16_t f32_to_f16(float f);   // round to nearest even

// inv_freq[i] = 1 / theta^(2i / dim) for i < dim/2, computed in float32 the
// way transformers' default rope init does (float exponent, correctly
// rounded pow, float reciprocal).
void rope_inv_freq(double theta, int dim, float *inv_freq);

// PyTorch's bicubic convolution weights (A = -0.75) for fractional offset t.
void bicubic_weights(float t, float w[4]);

void ref_matmul(const Tensor &x, const Tensor &w, const Tensor *bias, Tensor &y);
void ref_rms_norm(const Tensor &x, const Tensor &w, float eps, Tensor &y);
void ref_layer_norm(const Tensor &x, const Tensor &w, const Tensor &b,
                    float eps, Tensor &y);
void ref_add(const Tensor &a, const Tensor &b, Tensor &y);
void ref_silu_mul(const Tensor &gate, const Tensor &up, Tensor &y);
void ref_gelu(const Tensor &x, Tensor &y);
void ref_embed(const Tensor &table, const int32_t *ids, int64_t n, Tensor &y);
void ref_rope_text(Tensor &x, const int32_t *positions, const TextRopeParams &p);
void ref_rope_vision(Tensor &x, const int32_t *row, const int32_t *col,
                     int n_head, int head_dim, double theta);
void ref_attention(const Tensor &q, const Tensor &k, const Tensor &v,
                   const AttentionParams &p, Tensor &out);
void ref_add_pos_embed_bicubic(const Tensor &table, int side,
                               const int32_t *row, const int32_t *col,
                               const int32_t *grid_h, const int32_t *grid_w,
                               Tensor &y);
void ref_copy(const Tensor &src, Tensor &dst);

}  // namespace vlm
