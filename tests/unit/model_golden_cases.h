// model_golden_cases.h: reads a tiny model fixture's golden/cases.json (made
// by tests/reference/make_fixtures.py with transformers) for the model and
// M-RoPE suites. Header-only, test code: a malformed or missing file is
// reported as a message, and the suites fail on it.
#pragma once

#include "model/model.h"

#include <jansson.h>

#include <cstdlib>
#include <string>
#include <vector>

struct GoldenCase {
    std::string                 name;
    std::vector<int32_t>        prompt_ids;
    std::vector<vlm::ImageGrid> grids;
    std::vector<int32_t>        positions;   // 3 planes of prompt_ids.size()
    int                         rope_delta = 0;
    std::vector<int32_t>        greedy_tokens;
    std::vector<int32_t>        greedy_tokens_bf16;  // bf16 models only
    // Where the reference pixel values live (the bf16 model shares the fp32
    // model's): a path relative to $VLM_FIXTURES and a tensor name. Empty
    // file: the model's own golden.safetensors, key "<name>.pixel_values".
    std::string                 pixel_values_file;
    std::string                 pixel_values_key;
};

inline std::string fixtures_dir() {
    const char *d = std::getenv("VLM_FIXTURES");
    return d ? std::string(d) : std::string();
}

namespace golden_json {

inline const json_t *field(const json_t *obj, std::initializer_list<const char *> names) {
    for (const char *n : names) {
        const json_t *v = json_object_get(obj, n);
        if (v) return v;
    }
    return nullptr;
}

inline bool int_array(const json_t *a, std::vector<int32_t> &out) {
    if (!json_is_array(a)) return false;
    out.clear();
    for (size_t i = 0; i < json_array_size(a); ++i) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_integer(v)) return false;
        out.push_back(int32_t(json_integer_value(v)));
    }
    return true;
}

}  // namespace golden_json

// Appends the cases of `model_dir`/`subdir`/cases.json ("golden", or
// "golden-transparency" for the colour-key images). False with a reason.
inline bool load_golden_cases(const std::string &model_dir, std::vector<GoldenCase> &out,
                              std::string &err, const std::string &subdir = "golden") {
    using namespace golden_json;
    const std::string path = model_dir + "/" + subdir + "/cases.json";
    json_error_t jerr;
    json_t *root = json_load_file(path.c_str(), 0, &jerr);
    if (!root) {
        err = path + ": " + jerr.text;
        return false;
    }
    const json_t *cases = json_is_array(root) ? root : field(root, {"cases"});
    bool ok = json_is_array(cases) && json_array_size(cases) > 0;
    const size_t first = out.size();
    for (size_t i = 0; ok && i < json_array_size(cases); ++i) {
        const json_t *c = json_array_get(cases, i);
        GoldenCase g;
        const json_t *name = field(c, {"name", "id"});
        g.name = json_is_string(name) ? json_string_value(name) : std::to_string(i);
        ok = int_array(field(c, {"prompt_ids", "input_ids"}), g.prompt_ids);
        const json_t *grids = field(c, {"image_grid_thw", "grids"});
        if (ok && grids) {
            ok = json_is_array(grids);
            for (size_t j = 0; ok && j < json_array_size(grids); ++j) {
                std::vector<int32_t> thw;
                ok = int_array(json_array_get(grids, j), thw) && thw.size() == 3;
                if (ok) g.grids.push_back({thw[0], thw[1], thw[2]});
            }
        }
        const json_t *pos = field(c, {"mrope_positions", "positions", "position_ids"});
        ok = ok && json_is_array(pos) && json_array_size(pos) == 3;
        for (size_t p = 0; ok && p < 3; ++p) {
            std::vector<int32_t> plane;
            ok = int_array(json_array_get(pos, p), plane) &&
                 plane.size() == g.prompt_ids.size();
            g.positions.insert(g.positions.end(), plane.begin(), plane.end());
        }
        const json_t *delta = field(c, {"rope_delta", "rope_deltas", "mrope_delta"});
        ok = ok && json_is_integer(delta);
        if (ok) g.rope_delta = int(json_integer_value(delta));
        ok = ok && int_array(field(c, {"greedy_tokens"}), g.greedy_tokens);
        const json_t *pv_file = field(c, {"pixel_values_file"});
        const json_t *pv_key = field(c, {"pixel_values_key"});
        if (json_is_string(pv_file)) g.pixel_values_file = json_string_value(pv_file);
        g.pixel_values_key = json_is_string(pv_key) ? json_string_value(pv_key)
                                                    : g.name + ".pixel_values";
        if (ok && field(c, {"greedy_tokens_bf16"}))
            ok = int_array(field(c, {"greedy_tokens_bf16"}), g.greedy_tokens_bf16);
        if (!ok) {
            err = path + ": case " + g.name + " is malformed";
            break;
        }
        out.push_back(std::move(g));
    }
    if (ok && out.size() == first) {
        err = path + ": no cases";
        ok = false;
    } else if (!ok && err.empty()) {
        err = path + ": no \"cases\" array";
    }
    json_decref(root);
    return ok;
}
