// request.h: the request every layer above the model passes around: chat
// messages with image parts, the image bytes (untrusted, decoded where they
// lie), chat options, sampling and stopping settings. Built by vlm-run, by
// the task layer (tasks/) and by the IPC decoder (serve/ipc_request.h);
// consumed by generate() and the engine.
#pragma once

#include "generate/sampler.h"
#include "image/image.h"
#include "model/model_config.h"
#include "text/chat_prompt.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vlm {

// Encoded image bytes, untrusted. `data` stays valid while `owner` lives, so
// bytes in shared memory are decoded where they lie, never copied.
struct ImageBytes {
    const uint8_t              *data = nullptr;
    size_t                      size = 0;
    std::shared_ptr<const void> owner;

    static ImageBytes copy_of(std::vector<uint8_t> bytes);
};

// Sampling settings a client left out. They take the model's
// generation_config.json values (apply_generation_defaults), as vLLM and
// transformers do; tasks and explicit settings leave these false. A missing
// seed becomes a fresh random one, so "regenerate" gives a new answer.
struct SamplingFromModel {
    bool temperature        = false;   // and do_sample: greedy unless it is true
    bool top_p              = false;
    bool top_k              = false;
    bool repetition_penalty = false;
    bool seed               = false;   // draw fresh_seed() (sampling.seeded stays false)
    bool any() const { return temperature || top_p || top_k || repetition_penalty || seed; }
};

// max_tokens when a chat request names none and no front end chose one
// (nginx sends its own vlm_default_max_tokens; vlmd and vlm-run fall back here).
inline constexpr int kDefaultMaxTokens = 256;

struct ChatRequest {
    std::vector<ChatMessage>          messages;   // IMAGE parts index `images`
    std::vector<ImageBytes>           images;
    ChatOptions                       chat;
    SamplingParams                    sampling;
    SamplingFromModel                 from_model;   // cleared by apply_generation_defaults
    int                               max_tokens  = kDefaultMaxTokens;
    std::vector<std::string>          stop_strings;
    int                               logprobs_top = -1;   // -1: none, 0: chosen only
    bool                              ignore_eos   = false;  // golden tests
    ImageLimits                       image_limits;
};

// Fills the settings marked in req.from_model from the model's generation
// config, per field as transformers merges generate() kwargs into
// generation_config: temperature = gen.temperature when gen.do_sample, else
// 0 (greedy: transformers ignores temperature / top_k / top_p without
// do_sample); top_p, top_k (transformers' default 50 when do_sample and the
// file has none) and repetition_penalty (also applied when greedy) likewise.
// A seed left out is drawn with fresh_seed(). Then clears req.from_model, so
// a second call changes nothing.
void apply_generation_defaults(const GenerationConfig &gen, ChatRequest &req);
// req.sampling with the marked settings filled as above (req unchanged).
SamplingParams resolved_sampling(const GenerationConfig &gen, const ChatRequest &req);

}  // namespace vlm
