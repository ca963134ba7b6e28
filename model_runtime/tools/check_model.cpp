// check_model.cpp: see check_model.h. Each step appends a report line; the
// first failing step sets `problem` and ends the check. Files are read with
// the same loaders load_model and vlmd use, so a directory that passes here
// loads there. Leaves out: running the model (the golden tests do that).
#include "tools/check_model.h"
#include "model/weight_plan.h"

#include "backend/registry.h"
#include "text/chat_format.h"
#include "model/model_weights.h"
#include "model/safetensors.h"

#include <jansson.h>

#include <sys/stat.h>

#include <algorithm>
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

}  // namespace

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
    opt.enable_thinking = false;   // as our tasks ask
    opt.image_token_id = cfg.image_token_id;
    return render_prompt(tok, msgs, opt, rendered, err) && build_prompt_ids(tok, msgs, opt, {4}, ids, err);
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
    // The placeholder the processor expands (tokenizer_config.json's
    // image_token, else <|image|>) must be the token the model looks for.
    const std::string &placeholder = tok->chat_format()->image_token();
    const int32_t tok_image = tok->token_id(placeholder);
    if (tok_image != cfg.image_token_id)
        return fail(dir + "/config.json: image_token_id " + std::to_string(cfg.image_token_id) +
                    " but the tokenizer's " + placeholder + " is " + std::to_string(tok_image) +
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

    // Template (loaded and parsed with the tokenizer) and tokenizer: a real
    // render of a conversation like the ones requests make.
    const ChatFormat &format = *tok->chat_format();
    const std::string origin = format.uses_builtin() ? std::string() : format.origin();
    std::string rendered;
    std::vector<int32_t> ids;
    if (!render_sample_conversation(*tok, cfg, rendered, ids, err))
        return fail(dir + ": the chat template cannot render a sample conversation: " + err);
    ok("chat template (" + (origin.empty() ? std::string("none in the directory: built-in GLM-4.6V format") : origin) +
       "): sample conversation renders to " + std::to_string(ids.size()) + " tokens");
    if (origin.empty())
        r.lines.push_back("note  no chat template in processor_config.json, chat_template.json, chat_template.jinja, "
                          "additional_chat_templates/default.jinja or tokenizer_config.json: prompts use the "
                          "built-in GLM-4.6V format (transformers would refuse to render one)");
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
    // The same weights held quantized (vlmd's weights = int8 | int4, model/weight_plan.h).
    {
        std::string formats = "weights by format (text decoder linears; + vision and lm_head):";
        WeightPlan plan;
        formats += " bf16 " + human_bytes(int64_t(planned_weight_bytes(bound, plan)));
        for (WeightFormat f : {WeightFormat::Int8, WeightFormat::Int4}) {
            plan.format = f;
            plan.vision = plan.lm_head = false;
            const int64_t text_only = int64_t(planned_weight_bytes(bound, plan));
            plan.vision = plan.lm_head = true;
            formats += std::string("; ") + weight_format_name(f) + " " + human_bytes(text_only) + ", " +
                       human_bytes(int64_t(planned_weight_bytes(bound, plan)));
        }
        ok(formats);
    }
    r.ok = true;
    r.summary = std::to_string(used_set.size()) + " tensors in " + std::to_string(files.size()) +
                " file(s), " + std::to_string(unexpected.size()) + " unexpected; template " +
                (origin.empty() ? "built-in (none in the directory)" : origin) + "; weights " + human_bytes(r.weight_bytes) +
                " + KV(" + std::to_string(kKvCheckTokens) + ") " + human_bytes(r.kv_cache_bytes);
    return r;
}

}  // namespace vlm
