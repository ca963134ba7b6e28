// model_weights.h: every tensor GLM-4.6V needs, found by name in the
// safetensors set and checked against the config (name, dtype, shape). Both
// checkpoint prefixes are accepted: model.language_model.* / model.visual.*
// (transformers >= 4.52) and the older model.layers.* / model.visual.*.
// Conv weights keep their stored shape here; the model flattens them.
#pragma once

#include "model/model_config.h"
#include "model/safetensors.h"

#include <string>
#include <vector>

namespace vlm {

class Backend;

struct VisionBlockWeights {
    const TensorView *norm1 = nullptr;     // (d_vis)
    const TensorView *qkv = nullptr;       // (3*d_vis, d_vis)
    const TensorView *qkv_bias = nullptr;  // (3*d_vis) when attention_bias
    const TensorView *proj = nullptr;      // (d_vis, d_vis)
    const TensorView *proj_bias = nullptr; // always null: transformers has bias=False
    const TensorView *norm2 = nullptr;     // (d_vis)
    const TensorView *gate = nullptr;      // (out_hidden, d_vis)
    const TensorView *up = nullptr;        // (out_hidden, d_vis)
    const TensorView *down = nullptr;      // (d_vis, out_hidden)
};

struct VisionWeights {
    const TensorView *patch_embed_w = nullptr;   // (d_vis, C, T, P, P)
    const TensorView *patch_embed_b = nullptr;   // (d_vis)
    const TensorView *post_conv_norm = nullptr;  // (d_vis)
    const TensorView *pos_embed = nullptr;       // (side*side, d_vis)
    std::vector<VisionBlockWeights> blocks;
    const TensorView *post_norm = nullptr;       // (d_vis)
    const TensorView *downsample_w = nullptr;    // (out_hidden, d_vis, m, m)
    const TensorView *downsample_b = nullptr;    // (out_hidden)
    const TensorView *merger_proj = nullptr;     // (out_hidden, out_hidden)
    const TensorView *merger_norm_w = nullptr;   // (out_hidden) LayerNorm
    const TensorView *merger_norm_b = nullptr;   // (out_hidden)
    const TensorView *merger_gate = nullptr;     // (inter, out_hidden)
    const TensorView *merger_up = nullptr;       // (inter, out_hidden)
    const TensorView *merger_down = nullptr;     // (out_hidden, inter)
};

struct TextLayerWeights {
    const TensorView *input_norm = nullptr;           // (d_model)
    const TensorView *q = nullptr, *q_bias = nullptr; // (n_head*hd, d_model), (n_head*hd)
    const TensorView *k = nullptr, *k_bias = nullptr; // (n_kv*hd, d_model)
    const TensorView *v = nullptr, *v_bias = nullptr; // (n_kv*hd, d_model)
    const TensorView *o = nullptr;                    // (d_model, n_head*hd)
    const TensorView *post_self_attn_norm = nullptr;  // (d_model)
    const TensorView *post_attn_norm = nullptr;       // (d_model)
    const TensorView *gate_up = nullptr;   // (2*inter, d_model) fused, or null
    const TensorView *gate = nullptr;      // (inter, d_model) when stored split
    const TensorView *up = nullptr;        // (inter, d_model) when stored split
    const TensorView *down = nullptr;      // (d_model, inter)
    const TensorView *post_mlp_norm = nullptr;        // (d_model)
};

struct TextWeights {
    const TensorView *embed = nullptr;     // (vocab, d_model)
    std::vector<TextLayerWeights> layers;
    const TensorView *norm = nullptr;      // (d_model)
    const TensorView *lm_head = nullptr;   // (vocab, d_model); == embed when tied
};

struct ModelWeights {
    VisionWeights vision;
    TextWeights   text;
};

// Finds and checks every tensor. On failure `err` names the file, the tensor,
// the expected and the found shape or dtype.
// `used`, when given, receives the name of every tensor bound (so a caller
// can list the file's other, unexpected tensors).
bool bind_model_weights(const SafetensorsSet &st, const ModelConfig &cfg,
                        ModelWeights &out, std::string &err,
                        std::vector<std::string> *used = nullptr);

// Asks `backend` (Backend::supports) whether it runs each op on the dtype of
// the weight it reads, and both towers' attention head sizes. On failure
// `err` names the file, the tensor, the op and the dtype.
bool check_backend_supports(const Backend &backend, const ModelConfig &cfg,
                            const ModelWeights &w, std::string &err);

}  // namespace vlm
