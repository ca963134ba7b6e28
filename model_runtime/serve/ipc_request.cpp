// ipc_request.cpp: the SUBMIT body decoder (see ipc_request.h). Every field is
// type- and range-checked; unknown keys are refused so that a misspelt
// parameter is an error rather than silently ignored.
#include "serve/ipc_request.h"

#include "ipc/vlm_ipc.h"

#include <jansson.h>

#include <cmath>
#include <cstring>
#include <set>

namespace vlm {
namespace {

struct JsonRef {
    json_t *j;
    explicit JsonRef(json_t *p) : j(p) {}
    ~JsonRef() { if (j) json_decref(j); }
    JsonRef(const JsonRef &) = delete;
    JsonRef &operator=(const JsonRef &) = delete;
};

bool get_int(json_t *o, const char *key, int64_t lo, int64_t hi, int64_t &out, std::string &err)
{
    json_t *v = json_object_get(o, key);
    if (!v) return true;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        err = std::string("\"") + key + "\" must be an integer in [" + std::to_string(lo) + ", " +
              std::to_string(hi) + "]";
        return false;
    }
    out = json_integer_value(v);
    return true;
}

bool get_number(json_t *o, const char *key, double lo, double hi, double &out, std::string &err)
{
    json_t *v = json_object_get(o, key);
    if (!v) return true;
    if (!json_is_number(v) || !std::isfinite(json_number_value(v)) ||
        json_number_value(v) < lo || json_number_value(v) > hi) {
        err = std::string("\"") + key + "\" must be a number in [" + std::to_string(lo) + ", " +
              std::to_string(hi) + "]";
        return false;
    }
    out = json_number_value(v);
    return true;
}

bool get_bool(json_t *o, const char *key, bool &out, std::string &err)
{
    json_t *v = json_object_get(o, key);
    if (!v) return true;
    if (!json_is_boolean(v)) {
        err = std::string("\"") + key + "\" must be true or false";
        return false;
    }
    out = json_is_true(v);
    return true;
}

bool get_string(json_t *o, const char *key, std::string &out, std::string &err)
{
    json_t *v = json_object_get(o, key);
    if (!v) return true;
    if (!json_is_string(v)) {
        err = std::string("\"") + key + "\" must be a string";
        return false;
    }
    out.assign(json_string_value(v), json_string_length(v));
    return true;
}

bool parse_messages(json_t *arr, size_t n_images, const RequestLimits &limits,
                    std::vector<ChatMessage> &out, std::string &err)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > size_t(limits.max_messages)) {
        err = "\"messages\" must be a non-empty array of at most " +
              std::to_string(limits.max_messages) + " messages";
        return false;
    }
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m) {
        std::string where = "messages[" + std::to_string(i) + "]";
        if (!json_is_object(m)) {
            err = where + " must be an object";
            return false;
        }
        const char *key;
        json_t *v;
        json_object_foreach(m, key, v) {
            if (std::strcmp(key, "role") != 0 && std::strcmp(key, "content") != 0) {
                err = where + ": unknown key \"" + key + "\"";
                return false;
            }
        }
        ChatMessage msg;
        json_t *role = json_object_get(m, "role");
        if (!json_is_string(role)) {
            err = where + ".role must be a string";
            return false;
        }
        msg.role = json_string_value(role);
        if (msg.role != "system" && msg.role != "user" && msg.role != "assistant") {
            err = where + ".role must be system, user or assistant";
            return false;
        }
        json_t *content = json_object_get(m, "content");
        if (json_is_string(content)) {
            msg.parts.push_back({ChatPart::TEXT,
                                 std::string(json_string_value(content), json_string_length(content)),
                                 -1});
            msg.text_content = true;   // the template sees a string, as transformers passes it
        } else if (json_is_array(content)) {
            size_t k;
            json_t *p;
            json_array_foreach(content, k, p) {
                std::string pw = where + ".content[" + std::to_string(k) + "]";
                json_t *type = json_object_get(p, "type");
                if (!json_is_object(p) || !json_is_string(type)) {
                    err = pw + " must be an object with a \"type\"";
                    return false;
                }
                if (std::strcmp(json_string_value(type), "text") == 0) {
                    json_t *t = json_object_get(p, "text");
                    if (!json_is_string(t) || json_object_size(p) != 2) {
                        err = pw + ": a text part is {\"type\":\"text\",\"text\":\"...\"}";
                        return false;
                    }
                    msg.parts.push_back(
                        {ChatPart::TEXT, std::string(json_string_value(t), json_string_length(t)), -1});
                } else if (std::strcmp(json_string_value(type), "image") == 0) {
                    json_t *idx = json_object_get(p, "image");
                    if (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
                        json_integer_value(idx) >= json_int_t(n_images) || json_object_size(p) != 2) {
                        err = pw + ": an image part is {\"type\":\"image\",\"image\":<index into images>}";
                        return false;
                    }
                    msg.parts.push_back({ChatPart::IMAGE, "", int(json_integer_value(idx))});
                } else {
                    err = pw + ": unknown part type \"" + json_string_value(type) + "\"";
                    return false;
                }
            }
        } else {
            err = where + ".content must be a string or an array of parts";
            return false;
        }
        out.push_back(std::move(msg));
    }
    return true;
}

}  // namespace

DecodeStatus decode_request_body(const std::string &body, const RequestArena &arena,
                                 const RequestLimits &limits, DecodedRequest &out, std::string &err)
{
    static const std::set<std::string> known = {
        "task", "messages", "images", "language", "title", "text", "max_chars",
        "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "logprobs",
        "ignore_eos", "enable_thinking", "priority"};
    json_error_t jerr;
    JsonRef root(json_loadb(body.data(), body.size(), JSON_REJECT_DUPLICATES, &jerr));
    if (!root.j || !json_is_object(root.j)) {
        err = root.j ? "request body must be a JSON object"
                     : std::string("request body is not JSON: ") + jerr.text;
        return DecodeStatus::BAD_REQUEST;
    }
    json_t *o = root.j;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (!known.count(key)) {
            err = std::string("unknown request field \"") + key + "\"";
            return DecodeStatus::BAD_REQUEST;
        }
    }

    // Images first: a region outside the arena is a lie, not a bad request.
    std::vector<ImageBytes> images;
    json_t *imgs = json_object_get(o, "images");
    if (imgs) {
        if (!json_is_array(imgs) || json_array_size(imgs) > size_t(limits.max_images)) {
            err = "\"images\" must be an array of at most " + std::to_string(limits.max_images);
            return DecodeStatus::BAD_REQUEST;
        }
        size_t i;
        json_t *im;
        json_array_foreach(imgs, i, im) {
            json_t *off = json_object_get(im, "offset"), *len = json_object_get(im, "length");
            if (!json_is_object(im) || json_object_size(im) != 2 || !json_is_integer(off) ||
                !json_is_integer(len) || json_integer_value(off) < 0 || json_integer_value(len) <= 0) {
                err = "images[" + std::to_string(i) + "] must be {\"offset\":N,\"length\":N>0}";
                return DecodeStatus::BAD_REQUEST;
            }
            uint64_t o64 = uint64_t(json_integer_value(off)), l64 = uint64_t(json_integer_value(len));
            if (!vlm_ipc_region_ok(o64, l64, arena.size)) {
                err = "images[" + std::to_string(i) + "] lies outside the request arena";
                return DecodeStatus::PROTOCOL_VIOLATION;
            }
            if (l64 > limits.image_limits.max_bytes) {
                err = "an image of " + std::to_string(l64) + " bytes is over the limit of " +
                      std::to_string(limits.image_limits.max_bytes);
                return DecodeStatus::BAD_REQUEST;
            }
            ImageBytes b;
            b.data = arena.base + o64;
            b.size = size_t(l64);
            b.owner = arena.owner;
            images.push_back(std::move(b));
        }
    }

    std::string task = "chat", priority = "interactive";
    if (!get_string(o, "task", task, err) || !get_string(o, "priority", priority, err))
        return DecodeStatus::BAD_REQUEST;
    TaskKind kind;
    if (!parse_task_kind(task, kind)) {
        err = "unknown task \"" + task + "\"";
        return DecodeStatus::BAD_REQUEST;
    }
    if (priority != "interactive" && priority != "bulk") {
        err = "\"priority\" must be interactive or bulk";
        return DecodeStatus::BAD_REQUEST;
    }

    ChatRequest &req = out.engine.chat;
    int64_t max_tokens = 0, top_k = 0, logprobs = -1, seed = 0, max_chars = 0;
    double temperature = 0.0, top_p = 1.0;
    bool ignore_eos = false, thinking = false;
    if (!get_int(o, "max_tokens", 1, limits.max_tokens, max_tokens, err) ||
        !get_int(o, "top_k", 0, 1 << 24, top_k, err) ||
        !get_int(o, "logprobs", -1, 20, logprobs, err) ||
        !get_int(o, "seed", 0, INT64_MAX, seed, err) ||
        !get_int(o, "max_chars", 0, 1 << 20, max_chars, err) ||
        !get_number(o, "temperature", 0.0, 100.0, temperature, err) ||
        !get_number(o, "top_p", 0.0, 1.0, top_p, err) ||
        !get_bool(o, "ignore_eos", ignore_eos, err) ||
        !get_bool(o, "enable_thinking", thinking, err))
        return DecodeStatus::BAD_REQUEST;
    if (json_object_get(o, "top_p") && top_p <= 0.0) {
        err = "\"top_p\" must be in (0, 1]";
        return DecodeStatus::BAD_REQUEST;
    }
    json_t *stop = json_object_get(o, "stop");
    if (stop) {
        if (!json_is_array(stop) || json_array_size(stop) > size_t(limits.max_stop)) {
            err = "\"stop\" must be an array of at most " + std::to_string(limits.max_stop) +
                  " strings";
            return DecodeStatus::BAD_REQUEST;
        }
        size_t i;
        json_t *s;
        json_array_foreach(stop, i, s) {
            if (!json_is_string(s) || json_string_length(s) == 0 ||
                json_string_length(s) > limits.max_stop_bytes) {
                err = "stop[" + std::to_string(i) + "] must be a non-empty string of at most " +
                      std::to_string(limits.max_stop_bytes) + " bytes";
                return DecodeStatus::BAD_REQUEST;
            }
            req.stop_strings.emplace_back(json_string_value(s), json_string_length(s));
        }
    }

    if (kind == TaskKind::CHAT) {
        if (json_object_get(o, "language") || json_object_get(o, "title") ||
            json_object_get(o, "text") || json_object_get(o, "max_chars")) {
            err = "language, title, text and max_chars are for tasks, not chat";
            return DecodeStatus::BAD_REQUEST;
        }
        if (!parse_messages(json_object_get(o, "messages"), images.size(), limits, req.messages, err))
            return DecodeStatus::BAD_REQUEST;
        req.images = std::move(images);
        req.max_tokens = max_tokens > 0 ? int(max_tokens) : kDefaultMaxTokens;
        if (json_object_get(o, "enable_thinking")) req.chat.enable_thinking = thinking;   // else the template's default
        out.task.reset();
    } else {
        if (json_object_get(o, "messages") || thinking) {
            err = "messages and enable_thinking are for chat, not tasks";
            return DecodeStatus::BAD_REQUEST;
        }
        if (logprobs >= 0) {
            err = "logprobs are for chat: a task's answer is not streamed";
            return DecodeStatus::BAD_REQUEST;
        }
        TaskParams p;
        p.kind = kind;
        if (!get_string(o, "language", p.language, err) || !get_string(o, "title", p.title, err) ||
            !get_string(o, "text", p.text, err))
            return DecodeStatus::BAD_REQUEST;
        p.max_chars = int(max_chars);
        p.max_tokens = int(max_tokens);
        p.images = std::move(images);
        out.task = std::move(p);
    }
    req.sampling.temperature = float(temperature);
    req.sampling.top_p = float(top_p);
    req.sampling.top_k = int(top_k);
    if (kind == TaskKind::CHAT) {
        // Chat settings the client left out come from the model's
        // generation_config.json (vLLM's and transformers' behaviour);
        // tasks keep their own: greedy unless asked.
        req.from_model.temperature = !json_object_get(o, "temperature");
        req.from_model.top_p = !json_object_get(o, "top_p");
        req.from_model.top_k = !json_object_get(o, "top_k");
        req.from_model.repetition_penalty = true;
    }
    req.sampling.seed = uint64_t(seed);
    req.sampling.seeded = json_object_get(o, "seed") != nullptr;
    req.from_model.seed = !req.sampling.seeded;
    req.logprobs_top = int(logprobs);
    req.ignore_eos = ignore_eos;
    req.image_limits = limits.image_limits;
    out.engine.priority = priority == "bulk" ? Priority::BULK : Priority::INTERACTIVE;
    return DecodeStatus::OK;
}

}  // namespace vlm
