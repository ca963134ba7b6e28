// model_config.cpp: reads config.json, generation_config.json and
// preprocessor_config.json of a GLM-4.6V model directory and checks that the
// numbers describe a model we can run. Key names and defaults follow
// transformers 5.23 (Glm4vConfig, Glm4vTextConfig, Glm4vVisionConfig,
// Glm4vImageProcessor), plus the 4.5x spellings (rope_scaling, top-level
// rope_theta / partial_rotary_factor, min_pixels / max_pixels). Not handled:
// rope types other than "default", video settings, tokenizer files.
#include "model/model_config.h"

#include <jansson.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>

namespace vlm {

namespace {

struct JsonRef {
    json_t *j = nullptr;
    JsonRef() = default;
    explicit JsonRef(json_t *v) : j(v) {}
    ~JsonRef() { if (j) json_decref(j); }
    JsonRef(const JsonRef &) = delete;
    JsonRef &operator=(const JsonRef &) = delete;
};

// Loads `path` as a JSON object. `missing` is set (and true returned) when the
// file does not exist, so callers decide whether that is an error.
bool load_json_object(const std::string &path, JsonRef &out, bool &missing, std::string &err) {
    missing = false;
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) {
            missing = true;
            return true;
        }
        err = path + ": " + strerror(errno);
        return false;
    }
    json_error_t jerr;
    json_t *root = json_load_file(path.c_str(), JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        err = path + ": invalid JSON: " + jerr.text + " (line " + std::to_string(jerr.line) + ")";
        return false;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        err = path + ": top-level JSON value is not an object";
        return false;
    }
    out.j = root;
    return true;
}

// Typed access to the fields of one JSON object. Absent or null fields keep
// the caller's default unless marked required. Errors name file and field.
class Fields {
public:
    Fields(const std::string &file, json_t *obj, std::string prefix, std::string &err)
        : file_(file), obj_(obj), prefix_(std::move(prefix)), err_(err) {}

    json_t *get(const char *key) const {
        json_t *v = obj_ ? json_object_get(obj_, key) : nullptr;
        return json_is_null(v) ? nullptr : v;
    }
    bool has(const char *key) const { return get(key) != nullptr; }
    // The value as stored, JSON null included.
    json_t *raw(const char *key) const { return obj_ ? json_object_get(obj_, key) : nullptr; }

    bool fail(const char *key, const std::string &what) const {
        err_ = file_ + ": " + prefix_ + key + ": " + what;
        return false;
    }

    bool integer(const char *key, long &out, bool required = false) const {
        json_t *v = get(key);
        if (!v) return required ? fail(key, "missing required field") : true;
        if (json_is_integer(v)) {
            out = long(json_integer_value(v));
            return true;
        }
        // Some writers emit 2.0 for 2; accept exact integral reals.
        if (json_is_real(v)) {
            double d = json_real_value(v);
            if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
                out = long(d);
                return true;
            }
        }
        return fail(key, "expected an integer");
    }
    bool integer(const char *key, int &out, bool required = false) const {
        long v = out;
        if (!integer(key, v, required)) return false;
        if (v < INT_MIN || v > INT_MAX) return fail(key, "integer out of range");
        out = int(v);
        return true;
    }
    bool number(const char *key, double &out) const {
        json_t *v = get(key);
        if (!v) return true;
        if (!json_is_number(v)) return fail(key, "expected a number");
        out = json_number_value(v);
        if (!std::isfinite(out)) return fail(key, "expected a finite number");
        return true;
    }
    bool number(const char *key, float &out) const {
        double d = out;
        if (!number(key, d)) return false;
        out = float(d);
        return true;
    }
    bool boolean(const char *key, bool &out) const {
        json_t *v = get(key);
        if (!v) return true;
        if (!json_is_boolean(v)) return fail(key, "expected true or false");
        out = json_is_true(v);
        return true;
    }
    bool string(const char *key, std::string &out) const {
        json_t *v = get(key);
        if (!v) return true;
        if (!json_is_string(v)) return fail(key, "expected a string");
        out = json_string_value(v);
        return true;
    }
    // An int or a list of ints (eos_token_id comes in both forms).
    bool id_list(const char *key, std::vector<int> &out) const {
        json_t *v = get(key);
        if (!v) return true;
        std::vector<int> ids;
        auto take = [&](json_t *x) {
            if (!json_is_integer(x) || json_integer_value(x) < 0 ||
                json_integer_value(x) > INT_MAX)
                return false;
            ids.push_back(int(json_integer_value(x)));
            return true;
        };
        if (json_is_array(v)) {
            for (size_t i = 0; i < json_array_size(v); ++i)
                if (!take(json_array_get(v, i)))
                    return fail(key, "expected non-negative integer token ids");
        } else if (!take(v)) {
            return fail(key, "expected a token id or a list of token ids");
        }
        out = std::move(ids);
        return true;
    }
    // A fixed-length list of numbers.
    template <typename T>
    bool numbers(const char *key, T *out, size_t n) const {
        json_t *v = get(key);
        if (!v) return true;
        if (!json_is_array(v) || json_array_size(v) != n)
            return fail(key, "expected a list of " + std::to_string(n) + " numbers");
        for (size_t i = 0; i < n; ++i) {
            json_t *x = json_array_get(v, i);
            if (!json_is_number(x) || !std::isfinite(json_number_value(x)))
                return fail(key, "expected a list of " + std::to_string(n) + " numbers");
            out[i] = T(json_number_value(x));
        }
        return true;
    }
    // image_size / patch_size may be an int or a square [n, n].
    bool square_size(const char *key, int &out, bool required) const {
        json_t *v = get(key);
        if (json_is_array(v)) {
            if (json_array_size(v) != 2 || !json_is_integer(json_array_get(v, 0)) ||
                !json_equal(json_array_get(v, 0), json_array_get(v, 1)))
                return fail(key, "only square sizes (an int or [n, n]) are supported");
            json_int_t x = json_integer_value(json_array_get(v, 0));
            if (x < INT_MIN || x > INT_MAX) return fail(key, "integer out of range");
            out = int(x);
            return true;
        }
        return integer(key, out, required);
    }

    const std::string &file() const { return file_; }
    const std::string &prefix() const { return prefix_; }

private:
    const std::string &file_;
    json_t *obj_;
    std::string prefix_;
    std::string &err_;
};

bool check_positive(const std::string &file, const char *field, long v, std::string &err) {
    if (v > 0) return true;
    err = file + ": " + field + ": must be positive, found " + std::to_string(v);
    return false;
}

// RoPE settings of the text model. Priority follows transformers'
// convert_rope_params_to_dict: values inside rope_scaling (4.5x) or
// rope_parameters (5.x), then text_config's own rope_theta /
// partial_rotary_factor, then (our addition for flat 4.5x files) the same
// keys at the top level, then the defaults 10000 and 1.0.
bool read_text_rope(const Fields &root, const Fields &text, TextConfig &t, std::string &err) {
    // rope_scaling wins over rope_parameters (as in transformers); flat 4.5x
    // files may carry either at the top level instead of in text_config.
    json_t *params = nullptr;
    const char *params_key = "rope_parameters";
    const Fields *params_owner = &text;
    for (const Fields *owner : {&text, &root}) {
        for (const char *key : {"rope_scaling", "rope_parameters"}) {
            json_t *p = owner->get(key);
            if (p && !(json_is_object(p) && json_object_size(p) == 0)) {
                params = p;
                params_key = key;
                params_owner = owner;
                break;
            }
        }
        if (params) break;
    }
    if (params && !json_is_object(params))
        return params_owner->fail(params_key, "expected an object");
    const Fields rp(text.file(), params, params_owner->prefix() + params_key + ".", err);

    std::string rope_type = "default";
    if (!rp.string("type", rope_type) || !rp.string("rope_type", rope_type)) return false;
    if (rope_type != "default")
        return rp.fail("rope_type", "RoPE type \"" + rope_type +
                                        "\" is not supported (only \"default\")");

    // First source that has the key wins: rope dict, text_config, top level.
    auto pick = [&](const char *key, double &value) {
        for (const Fields *f : {&rp, &text, &root})
            if (f->has(key)) return f->number(key, value);
        return true;
    };
    t.rope_theta = 10000.0;
    t.partial_rotary_factor = 1.0;
    if (!pick("rope_theta", t.rope_theta) ||
        !pick("partial_rotary_factor", t.partial_rotary_factor))
        return false;
    // transformers' default when the config carries no mrope_section.
    t.mrope_section[0] = 8;
    t.mrope_section[1] = 12;
    t.mrope_section[2] = 12;
    json_t *ms = rp.get("mrope_section");
    if (ms) {
        if (!json_is_array(ms) || json_array_size(ms) != 3)
            return rp.fail("mrope_section", "expected a list of 3 integers (t, h, w)");
        for (size_t i = 0; i < 3; ++i) {
            json_t *x = json_array_get(ms, i);
            if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 65536)
                return rp.fail("mrope_section", "expected a list of 3 non-negative integers");
            t.mrope_section[i] = int(json_integer_value(x));
        }
    }
    return true;
}

bool read_text_config(const Fields &root, const Fields &f, TextConfig &t, std::string &err) {
    if (!f.integer("vocab_size", t.vocab_size, true) ||
        !f.integer("hidden_size", t.hidden_size, true) ||
        !f.integer("intermediate_size", t.intermediate_size, true) ||
        !f.integer("num_hidden_layers", t.num_hidden_layers, true) ||
        !f.integer("num_attention_heads", t.num_attention_heads, true))
        return false;
    // Glm4vTextConfig: absent -> 2, explicit null -> num_attention_heads.
    json_t *kv = f.raw("num_key_value_heads");
    if (kv == nullptr) t.num_key_value_heads = 2;
    else if (json_is_null(kv)) t.num_key_value_heads = t.num_attention_heads;
    else if (!f.integer("num_key_value_heads", t.num_key_value_heads)) return false;
    t.rms_norm_eps = 1e-5f;
    t.max_position_embeddings = 32768;
    if (!f.number("rms_norm_eps", t.rms_norm_eps) ||
        !f.integer("max_position_embeddings", t.max_position_embeddings))
        return false;
    // The text attention always has q/k/v biases (transformers hard-codes
    // bias=True and ignores any attention_bias key for the text model).
    t.attention_bias = true;
    t.head_dim = 0;
    if (!f.integer("head_dim", t.head_dim)) return false;
    return read_text_rope(root, f, t, err);
}

bool read_vision_config(const Fields &f, VisionConfig &v, std::string &err) {
    v.in_channels = 3;
    v.rms_norm_eps = 1e-5f;
    v.attention_bias = false;
    v.rope_theta = 10000.0;
    // 5.x: vision_config.rope_parameters.rope_theta (type "axial"); 4.5x
    // hard-coded 10000 in Glm4vVisionRotaryEmbedding.
    if (json_t *rp = f.get("rope_parameters")) {
        if (!json_is_object(rp)) return f.fail("rope_parameters", "expected an object");
        const Fields params(f.file(), rp, f.prefix() + "rope_parameters.", err);
        if (!params.number("rope_theta", v.rope_theta)) return false;
        if (!(v.rope_theta > 0.0)) return params.fail("rope_theta", "must be positive");
    }
    return f.integer("depth", v.depth, true) && f.integer("hidden_size", v.hidden_size, true) &&
           f.integer("num_heads", v.num_heads, true) &&
           f.integer("intermediate_size", v.intermediate_size, true) &&
           f.integer("out_hidden_size", v.out_hidden_size, true) &&
           f.square_size("patch_size", v.patch_size, true) &&
           f.integer("temporal_patch_size", v.temporal_patch_size, true) &&
           f.integer("spatial_merge_size", v.spatial_merge_size, true) &&
           f.square_size("image_size", v.image_size, true) &&
           f.integer("in_channels", v.in_channels) && f.number("rms_norm_eps", v.rms_norm_eps) &&
           f.boolean("attention_bias", v.attention_bias);
}

bool validate(const std::string &path, ModelConfig &c, std::string &err) {
    TextConfig &t = c.text;
    VisionConfig &v = c.vision;
    const struct { const char *name; long value; } sizes[] = {
        {"text_config.vocab_size", t.vocab_size},
        {"text_config.hidden_size", t.hidden_size},
        {"text_config.intermediate_size", t.intermediate_size},
        {"text_config.num_hidden_layers", t.num_hidden_layers},
        {"text_config.num_attention_heads", t.num_attention_heads},
        {"text_config.num_key_value_heads", t.num_key_value_heads},
        {"text_config.max_position_embeddings", t.max_position_embeddings},
        {"vision_config.depth", v.depth},
        {"vision_config.hidden_size", v.hidden_size},
        {"vision_config.num_heads", v.num_heads},
        {"vision_config.intermediate_size", v.intermediate_size},
        {"vision_config.out_hidden_size", v.out_hidden_size},
        {"vision_config.patch_size", v.patch_size},
        {"vision_config.temporal_patch_size", v.temporal_patch_size},
        {"vision_config.spatial_merge_size", v.spatial_merge_size},
        {"vision_config.image_size", v.image_size},
        {"vision_config.in_channels", v.in_channels},
    };
    for (const auto &s : sizes)
        if (!check_positive(path, s.name, s.value, err)) return false;
    auto fail = [&](const std::string &what) {
        err = path + ": " + what;
        return false;
    };
    if (!(t.rms_norm_eps > 0) || !(v.rms_norm_eps > 0))
        return fail("rms_norm_eps must be positive");
    if (t.hidden_size % t.num_attention_heads != 0)
        return fail("text_config.num_attention_heads " + std::to_string(t.num_attention_heads) +
                    " does not divide hidden_size " + std::to_string(t.hidden_size));
    if (t.num_attention_heads % t.num_key_value_heads != 0)
        return fail("text_config.num_attention_heads " + std::to_string(t.num_attention_heads) +
                    " is not a multiple of num_key_value_heads " +
                    std::to_string(t.num_key_value_heads));
    // The attention layers always use hidden/heads; a different head_dim would
    // only change the rotary width, which transformers would run inconsistently.
    const int head_dim = t.hidden_size / t.num_attention_heads;
    if (t.head_dim != 0 && t.head_dim != head_dim)
        return fail("text_config.head_dim " + std::to_string(t.head_dim) +
                    " differs from hidden_size / num_attention_heads = " +
                    std::to_string(head_dim) + " (not supported)");
    t.head_dim = head_dim;
    if (!(t.partial_rotary_factor > 0.0 && t.partial_rotary_factor <= 1.0))
        return fail("text_config partial_rotary_factor must be in (0, 1], found " +
                    std::to_string(t.partial_rotary_factor));
    if (!(t.rope_theta > 0.0)) return fail("text_config rope_theta must be positive");
    t.rotary_dim = int(double(head_dim) * t.partial_rotary_factor);  // Python int(): truncates
    if (t.rotary_dim <= 0 || t.rotary_dim % 2 != 0 || t.rotary_dim > head_dim)
        return fail("text rotary dim head_dim * partial_rotary_factor = " +
                    std::to_string(t.rotary_dim) + " must be even and in (0, head_dim]");
    const int msum = t.mrope_section[0] + t.mrope_section[1] + t.mrope_section[2];
    if (msum * 2 != t.rotary_dim)
        return fail("text_config mrope_section [" + std::to_string(t.mrope_section[0]) + ", " +
                    std::to_string(t.mrope_section[1]) + ", " +
                    std::to_string(t.mrope_section[2]) + "] sums to " + std::to_string(msum) +
                    " but rotary_dim / 2 = " + std::to_string(t.rotary_dim / 2));

    if (v.hidden_size % v.num_heads != 0)
        return fail("vision_config.num_heads " + std::to_string(v.num_heads) +
                    " does not divide hidden_size " + std::to_string(v.hidden_size));
    v.head_dim = v.hidden_size / v.num_heads;
    if (v.head_dim % 4 != 0)  // 2-D rope: a quarter of the head per axis and half
        return fail("vision head_dim " + std::to_string(v.head_dim) +
                    " (hidden_size / num_heads) must be a multiple of 4");
    if (v.out_hidden_size != t.hidden_size)
        return fail("vision_config.out_hidden_size " + std::to_string(v.out_hidden_size) +
                    " must equal text_config.hidden_size " + std::to_string(t.hidden_size));
    if (v.image_size < v.patch_size)
        return fail("vision_config.image_size " + std::to_string(v.image_size) +
                    " is smaller than patch_size " + std::to_string(v.patch_size));

    const struct { const char *name; int id; } ids[] = {
        {"image_token_id", c.image_token_id},
        {"video_token_id", c.video_token_id},
        {"image_start_token_id", c.image_start_token_id},
        {"image_end_token_id", c.image_end_token_id},
        {"video_start_token_id", c.video_start_token_id},
        {"video_end_token_id", c.video_end_token_id},
    };
    for (const auto &id : ids)
        if (id.id < 0 || id.id >= t.vocab_size)
            return fail(std::string(id.name) + " " + std::to_string(id.id) +
                        " is outside the vocabulary [0, " + std::to_string(t.vocab_size) + ")");
    for (int id : c.eos_token_ids)
        if (id >= t.vocab_size)
            return fail("eos_token_id " + std::to_string(id) + " is outside the vocabulary [0, " +
                        std::to_string(t.vocab_size) + ")");
    if (c.pad_token_id >= t.vocab_size)
        return fail("pad_token_id " + std::to_string(c.pad_token_id) +
                    " is outside the vocabulary [0, " + std::to_string(t.vocab_size) + ")");
    return true;
}

}  // namespace

bool load_model_config(const std::string &path, ModelConfig &out, std::string &err) {
    JsonRef root;
    bool missing = false;
    if (!load_json_object(path, root, missing, err)) return false;
    if (missing) {
        err = path + ": config.json not found";
        return false;
    }
    ModelConfig c;
    Fields top(path, root.j, "", err);

    std::string model_type;
    if (!top.string("model_type", model_type)) return false;
    if (!model_type.empty() && model_type != "glm4v" && model_type != "glm46v") {
        err = path + ": model_type \"" + model_type + "\" is not glm4v or glm46v";
        return false;
    }
    // 4.5x accepted a flat file (no text_config); 5.x always nests it.
    json_t *text_obj = json_object_get(root.j, "text_config");
    if (text_obj && !json_is_object(text_obj)) return top.fail("text_config", "expected an object");
    json_t *vision_obj = json_object_get(root.j, "vision_config");
    if (!json_is_object(vision_obj)) return top.fail("vision_config", "missing or not an object");
    Fields text(path, text_obj ? text_obj : root.j, text_obj ? "text_config." : "", err);
    Fields vision(path, vision_obj, "vision_config.", err);
    if (!read_text_config(top, text, c.text, err) || !read_vision_config(vision, c.vision, err))
        return false;

    // Glm4vConfig / Glm46VConfig defaults when the file leaves an id out.
    const bool is46 = model_type == "glm46v";
    c.image_token_id = 151343;
    c.video_token_id = 151344;
    c.image_start_token_id = 151339;
    c.image_end_token_id = 151340;
    c.video_start_token_id = is46 ? 151361 : 151341;
    c.video_end_token_id = is46 ? 151362 : 151342;
    if (!top.integer("image_token_id", c.image_token_id) ||
        !top.integer("video_token_id", c.video_token_id) ||
        !top.integer("image_start_token_id", c.image_start_token_id) ||
        !top.integer("image_end_token_id", c.image_end_token_id) ||
        !top.integer("video_start_token_id", c.video_start_token_id) ||
        !top.integer("video_end_token_id", c.video_end_token_id))
        return false;

    // Pre-5 files put tie_word_embeddings in text_config; either true ties.
    bool tie_top = false, tie_text = false;
    if (!top.boolean("tie_word_embeddings", tie_top) ||
        !text.boolean("tie_word_embeddings", tie_text))
        return false;
    c.tie_word_embeddings = tie_top || tie_text;

    // GenerationConfig.from_model_config: the top-level value, else
    // text_config's (the decoder's).
    if (top.has("eos_token_id")) {
        if (!top.id_list("eos_token_id", c.eos_token_ids)) return false;
    } else if (!text.id_list("eos_token_id", c.eos_token_ids)) {
        return false;
    }
    const Fields &pad_src = text.has("pad_token_id") ? text : top;
    if (!pad_src.integer("pad_token_id", c.pad_token_id)) return false;
    if (c.pad_token_id < -1) return pad_src.fail("pad_token_id", "negative token id");

    // "dtype" in 5.x, "torch_dtype" before; informational only.
    for (const Fields *f : {&text, &top})
        for (const char *key : {"torch_dtype", "dtype"})
            if (!f->string(key, c.torch_dtype)) return false;

    if (!validate(path, c, err)) return false;
    out = std::move(c);
    return true;
}

bool load_generation_config(const std::string &path, GenerationConfig &out, std::string &err) {
    JsonRef root;
    bool missing = false;
    if (!load_json_object(path, root, missing, err)) return false;
    if (missing) return true;
    GenerationConfig g = out;
    g.file_present = true;
    Fields f(path, root.j, "", err);
    g.has_eos = f.has("eos_token_id");
    if (!f.id_list("eos_token_id", g.eos_token_ids) || !f.integer("pad_token_id", g.pad_token_id) ||
        !f.boolean("do_sample", g.do_sample) || !f.number("temperature", g.temperature) ||
        !f.number("top_p", g.top_p) || !f.integer("top_k", g.top_k) ||
        !f.number("repetition_penalty", g.repetition_penalty) ||
        !f.integer("max_new_tokens", g.max_new_tokens))
        return false;
    if (g.temperature < 0) return f.fail("temperature", "must not be negative");
    if (!(g.top_p > 0.0 && g.top_p <= 1.0)) return f.fail("top_p", "must be in (0, 1]");
    if (g.top_k < 0) return f.fail("top_k", "must not be negative");
    if (!(g.repetition_penalty > 0.0)) return f.fail("repetition_penalty", "must be positive");
    if (g.max_new_tokens < 0) return f.fail("max_new_tokens", "must not be negative");
    if (g.pad_token_id < -1) return f.fail("pad_token_id", "negative token id");
    out = std::move(g);
    return true;
}

std::vector<int> stop_token_ids(const ModelConfig &cfg, const GenerationConfig &gen,
                                int tokenizer_eos) {
    std::vector<int> ids = gen.has_eos ? gen.eos_token_ids : cfg.eos_token_ids;
    if (!gen.has_eos && ids.empty() && tokenizer_eos >= 0) ids.push_back(tokenizer_eos);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

bool load_preprocessor_config(const std::string &path, PreprocessorConfig &out,
                              std::string &err) {
    // transformers 5.23 Glm4vImageProcessor / Glm46VImageProcessor class
    // defaults (size 112*112 .. 28*28*15000), used for whatever the file omits.
    PreprocessorConfig p;
    p.min_pixels = 112 * 112;
    p.max_pixels = 28L * 28 * 15000;
    JsonRef root;
    bool missing = false;
    if (!load_json_object(path, root, missing, err)) return false;
    if (missing) {
        out = p;
        return true;
    }
    Fields f(path, root.j, "", err);
    json_t *size = f.get("size");
    if (size && !json_is_object(size)) return f.fail("size", "expected an object");
    Fields s(path, size, "size.", err);
    // size.shortest_edge / longest_edge are pixel counts here (not edges).
    // Older files use min_pixels / max_pixels, at the top level or in size.
    if (!f.integer("min_pixels", p.min_pixels) || !f.integer("max_pixels", p.max_pixels) ||
        !s.integer("min_pixels", p.min_pixels) || !s.integer("max_pixels", p.max_pixels) ||
        !s.integer("shortest_edge", p.min_pixels) || !s.integer("longest_edge", p.max_pixels))
        return false;
    if (!f.integer("patch_size", p.patch_size) ||
        !f.integer("temporal_patch_size", p.temporal_patch_size) ||
        !f.integer("merge_size", p.merge_size) || !f.boolean("do_resize", p.do_resize) ||
        !f.boolean("do_rescale", p.do_rescale) || !f.number("rescale_factor", p.rescale_factor) ||
        !f.boolean("do_normalize", p.do_normalize) ||
        !f.boolean("do_convert_rgb", p.do_convert_rgb) ||
        !f.numbers("image_mean", p.image_mean, 3) || !f.numbers("image_std", p.image_std, 3))
        return false;
    if (p.min_pixels <= 0 || p.max_pixels < p.min_pixels)
        return f.fail("size", "need 0 < shortest_edge (min pixels) <= longest_edge (max pixels), found " +
                                  std::to_string(p.min_pixels) + " and " +
                                  std::to_string(p.max_pixels));
    if (p.patch_size <= 0) return f.fail("patch_size", "must be positive");
    if (p.temporal_patch_size <= 0) return f.fail("temporal_patch_size", "must be positive");
    if (p.merge_size <= 0) return f.fail("merge_size", "must be positive");
    if (!(p.rescale_factor > 0)) return f.fail("rescale_factor", "must be positive");
    for (float sd : p.image_std)
        if (!(sd != 0.0f)) return f.fail("image_std", "entries must be non-zero");
    out = p;
    return true;
}

}  // namespace vlm
