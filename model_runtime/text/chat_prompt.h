// chat_prompt.h: renders GLM-4.6V's chat format (what chat_template.jinja
// produces with add_generation_prompt) and tokenizes it, expanding each image
// placeholder to its number of merged image tokens, as transformers'
// apply_chat_template + Glm46VProcessor do.
#pragma once

#include "text/tokenizer.h"

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
};

struct ChatOptions {
    bool    enable_thinking       = false;   // our tasks run with thinking off
    bool    add_generation_prompt = true;
    // The id image placeholders expand to: the model's config.json
    // image_token_id (what its embedding step looks for); -1: the
    // tokenizer's <|image|>. load-time checks make the two agree.
    int32_t image_token_id        = -1;
};

// The rendered template text with one <|image|> per image (not yet expanded).
std::string render_chat(const std::vector<ChatMessage> &messages,
                        const ChatOptions &opt);

// Token ids of the rendered prompt with image i's placeholder expanded to
// image_tokens[i] copies of the image token. False with a reason when the
// number of images does not match or a special token is missing.
bool build_prompt_ids(const Tokenizer &tok,
                      const std::vector<ChatMessage> &messages,
                      const ChatOptions &opt,
                      const std::vector<int> &image_tokens,
                      std::vector<int32_t> &ids, std::string &err);

}  // namespace vlm
