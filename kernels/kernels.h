// kernels.h: the launch functions of the CUDA kernels in kernels/*.cu. One op
// per .cu file; each picks its load width from the alignment and its grid,
// and launches on the given stream. Arguments are not re-checked here: the
// cuda backend calls launchers only from its op slots, after the checked
// front (core/backend_checked.cpp) validated dtypes, shapes and sizes; a
// launcher returns false + reason only when the launch itself fails.
// Compiled by nvcc for the GPU and by g++ against the SIMT emulator
// (kernels/emu) for tests. Leaves out matrix products (cuBLAS, in
// backend_cuda.cpp) except the small-batch GEMVs, which cuBLAS does not do
// with fp32 activations against bf16 weights or on block-quantized ones, and
// the dequantization of Q8/Q4 weights that feeds cuBLAS for larger batches.
//
// Conventions: tensors are vlm::Tensor views (row-major, `stride` elements
// between rows); activations are F32; weights F32/BF16/F16, or Q8/Q4 for the
// matrix products (core/quant.h). Pointers in the
// params are device pointers. Every kernel overwrites its output unless its
// comment says "accumulates". There is one CPU reference per op, in
// core/cpu_ops_ref.h, shared with the cpu backend; kernels are held to it
// through the backend ops by the op table (model_runtime/backend/op_suite.h).
#pragma once

#include "cuda_compat.h"
#include "core/backend.h"

#include <cstdint>
#include <string>

namespace vlm::kern {

// ---- normalisation (rms_norm.cu, layer_norm.cu) ----
struct RmsNormParams {
    Tensor x, w, y;  // x, y (n, d) f32; w (1, d) any float dtype
    float  eps = 1e-6f;
};
bool launch_rms_norm(const RmsNormParams &p, cudaStream_t s, std::string &err);

struct LayerNormParams {
    Tensor x, w, b, y;
    float  eps = 1e-5f;
};
bool launch_layer_norm(const LayerNormParams &p, cudaStream_t s, std::string &err);

// ---- element-wise (add.cu, silu_mul.cu, gelu.cu) ----
struct AddParams { Tensor a, b, y; };            // y may alias a
bool launch_add(const AddParams &p, cudaStream_t s, std::string &err);

struct SiluMulParams { Tensor gate, up, y; };
bool launch_silu_mul(const SiluMulParams &p, cudaStream_t s, std::string &err);

struct GeluParams { Tensor x, y; };
bool launch_gelu(const GeluParams &p, cudaStream_t s, std::string &err);

// ---- gathers and copies (embed.cu, copy_rows.cu, convert.cu, bias_rows.cu) ----
struct EmbedParams {
    Tensor         table, y;   // table (vocab, d) any float dtype; y (n, d) f32
    const int32_t *ids = nullptr;  // n ids, device (host for the ref)
    int64_t        n = 0;
};
bool launch_embed(const EmbedParams &p, cudaStream_t s, std::string &err);

// Row copy between tensors of the same dtype and cols (KV-cache writes).
struct CopyRowsParams { Tensor src, dst; };
bool launch_copy_rows(const CopyRowsParams &p, cudaStream_t s, std::string &err);

// dst = src converted between F32, BF16 and F16 (round to nearest even).
struct ConvertParams { Tensor src, dst; };
bool launch_convert(const ConvertParams &p, cudaStream_t s, std::string &err);

// y[r, :] = bias (1, m) for every row (the GEMM then accumulates onto it).
struct BiasRowsParams { Tensor bias, y; };
bool launch_bias_rows(const BiasRowsParams &p, cudaStream_t s, std::string &err);

// ---- small-batch matrix product (gemv.cu) ----
// y (n, m) = x (n, k) . w (m, k)^T [+ bias], n <= kGemvMaxRows, f32 math.
constexpr int kGemvMaxRows = 16;
struct GemvParams {
    Tensor x, w, y;
    Tensor bias;   // empty: none
};
bool launch_gemv(const GemvParams &p, cudaStream_t s, std::string &err);

// ---- block-quantized weights, Q8/Q4 (core/quant.h) (gemv_quant.cu, dequant_quant.cu) ----
// y (n, m) = x (n, k) . w (m, k)^T [+ bias], n <= kGemvMaxRows, w Q8 or Q4
// with the layout of core/quant.h: exactly ref_matmul_quant's product (x
// rounded to int8 per 32-block as quantize_x_block, integer block dots),
// up to the order of the float additions. `workspace`: device scratch of
// gemv_quant_workspace_bytes(n, k) bytes, 16-byte aligned, for x's int8
// blocks; overwritten.
struct GemvQuantParams {
    Tensor x, w, y;
    Tensor bias;              // empty: none
    void  *workspace = nullptr;
};
size_t gemv_quant_workspace_bytes(int64_t n, int64_t k);
bool launch_gemv_quant(const GemvQuantParams &p, cudaStream_t s, std::string &err);

// dst (rows, w.stride) bf16, contiguous, 16-byte aligned = rows [r0, r0 +
// rows) of the Q8/Q4 weight w dequantized (f16 scale * q, rounded to bf16),
// padding columns included (zero). For the cuBLAS path of n > 16 rows.
struct DequantParams {
    Tensor   w;
    int64_t  r0 = 0, rows = 0;
    uint16_t *dst = nullptr;
};
bool launch_dequant_quant(const DequantParams &p, cudaStream_t s, std::string &err);

// ---- rotary embeddings (rope_text.cu, rope_vision.cu) ----
struct RopeTextParams {
    Tensor         x;                 // in place, (n, n_head*head_dim) f32
    const int32_t *positions = nullptr;  // 3 planes of n (t, h, w)
    const float   *inv_freq = nullptr;   // rotary_dim/2 (host-computed, exact)
    TextRopeParams rope;
};
bool launch_rope_text(const RopeTextParams &p, cudaStream_t s, std::string &err);

struct RopeVisionParams {
    Tensor         x;                 // in place
    const int32_t *row = nullptr, *col = nullptr;  // n each
    const float   *inv_freq = nullptr;             // head_dim/4
    int            n_head = 0, head_dim = 0;
};
bool launch_rope_vision(const RopeVisionParams &p, cudaStream_t s, std::string &err);

// ---- vision position table (pos_embed_bicubic.cu); accumulates into y ----
struct PosEmbedParams {
    Tensor         table, y;   // table (side*side, d) any float dtype; y (n, d) f32
    int            side = 0;
    const int32_t *row = nullptr, *col = nullptr, *grid_h = nullptr, *grid_w = nullptr;
};
bool launch_pos_embed_bicubic(const PosEmbedParams &p, cudaStream_t s, std::string &err);

// ---- attention (attention_prefill.cu, attention_decode.cu) ----
// row_lo/row_hi (device, n_q each) give each query row's visible key range
// for segmented (vision) attention; null for causal or full attention.
struct AttentionKernelParams {
    Tensor          q, k, v, out;
    AttentionParams attn;           // segments unused here (host array)
    const int32_t  *row_lo = nullptr, *row_hi = nullptr;
    // Decode only: device scratch for split-KV partial results, sized by
    // attention_decode_workspace_floats(); null runs without splitting.
    float          *workspace = nullptr;
};
constexpr int kAttentionMaxHeadDim = 128;
bool launch_attention_prefill(const AttentionKernelParams &p, cudaStream_t s, std::string &err);
bool launch_attention_decode(const AttentionKernelParams &p, cudaStream_t s, std::string &err);
size_t attention_decode_workspace_floats(const AttentionKernelParams &p);

}  // namespace vlm::kern
