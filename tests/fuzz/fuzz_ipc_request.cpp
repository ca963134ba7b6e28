// libFuzzer target for vlmd's SUBMIT decoding (ipc_request.h): the input is
// split into a request body (JSON, untrusted) and a fake request arena; any
// accepted image region must lie inside that arena (read every byte, so a
// region outside it is an ASan error) and nothing may crash or leak.
// The first input byte chooses the split point.
#include "serve/ipc_request.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t body_len = std::min(size - 1, size_t(data[0]) * 8);
    std::string body(reinterpret_cast<const char *>(data + 1), body_len);
    // The arena is a separate heap block so ASan sees any overrun.
    auto arena_bytes = std::make_shared<std::vector<uint8_t>>(data + 1 + body_len, data + size);
    vlm::RequestArena arena{arena_bytes->data(), arena_bytes->size(), arena_bytes};
    vlm::RequestLimits limits;
    vlm::DecodedRequest out;
    std::string err;
    vlm::DecodeStatus st = vlm::decode_request_body(body, arena, limits, out, err);
    if (st == vlm::DecodeStatus::OK) {
        // A task's images wait in its parameters for the task layer.
        const auto &images = out.task ? out.task->images : out.engine.chat.images;
        volatile uint8_t sink = 0;
        for (const auto &im : images)
            for (size_t i = 0; i < im.size; i++) sink = sink ^ im.data[i];
        (void)sink;
        if (out.task) return 0;
        if (out.engine.chat.messages.empty()) __builtin_trap();
        for (const auto &m : out.engine.chat.messages)
            for (const auto &p : m.parts)
                if (p.kind == vlm::ChatPart::IMAGE &&
                    (p.image < 0 || size_t(p.image) >= out.engine.chat.images.size()))
                    __builtin_trap();
    } else if (err.empty()) {
        __builtin_trap();   // every refusal says why
    }
    return 0;
}
