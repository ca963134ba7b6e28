// weight_plan.h: in which format each weight of the model is held, chosen
// at load (`weights = bf16 | int8 | int4`): the checkpoint's own dtype, or
// quantized from it (core/quant.h) with no conversion step. Which weights a
// quantized plan covers: the text decoder's linear layers always; the vision
// encoder's linear layers (and merger) by option, and the vocabulary
// matrices (lm_head and token embedding table) by option, the embedding only
// on backends whose embed op reads quantized tables (cpu). Norms, biases,
// the position tables and the convolutions stay as stored.
#pragma once

#include "core/backend.h"
#include "model/model_weights.h"

#include <cstddef>
#include <string>

namespace vlm {

enum class WeightFormat { Stored, Int8, Int4 };

// "bf16" (as stored, whatever the checkpoint's float dtype), "int8", "int4".
bool        parse_weight_format(const std::string &s, WeightFormat &out);
const char *weight_format_name(WeightFormat f);
DType       weight_format_dtype(WeightFormat f);  // Q8, Q4; the stored dtype marker F32 for Stored

struct WeightPlan {
    WeightFormat format = WeightFormat::Stored;
    bool         vision = false;   // also quantize the vision tower's linear layers
    bool         lm_head = false;  // also quantize the lm_head and the token embedding table
    int          threads = 0;      // quantizer threads; 0: one per online CPU
    // Where quantized copies are kept between runs (model/quant_cache.h);
    // empty: quantize at every load.
    std::string  cache_dir;

    bool quantized() const { return format != WeightFormat::Stored; }
};

// Which kind of weight a matrix is, for the plan.
enum class WeightRole { TextLinear, VisionLinear, LmHead, Embedding, Other };

// The dtype `role` is held in under `plan`: `stored` or the plan's format.
DType planned_dtype(const WeightPlan &plan, WeightRole role, DType stored);

// Bytes the weights occupy once loaded under `plan` (every bound tensor
// once; a quantized lm_head tied to the embedding adds its own copy).
size_t planned_weight_bytes(const ModelWeights &w, const WeightPlan &plan);

}  // namespace vlm
