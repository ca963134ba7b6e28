// chat_format.cpp: see chat_format.h. The variables follow transformers
// 5.23's PreTrainedTokenizerBase: __init__ / _from_pretrained collect the
// named special tokens and the model-specific ones, special_tokens_map
// returns them as strings, and apply_chat_template passes
// {**special_tokens_map, **kwargs} to the template.
#include "text/chat_format.h"

#include "text/jinja/chat_template.h"

#include <sys/stat.h>

#include <cstring>

namespace vlm {

namespace {

const char *const kNamedTokens[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                    "pad_token", "cls_token", "mask_token"};

bool is_named_token(const char *key) {
    for (const char *n : kNamedTokens)
        if (std::strcmp(key, n) == 0) return true;
    return false;
}

bool ends_with(std::string_view s, std::string_view tail) {
    return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

// A token as tokenizer_config.json stores it: a string, or an AddedToken
// ({"__type": "AddedToken", "content": ...}). Null when it is neither.
const json_t *token_content(const json_t *v) {
    if (json_is_string(v)) return v;
    if (json_is_object(v)) {
        const json_t *type = json_object_get(v, "__type");
        const json_t *content = json_object_get(v, "content");
        if (json_is_string(type) && std::strcmp(json_string_value(type), "AddedToken") == 0 &&
            json_is_string(content))
            return content;
    }
    return nullptr;
}

// special_tokens_map: the named tokens (null ones left out; any other value
// is a TypeError in transformers), then the model-specific ones: other
// "*_token" keys holding a token (others are not tokens and are ignored), and
// a dict-valued extra_special_tokens (legacy name additional_special_tokens),
// whose values must be tokens. A later name replaces an earlier one.
bool special_tokens_map(const json_t *cfg, json_t *out, std::string &err) {
    if (!json_is_object(cfg)) return true;
    for (const char *name : kNamedTokens) {
        const json_t *v = json_object_get(cfg, name);
        if (!v || json_is_null(v)) continue;
        const json_t *c = token_content(v);
        if (!c) {
            err = std::string(name) + " is neither a string nor an AddedToken (transformers refuses it too)";
            return false;
        }
        json_object_set_new(out, name, json_stringn(json_string_value(c), json_string_length(c)));
    }
    const char *key;
    json_t *v;
    json_object_foreach(const_cast<json_t *>(cfg), key, v) {
        if (is_named_token(key) || !ends_with(key, "_token")) continue;
        if (const json_t *c = token_content(v))
            json_object_set_new(out, key, json_stringn(json_string_value(c), json_string_length(c)));
    }
    const json_t *extra = json_object_get(cfg, "extra_special_tokens");
    const char *extra_name = "extra_special_tokens";
    // transformers reads the legacy key when extra_special_tokens is missing or empty
    if (!extra || json_is_null(extra) || (json_is_array(extra) && json_array_size(extra) == 0) ||
        (json_is_object(extra) && json_object_size(extra) == 0)) {
        extra = json_object_get(cfg, "additional_special_tokens");
        extra_name = "additional_special_tokens";
    }
    if (json_is_object(extra)) {
        json_object_foreach(const_cast<json_t *>(extra), key, v) {
            const json_t *c = token_content(v);
            if (!c) {
                err = std::string(extra_name) + "[\"" + key + "\"] is neither a string nor an AddedToken";
                return false;
            }
            json_object_set_new(out, key, json_stringn(json_string_value(c), json_string_length(c)));
        }
    }
    return true;
}

json_t *message_json(const ChatMessage &m) {
    json_t *o = json_object();
    json_object_set_new(o, "role", json_stringn(m.role.data(), m.role.size()));
    if (m.text_content && m.parts.size() == 1 && m.parts[0].kind == ChatPart::TEXT) {
        json_object_set_new(o, "content", json_stringn(m.parts[0].text.data(), m.parts[0].text.size()));
        return o;
    }
    json_t *content = json_array();
    for (const ChatPart &p : m.parts) {
        json_t *part = json_object();
        if (p.kind == ChatPart::IMAGE) {
            json_object_set_new(part, "type", json_string("image"));
        } else {
            json_object_set_new(part, "type", json_string("text"));
            json_object_set_new(part, "text", json_stringn(p.text.data(), p.text.size()));
        }
        json_array_append_new(content, part);
    }
    json_object_set_new(o, "content", content);
    return o;
}

}  // namespace

ChatFormat::~ChatFormat() { json_decref(variables_); }

std::unique_ptr<ChatFormat> ChatFormat::load(std::string_view source, const std::string &origin,
                                             const json_t *tokenizer_config, bool processor,
                                             std::string &err) {
    std::unique_ptr<ChatFormat> f(new ChatFormat());
    f->origin_ = origin;
    f->processor_ = processor;
    f->variables_ = json_object();
    if (!special_tokens_map(tokenizer_config, f->variables_, err)) {
        err = "tokenizer_config.json: " + err;
        return nullptr;
    }
    if (const json_t *t = json_object_get(f->variables_, "image_token")) f->image_token_ = json_string_value(t);
    if (const json_t *t = json_object_get(f->variables_, "bos_token")) f->bos_token_ = json_string_value(t);
    if (f->image_token_.empty()) {
        err = "tokenizer_config.json: image_token is empty";
        return nullptr;
    }
    if (!origin.empty()) {
        std::string why;
        f->tmpl_ = jinja::ChatTemplate::load(source, why);
        if (!f->tmpl_) {
            err = origin + ": " + why;
            return nullptr;
        }
    }
    return f;
}

std::unique_ptr<ChatFormat> ChatFormat::load_dir(const std::string &dir, std::string &err) {
    std::string source, origin;
    err.clear();
    if (!jinja::read_chat_template(dir, source, origin, err)) return nullptr;
    const std::string cfg_path = dir + "/tokenizer_config.json";
    json_t *cfg = nullptr;
    struct stat st;
    if (::stat(cfg_path.c_str(), &st) == 0) {
        json_error_t jerr;
        cfg = json_load_file(cfg_path.c_str(), 0, &jerr);
        if (!cfg) {
            err = cfg_path + ": invalid JSON: " + jerr.text;
            return nullptr;
        }
    }
    // A template from tokenizer_config.json is AutoTokenizer's: the processor
    // itself would have none.
    const bool processor = !(origin == "tokenizer_config.json" || ends_with(origin, "/tokenizer_config.json"));
    std::unique_ptr<ChatFormat> f = load(source, origin, cfg, processor, err);
    json_decref(cfg);
    if (!f && err.rfind("tokenizer_config.json: ", 0) == 0) err = dir + "/" + err;
    return f;
}

bool ChatFormat::adds_special_tokens(const std::string &rendered) const {
    if (!processor_) return false;
    return bos_token_.empty() || rendered.compare(0, bos_token_.size(), bos_token_) != 0;
}

bool ChatFormat::render(const std::vector<ChatMessage> &messages, const ChatOptions &opt, std::string &out,
                        std::string &err) const {
    if (!tmpl_) {
        out = render_chat(messages, opt);
        return true;
    }
    json_t *msgs = json_array();
    for (const ChatMessage &m : messages) json_array_append_new(msgs, message_json(m));
    // {**special_tokens_map, **kwargs}, as apply_chat_template passes them.
    // A deep copy (a few strings): nothing of the shared format is touched by
    // a render, even reference counts, whatever jansson was built with.
    json_t *kwargs = json_deep_copy(variables_);
    json_object_set_new(kwargs, "add_generation_prompt", json_boolean(opt.add_generation_prompt));
    if (opt.enable_thinking.has_value()) json_object_set_new(kwargs, "enable_thinking", json_boolean(*opt.enable_thinking));
    std::string why;
    json_t *ctx = jinja::make_chat_context(msgs, nullptr, nullptr, kwargs, why);
    json_decref(msgs);
    json_decref(kwargs);
    const bool ok = ctx && tmpl_->render(ctx, out, why);
    json_decref(ctx);
    if (!ok) err = "chat template " + origin_ + ": " + why;
    return ok;
}

}  // namespace vlm
