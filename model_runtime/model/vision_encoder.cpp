// vision_encoder.cpp: Glm4vVisionModel.forward + Glm4vVisionPatchMerger, op
// by op, on the Backend (transformers 5.23 modeling_glm4v.py is the
// authority). All activations live in DeviceBuffers allocated once per call;
// pixels go up and the merged tokens come down through upload/download only.
// Leaves out: videos as t > 1 grids (transformers flattens videos into t = 1
// frames before the tower), batching images of several requests.
#include "model/vision_encoder.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace vlm {

namespace {

// Per-patch host metadata in the row order of pixel_values (merge order).
struct PatchLayout {
    std::vector<int32_t> row, col;        // (n_patch) position in the image grid
    std::vector<int32_t> grid_h, grid_w;  // (n_patch) that image's grid
    std::vector<int32_t> segments;        // one length h*w per image frame
};

// transformers' get_vision_position_ids + get_vision_cu_seqlens: tokens of an
// image frame ordered (block_row, block_col, inner_row, inner_col), frames
// repeated t times, one attention segment per frame.
void build_patch_layout(const std::vector<ImageGrid> &grids, int merge,
                        PatchLayout &lay) {
    for (const ImageGrid &g : grids) {
        for (int t = 0; t < g.t; ++t) {
            for (int br = 0; br < g.h / merge; ++br)
                for (int bc = 0; bc < g.w / merge; ++bc)
                    for (int ir = 0; ir < merge; ++ir)
                        for (int ic = 0; ic < merge; ++ic) {
                            lay.row.push_back(br * merge + ir);
                            lay.col.push_back(bc * merge + ic);
                            lay.grid_h.push_back(g.h);
                            lay.grid_w.push_back(g.w);
                        }
            lay.segments.push_back(g.h * g.w);
        }
    }
}

// All activations of one encode call; sizes computed here only.
struct VisionScratch {
    DeviceBuffer pixels;   // (n_patch, patch_dim)
    DeviceBuffer x;        // (n_patch, d_vis) residual stream
    DeviceBuffer xn;       // (n_patch, d_vis) normed
    DeviceBuffer qkv;      // (n_patch, 3*d_vis)
    DeviceBuffer attn;     // (n_patch, d_vis)
    DeviceBuffer branch;   // (n_patch, d_vis) attention / MLP output
    DeviceBuffer gate_up;  // (n_patch, 2*out_hidden) block MLP
    DeviceBuffer act;      // (n_patch, out_hidden)
    DeviceBuffer merged;   // (n_img_tok, out_hidden) downsample output
    DeviceBuffer proj;     // (n_img_tok, out_hidden) proj, then GELU output
    DeviceBuffer projn;    // (n_img_tok, out_hidden) LayerNorm output
    DeviceBuffer mgate_up; // (n_img_tok, 2*inter)
    DeviceBuffer mact;     // (n_img_tok, inter)
    DeviceBuffer out;      // (n_img_tok, out_hidden)

    VisionScratch(Backend &b, const VisionConfig &c, int patch_dim,
                  int64_t n_patch, int64_t n_img_tok)
        : pixels(b, DType::F32, n_patch, patch_dim),
          x(b, DType::F32, n_patch, c.hidden_size),
          xn(b, DType::F32, n_patch, c.hidden_size),
          qkv(b, DType::F32, n_patch, 3 * int64_t(c.hidden_size)),
          attn(b, DType::F32, n_patch, c.hidden_size),
          branch(b, DType::F32, n_patch, c.hidden_size),
          gate_up(b, DType::F32, n_patch, 2 * int64_t(c.out_hidden_size)),
          act(b, DType::F32, n_patch, c.out_hidden_size),
          merged(b, DType::F32, n_img_tok, c.out_hidden_size),
          proj(b, DType::F32, n_img_tok, c.out_hidden_size),
          projn(b, DType::F32, n_img_tok, c.out_hidden_size),
          mgate_up(b, DType::F32, n_img_tok, 2 * int64_t(c.intermediate_size)),
          mact(b, DType::F32, n_img_tok, c.intermediate_size),
          out(b, DType::F32, n_img_tok, c.out_hidden_size) {}

    bool ok() const {
        for (const DeviceBuffer *d : {&pixels, &x, &xn, &qkv, &attn, &branch,
                                      &gate_up, &act, &merged, &proj, &projn,
                                      &mgate_up, &mact, &out})
            if (d->t.empty()) return false;
        return true;
    }
};

// Largest activation width per patch, for the overflow check of the sizes.
int64_t widest_row(const VisionConfig &c, int patch_dim) {
    int64_t w = patch_dim;
    w = std::max<int64_t>(w, 3 * int64_t(c.hidden_size));
    w = std::max<int64_t>(w, 2 * int64_t(c.out_hidden_size));
    w = std::max<int64_t>(w, 2 * int64_t(c.intermediate_size));
    return w;
}

}  // namespace

bool VisionEncoder::init(Backend &backend, const ModelConfig &mcfg,
                         const VisionWeights &w, AdoptedWeights &store,
                         std::string &err) {
    backend_ = &backend;
    cfg_ = mcfg.vision;
    const VisionConfig &c = cfg_;
    if (c.hidden_size <= 0 || c.num_heads <= 0 || c.hidden_size % c.num_heads ||
        (c.hidden_size / c.num_heads) % 4 || c.patch_size <= 0 ||
        c.temporal_patch_size <= 0 || c.spatial_merge_size <= 0 ||
        c.in_channels <= 0 || c.image_size < c.patch_size ||
        c.out_hidden_size != mcfg.text.hidden_size || !(c.rope_theta > 0.0)) {
        err = "config.json: vision_config is inconsistent (hidden_size, rope_theta, "
              "num_heads, patch/merge sizes or out_hidden_size != text hidden_size)";
        return false;
    }
    patch_dim_ = c.in_channels * c.temporal_patch_size * c.patch_size * c.patch_size;
    pos_side_ = c.image_size / c.patch_size;
    const int64_t d = c.hidden_size;

    // Conv3d with kernel == stride is a matmul over the flattened (c, t, y, x)
    // patch, the order the image processor writes.
    if (!store.adopt(w.patch_embed_w, d, patch_dim_, patch_w_, err) ||
        !store.adopt_row(w.patch_embed_b, patch_b_, err) ||
        !store.adopt_row(w.post_conv_norm, post_conv_norm_, err) ||
        !store.adopt(w.pos_embed, int64_t(pos_side_) * pos_side_, d, pos_embed_, err))
        return false;

    blocks_.resize(w.blocks.size());
    for (size_t i = 0; i < w.blocks.size(); ++i) {
        const VisionBlockWeights &bw = w.blocks[i];
        VisionBlockTensors &bt = blocks_[i];
        if (!store.adopt_row(bw.norm1, bt.norm1, err) ||
            !store.adopt_linear(bw.qkv, 3 * d, d, WeightRole::VisionLinear, bt.qkv, err) ||
            (bw.qkv_bias && !store.adopt_row(bw.qkv_bias, bt.qkv_bias, err)) ||
            !store.adopt_linear(bw.proj, d, d, WeightRole::VisionLinear, bt.proj, err) ||
            (bw.proj_bias && !store.adopt_row(bw.proj_bias, bt.proj_bias, err)) ||
            !store.adopt_row(bw.norm2, bt.norm2, err) ||
            !store.adopt_linear(bw.gate, c.out_hidden_size, d, WeightRole::VisionLinear, bt.gate, err) ||
            !store.adopt_linear(bw.up, c.out_hidden_size, d, WeightRole::VisionLinear, bt.up, err) ||
            !store.adopt_linear(bw.down, d, c.out_hidden_size, WeightRole::VisionLinear, bt.down, err))
            return false;
    }
    if (!store.adopt_row(w.post_norm, post_norm_, err)) return false;

    // The downsample Conv2d (k = s = merge) sees each group of merge^2
    // consecutive tokens as a (d_vis, merge, merge) patch: token ir*merge+ic
    // sits at spatial (ir, ic). Its weight is stored (out, d_vis, ir, ic);
    // we permute it once to (out, ir, ic, d_vis) so that the group's tokens,
    // concatenated token-major (a free reshape of the (n_patch, d_vis)
    // activation to (n_img_tok, merge^2*d_vis)), are directly the matmul
    // input row: no transpose at run time. The copy keeps the stored dtype.
    const TensorView *dw = w.downsample_w;
    const int m2 = c.spatial_merge_size * c.spatial_merge_size;
    const int64_t oh = c.out_hidden_size;
    if (dw == nullptr || dw->numel() != oh * d * m2) {
        err = "model: downsample weight missing or not (out_hidden, d_vis, merge, merge)";
        return false;
    }
    {
        const size_t es = dtype_size(dw->dtype);
        std::vector<uint8_t> permuted(dw->nbytes);
        const uint8_t *src = static_cast<const uint8_t *>(dw->data);
        for (int64_t o = 0; o < oh; ++o)
            for (int64_t ch = 0; ch < d; ++ch)
                for (int s = 0; s < m2; ++s) {
                    size_t from = size_t((o * d + ch) * m2 + s) * es;
                    size_t to = size_t(o * m2 * d + s * d + ch) * es;
                    std::memcpy(&permuted[to], &src[from], es);
                }
        if (!store.upload_copy(permuted.data(), dw->dtype, oh, m2 * d,
                               downsample_w_, err))
            return false;
    }
    if (!store.adopt_row(w.downsample_b, downsample_b_, err) ||
        !store.adopt_linear(w.merger_proj, oh, oh, WeightRole::VisionLinear, merger_proj_, err) ||
        !store.adopt_row(w.merger_norm_w, merger_norm_w_, err) ||
        !store.adopt_row(w.merger_norm_b, merger_norm_b_, err) ||
        !store.adopt_linear(w.merger_gate, c.intermediate_size, oh, WeightRole::VisionLinear, merger_gate_, err) ||
        !store.adopt_linear(w.merger_up, c.intermediate_size, oh, WeightRole::VisionLinear, merger_up_, err) ||
        !store.adopt_linear(w.merger_down, oh, c.intermediate_size, WeightRole::VisionLinear, merger_down_, err))
        return false;
    return true;
}

bool VisionEncoder::encode(const PixelBatch &px, std::vector<float> &out,
                           std::string &err) const {
    const VisionConfig &c = cfg_;
    Backend &b = *backend_;
    const int merge = c.spatial_merge_size;

    // ---- validate the batch (untrusted sizes) ----
    if (px.grids.empty()) {
        err = "encode_images: no images";
        return false;
    }
    if (px.patch_dim != patch_dim_) {
        err = "encode_images: patch_dim " + std::to_string(px.patch_dim) +
              " != model's " + std::to_string(patch_dim_);
        return false;
    }
    int64_t n_patch = 0;
    for (const ImageGrid &g : px.grids) {
        if (g.t <= 0 || g.h <= 0 || g.w <= 0 || g.h % merge || g.w % merge ||
            g.h > (1 << 20) || g.w > (1 << 20) || g.t > (1 << 20)) {
            err = "encode_images: bad grid (" + std::to_string(g.t) + "," +
                  std::to_string(g.h) + "," + std::to_string(g.w) +
                  "): sides must be positive multiples of the merge size";
            return false;
        }
        n_patch += int64_t(g.t) * g.h * g.w;
        if (n_patch > std::numeric_limits<int32_t>::max()) {
            err = "encode_images: too many patches";
            return false;
        }
    }
    if (n_patch != px.n_patch ||
        px.values.size() != size_t(n_patch) * size_t(patch_dim_)) {
        err = "encode_images: pixel values hold " + std::to_string(px.values.size()) +
              " floats, grids need " + std::to_string(n_patch) + " x " +
              std::to_string(patch_dim_);
        return false;
    }
    if (size_t(n_patch) > (size_t(1) << 40) / size_t(widest_row(c, patch_dim_))) {
        err = "encode_images: batch too large";
        return false;
    }
    const int64_t n_img_tok = n_patch / (merge * merge);
    const int64_t d = c.hidden_size;
    const int64_t oh = c.out_hidden_size;
    const int n_head = c.num_heads;
    const int head_dim = int(d / n_head);

    PatchLayout lay;
    build_patch_layout(px.grids, merge, lay);

    VisionScratch s(b, c, patch_dim_, n_patch, n_img_tok);
    if (!s.ok()) {
        err = "encode_images: out of device memory for " + std::to_string(n_patch) +
              " patches";
        return false;
    }
    b.upload_rows(s.pixels.t, px.values.data());

    // patch_embed: Conv3d as matmul                      (n_patch, d_vis)
    b.matmul(s.pixels.t, patch_w_, &patch_b_, s.xn.t);
    // post_conv_layernorm (RMSNorm)                       (n_patch, d_vis)
    b.rms_norm(s.xn.t, post_conv_norm_, c.rms_norm_eps, s.x.t);
    // embeddings: += bicubic-resampled learned table      (n_patch, d_vis)
    b.add_pos_embed_bicubic(pos_embed_, pos_side_, lay.row.data(), lay.col.data(),
                            lay.grid_h.data(), lay.grid_w.data(), s.x.t);

    AttentionParams ap;
    ap.n_head = n_head;
    ap.n_kv_head = n_head;
    ap.head_dim = head_dim;
    ap.scale = float(1.0 / std::sqrt(double(head_dim)));
    ap.causal = false;
    ap.segments = lay.segments.data();
    ap.n_segments = int(lay.segments.size());

    Tensor q = s.qkv.t.col_slice(0, d);        // (n_patch, d_vis) views
    Tensor k = s.qkv.t.col_slice(d, d);
    Tensor v = s.qkv.t.col_slice(2 * d, d);
    Tensor gate = s.gate_up.t.col_slice(0, oh);  // (n_patch, out_hidden)
    Tensor up = s.gate_up.t.col_slice(oh, oh);

    for (const VisionBlockTensors &bt : blocks_) {
        // x = x + proj(attn(rope(qkv(norm1(x)))))
        b.rms_norm(s.x.t, bt.norm1, c.rms_norm_eps, s.xn.t);
        b.matmul(s.xn.t, bt.qkv, bt.qkv_bias.empty() ? nullptr : &bt.qkv_bias,
                 s.qkv.t);                                    // (n_patch, 3*d_vis)
        b.rope_vision(q, lay.row.data(), lay.col.data(), n_head, head_dim, c.rope_theta);
        b.rope_vision(k, lay.row.data(), lay.col.data(), n_head, head_dim, c.rope_theta);
        b.attention(q, k, v, ap, s.attn.t);                   // (n_patch, d_vis)
        b.matmul(s.attn.t, bt.proj, bt.proj_bias.empty() ? nullptr : &bt.proj_bias,
                 s.branch.t);
        b.add(s.x.t, s.branch.t, s.x.t);
        // x = x + down(silu(gate(h)) * up(h)), h = norm2(x)
        b.rms_norm(s.x.t, bt.norm2, c.rms_norm_eps, s.xn.t);
        b.matmul(s.xn.t, bt.gate, nullptr, gate);              // (n_patch, out_hidden)
        b.matmul(s.xn.t, bt.up, nullptr, up);
        b.silu_mul(gate, up, s.act.t);
        b.matmul(s.act.t, bt.down, nullptr, s.branch.t);       // (n_patch, d_vis)
        b.add(s.x.t, s.branch.t, s.x.t);
    }

    // post_layernorm (RMSNorm)                            (n_patch, d_vis)
    b.rms_norm(s.x.t, post_norm_, c.rms_norm_eps, s.xn.t);
    // downsample: merge^2 consecutive tokens as one row   (n_img_tok, merge^2*d_vis)
    Tensor groups = s.xn.t;
    groups.rows = n_img_tok;
    groups.cols = d * merge * merge;
    groups.stride = groups.cols;
    b.matmul(groups, downsample_w_, &downsample_b_, s.merged.t);  // (n_img_tok, out_hidden)
    // merger: proj, LayerNorm, GELU(erf), SwiGLU           (n_img_tok, out_hidden)
    b.matmul(s.merged.t, merger_proj_, nullptr, s.proj.t);
    b.layer_norm(s.proj.t, merger_norm_w_, merger_norm_b_, 1e-5f, s.projn.t);
    b.gelu(s.projn.t, s.proj.t);  // proj is free again after the norm
    const int64_t inter = c.intermediate_size;
    Tensor mgate = s.mgate_up.t.col_slice(0, inter);   // (n_img_tok, inter)
    Tensor mup = s.mgate_up.t.col_slice(inter, inter);
    b.matmul(s.proj.t, merger_gate_, nullptr, mgate);
    b.matmul(s.proj.t, merger_up_, nullptr, mup);
    b.silu_mul(mgate, mup, s.mact.t);
    b.matmul(s.mact.t, merger_down_, nullptr, s.out.t);  // (n_img_tok, out_hidden)

    out.resize(size_t(n_img_tok) * size_t(oh));
    b.download_rows(out.data(), s.out.t);
    return true;
}

}  // namespace vlm
