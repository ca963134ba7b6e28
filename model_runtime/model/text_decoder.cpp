// text_decoder.cpp: Glm4vTextModel.forward + lm_head, op by op, on the
// Backend (transformers 5.23 modeling_glm4v.py is the authority). Inputs are
// validated here, once, so a bad request is an error and never a crash.
// Leaves out: video tokens (image_token_id rows are all taken from the given
// image rows, as transformers' masked_scatter does for images), sampling.
// Image features are spliced only when given (then their count must equal
// the number of image tokens); without them image tokens embed as text, as
// in transformers' decode steps.
#include "model/text_decoder.h"

#include <cmath>
#include <limits>

namespace vlm {

bool TextDecoder::init(Backend &backend, const ModelConfig &mcfg,
                       const TextWeights &w, AdoptedWeights &store,
                       std::string &err) {
    backend_ = &backend;
    cfg_ = mcfg.text;
    image_token_id_ = mcfg.image_token_id;
    const TextConfig &c = cfg_;
    if (c.hidden_size <= 0 || c.num_attention_heads <= 0 ||
        c.num_key_value_heads <= 0 || c.head_dim <= 0 ||
        c.num_attention_heads % c.num_key_value_heads || c.vocab_size <= 0 ||
        c.intermediate_size <= 0 || c.rotary_dim <= 0 || c.rotary_dim % 2 ||
        c.rotary_dim > c.head_dim ||
        c.mrope_section[0] + c.mrope_section[1] + c.mrope_section[2] !=
            c.rotary_dim / 2) {
        err = "config.json: text_config sizes are inconsistent (heads, head_dim, "
              "rotary dim or mrope_section)";
        return false;
    }
    q_dim_ = c.num_attention_heads * c.head_dim;
    kv_dim_ = c.num_key_value_heads * c.head_dim;
    rope_.n_head = c.num_attention_heads;
    rope_.head_dim = c.head_dim;
    rope_.rotary_dim = c.rotary_dim;
    rope_.theta = c.rope_theta;
    for (int i = 0; i < 3; ++i) rope_.section[i] = c.mrope_section[i];

    const int64_t d = c.hidden_size, inter = c.intermediate_size;
    if (!store.adopt_linear(w.embed, c.vocab_size, d, WeightRole::Embedding, embed_, err) ||
        !store.adopt_row(w.norm, norm_, err) ||
        !store.adopt_linear(w.lm_head, c.vocab_size, d, WeightRole::LmHead, lm_head_, err))
        return false;
    layers_.resize(w.layers.size());
    for (size_t i = 0; i < w.layers.size(); ++i) {
        const TextLayerWeights &lw = w.layers[i];
        TextLayerTensors &lt = layers_[i];
        if (!store.adopt_row(lw.input_norm, lt.input_norm, err) ||
            !store.adopt_linear(lw.q, q_dim_, d, WeightRole::TextLinear, lt.q, err) ||
            !store.adopt_linear(lw.k, kv_dim_, d, WeightRole::TextLinear, lt.k, err) ||
            !store.adopt_linear(lw.v, kv_dim_, d, WeightRole::TextLinear, lt.v, err) ||
            (lw.q_bias && !store.adopt_row(lw.q_bias, lt.q_bias, err)) ||
            (lw.k_bias && !store.adopt_row(lw.k_bias, lt.k_bias, err)) ||
            (lw.v_bias && !store.adopt_row(lw.v_bias, lt.v_bias, err)) ||
            !store.adopt_linear(lw.o, d, q_dim_, WeightRole::TextLinear, lt.o, err) ||
            !store.adopt_row(lw.post_self_attn_norm, lt.post_self_attn_norm, err) ||
            !store.adopt_row(lw.post_attn_norm, lt.post_attn_norm, err) ||
            !store.adopt_linear(lw.down, d, inter, WeightRole::TextLinear, lt.down, err) ||
            !store.adopt_row(lw.post_mlp_norm, lt.post_mlp_norm, err))
            return false;
        if (lw.gate_up) {
            if (!store.adopt_linear(lw.gate_up, 2 * inter, d, WeightRole::TextLinear, lt.gate_up, err)) return false;
        } else if (!store.adopt_linear(lw.gate, inter, d, WeightRole::TextLinear, lt.gate, err) ||
                   !store.adopt_linear(lw.up, inter, d, WeightRole::TextLinear, lt.up, err)) {
            return false;
        }
    }
    if (layers_.empty()) {
        err = "config.json: text_config.num_hidden_layers is 0";
        return false;
    }
    return true;
}

bool TextDecoder::new_cache(int64_t capacity, KvCache &cache,
                            std::string &err) const {
    if (capacity <= 0 ||
        size_t(capacity) > (size_t(1) << 40) / (size_t(kv_dim_) * sizeof(float))) {
        err = "new_cache: capacity " + std::to_string(capacity) + " out of range";
        return false;
    }
    KvCache fresh;
    fresh.capacity = capacity;
    for (size_t l = 0; l < layers_.size(); ++l) {
        fresh.k.emplace_back(*backend_, DType::F32, capacity, kv_dim_);
        fresh.v.emplace_back(*backend_, DType::F32, capacity, kv_dim_);
        if (fresh.k.back().t.empty() || fresh.v.back().t.empty()) {
            err = "new_cache: out of device memory for " + std::to_string(capacity) +
                  " tokens";
            return false;
        }
    }
    cache = std::move(fresh);
    return true;
}

bool TextDecoder::validate(const std::vector<int32_t> &ids,
                           const std::vector<int32_t> &positions,
                           const float *image_embeds, int64_t n_image_rows,
                           const KvCache &cache, std::string &err) const {
    const int64_t n = int64_t(ids.size());
    if (n == 0) {
        err = "forward: no tokens";
        return false;
    }
    if (positions.size() != 3 * ids.size()) {
        err = "forward: positions hold " + std::to_string(positions.size()) +
              " entries, expected 3 x " + std::to_string(n);
        return false;
    }
    int64_t n_image_tokens = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (ids[i] < 0 || ids[i] >= cfg_.vocab_size) {
            err = "forward: token id " + std::to_string(ids[i]) + " at " +
                  std::to_string(i) + " outside vocabulary of " +
                  std::to_string(cfg_.vocab_size);
            return false;
        }
        if (ids[i] == image_token_id_) ++n_image_tokens;
    }
    // As transformers: features, when given, must match the image tokens one
    // to one; without features (decode, where the model itself may emit
    // image_token_id) image tokens keep their ordinary embedding.
    if (n_image_rows < 0 || (n_image_rows > 0 && !image_embeds) ||
        (n_image_rows > 0 && n_image_tokens != n_image_rows)) {
        err = "forward: " + std::to_string(n_image_tokens) + " image tokens but " +
              std::to_string(n_image_rows) + " image feature rows";
        return false;
    }
    if (cache.k.size() != layers_.size() || cache.v.size() != layers_.size() ||
        cache.capacity <= 0) {
        err = "forward: KV cache was not made by this model";
        return false;
    }
    for (size_t l = 0; l < layers_.size(); ++l) {
        if (cache.k[l].t.rows != cache.capacity || cache.k[l].t.cols != kv_dim_ ||
            cache.v[l].t.rows != cache.capacity || cache.v[l].t.cols != kv_dim_) {
            err = "forward: KV cache layer " + std::to_string(l) +
                  " does not match the model";
            return false;
        }
    }
    if (cache.n_past < 0 || cache.n_past > cache.capacity ||
        n > cache.capacity - cache.n_past) {
        err = "forward: KV cache full (" + std::to_string(cache.n_past) + " + " +
              std::to_string(n) + " > capacity " + std::to_string(cache.capacity) + ")";
        return false;
    }
    return true;
}

bool TextDecoder::ensure_scratch(int64_t n_tok, int64_t n_logit_rows,
                                 std::string &err) {
    TextScratch &s = scratch_;
    Backend &b = *backend_;
    const int64_t d = cfg_.hidden_size, inter = cfg_.intermediate_size;
    if (n_tok > s.rows) {
        if (size_t(n_tok) > (size_t(1) << 40) /
                                (size_t(std::max<int64_t>(2 * inter, q_dim_)) * 4)) {
            err = "forward: too many tokens in one call";
            return false;
        }
        s.rows = 0;
        s.x = DeviceBuffer(b, DType::F32, n_tok, d);
        s.xn = DeviceBuffer(b, DType::F32, n_tok, d);
        s.q = DeviceBuffer(b, DType::F32, n_tok, q_dim_);
        s.k = DeviceBuffer(b, DType::F32, n_tok, kv_dim_);
        s.v = DeviceBuffer(b, DType::F32, n_tok, kv_dim_);
        s.attn = DeviceBuffer(b, DType::F32, n_tok, q_dim_);
        s.branch = DeviceBuffer(b, DType::F32, n_tok, d);
        s.branchn = DeviceBuffer(b, DType::F32, n_tok, d);
        s.gate_up = DeviceBuffer(b, DType::F32, n_tok, 2 * inter);
        s.act = DeviceBuffer(b, DType::F32, n_tok, inter);
        for (const DeviceBuffer *p : {&s.x, &s.xn, &s.q, &s.k, &s.v, &s.attn,
                                      &s.branch, &s.branchn, &s.gate_up, &s.act})
            if (p->t.empty()) {
                err = "forward: out of device memory for " + std::to_string(n_tok) +
                      " tokens";
                return false;
            }
        s.rows = n_tok;
    }
    if (n_logit_rows > s.logit_rows) {
        s.logit_rows = 0;
        s.logits = DeviceBuffer(b, DType::F32, n_logit_rows, cfg_.vocab_size);
        if (s.logits.t.empty()) {
            err = "forward: out of device memory for logits";
            return false;
        }
        s.logit_rows = n_logit_rows;
    }
    return true;
}

// Rows whose id is image_token_id take the image features in order
// (masked_scatter); each run of consecutive image tokens is one upload.
void TextDecoder::splice_image_rows(const std::vector<int32_t> &ids,
                                    const float *image_embeds, Tensor &x) {
    const size_t row_floats = size_t(cfg_.hidden_size);
    int64_t next_feature = 0;
    for (size_t i = 0; i < ids.size();) {
        if (ids[i] != image_token_id_) {
            ++i;
            continue;
        }
        size_t run = 1;
        while (i + run < ids.size() && ids[i + run] == image_token_id_) ++run;
        Tensor dst = x.row_slice(int64_t(i), int64_t(run));
        backend_->upload_rows(dst, image_embeds + size_t(next_feature) * row_floats);
        next_feature += int64_t(run);
        i += run;
    }
}

TextStepViews TextDecoder::step_views(int64_t n) {
    TextScratch &s = scratch_;
    const int64_t inter = cfg_.intermediate_size;
    TextStepViews t;
    t.x = s.x.t.row_slice(0, n);
    t.xn = s.xn.t.row_slice(0, n);
    t.q = s.q.t.row_slice(0, n);
    t.k = s.k.t.row_slice(0, n);
    t.v = s.v.t.row_slice(0, n);
    t.attn = s.attn.t.row_slice(0, n);
    t.branch = s.branch.t.row_slice(0, n);
    t.branchn = s.branchn.t.row_slice(0, n);
    t.gate_up = s.gate_up.t.row_slice(0, n);
    t.act = s.act.t.row_slice(0, n);
    t.gate = t.gate_up.col_slice(0, inter);
    t.up = t.gate_up.col_slice(inter, inter);
    return t;
}

AttentionParams TextDecoder::attention_params() const {
    AttentionParams ap;
    ap.n_head = cfg_.num_attention_heads;
    ap.n_kv_head = cfg_.num_key_value_heads;
    ap.head_dim = cfg_.head_dim;
    ap.scale = float(1.0 / std::sqrt(double(cfg_.head_dim)));
    ap.causal = true;
    return ap;
}

void TextDecoder::mlp_block(const TextLayerTensors &lt, TextStepViews &t, const RowMatmul &matmul) {
    Backend &b = *backend_;
    const float eps = cfg_.rms_norm_eps;
    b.rms_norm(t.x, lt.post_attn_norm, eps, t.xn);
    if (!lt.gate_up.empty()) {
        matmul(t.xn, lt.gate_up, t.gate_up);                     // (n_tok, 2*inter)
    } else {
        matmul(t.xn, lt.gate, t.gate);                           // (n_tok, inter)
        matmul(t.xn, lt.up, t.up);
    }
    b.silu_mul(t.gate, t.up, t.act);                             // (n_tok, inter)
    matmul(t.act, lt.down, t.branch);                            // (n_tok, d_model)
    b.rms_norm(t.branch, lt.post_mlp_norm, eps, t.branchn);
    b.add(t.x, t.branchn, t.x);
}

bool TextDecoder::forward(const std::vector<int32_t> &ids,
                          const std::vector<int32_t> &positions,
                          const float *image_embeds, int64_t n_image_rows,
                          KvCache &cache, bool all_logits,
                          std::vector<float> &logits, std::string &err) {
    if (!validate(ids, positions, image_embeds, n_image_rows, cache, err))
        return false;
    const int64_t n = int64_t(ids.size());
    const int64_t n_out = all_logits ? n : 1;
    if (!ensure_scratch(n, n_out, err)) return false;

    Backend &b = *backend_;
    const TextConfig &c = cfg_;
    const float eps = c.rms_norm_eps;
    const int64_t n_past = cache.n_past;
    TextScratch &s = scratch_;
    TextStepViews t = step_views(n);
    Tensor &x = t.x, &xn = t.xn, &q = t.q, &k = t.k, &v = t.v, &attn = t.attn;
    Tensor &branch = t.branch, &branchn = t.branchn;

    TextRopeParams rope_q = rope_, rope_k = rope_;
    rope_k.n_head = c.num_key_value_heads;
    AttentionParams ap = attention_params();
    ap.kv_offset = n_past;

    // embed_tokens, image rows spliced in                (n_tok, d_model)
    b.embed(embed_, ids.data(), n, x);
    if (n_image_rows > 0) splice_image_rows(ids, image_embeds, x);

    for (size_t l = 0; l < layers_.size(); ++l) {
        const TextLayerTensors &lt = layers_[l];
        Tensor k_cache_new = cache.k[l].t.row_slice(n_past, n);
        Tensor v_cache_new = cache.v[l].t.row_slice(n_past, n);
        Tensor k_all = cache.k[l].t.row_slice(0, n_past + n);
        Tensor v_all = cache.v[l].t.row_slice(0, n_past + n);

        // self-attention sub-block (sandwich norms)
        b.rms_norm(x, lt.input_norm, eps, xn);
        b.matmul(xn, lt.q, lt.q_bias.empty() ? nullptr : &lt.q_bias, q);  // (n_tok, n_head*hd)
        b.matmul(xn, lt.k, lt.k_bias.empty() ? nullptr : &lt.k_bias, k);  // (n_tok, n_kv_head*hd)
        b.matmul(xn, lt.v, lt.v_bias.empty() ? nullptr : &lt.v_bias, v);
        b.rope_text(q, positions.data(), rope_q);
        b.rope_text(k, positions.data(), rope_k);
        b.copy(k, k_cache_new);
        b.copy(v, v_cache_new);
        b.attention(q, k_all, v_all, ap, attn);                  // (n_tok, n_head*hd)
        b.matmul(attn, lt.o, nullptr, branch);                   // (n_tok, d_model)
        b.rms_norm(branch, lt.post_self_attn_norm, eps, branchn);
        b.add(x, branchn, x);

        mlp_block(lt, t, [&](const Tensor &in, const Tensor &w, Tensor &out) {
            b.matmul(in, w, nullptr, out);
        });
    }

    // final norm and lm_head on the rows whose logits are wanted
    Tensor x_out = x.row_slice(n - n_out, n_out);
    Tensor xn_out = xn.row_slice(0, n_out);
    Tensor logits_dev = s.logits.t.row_slice(0, n_out);
    b.rms_norm(x_out, norm_, eps, xn_out);                       // (n_out, d_model)
    b.matmul(xn_out, lm_head_, nullptr, logits_dev);             // (n_out, vocab)

    logits.resize(size_t(n_out) * size_t(c.vocab_size));
    b.download_rows(logits.data(), logits_dev);
    cache.n_past = n_past + n;
    return true;
}

}  // namespace vlm
