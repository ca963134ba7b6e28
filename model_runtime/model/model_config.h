// model_config.h: the numbers read from a Hugging Face GLM-4.6V model
// directory (config.json, generation_config.json, preprocessor_config.json).
// Nothing here is hard-coded to the real model: every id and size comes from
// the files. Both config.json forms are accepted: transformers 4.5x (top-level
// rope_theta / partial_rotary_factor, rope_scaling.mrope_section) and 5.x
// (text_config.rope_parameters).
#pragma once

#include "image/pixels.h"

#include <string>
#include <vector>

namespace vlm {

struct TextConfig {
    int    vocab_size              = 0;
    int    hidden_size             = 0;   // d_model
    int    intermediate_size       = 0;   // MLP width (gate_up is 2x this)
    int    num_hidden_layers       = 0;
    int    num_attention_heads     = 0;
    int    num_key_value_heads     = 0;
    int    head_dim                = 0;   // config value or hidden/heads
    int    rotary_dim              = 0;   // int(head_dim * partial_rotary_factor)
    double partial_rotary_factor   = 1.0;
    double rope_theta              = 10000.0;
    int    mrope_section[3]        = {0, 0, 0};
    float  rms_norm_eps            = 1e-5f;
    bool   attention_bias          = true;
    int    max_position_embeddings = 0;
};

struct VisionConfig {
    int   depth               = 0;
    int   hidden_size         = 0;
    int   num_heads           = 0;
    int   head_dim            = 0;   // hidden_size / num_heads
    int   intermediate_size   = 0;   // merger MLP width
    int   out_hidden_size     = 0;   // == text hidden_size; block MLP width
    int   patch_size          = 0;
    int   temporal_patch_size = 0;
    int   spatial_merge_size  = 0;
    int   image_size          = 0;   // position table side = image/patch
    int   in_channels         = 3;
    float rms_norm_eps        = 1e-5f;
    bool  attention_bias      = false;
    double rope_theta         = 10000.0; // rope_parameters.rope_theta (2-D RoPE)
};

struct ModelConfig {
    TextConfig       text;
    VisionConfig     vision;
    int              image_token_id       = -1;
    int              video_token_id       = -1;
    int              image_start_token_id = -1;
    int              image_end_token_id   = -1;
    int              video_start_token_id = -1;
    int              video_end_token_id   = -1;
    bool             tie_word_embeddings  = false;
    std::vector<int> eos_token_ids;       // from text_config / top level
    int              pad_token_id         = -1;
    std::string      torch_dtype;         // "bfloat16", "float32", ... (informational)
};

// generation_config.json, with transformers 5.23's global defaults
// (GenerationConfig._get_default_generation_params) for what it leaves out.
struct GenerationConfig {
    bool             file_present = false;   // the directory has the file
    bool             has_eos      = false;   // the file sets eos_token_id
    std::vector<int> eos_token_ids;
    int              pad_token_id = -1;
    bool             do_sample    = false;
    double           temperature  = 1.0;
    double           top_p        = 1.0;
    int              top_k        = 50;
    double           repetition_penalty = 1.0;
    int              max_new_tokens = 0;  // 0: not given
};

// The ids that end generation, as transformers' generate() picks them:
// generation_config.json's eos_token_id when the file sets it, else
// config.json's (top level, then text_config), else `tokenizer_eos` (the
// tokenizer_config.json eos_token; -1: none). Sorted, unique.
std::vector<int> stop_token_ids(const ModelConfig &cfg, const GenerationConfig &gen,
                                int tokenizer_eos);

// Each loader returns false and sets `err` to a one-line reason naming the
// file and the field; absent optional files leave the defaults.
bool load_model_config(const std::string &path, ModelConfig &out,
                       std::string &err);
bool load_generation_config(const std::string &path, GenerationConfig &out,
                            std::string &err);
bool load_preprocessor_config(const std::string &path, PreprocessorConfig &out,
                              std::string &err);

}  // namespace vlm
