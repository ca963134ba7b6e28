// ipc_request.h: decodes the JSON body of a vlmd SUBMIT (format documented in
// ipc/vlm_ipc.h) into an EngineRequest, and for a task into the task's
// parameters, which the task layer (tasks/task_service.h) turns into the
// chat request. The body is a private copy; image regions point into the
// client's shared request arena, are checked against it and stay there
// (ImageBytes::owner keeps the mapping alive).
// Not here: ring handling and replies (ipc_connection.h, result_writer.h),
// image decoding.
#pragma once

#include "serve/engine.h"
#include "tasks/task_request.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace vlm {

struct RequestArena {
    const uint8_t              *base = nullptr;
    uint64_t                    size = 0;
    std::shared_ptr<const void> owner;   // keeps `base` mapped
};

struct RequestLimits {
    int    max_images     = 16;
    int    max_messages   = 256;
    int    max_stop       = 8;
    size_t max_stop_bytes = 256;
    int    max_tokens     = 32768;
    ImageLimits image_limits;         // bytes and pixels per image
};

struct DecodedRequest {
    // Chat: complete. Task: priority, sampling, stop strings and image limits
    // set; messages, images and max_tokens are the task layer's to fill in.
    EngineRequest             engine;
    std::optional<TaskParams> task;   // alt_text / summary / seo_description
};

enum class DecodeStatus { OK, BAD_REQUEST, PROTOCOL_VIOLATION };

// BAD_REQUEST: the client's request is wrong (answer 400, keep the
// connection). PROTOCOL_VIOLATION: an image region outside the arena, i.e. a
// client lying about lengths (close the connection). `err` says why.
DecodeStatus decode_request_body(const std::string &body, const RequestArena &arena,
                                 const RequestLimits &limits, DecodedRequest &out, std::string &err);

}  // namespace vlm
