// fuzz_jinja.cpp: libFuzzer target for vlm_jinja (model_runtime/text/jinja).
// The input is an untrusted chat template. It is loaded and rendered against a
// fixed chat context (system / user messages with string and list content,
// an image part, an assistant turn with reasoning and a tool call, a tool
// result, tools, special tokens, add_generation_prompt, enable_thinking) with
// small limits, so that every input finishes in milliseconds. Must hold:
// no crash, leak or hang (ASan/UBSan, libFuzzer's -timeout); a failed load or
// render gives a message starting with "line N: " (or a limit/UTF-8 message)
// and no output; a successful render is valid UTF-8 within max_output_bytes and
// renders the same again (no state kept between renders).
#include "text/jinja/chat_template.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include "utf8_oracle.h"

namespace {

const char *const kContext = R"({
  "messages": [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this? 这是什么"}]},
    {"role": "assistant", "content": "<think>hmm</think>A cat.", "reasoning_content": "hmm",
     "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1, "b": [true, null, 1.5]}}}]},
    {"role": "tool", "content": "{\"ok\": true}", "name": "f"},
    {"role": "user", "content": "More?"}
  ],
  "tools": [{"type": "function", "function": {"name": "f", "description": "d",
             "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}],
  "special_tokens": {"bos_token": "<s>", "eos_token": "</s>"},
  "kwargs": {"add_generation_prompt": true, "enable_thinking": false, "x": 3, "s": "héllo"}
})";

json_t *make_context() {
    json_error_t je;
    json_t *req = json_loads(kContext, 0, &je);
    std::string err;
    json_t *ctx = req ? vlm::jinja::make_chat_context(json_object_get(req, "messages"), json_object_get(req, "tools"),
                                                      json_object_get(req, "special_tokens"),
                                                      json_object_get(req, "kwargs"), err)
                      : nullptr;
    if (!ctx) {
        std::fprintf(stderr, "fuzz_jinja: bad context: %s %s\n", je.text, err.c_str());
        std::abort();
    }
    json_decref(req);
    return ctx;
}

[[noreturn]] void die(const char *what, const std::string &detail) {
    std::fprintf(stderr, "fuzz_jinja: %s: %s\n", what, detail.c_str());
    std::abort();
}

bool well_formed_error(const std::string &err) {
    if (err.compare(0, 5, "line ") == 0) return true;
    return err.find("limit") != std::string::npos || err.find("UTF-8") != std::string::npos ||
           err.find("out of memory") != std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_t *const ctx = make_context();
    vlm::jinja::Limits lim;
    lim.max_template_bytes = 64 << 10;
    lim.max_output_bytes = 64 << 10;
    lim.max_work_bytes = 8 << 20;
    lim.max_steps = 200'000;
    lim.max_loop_iterations = 20'000;
    lim.max_depth = 200;
    std::tm now{};
    now.tm_year = 125;
    now.tm_mon = 5;
    now.tm_mday = 7;
    vlm::jinja::RenderOptions opt;
    opt.now = &now;

    const std::string src(reinterpret_cast<const char *>(data), size);
    std::string err;
    auto tmpl = vlm::jinja::ChatTemplate::load(src, err, lim);
    if (!tmpl) {
        if (!well_formed_error(err)) die("load error without a line", err);
        return 0;
    }
    std::string out, out2, err2;
    const bool ok = tmpl->render(ctx, out, err, opt);
    if (!ok) {
        if (!out.empty()) die("failed render left output", err);
        if (!well_formed_error(err)) die("render error without a line", err);
    } else {
        if (out.size() > lim.max_output_bytes) die("output over the limit", std::to_string(out.size()));
        if (!oracle_valid_utf8(out)) die("output is not UTF-8", out.substr(0, 200));
    }
    const bool ok2 = tmpl->render(ctx, out2, err2, opt);
    if (ok2 != ok || (ok && out2 != out) || (!ok && err2 != err)) die("second render differs", err + " / " + err2);
    return 0;
}
