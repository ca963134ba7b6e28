// chat_format.h: a model directory's chat template, loaded once per model,
// with what transformers 5.23's processor renders it with:
//   - the template, from the file transformers' AutoProcessor reads
//     (vlm::jinja::read_chat_template: processor_config.json's
//     "chat_template", chat_template.json, chat_template.jinja,
//     additional_chat_templates/default.jinja, then tokenizer_config.json's
//     "chat_template" as AutoTokenizer would), parsed by vlm_jinja: a template
//     using an unsupported construct fails to load with the construct and its
//     line;
//   - the template's variables from tokenizer_config.json, as the tokenizer's
//     special_tokens_map: bos/eos/unk/sep/pad/cls/mask_token, every other
//     "*_token" key holding a token, and the named tokens of a dict-valued
//     extra_special_tokens (string or {"__type": "AddedToken", "content"});
//   - the image placeholder: tokenizer_config.json's image_token, else
//     "<|image|>" (Glm46VProcessor.image_token);
//   - whether the post-processor's tokens are added: the processor tokenizes
//     with add_special_tokens unless the prompt starts with bos_token;
//     AutoTokenizer's apply_chat_template (a template from
//     tokenizer_config.json) never adds them.
// A directory without any template gets the built-in GLM-4.6V format
// (render_chat in text/chat_prompt.h) and uses_builtin().
// Immutable once loaded: render() may run on many threads (each needs about
// 1 MiB of stack, see text/jinja/README.md).
#pragma once

#include "text/chat_prompt.h"

#include <jansson.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace vlm::jinja {
class ChatTemplate;
}

namespace vlm {

class ChatFormat {
public:
    ~ChatFormat();
    ChatFormat(const ChatFormat &) = delete;
    ChatFormat &operator=(const ChatFormat &) = delete;

    // The directory's format. nullptr with err when a file is unreadable or
    // malformed, or the template fails to load ("DIR/chat_template.jinja:
    // line 3: ..."); uses_builtin() when no file holds a template.
    static std::unique_ptr<ChatFormat> load_dir(const std::string &dir, std::string &err);
    // From a template source (empty origin: the built-in format, `source`
    // unused) and a parsed tokenizer_config.json (may be null). `processor`:
    // rendered as the processor renders it (false: as AutoTokenizer does, for
    // a template from tokenizer_config.json).
    static std::unique_ptr<ChatFormat> load(std::string_view source, const std::string &origin,
                                            const json_t *tokenizer_config, bool processor,
                                            std::string &err);

    bool uses_builtin() const { return !tmpl_; }
    const std::string &origin() const { return origin_; }        // the template's file; "" built in
    const std::string &image_token() const { return image_token_; }
    const std::string &bos_token() const { return bos_token_; }   // "" when none
    // Whether the tokenizer's post-processor tokens go around this rendered
    // prompt (add_special_tokens).
    bool adds_special_tokens(const std::string &rendered) const;
    // The template's variables besides messages (special tokens); a JSON object.
    const json_t *variables() const { return variables_; }

    // The prompt text for `messages`. False with "chat template FILE: line N:
    // ..." when the template raises or a limit is hit.
    bool render(const std::vector<ChatMessage> &messages, const ChatOptions &opt, std::string &out,
                std::string &err) const;

private:
    ChatFormat() = default;
    std::unique_ptr<jinja::ChatTemplate> tmpl_;
    std::string origin_;
    std::string image_token_ = "<|image|>";
    std::string bos_token_;
    bool processor_ = true;
    json_t *variables_ = nullptr;
};

}  // namespace vlm
