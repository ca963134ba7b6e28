// chat_template.cpp: the public API: load (lex + parse), render (JSON context
// -> values, run the interpreter), the transformers-style context builder and
// the model-directory lookup.
#include "text/jinja/chat_template.h"

#include "text/jinja/interp.h"
#include "text/jinja/lexer.h"
#include "text/jinja/parser.h"

#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <new>
#include <sstream>

namespace vlm::jinja {

namespace {

Value from_json(const json_t *j, int depth) {
    if (depth > 256) throw Error("context JSON nested deeper than 256 levels");
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        auto d = std::make_shared<DictObj>();
        const char *key;
        json_t *v;
        json_object_foreach(const_cast<json_t *>(j), key, v) {
            d->items.emplace_back(Value::str(std::string(key)), from_json(v, depth + 1));
        }
        return Value::dict(std::move(d));
    }
    case JSON_ARRAY: {
        std::vector<Value> items;
        items.reserve(json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); ++i) items.push_back(from_json(json_array_get(j, i), depth + 1));
        return Value::list(std::move(items));
    }
    case JSON_STRING: return Value::str(std::string(json_string_value(j), json_string_length(j)));
    case JSON_INTEGER: return Value::integer(static_cast<int64_t>(json_integer_value(j)));
    case JSON_REAL: return Value::number(json_real_value(j));
    case JSON_TRUE: return Value::boolean(true);
    case JSON_FALSE: return Value::boolean(false);
    default: return Value::none();
    }
}

std::string with_line(const Error &e) {
    if (e.line > 0) return "line " + std::to_string(e.line) + ": " + e.what();
    return e.what();
}

bool read_file(const std::string &path, std::string &out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    std::ostringstream ss;
    ss << f.rdbuf();
    out = ss.str();
    return true;
}

bool file_exists(const std::string &path) {
    std::FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    std::fclose(f);
    return true;
}

// A "chat_template" value: a string, or templates by name of which "default" is used.
bool pick_template(const json_t *ct, const std::string &file, std::string &source, std::string &err) {
    if (json_is_string(ct)) {
        source.assign(json_string_value(ct), json_string_length(ct));
        return true;
    }
    if (json_is_object(ct)) {
        const json_t *d = json_object_get(ct, "default");
        if (json_is_string(d)) {
            source.assign(json_string_value(d), json_string_length(d));
            return true;
        }
    }
    if (json_is_array(ct)) {
        for (size_t i = 0; i < json_array_size(ct); ++i) {
            const json_t *e = json_array_get(ct, i);
            const json_t *name = json_object_get(e, "name");
            const json_t *tmpl = json_object_get(e, "template");
            if (json_is_string(name) && std::string(json_string_value(name)) == "default" && json_is_string(tmpl)) {
                source.assign(json_string_value(tmpl), json_string_length(tmpl));
                return true;
            }
        }
    }
    err = file + ": \"chat_template\" is neither a string nor a set of templates with a \"default\" one";
    return false;
}

}  // namespace

ChatTemplate::~ChatTemplate() = default;

std::unique_ptr<ChatTemplate> ChatTemplate::load(std::string_view source, std::string &err, const Limits &limits) {
    if (source.size() > limits.max_template_bytes) {
        err = "template is " + std::to_string(source.size()) + " bytes, over the " +
              std::to_string(limits.max_template_bytes) + "-byte limit";
        return nullptr;
    }
    try {
        std::vector<Token> tokens;
        if (!lex(source, tokens, err)) return nullptr;
        auto prog = std::make_unique<Program>();
        if (!parse(tokens, *prog, err)) return nullptr;
        std::unique_ptr<ChatTemplate> t(new ChatTemplate());
        t->prog_ = std::move(prog);
        t->limits_ = limits;
        return t;
    } catch (const std::bad_alloc &) {
        err = "out of memory while loading the template";
        return nullptr;
    }
}

bool ChatTemplate::render(const json_t *context, std::string &out, std::string &err, const RenderOptions &opt) const {
    out.clear();
    if (context && !json_is_object(context)) {
        err = "the render context must be a JSON object";
        return false;
    }
    struct ReprLimit {   // repr / tojson results are capped like the output
        size_t saved = repr_limit();
        explicit ReprLimit(size_t l) { repr_limit() = l; }
        ~ReprLimit() { repr_limit() = saved; }
    } repr_guard(limits_.max_output_bytes);
    Interp in(*prog_, limits_);
    try {
        const size_t nsym = prog_->symbols.size();
        in.root.resize(nsym);
        in.root_set.assign(nsym, 0);
        for (int g = 0; g < static_cast<int>(Global::Count); ++g) {
            const int sym = prog_->global_syms[g];
            in.root[static_cast<size_t>(sym)] = make_global(static_cast<Global>(g));
            in.root_set[static_cast<size_t>(sym)] = 1;
        }
        if (context) {
            const char *key;
            json_t *v;
            json_object_foreach(const_cast<json_t *>(context), key, v) {
                auto it = prog_->sym_ids.find(key);
                if (it == prog_->sym_ids.end()) continue;   // the template never names it
                in.root[static_cast<size_t>(it->second)] = from_json(v, 0);
                in.root_set[static_cast<size_t>(it->second)] = 1;
            }
        }
        if (opt.now) {
            in.now = *opt.now;
        } else {
            const std::time_t t = std::time(nullptr);
            localtime_r(&t, &in.now);
        }
        in.out = &out;
        in.exec(prog_->body);
        return true;
    } catch (const Error &e) {
        err = with_line(e);
    } catch (const std::bad_alloc &) {
        err = "out of memory while rendering the template";
    }
    out.clear();
    return false;
}

json_t *make_chat_context(const json_t *messages, const json_t *tools, const json_t *special_tokens,
                          const json_t *kwargs, std::string &err) {
    if (!json_is_array(messages)) {
        err = "messages must be a JSON array";
        return nullptr;
    }
    json_t *ctx = json_object();
    json_t *msgs = json_array();
    json_object_set_new(ctx, "messages", msgs);
    static const char *const reasoning_fields[] = {"reasoning_content", "thinking", "reasoning"};
    for (size_t i = 0; i < json_array_size(messages); ++i) {
        const json_t *m = json_array_get(messages, i);
        if (!json_is_object(m)) {
            err = "message " + std::to_string(i) + " is not a JSON object";
            json_decref(ctx);
            return nullptr;
        }
        // apply_chat_template drops None-valued keys
        const json_t *reasoning = nullptr;
        for (const char *f : reasoning_fields) {
            const json_t *r = json_object_get(m, f);
            if (r && !json_is_null(r)) {
                reasoning = r;
                break;
            }
        }
        // _alias_reasoning_fields: {"thinking": r, **message, "reasoning_content": r}
        json_t *out = json_object();
        if (reasoning) json_object_set(out, "thinking", const_cast<json_t *>(reasoning));
        const char *key;
        json_t *v;
        json_object_foreach(const_cast<json_t *>(m), key, v) {
            if (json_is_null(v)) continue;
            json_object_set(out, key, v);
        }
        if (reasoning) json_object_set(out, "reasoning_content", const_cast<json_t *>(reasoning));
        json_array_append_new(msgs, out);
    }
    json_object_set_new(ctx, "tools", tools && !json_is_null(tools) ? json_deep_copy(tools) : json_null());
    json_object_set_new(ctx, "documents", json_null());
    json_object_set_new(ctx, "add_generation_prompt", json_false());
    static const char *const specials[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                           "pad_token", "cls_token", "mask_token"};
    if (json_is_object(special_tokens)) {
        for (const char *s : specials) {
            const json_t *t = json_object_get(special_tokens, s);
            if (json_is_object(t)) t = json_object_get(t, "content");   // an AddedToken dict
            if (json_is_string(t)) json_object_set_new(ctx, s, json_stringn(json_string_value(t), json_string_length(t)));
        }
    }
    if (json_is_object(kwargs)) {
        const char *key;
        json_t *v;
        json_object_foreach(const_cast<json_t *>(kwargs), key, v) {
            const std::string k = key;
            if (k == "messages" || k == "tools" || k == "documents") {
                err = "kwargs may not set '" + k + "' (apply_chat_template takes it as its own argument)";
                json_decref(ctx);
                return nullptr;
            }
            json_object_set_new(ctx, key, json_deep_copy(v));
        }
    }
    return ctx;
}

bool read_chat_template(const std::string &model_dir, std::string &source, std::string &origin, std::string &err) {
    source.clear();
    origin.clear();
    const std::string dir = model_dir.empty() || model_dir.back() == '/' ? model_dir : model_dir + "/";
    // `required`: the file is only there to hold a template (chat_template.json),
    // so a missing or null "chat_template" is an error, as in transformers.
    auto from_json_file = [&](const char *name, bool required, bool &found) -> bool {
        found = false;
        const std::string path = dir + name;
        if (!file_exists(path)) return true;
        json_error_t jerr;
        json_t *j = json_load_file(path.c_str(), JSON_DECODE_ANY, &jerr);
        if (!j) {
            err = path + ": line " + std::to_string(jerr.line) + ": " + jerr.text;
            return false;
        }
        const json_t *ct = json_object_get(j, "chat_template");
        bool ok = true;
        if (ct && !json_is_null(ct)) {
            ok = pick_template(ct, path, source, err);
            found = ok;
            origin = path;
        } else if (required) {
            err = path + ": no \"chat_template\" (transformers' processor fails on this file too)";
            ok = false;
        }
        json_decref(j);
        return ok;
    };
    // additional_chat_templates/*.jinja: named templates beside the default one.
    const std::string extra_dir = dir + "additional_chat_templates/";
    std::vector<std::string> extra;
    if (DIR *d = opendir(extra_dir.c_str())) {
        while (const dirent *e = readdir(d)) {
            const std::string n = e->d_name;
            if (n.size() > 6 && n.compare(n.size() - 6, 6, ".jinja") == 0) extra.push_back(n);
        }
        closedir(d);
    }
    std::sort(extra.begin(), extra.end());
    if (!extra.empty() && file_exists(dir + "chat_template.json")) {
        err = dir + "chat_template.json: a legacy chat_template.json together with additional_chat_templates/ "
                    "(transformers refuses this combination: replace chat_template.json with chat_template.jinja)";
        return false;
    }
    bool found;
    if (!from_json_file("processor_config.json", false, found)) return false;
    if (found) return true;
    if (!from_json_file("chat_template.json", true, found)) return false;
    if (found) return true;
    const std::string default_extra = extra_dir + "default.jinja";
    for (const std::string &path : {dir + "chat_template.jinja", default_extra}) {
        if (!file_exists(path)) continue;
        if (!read_file(path, source)) {
            err = path + ": cannot read";
            return false;
        }
        origin = path;
        return true;
    }
    if (!extra.empty()) {
        std::string names;
        for (const std::string &n : extra) names += (names.empty() ? "" : ", ") + n;
        err = extra_dir + " holds " + names + " but no default template (no chat_template.jinja, no "
              "additional_chat_templates/default.jinja): transformers will not pick one either";
        return false;
    }
    if (!from_json_file("tokenizer_config.json", false, found)) return false;
    return true;   // found, or no template anywhere (source and origin empty)
}

}  // namespace vlm::jinja
