// chat_template.h: Hugging Face chat templates (Jinja) rendered in C++, with
// the output transformers' apply_chat_template(tokenize=False) gives for the
// same template and inputs (jinja2 3.1 in transformers' sandboxed environment:
// trim_blocks, lstrip_blocks, loopcontrols, {% generation %}, the tojson /
// raise_exception / strftime_now / namespace / dict globals).
//
// What is supported and what is not: model_runtime/text/jinja/README.md. A
// template using an unsupported construct fails in load() with the construct
// and its line. Templates are untrusted input: load() and render() are bounded
// by Limits and never crash, hang or exhaust memory.
//
// Typical use (vlmd, per model):
//     std::string src, origin, err;
//     if (!vlm::jinja::read_chat_template(model_dir, src, origin, err)) ...   // origin empty: none
//     auto tmpl = vlm::jinja::ChatTemplate::load(src, err);
//     json_t *ctx = vlm::jinja::make_chat_context(messages, tools, special_tokens, kwargs, err);
//     std::string prompt;
//     bool ok = tmpl->render(ctx, prompt, err);
//     json_decref(ctx);
// A loaded ChatTemplate is immutable: render() may run on many threads.
#pragma once

#include <jansson.h>

#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>

namespace vlm::jinja {

struct Program;

struct Limits {
    size_t max_template_bytes = 1 << 20;       // source size accepted by load()
    size_t max_output_bytes = 8 << 20;         // rendered prompt, and any one string value
    uint64_t max_work_bytes = 256ull << 20;    // bytes of strings/lists built in one render
    uint64_t max_steps = 20'000'000;           // expression / statement evaluations per render
    uint64_t max_loop_iterations = 1'000'000;  // for-loop iterations per render
    int max_depth = 400;                       // nested evaluation (macro calls included)
};

struct RenderOptions {
    // strftime_now()'s clock: local time now when null (what transformers
    // does); tests pin it.
    const std::tm *now = nullptr;
};

class ChatTemplate {
public:
    // Parses `source`; nullptr with "line N: what" in err on a syntax error or
    // an unsupported construct.
    static std::unique_ptr<ChatTemplate> load(std::string_view source, std::string &err,
                                              const Limits &limits = Limits());
    ~ChatTemplate();

    // Renders with the variables of `context` (a JSON object: messages, tools,
    // add_generation_prompt, bos_token, ...; see make_chat_context). False with
    // "line N: what" in err when the template raises (raise_exception, an
    // undefined value used, a type error) or a limit is hit.
    bool render(const json_t *context, std::string &out, std::string &err,
                const RenderOptions &opt = RenderOptions()) const;

private:
    ChatTemplate() = default;
    std::unique_ptr<Program> prog_;
    Limits limits_;
};

// The variables transformers 5.x passes to a template (render_jinja_template
// via apply_chat_template): `messages` with None-valued keys dropped and
// reasoning aliased (reasoning_content / thinking / reasoning, see
// _alias_reasoning_fields), `tools` and `documents` (null when absent),
// `add_generation_prompt` (false unless given), the tokenizer's special tokens
// (bos_token, eos_token, unk_token, sep_token, pad_token, cls_token,
// mask_token: those that are strings), then every member of `kwargs`
// (enable_thinking, ...), which overrides a special token of the same name.
// `tools`, `special_tokens` and `kwargs` may be null. Returns a new reference,
// or nullptr with err set when messages is not an array of objects.
json_t *make_chat_context(const json_t *messages, const json_t *tools, const json_t *special_tokens,
                          const json_t *kwargs, std::string &err);

// The chat template of a model directory, found as transformers 5.23's
// AutoProcessor finds it (ProcessorMixin.from_pretrained), falling back to
// what AutoTokenizer would use:
//   1. processor_config.json's "chat_template" when not null (deprecated but
//      still honoured),
//   2. chat_template.json's "chat_template" (the legacy processor file; it wins
//      over chat_template.jinja when both exist; without the key it is an
//      error, as in transformers),
//   3. chat_template.jinja,
//   4. additional_chat_templates/default.jinja,
//   5. tokenizer_config.json's "chat_template" (a string, or a list of
//      {name, template} of which "default" is used): the processor has no
//      template then, AutoTokenizer's apply_chat_template uses this one.
// The directories transformers refuses are refused with a reason:
// chat_template.json together with additional_chat_templates/, and
// additional templates without a default one (when 1-4 give none).
// True with `origin` naming the file used, or with `source` and `origin`
// empty when the directory has no template at all; false with err when a file
// is unreadable or malformed.
bool read_chat_template(const std::string &model_dir, std::string &source, std::string &origin,
                        std::string &err);

}  // namespace vlm::jinja
