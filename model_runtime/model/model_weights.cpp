// model_weights.cpp: binds every GLM-4.6V tensor by name and checks its dtype
// and exact shape against the config. Names are those transformers 5.23's
// Glm4vForConditionalGeneration.save_pretrained writes (model.language_model.*,
// model.visual.*, lm_head.weight), plus the pre-4.52 layout (model.layers.*,
// model.embed_tokens, model.norm, visual.*) that transformers still converts on
// load. Then asks the backend whether it runs every op on those dtypes. Not
// done here: any reshaping or conversion of the data.
#include "model/model_weights.h"

#include "core/backend.h"

namespace vlm {

namespace {

std::string dir_of(const std::string &path) {
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

// Looks tensors up and records the first problem in `err`.
class Binder {
public:
    Binder(const SafetensorsSet &st, std::string &err, std::vector<std::string> *used)
        : st_(st), err_(err), used_(used) {
        dir_ = st.tensors().empty() ? std::string("(no tensors)")
                                    : dir_of(st.tensors().begin()->second.file);
    }

    bool has(const std::string &name) const { return st_.find(name) != nullptr; }

    // Required tensor of exactly `shape` (its dtype is the backend's
    // question: check_backend_supports).
    bool need(const std::string &name, std::vector<int64_t> shape, const TensorView *&out) {
        const TensorView *tv = st_.find(name);
        if (!tv) {
            err_ = "model directory " + dir_ + ": missing tensor " + name + " (expected shape " +
                   shape_string(shape) + ")";
            return false;
        }
        if (tv->shape != shape) {
            err_ = tv->file + ": tensor " + name + ": expected shape " + shape_string(shape) +
                   ", found " + shape_string(tv->shape) + " (config.json and the weights disagree)";
            return false;
        }
        out = tv;
        if (used_) used_->push_back(name);
        return true;
    }

private:
    const SafetensorsSet &st_;
    std::string &err_;
    std::vector<std::string> *used_;
    std::string dir_;
};

using Shape = std::vector<int64_t>;

bool bind_vision(Binder &b, const std::string &p, const VisionConfig &v, VisionWeights &w) {
    const int64_t d = v.hidden_size, out = v.out_hidden_size, inter = v.intermediate_size;
    const int64_t side = v.image_size / v.patch_size, m = v.spatial_merge_size;
    if (!b.need(p + "patch_embed.proj.weight",
                {d, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size},
                w.patch_embed_w) ||
        !b.need(p + "patch_embed.proj.bias", {d}, w.patch_embed_b) ||
        !b.need(p + "post_conv_layernorm.weight", {d}, w.post_conv_norm) ||
        !b.need(p + "embeddings.position_embedding.weight", {side * side, d}, w.pos_embed))
        return false;
    w.blocks.assign(size_t(v.depth), VisionBlockWeights{});
    for (int i = 0; i < v.depth; ++i) {
        const std::string bp = p + "blocks." + std::to_string(i) + ".";
        VisionBlockWeights &bw = w.blocks[size_t(i)];
        if (!b.need(bp + "norm1.weight", {d}, bw.norm1) ||
            !b.need(bp + "attn.qkv.weight", {3 * d, d}, bw.qkv) ||
            (v.attention_bias && !b.need(bp + "attn.qkv.bias", {3 * d}, bw.qkv_bias)) ||
            // transformers builds attn.proj without a bias whatever attention_bias says.
            !b.need(bp + "attn.proj.weight", {d, d}, bw.proj) ||
            !b.need(bp + "norm2.weight", {d}, bw.norm2) ||
            // The block MLP width is out_hidden_size, not intermediate_size.
            !b.need(bp + "mlp.gate_proj.weight", {out, d}, bw.gate) ||
            !b.need(bp + "mlp.up_proj.weight", {out, d}, bw.up) ||
            !b.need(bp + "mlp.down_proj.weight", {d, out}, bw.down))
            return false;
    }
    return b.need(p + "post_layernorm.weight", {d}, w.post_norm) &&
           b.need(p + "downsample.weight", {out, d, m, m}, w.downsample_w) &&
           b.need(p + "downsample.bias", {out}, w.downsample_b) &&
           b.need(p + "merger.proj.weight", {out, out}, w.merger_proj) &&
           b.need(p + "merger.post_projection_norm.weight", {out}, w.merger_norm_w) &&
           b.need(p + "merger.post_projection_norm.bias", {out}, w.merger_norm_b) &&
           b.need(p + "merger.gate_proj.weight", {inter, out}, w.merger_gate) &&
           b.need(p + "merger.up_proj.weight", {inter, out}, w.merger_up) &&
           b.need(p + "merger.down_proj.weight", {out, inter}, w.merger_down);
}

bool bind_text_layer(Binder &b, const std::string &lp, const TextConfig &t, TextLayerWeights &w) {
    const int64_t d = t.hidden_size, inter = t.intermediate_size;
    const int64_t q_out = int64_t(t.num_attention_heads) * t.head_dim;
    const int64_t kv_out = int64_t(t.num_key_value_heads) * t.head_dim;
    if (!b.need(lp + "input_layernorm.weight", {d}, w.input_norm) ||
        !b.need(lp + "self_attn.q_proj.weight", {q_out, d}, w.q) ||
        !b.need(lp + "self_attn.q_proj.bias", {q_out}, w.q_bias) ||
        !b.need(lp + "self_attn.k_proj.weight", {kv_out, d}, w.k) ||
        !b.need(lp + "self_attn.k_proj.bias", {kv_out}, w.k_bias) ||
        !b.need(lp + "self_attn.v_proj.weight", {kv_out, d}, w.v) ||
        !b.need(lp + "self_attn.v_proj.bias", {kv_out}, w.v_bias) ||
        !b.need(lp + "self_attn.o_proj.weight", {d, q_out}, w.o) ||
        !b.need(lp + "post_self_attn_layernorm.weight", {d}, w.post_self_attn_norm) ||
        !b.need(lp + "post_attention_layernorm.weight", {d}, w.post_attn_norm) ||
        !b.need(lp + "mlp.down_proj.weight", {d, inter}, w.down) ||
        !b.need(lp + "post_mlp_layernorm.weight", {d}, w.post_mlp_norm))
        return false;
    // transformers stores the fused gate_up (gate rows first); some converted
    // checkpoints split it.
    if (!b.has(lp + "mlp.gate_up_proj.weight") && b.has(lp + "mlp.gate_proj.weight"))
        return b.need(lp + "mlp.gate_proj.weight", {inter, d}, w.gate) &&
               b.need(lp + "mlp.up_proj.weight", {inter, d}, w.up);
    return b.need(lp + "mlp.gate_up_proj.weight", {2 * inter, d}, w.gate_up);
}

}  // namespace

bool bind_model_weights(const SafetensorsSet &st, const ModelConfig &cfg, ModelWeights &out,
                        std::string &err, std::vector<std::string> *used) {
    Binder b(st, err, used);
    const TextConfig &t = cfg.text;
    ModelWeights w;

    // Prefixes: the current layout unless the file clearly uses the old one.
    const bool old_text = !b.has("model.language_model.embed_tokens.weight") &&
                          b.has("model.embed_tokens.weight");
    const std::string tp = old_text ? "model." : "model.language_model.";
    const bool old_vision = !b.has("model.visual.patch_embed.proj.weight") &&
                            b.has("visual.patch_embed.proj.weight");
    const std::string vp = old_vision ? "visual." : "model.visual.";

    if (!bind_vision(b, vp, cfg.vision, w.vision)) return false;

    const int64_t d = t.hidden_size, vocab = t.vocab_size;
    if (!b.need(tp + "embed_tokens.weight", {vocab, d}, w.text.embed)) return false;
    w.text.layers.assign(size_t(t.num_hidden_layers), TextLayerWeights{});
    for (int i = 0; i < t.num_hidden_layers; ++i)
        if (!bind_text_layer(b, tp + "layers." + std::to_string(i) + ".", t,
                             w.text.layers[size_t(i)]))
            return false;
    if (!b.need(tp + "norm.weight", {d}, w.text.norm)) return false;
    // Tied: transformers points lm_head at the embedding (a stored lm_head is
    // ignored); untied: lm_head.weight must be present.
    if (cfg.tie_word_embeddings) w.text.lm_head = w.text.embed;
    else if (!b.need("lm_head.weight", {vocab, d}, w.text.lm_head)) return false;

    out = std::move(w);
    return true;
}

namespace {

// Asks the backend about one weight's dtype for the op that reads it.
class SupportCheck {
public:
    SupportCheck(const Backend &b, std::string &err) : b_(b), err_(err) {}

    bool operator()(Op op, const TensorView *tv) {
        if (tv == nullptr || b_.supports(OpQuery{op, tv->dtype, 0})) return true;
        err_ = tv->file + ": tensor " + tv->name + ": the " + b_.name() + " backend cannot run " +
               op_name(op) + " with " + dtype_name(tv->dtype) +
               " weights (convert the checkpoint to BF16 or F32, or use another backend)";
        return false;
    }

    bool attention(const char *tower, int head_dim) {
        if (b_.supports(OpQuery{Op::Attention, DType::F32, head_dim})) return true;
        err_ = std::string("model: the ") + b_.name() + " backend cannot run the " + tower +
               " attention with head_dim " + std::to_string(head_dim);
        return false;
    }

private:
    const Backend &b_;
    std::string &err_;
};

}  // namespace

bool check_backend_supports(const Backend &backend, const ModelConfig &cfg, const ModelWeights &w,
                            std::string &err) {
    SupportCheck ok(backend, err);
    const VisionWeights &v = w.vision;
    if (!ok(Op::Matmul, v.patch_embed_w) || !ok(Op::Matmul, v.patch_embed_b) ||
        !ok(Op::RmsNorm, v.post_conv_norm) || !ok(Op::PosEmbedBicubic, v.pos_embed))
        return false;
    for (const VisionBlockWeights &b : v.blocks)
        if (!ok(Op::RmsNorm, b.norm1) || !ok(Op::Matmul, b.qkv) || !ok(Op::Matmul, b.qkv_bias) ||
            !ok(Op::Matmul, b.proj) || !ok(Op::Matmul, b.proj_bias) || !ok(Op::RmsNorm, b.norm2) ||
            !ok(Op::Matmul, b.gate) || !ok(Op::Matmul, b.up) || !ok(Op::Matmul, b.down))
            return false;
    if (!ok(Op::RmsNorm, v.post_norm) || !ok(Op::Matmul, v.downsample_w) ||
        !ok(Op::Matmul, v.downsample_b) || !ok(Op::Matmul, v.merger_proj) ||
        !ok(Op::LayerNorm, v.merger_norm_w) || !ok(Op::LayerNorm, v.merger_norm_b) ||
        !ok(Op::Matmul, v.merger_gate) || !ok(Op::Matmul, v.merger_up) || !ok(Op::Matmul, v.merger_down))
        return false;
    const TextWeights &t = w.text;
    if (!ok(Op::Embed, t.embed) || !ok(Op::RmsNorm, t.norm) || !ok(Op::Matmul, t.lm_head)) return false;
    for (const TextLayerWeights &l : t.layers)
        if (!ok(Op::RmsNorm, l.input_norm) || !ok(Op::Matmul, l.q) || !ok(Op::Matmul, l.q_bias) ||
            !ok(Op::Matmul, l.k) || !ok(Op::Matmul, l.k_bias) || !ok(Op::Matmul, l.v) ||
            !ok(Op::Matmul, l.v_bias) || !ok(Op::Matmul, l.o) || !ok(Op::RmsNorm, l.post_self_attn_norm) ||
            !ok(Op::RmsNorm, l.post_attn_norm) || !ok(Op::Matmul, l.gate_up) || !ok(Op::Matmul, l.gate) ||
            !ok(Op::Matmul, l.up) || !ok(Op::Matmul, l.down) || !ok(Op::RmsNorm, l.post_mlp_norm))
            return false;
    const VisionConfig &vc = cfg.vision;
    return ok.attention("vision", vc.num_heads > 0 ? vc.hidden_size / vc.num_heads : 0) &&
           ok.attention("text", cfg.text.head_dim);
}

}  // namespace vlm
