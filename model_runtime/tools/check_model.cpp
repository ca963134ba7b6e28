// check_model.cpp: see check_model.h. Each step appends a report line; the
// first failing step sets `problem` and ends the check. Files are read with
// the same loaders load_model and vlmd use, so a directory that passes here
// loads there. Leaves out: running the model (the golden tests do that).
#include "tools/check_model.h"

#include "backend/registry.h"
#include "model/model_weights.h"
#include "model/safetensors.h"

#include <jansson.h>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>

namespace vlm {

namespace {

bool exists(const std::string &path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

std::string human_bytes(int64_t b) {
    char buf[64];
    if (b >= (int64_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / double(1 << 30));
    else std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / double(1 << 20));
    return buf;
}

bool read_text(const std::string &path, std::string &out, std::string &err) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) { err = path + ": cannot open: " + std::strerror(errno); return false; }
    char buf[65536];
    size_t n;
    out.clear();
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        out.append(buf, n);
        if (out.size() > (16u << 20)) { std::fclose(f); err = path + ": over 16 MiB"; return false; }
    }
    const bool bad = std::ferror(f);
    std::fclose(f);
    if (bad) { err = path + ": read error"; return false; }
    return true;
}

// Where the chat template comes from, in transformers 5.x's order
// (processor_config.json, chat_template.json, chat_template.jinja,
// tokenizer_config.json); empty origin: none (the built-in GLM format).
bool find_template(const std::string &dir, std::string &source, std::string &origin,
                   std::string &err) {
    for (const char *json_file : {"processor_config.json", "chat_template.json"}) {
        const std::string path = dir + "/" + json_file;
        if (!exists(path)) continue;
        json_error_t jerr;
        json_t *root = json_load_file(path.c_str(), 0, &jerr);
        if (!root) { err = path + ": invalid JSON: " + jerr.text; return false; }
        json_t *t = json_object_get(root, "chat_template");
        if (json_is_string(t)) {
            source = json_string_value(t);
            origin = json_file;
            json_decref(root);
            return true;
        }
        json_decref(root);
    }
    if (exists(dir + "/chat_template.jinja")) {
        origin = "chat_template.jinja";
        return read_text(dir + "/chat_template.jinja", source, err);
    }
    const std::string tc = dir + "/tokenizer_config.json";
    if (exists(tc)) {
        json_error_t jerr;
        json_t *root = json_load_file(tc.c_str(), 0, &jerr);
        if (!root) { err = tc + ": invalid JSON: " + jerr.text; return false; }
        json_t *t = json_object_get(root, "chat_template");
        if (json_is_array(t)) {   // [{name, template}]: "default"
            size_t i;
            json_t *e;
            json_t *found = nullptr;
            json_array_foreach(t, i, e) {
                if (json_is_string(json_object_get(e, "name")) &&
                    std::strcmp(json_string_value(json_object_get(e, "name")), "default") == 0)
                    found = json_object_get(e, "template");
            }
            t = found;
        }
        if (json_is_string(t)) {
            source = json_string_value(t);
            origin = "tokenizer_config.json";
        }
        json_decref(root);
    }
    return true;
}

}  // namespace

bool check_template_blocks(const std::string &src, std::string &err) {
    struct Open { std::string tag; int line; };
    std::vector<Open> stack;
    int line = 1;
    size_t i = 0;
    auto line_at = [&](size_t upto) {
        for (; i < upto; ++i)
            if (src[i] == '\n') ++line;
    };
    while (true) {
        const size_t open = src.find('{', i);
        if (open == std::string::npos || open + 1 >= src.size()) break;
        const char kind = src[open + 1];
        if (kind != '{' && kind != '%' && kind != '#') { line_at(open + 1); continue; }
        line_at(open);
        const int tag_line = line;
        const std::string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
        // Find the close outside string literals (comments have none).
        size_t j = open + 2;
        char quote = 0;
        for (; j + 1 < src.size(); ++j) {
            const char c = src[j];
            if (kind != '#' && quote) {
                if (c == '\\') ++j;
                else if (c == quote) quote = 0;
            } else if (kind != '#' && (c == '"' || c == '\'')) {
                quote = c;
            } else if (src.compare(j, 2, close) == 0) {
                break;
            }
        }
        if (j + 1 >= src.size()) {
            err = "line " + std::to_string(tag_line) + ": '" + src.substr(open, 2) + "' is never closed";
            return false;
        }
        if (kind == '%') {
            std::string body = src.substr(open + 2, j - open - 2);
            size_t b = body.find_first_not_of(" \t\r\n-+");
            std::string word;
            while (b < body.size() && (std::isalnum(static_cast<unsigned char>(body[b])) || body[b] == '_'))
                word += body[b++];
            const bool block_set = word == "set" && body.find('=') == std::string::npos;
            static const std::set<std::string> blocks = {"if", "for", "macro", "call", "filter",
                                                         "raw", "generation", "block"};
            if (blocks.count(word) || block_set) {
                stack.push_back({word, tag_line});
                if (word == "raw") {   // skip to endraw verbatim
                    const size_t end = src.find("endraw", j);
                    if (end == std::string::npos) {
                        err = "line " + std::to_string(tag_line) + ": {% raw %} without {% endraw %}";
                        return false;
                    }
                    line_at(j);
                    j = src.rfind("{%", end);
                    i = j;
                    continue;
                }
            } else if (word == "elif" || word == "else") {
                if (stack.empty() || (stack.back().tag != "if" && !(word == "else" && stack.back().tag == "for"))) {
                    err = "line " + std::to_string(tag_line) + ": {% " + word + " %} outside {% if %}";
                    return false;
                }
            } else if (word.rfind("end", 0) == 0 && word.size() > 3) {
                const std::string what = word.substr(3);
                if (stack.empty()) {
                    err = "line " + std::to_string(tag_line) + ": {% " + word + " %} without {% " + what + " %}";
                    return false;
                }
                if (stack.back().tag != what) {
                    err = "line " + std::to_string(tag_line) + ": {% " + word + " %} closes {% " +
                          stack.back().tag + " %} opened on line " + std::to_string(stack.back().line);
                    return false;
                }
                stack.pop_back();
            }
        }
        line_at(j + 2);
    }
    if (!stack.empty()) {
        err = "line " + std::to_string(stack.back().line) + ": {% " + stack.back().tag +
              " %} is never closed (no {% end" + stack.back().tag + " %})";
        return false;
    }
    return true;
}

bool render_sample_conversation(const Tokenizer &tok, const ModelConfig &cfg, std::string &rendered,
                                std::vector<int32_t> &ids, std::string &err) {
    std::vector<ChatMessage> msgs(4);
    msgs[0].role = "system";
    msgs[0].parts.push_back({ChatPart::TEXT, "You write alt text for blog images.", -1});
    msgs[1].role = "user";
    msgs[1].parts.push_back({ChatPart::IMAGE, "", 0});
    msgs[1].parts.push_back({ChatPart::TEXT, "Describe this image. 这是什么？", -1});
    msgs[2].role = "assistant";
    msgs[2].parts.push_back({ChatPart::TEXT, "A red bicycle leaning on a wall.", -1});
    msgs[3].role = "user";
    msgs[3].parts.push_back({ChatPart::TEXT, "Shorter, please.", -1});
    ChatOptions opt;
    opt.image_token_id = cfg.image_token_id;
    rendered = render_chat(msgs, opt);
    return build_prompt_ids(tok, msgs, opt, {4}, ids, err);
}

ModelCheckReport check_model_dir(const std::string &dir, const std::string &backend_name) {
    ModelCheckReport r;
    auto fail = [&](const std::string &problem) {
        r.ok = false;
        r.problem = problem;
        r.lines.push_back("FAIL  " + problem);
        return r;
    };
    auto ok = [&](const std::string &line) { r.lines.push_back("ok    " + line); };
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return fail(dir + ": not a directory");
    r.lines.push_back("model directory " + dir);
    std::string err;

    // Files.
    ModelConfig cfg;
    if (!load_model_config(dir + "/config.json", cfg, err)) return fail(err);
    ok("config.json: glm4v, text " + std::to_string(cfg.text.num_hidden_layers) + " layers x " +
       std::to_string(cfg.text.hidden_size) + ", vocab " + std::to_string(cfg.text.vocab_size) +
       ", vision " + std::to_string(cfg.vision.depth) + " blocks x " +
       std::to_string(cfg.vision.hidden_size) + ", image_token_id " + std::to_string(cfg.image_token_id));
    GenerationConfig gen;
    if (!load_generation_config(dir + "/generation_config.json", gen, err)) return fail(err);
    PreprocessorConfig pre;
    if (!load_preprocessor_config(dir + "/preprocessor_config.json", pre, err)) return fail(err);
    ok(std::string("preprocessor_config.json: ") +
       (exists(dir + "/preprocessor_config.json") ? "" : "absent, transformers' defaults: ") +
       "pixels " + std::to_string(pre.min_pixels) + ".." + std::to_string(pre.max_pixels) +
       ", patch " + std::to_string(pre.patch_size) + ", merge " + std::to_string(pre.merge_size));
    if (pre.patch_size != cfg.vision.patch_size || pre.merge_size != cfg.vision.spatial_merge_size ||
        pre.temporal_patch_size != cfg.vision.temporal_patch_size)
        return fail(dir + "/preprocessor_config.json: patch_size / merge_size / temporal_patch_size " +
                    std::to_string(pre.patch_size) + "/" + std::to_string(pre.merge_size) + "/" +
                    std::to_string(pre.temporal_patch_size) + " disagree with config.json vision_config " +
                    std::to_string(cfg.vision.patch_size) + "/" + std::to_string(cfg.vision.spatial_merge_size) +
                    "/" + std::to_string(cfg.vision.temporal_patch_size));
    if (!exists(dir + "/tokenizer.json")) return fail(dir + "/tokenizer.json: not found");
    std::unique_ptr<Tokenizer> tok = Tokenizer::load_dir(dir, err);
    if (!tok) return fail(err);
    ok(std::string("tokenizer.json") + (exists(dir + "/tokenizer_config.json") ? " + tokenizer_config.json" : "") +
       ": " + std::to_string(tok->vocab_size()) + " tokens");

    // Token ids the files must agree on.
    const std::vector<int> stops = stop_token_ids(cfg, gen, tok->eos_token_id());
    std::string stop_text;
    for (int id : stops) {
        if (id >= cfg.text.vocab_size)
            return fail(dir + (gen.has_eos ? "/generation_config.json" : "/config.json") + ": eos_token_id " +
                        std::to_string(id) + " is outside the vocabulary [0, " +
                        std::to_string(cfg.text.vocab_size) + ")");
        stop_text += (stop_text.empty() ? "" : ", ") + std::to_string(id) + " " + tok->token_bytes(id);
    }
    if (stops.empty()) return fail(dir + ": no eos_token_id in generation_config.json, config.json or tokenizer_config.json");
    if (tok->vocab_size() > cfg.text.vocab_size)
        return fail(dir + "/tokenizer.json: " + std::to_string(tok->vocab_size()) +
                    " tokens, more than config.json's vocab_size " + std::to_string(cfg.text.vocab_size));
    const int32_t tok_image = tok->token_id("<|image|>");
    if (tok_image != cfg.image_token_id)
        return fail(dir + "/config.json: image_token_id " + std::to_string(cfg.image_token_id) +
                    " but the tokenizer's <|image|> is " + std::to_string(tok_image) +
                    " (the processor would insert that id and the model would find no image tokens)");
    ok("generation ends at " + stop_text + (gen.has_eos ? " (generation_config.json)" : " (config.json)"));
    char sampling[160];
    if (gen.do_sample)
        std::snprintf(sampling, sizeof sampling, "sample, temperature %g, top_p %g, top_k %d, repetition_penalty %g",
                      gen.temperature, gen.top_p, gen.top_k, gen.repetition_penalty);
    else
        std::snprintf(sampling, sizeof sampling, "greedy, repetition_penalty %g", gen.repetition_penalty);
    ok(std::string("chat defaults (") + (gen.file_present ? "generation_config.json" : "no generation_config.json") +
       "): " + sampling);

    // Weights.
    SafetensorsSet tensors;
    if (!tensors.open_dir(dir, err)) return fail(err);
    ModelWeights bound;
    std::vector<std::string> used;
    if (!bind_model_weights(tensors, cfg, bound, err, &used)) return fail(err);
    // Whether the chosen backend runs every op on these dtypes; a backend
    // this host cannot create (cuda without a GPU) is not asked.
    {
        BackendOptions bopt;
        bopt.n_threads = 1;
        std::string berr;
        std::unique_ptr<Backend> backend = make_backend(backend_name, bopt, berr);
        if (backend) {
            if (!check_backend_supports(*backend, cfg, bound, err)) return fail(err);
            ok("the " + backend_name + " backend runs every op on these weights");
        } else {
            ok("ops not checked: " + berr);
        }
    }
    std::set<std::string> used_set(used.begin(), used.end());
    std::vector<std::string> unexpected;
    std::set<std::string> files;
    std::map<std::string, int64_t> by_dtype;
    for (const auto &[name, tv] : tensors.tensors()) {
        files.insert(tv.file);
        if (!used_set.count(name)) { unexpected.push_back(name); continue; }
        r.weight_bytes += int64_t(tv.nbytes);
        by_dtype[dtype_name(tv.dtype)] += int64_t(tv.nbytes);
    }
    std::string dtypes;
    for (const auto &[d, b] : by_dtype) dtypes += (dtypes.empty() ? "" : ", ") + d + " " + human_bytes(b);
    ok(std::to_string(used_set.size()) + " tensors the architecture needs, shapes as config.json says, in " +
       std::to_string(files.size()) + " file(s): " + dtypes);
    if (!unexpected.empty()) {
        std::string list;
        for (size_t i = 0; i < unexpected.size() && i < 8; ++i) list += (i ? ", " : "") + unexpected[i];
        if (unexpected.size() > 8) list += ", ... (" + std::to_string(unexpected.size()) + " in all)";
        r.lines.push_back("note  unexpected tensors (not used, as transformers ignores them): " + list);
    }

    // Template and tokenizer.
    std::string source, origin;
    if (!find_template(dir, source, origin, err)) return fail(err);
    if (!origin.empty() && !check_template_blocks(source, err)) return fail(dir + "/" + origin + ": " + err);
    std::string rendered;
    std::vector<int32_t> ids;
    if (!render_sample_conversation(*tok, cfg, rendered, ids, err))
        return fail(dir + ": the chat template cannot render a sample conversation: " + err);
    ok("chat template (" + (origin.empty() ? std::string("none in the directory: built-in GLM format") : origin) +
       "): sample conversation renders to " + std::to_string(ids.size()) + " tokens");
    for (int32_t id : ids)
        if (id < 0 || id >= cfg.text.vocab_size)
            return fail(dir + ": the sample conversation has token id " + std::to_string(id) +
                        " outside config.json's vocab_size " + std::to_string(cfg.text.vocab_size));
    const std::string sample = "Alt text: a café in 北京, 2025年 — \"quotes\", <|user|> as text, emoji \xF0\x9F\x98\x80\n\tend";
    std::string back;
    TokenStreamDecoder dec(*tok, false);
    const std::vector<int32_t> sample_ids = tok->encode(sample, false);
    for (int32_t id : sample_ids) back += dec.push(id);
    back += dec.finish();
    if (back != sample)
        return fail(dir + "/tokenizer.json: a sample does not round-trip (encode then decode gives \"" +
                    back.substr(0, 80) + "\")");
    ok("tokenizer round-trips a sample (" + std::to_string(sample_ids.size()) + " tokens)");

    // Memory on the backend: weights as stored (cpu maps the files, devices
    // upload them in their dtype), KV cache f32 K and V per layer.
    r.kv_cache_bytes = int64_t(kKvCheckTokens) * cfg.text.num_hidden_layers * 2 *
                       cfg.text.num_key_value_heads * cfg.text.head_dim * int64_t(sizeof(float));
    const bool cpu = backend_name == "cpu";
    ok("memory on " + backend_name + ": weights " + human_bytes(r.weight_bytes) +
       (cpu ? " (mapped from the files)" : " (device)") + " + KV cache for " + std::to_string(kKvCheckTokens) +
       " tokens " + human_bytes(r.kv_cache_bytes) + " = " + human_bytes(r.weight_bytes + r.kv_cache_bytes) +
       " (activations and the vision encoder's scratch not included)");
    r.ok = true;
    r.summary = std::to_string(used_set.size()) + " tensors in " + std::to_string(files.size()) +
                " file(s), " + std::to_string(unexpected.size()) + " unexpected; template " +
                (origin.empty() ? "built-in" : origin) + "; weights " + human_bytes(r.weight_bytes) +
                " + KV(" + std::to_string(kKvCheckTokens) + ") " + human_bytes(r.kv_cache_bytes);
    return r;
}

}  // namespace vlm
