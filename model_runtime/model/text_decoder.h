// text_decoder.h: the GLM-4V text decoder (Glm4vTextModel + lm_head) on a
// Backend: embedding with image rows spliced in, sandwich-norm layers with
// M-RoPE and GQA attention over a per-sequence KV cache, final norm, logits.
// One forward at a time per decoder (it keeps its scratch between calls).
// forward() runs one sequence over a contiguous KvCache; forward_batch()
// (text_decoder_batch.cpp) runs many over a paged KvPool.
#pragma once

#include "model/adopted_weights.h"
#include "core/backend.h"
#include "model/model.h"
#include "model/model_config.h"
#include "model/model_weights.h"

#include <functional>
#include <string>
#include <vector>

namespace vlm {

struct TextLayerTensors {
    Tensor input_norm, q, q_bias, k, k_bias, v, v_bias, o;
    Tensor post_self_attn_norm, post_attn_norm;
    Tensor gate_up;       // (2*inter, d_model) when stored fused
    Tensor gate, up;      // (inter, d_model) when stored split
    Tensor down, post_mlp_norm;
};

// Activations of one forward call of up to `rows` tokens; grown on demand,
// reused across layers and calls (decode re-uses the prefill buffers).
struct TextScratch {
    int64_t      rows = 0;
    int64_t      logit_rows = 0;
    DeviceBuffer x;        // (n_tok, d_model) residual stream
    DeviceBuffer xn;       // (n_tok, d_model) normed input of a sub-block
    DeviceBuffer q;        // (n_tok, n_head*head_dim)
    DeviceBuffer k, v;     // (n_tok, n_kv_head*head_dim)
    DeviceBuffer attn;     // (n_tok, n_head*head_dim)
    DeviceBuffer branch;   // (n_tok, d_model) o_proj / down output
    DeviceBuffer branchn;  // (n_tok, d_model) its post-norm
    DeviceBuffer gate_up;  // (n_tok, 2*inter)
    DeviceBuffer act;      // (n_tok, inter)
    DeviceBuffer logits;   // (n_logit_rows, vocab)
    int64_t      ctx_rows = 0;
    DeviceBuffer k_ctx, v_ctx;  // (ctx, kv_dim) one sequence's keys/values gathered from its blocks
};

// Views of the first n rows of the scratch buffers, for one forward call.
struct TextStepViews {
    Tensor x, xn, q, k, v, attn, branch, branchn, gate_up, act, gate, up;
};

class TextDecoder {
public:
    bool init(Backend &backend, const ModelConfig &cfg, const TextWeights &w,
              AdoptedWeights &store, std::string &err);

    bool new_cache(int64_t capacity, KvCache &cache, std::string &err) const;

    bool new_kv_pool(int64_t n_blocks, int block_tokens, KvPool &pool,
                     std::string &err) const;
    // See Model::forward_batch.
    bool forward_batch(const std::vector<SeqStep> &steps, KvPool &pool,
                       std::vector<float> &logits, std::string &err);

    // See Model::forward.
    bool forward(const std::vector<int32_t> &ids,
                 const std::vector<int32_t> &positions,
                 const float *image_embeds, int64_t n_image_rows,
                 KvCache &cache, bool all_logits, std::vector<float> &logits,
                 std::string &err);

private:
    bool validate(const std::vector<int32_t> &ids,
                  const std::vector<int32_t> &positions,
                  const float *image_embeds, int64_t n_image_rows,
                  const KvCache &cache, std::string &err) const;
    bool ensure_scratch(int64_t n_tok, int64_t n_logit_rows, std::string &err);
    bool validate_batch(const std::vector<SeqStep> &steps, const KvPool &pool,
                        std::string &err) const;
    bool ensure_ctx_scratch(int64_t ctx, std::string &err);
    void splice_image_rows(const int32_t *ids, int64_t n, const float *image_embeds,
                           Tensor &x);
    void splice_image_rows(const std::vector<int32_t> &ids,
                           const float *image_embeds, Tensor &x);
    TextStepViews step_views(int64_t n);
    AttentionParams attention_params() const;   // causal; kv_offset set per sequence
    // post_attn_norm -> gate/up -> SiLU*up -> down -> post_mlp_norm -> residual,
    // with `matmul` deciding how rows are grouped into calls.
    using RowMatmul = std::function<void(const Tensor &in, const Tensor &w, Tensor &out)>;
    void mlp_block(const TextLayerTensors &lt, TextStepViews &t, const RowMatmul &matmul);

    Backend       *backend_ = nullptr;
    TextConfig     cfg_;
    int            image_token_id_ = -1;
    int            q_dim_ = 0, kv_dim_ = 0;
    TextRopeParams rope_;
    Tensor embed_, norm_, lm_head_;
    std::vector<TextLayerTensors> layers_;
    TextScratch scratch_;
};

}  // namespace vlm
