// engine_request_key.h: the identity of a deterministic request, for
// coalescing identical requests in flight: every field that changes the
// answer (messages, each image's SHA-256, chat and sampling options, limits,
// stop strings, logprobs). Empty when the request is not deterministic
// (temperature > 0 without a seed).
#pragma once

#include "generate/request.h"

#include <string>

namespace vlm {

std::string request_key(const ChatRequest &req);

}  // namespace vlm
