// weight_plan.cpp: see weight_plan.h.
#include "model/weight_plan.h"
#include "core/quant.h"

#include <set>

namespace vlm {

bool parse_weight_format(const std::string &s, WeightFormat &out)
{
    if (s == "bf16") out = WeightFormat::Stored;
    else if (s == "int8") out = WeightFormat::Int8;
    else if (s == "int4") out = WeightFormat::Int4;
    else return false;
    return true;
}

const char *weight_format_name(WeightFormat f)
{
    switch (f) {
    case WeightFormat::Stored: return "bf16";
    case WeightFormat::Int8: return "int8";
    case WeightFormat::Int4: return "int4";
    }
    return "?";
}

DType weight_format_dtype(WeightFormat f)
{
    switch (f) {
    case WeightFormat::Int8: return DType::Q8;
    case WeightFormat::Int4: return DType::Q4;
    default: return DType::F32;
    }
}

DType planned_dtype(const WeightPlan &plan, WeightRole role, DType stored)
{
    if (!plan.quantized()) return stored;
    const bool covered = role == WeightRole::TextLinear || (role == WeightRole::VisionLinear && plan.vision) ||
                         ((role == WeightRole::LmHead || role == WeightRole::Embedding) && plan.lm_head);
    return covered ? weight_format_dtype(plan.format) : stored;
}

size_t planned_weight_bytes(const ModelWeights &w, const WeightPlan &plan)
{
    std::set<const void *> seen;  // tied tensors count once
    size_t total = 0;
    auto add = [&](const TensorView *v, WeightRole role) {
        if (!v) return;
        const DType dt = planned_dtype(plan, role, v->dtype);
        if (dtype_is_quantized(dt)) {  // a tied lm_head and embedding share one quantized copy
            const int64_t rows = v->shape.empty() ? 1 : v->shape[0];
            if (seen.insert(static_cast<const char *>(v->data) + 1).second)
                total += quant_tensor_bytes(dt, rows, v->numel() / rows);
            return;
        }
        if (seen.insert(v->data).second) total += v->nbytes;
    };
    const VisionWeights &vw = w.vision;
    for (const TensorView *v : {vw.patch_embed_w, vw.patch_embed_b, vw.post_conv_norm, vw.pos_embed, vw.post_norm,
                                vw.downsample_w, vw.downsample_b, vw.merger_norm_w, vw.merger_norm_b})
        add(v, WeightRole::Other);
    for (const TensorView *v : {vw.merger_proj, vw.merger_gate, vw.merger_up, vw.merger_down})
        add(v, WeightRole::VisionLinear);
    for (const VisionBlockWeights &b : vw.blocks) {
        for (const TensorView *v : {b.norm1, b.qkv_bias, b.proj_bias, b.norm2}) add(v, WeightRole::Other);
        for (const TensorView *v : {b.qkv, b.proj, b.gate, b.up, b.down}) add(v, WeightRole::VisionLinear);
    }
    const TextWeights &tw = w.text;
    add(tw.embed, WeightRole::Embedding);
    add(tw.norm, WeightRole::Other);
    add(tw.lm_head, WeightRole::LmHead);
    for (const TextLayerWeights &l : tw.layers) {
        for (const TensorView *v : {l.input_norm, l.q_bias, l.k_bias, l.v_bias, l.post_self_attn_norm,
                                    l.post_attn_norm, l.post_mlp_norm})
            add(v, WeightRole::Other);
        for (const TensorView *v : {l.q, l.k, l.v, l.o, l.gate_up, l.gate, l.up, l.down})
            add(v, WeightRole::TextLinear);
    }
    return total;
}

}  // namespace vlm
