// request.h: the request every layer above the model passes around: chat
// messages with image parts, the image bytes (untrusted, decoded where they
// lie), chat options, sampling and stopping settings. Built by vlm-run, by
// the task layer (tasks/) and by the IPC decoder (serve/ipc_request.h);
// consumed by generate() and the engine.
#pragma once

#include "generate/sampler.h"
#include "image/image.h"
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

struct ChatRequest {
    std::vector<ChatMessage>          messages;   // IMAGE parts index `images`
    std::vector<ImageBytes>           images;
    ChatOptions                       chat;
    SamplingParams                    sampling;
    int                               max_tokens  = 256;
    std::vector<std::string>          stop_strings;
    int                               logprobs_top = -1;   // -1: none, 0: chosen only
    bool                              ignore_eos   = false;  // golden tests
    ImageLimits                       image_limits;
};

}  // namespace vlm
