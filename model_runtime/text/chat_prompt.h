// chat_prompt.h: a request's prompt ids, built as transformers 5.23's
// Glm46VProcessor.apply_chat_template(messages, add_generation_prompt,
// enable_thinking, tokenize=True) builds them: the messages rendered by the
// model directory's chat template (text/chat_format.h; the built-in GLM-4.6V
// format below when the directory has none), the rendered text tokenized
// whole with special and added tokens recognised (text a user types that
// spells a special token becomes that token, as in transformers), the
// post-processor's tokens added unless the prompt starts with bos_token, and
// the i-th image placeholder token expanded to image i's number of merged
// image tokens (the template writes <|begin_of_image|> and <|end_of_image|>
// around it; the processor only repeats the placeholder).
#pragma once

#include "text/tokenizer.h"

#include <optional>
#include <string>
#include <vector>

namespace vlm {

struct ChatPart {
    enum Kind { TEXT, IMAGE } kind = TEXT;
    std::string text;         // TEXT
    int         image = -1;   // IMAGE: index into the request's images
};

struct ChatMessage {
    std::string           role;     // "system", "user", "assistant"
    std::vector<ChatPart> parts;
    // The client sent "content" as a string (parts is its one TEXT part):
    // templates see a string, not a list of parts. Otherwise they see
    // [{"type": "text", "text": ...} / {"type": "image"}, ...].
    bool                  text_content = false;
};

struct ChatOptions {
    // Passed to the template only when set (templates test `enable_thinking
    // is defined`); our tasks set it to false.
    std::optional<bool> enable_thinking;
    bool    add_generation_prompt = true;
    // The id image placeholders expand to: the model's config.json
    // image_token_id (what its embedding step looks for); -1: the id of the
    // placeholder token itself. load-time checks make the two agree.
    int32_t image_token_id        = -1;
};

// The built-in GLM-4.6V format: what tests/fixtures/tokenizer/
// chat_template.jinja renders (system / user with text and image parts /
// assistant with past reasoning dropped unless after the last user turn /
// tool results, `/nothink` when thinking is off, the generation prompt), one
// <|image|> per image part. Used for a directory without a template.
std::string render_chat(const std::vector<ChatMessage> &messages,
                        const ChatOptions &opt);

// The prompt text `tok` renders for these messages: through its chat format
// (Tokenizer::chat_format), or the built-in format when it has none. False
// with "chat template FILE: line N: ..." when the template raises.
bool render_prompt(const Tokenizer &tok, const std::vector<ChatMessage> &messages,
                   const ChatOptions &opt, std::string &text, std::string &err);

// Token ids of the rendered prompt with image i's placeholder expanded to
// image_tokens[i] copies of the image token. Image parts must name images
// 0, 1, ... in order, one count each. False with a reason when the template
// raises, when the rendered text does not hold one placeholder per image (a
// template that drops an image, or placeholder text typed by a user:
// transformers refuses both), or when a token is missing.
bool build_prompt_ids(const Tokenizer &tok,
                      const std::vector<ChatMessage> &messages,
                      const ChatOptions &opt,
                      const std::vector<int> &image_tokens,
                      std::vector<int32_t> &ids, std::string &err);

}  // namespace vlm
