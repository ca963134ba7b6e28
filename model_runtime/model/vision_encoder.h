// vision_encoder.h: the GLM-4V vision tower (Glm4vVisionModel) on a Backend:
// patch embedding, bicubic position embedding, 2-D RoPE blocks, 2x2
// downsample and the patch merger. Images only (videos arrive as t = 1
// frames); no batching across requests.
#pragma once

#include "model/adopted_weights.h"
#include "core/backend.h"
#include "model/model.h"
#include "model/model_config.h"
#include "model/model_weights.h"

#include <string>
#include <vector>

namespace vlm {

struct VisionBlockTensors {
    Tensor norm1, qkv, qkv_bias, proj, proj_bias, norm2, gate, up, down;
};

class VisionEncoder {
public:
    // Adopts the vision weights (and re-lays out the downsample weight once).
    bool init(Backend &backend, const ModelConfig &cfg, const VisionWeights &w,
              AdoptedWeights &store, std::string &err);

    // pixels (n_patch, C*T*P*P) -> out (n_img_tok, d_model), host f32.
    bool encode(const PixelBatch &px, std::vector<float> &out,
                std::string &err) const;

private:
    Backend      *backend_ = nullptr;
    VisionConfig  cfg_;
    int           patch_dim_ = 0;   // C*T*P*P
    int           pos_side_  = 0;   // image_size / patch_size
    Tensor patch_w_, patch_b_, post_conv_norm_, pos_embed_;
    std::vector<VisionBlockTensors> blocks_;
    Tensor post_norm_;
    Tensor downsample_w_;   // (out_hidden, merge^2 * d_vis), token-major: see init
    Tensor downsample_b_;
    Tensor merger_proj_, merger_norm_w_, merger_norm_b_;
    Tensor merger_gate_, merger_up_, merger_down_;
};

}  // namespace vlm
