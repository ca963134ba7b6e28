// model.h: GLM-4.6V (Glm4vForConditionalGeneration) on a Backend: the vision
// encoder, the GLM text decoder with M-RoPE, and its KV cache.
//
// Legend (used in shape comments throughout the runtime)
//   n_tok     tokens in a forward call        d_model   text hidden size
//   n_patch   vision patches (pre-merge)      d_vis     vision hidden size
//   n_img_tok merged image tokens = n_patch / merge^2
//   n_head, n_kv_head, head_dim               vocab     vocabulary size
#pragma once

#include "core/backend.h"
#include "image/pixels.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "model/weight_plan.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vlm {

// Per-sequence KV cache: for each layer, K and V of shape
// (capacity, n_kv_head*head_dim) f32 on the device. With forward(), the
// single-sequence path: the reference forward_batch is tested against
// (test_paged_kv, test_model_golden, the CUDA emulator suite), and what
// bench-model and the CUDA self-test time. vlmd and vlm-run generate through
// KvPool + forward_batch (generate/generate.cpp).
struct KvCache {
    std::vector<DeviceBuffer> k, v;
    int64_t capacity = 0;
    int64_t n_past   = 0;     // tokens already in the cache
    int     rope_delta = 0;   // position of token n during decode = n + rope_delta
};

// Paged KV cache shared by the sequences of a batch: for each layer, K and V
// of shape (n_blocks * block_tokens, n_kv_head*head_dim) f32 on the device.
// Token t of a sequence lives in row blocks[t / block_tokens] * block_tokens
// + t % block_tokens (the block table is the caller's, see kv_block_table.h).
struct KvPool {
    std::vector<DeviceBuffer> k, v;
    int64_t n_blocks     = 0;
    int     block_tokens = 0;
};

// One sequence's rows in a batched forward step: `n` new tokens appended after
// `n_past` tokens already in its blocks.
struct SeqStep {
    const int32_t *ids          = nullptr;  // n
    const int32_t *positions    = nullptr;  // 3 planes of n (t, h, w)
    int64_t        n            = 0;
    const float   *image_embeds = nullptr;  // rows for the image tokens among ids, in order
    int64_t        n_image_rows = 0;        // 0: image tokens embed as text
    const int32_t *blocks       = nullptr;  // block table covering n_past + n tokens
    int64_t        n_blocks     = 0;
    int64_t        n_past       = 0;
    bool           want_logits  = false;    // logits of the last row
};

// A row's numerics must not depend on what else is in the batch. Backends
// pick the matmul path by row count (cpu: <= 16 rows stay f32 on the
// bandwidth path, more go to the bf16 GEMM), so forward_batch gives every
// step of at most this many rows a matmul call of at most this many rows, and
// every larger step a call of its own.
constexpr int64_t kSmallStepRows = 16;

class Model {
public:
    virtual ~Model() = default;
    virtual const ModelConfig        &config() const = 0;
    virtual const PreprocessorConfig &preprocessor() const = 0;
    virtual const GenerationConfig   &generation() const = 0;
    virtual Backend                  &backend() = 0;

    // Vision encoder + merger: pixels -> (n_img_tok, d_model) f32, host.
    virtual bool encode_images(const PixelBatch &px, std::vector<float> &out,
                               std::string &err) = 0;

    virtual bool new_cache(int64_t capacity, KvCache &cache,
                           std::string &err) = 0;

    // The single-sequence reference (see KvCache). Runs the decoder on `ids`
    // appended after cache.n_past. When
    // `image_embeds` is given, rows of `ids` equal to image_token_id take, in
    // order, its rows ((n_img_tok, d_model) host f32, counts must match);
    // without it they keep their ordinary embedding, as in transformers'
    // decode steps; `positions` holds 3 planes of ids.size()
    // (t, h, w) positions. Writes logits for the last token (vocab) or, when
    // `all_logits`, for every token (n_tok, vocab). Advances cache.n_past.
    virtual bool forward(const std::vector<int32_t> &ids,
                         const std::vector<int32_t> &positions,
                         const float *image_embeds, int64_t n_image_rows,
                         KvCache &cache, bool all_logits,
                         std::vector<float> &logits, std::string &err) = 0;

    // Allocates a paged KV pool of n_blocks x block_tokens tokens.
    virtual bool new_kv_pool(int64_t n_blocks, int block_tokens, KvPool &pool,
                             std::string &err) {
        err = "new_kv_pool: not supported by this model";
        return false;
    }
    // Runs the decoder on several sequences at once (continuous batching):
    // one matmul per weight for each group of rows (see kSmallStepRows),
    // attention per sequence over its own blocks. Writes one row of logits
    // (vocab) per step with want_logits, in step order. Each step's results
    // are those it would get alone.
    virtual bool forward_batch(const std::vector<SeqStep> &steps, KvPool &pool,
                               std::vector<float> &logits, std::string &err) {
        err = "forward_batch: not supported by this model";
        return false;
    }
};

// Loads config files and weights from a Hugging Face model directory and
// validates every tensor name and shape. False with a one-line reason.
// Loads with every weight as stored.
bool load_model(const std::string &dir, Backend &backend,
                std::unique_ptr<Model> &out, std::string &err);
// Loads with the weights in the formats `plan` gives (model/weight_plan.h):
// quantized ones are made here, from the checkpoint, before the call returns.
// `info`, when given, receives one line on the quantized weights: made or
// taken from the cache, and what happened to the cache (see quant_cache.h;
// a cache that cannot be used or written never fails the load).
bool load_model(const std::string &dir, Backend &backend, const WeightPlan &plan,
                std::unique_ptr<Model> &out, std::string &err, std::string *info = nullptr);

// transformers' get_rope_index for one unpadded sequence: 3 planes of
// ids.size() positions, and the rope delta used during decode.
void compute_mrope_positions(const ModelConfig &cfg,
                             const std::vector<int32_t> &ids,
                             const std::vector<ImageGrid> &grids,
                             std::vector<int32_t> &positions, int &rope_delta);

}  // namespace vlm
