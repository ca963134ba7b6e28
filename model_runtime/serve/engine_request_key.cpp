// engine_request_key.cpp: see engine_request_key.h. Fields are length-
// prefixed so no two different requests serialise alike.
#include "serve/engine_request_key.h"

#include "util/hash.h"

#include <cstdio>

namespace vlm {

namespace {

void put(std::string &out, const std::string &s) {
    out += std::to_string(s.size());
    out += ':';
    out += s;
}

void put_num(std::string &out, double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g;", v);
    out += buf;
}

}  // namespace

std::string request_key(const ChatRequest &req) {
    const SamplingParams &sp = req.sampling;
    // Sampling without the client's own seed is not repeatable: never coalesced.
    if (!(sp.temperature <= 0.0f) && !sp.seeded) return std::string();
    std::string k;
    for (const ChatMessage &m : req.messages) {
        put(k, m.role);
        k += m.text_content ? 'S' : 'L';
        for (const ChatPart &p : m.parts) {
            k += p.kind == ChatPart::TEXT ? 'T' : 'I';
            if (p.kind == ChatPart::TEXT) put(k, p.text);
            else put_num(k, p.image);
        }
        k += '|';
    }
    for (const ImageBytes &img : req.images) {
        Sha256 d{};
        if (!sha256_of(img.data, img.size, d)) return std::string();
        put(k, hex_of(d));
    }
    put_num(k, req.chat.enable_thinking.has_value() ? double(*req.chat.enable_thinking) : -1.0);
    put_num(k, req.chat.add_generation_prompt);
    put_num(k, sp.temperature);
    put_num(k, sp.top_p);
    put_num(k, sp.top_k);
    put_num(k, sp.repetition_penalty);
    k += std::to_string(sp.seed) + ";";
    put_num(k, req.max_tokens);
    for (const std::string &s : req.stop_strings) put(k, s);
    k += '|';
    put_num(k, req.logprobs_top);
    put_num(k, req.ignore_eos);
    put_num(k, double(req.image_limits.max_bytes));
    put_num(k, double(req.image_limits.max_pixels));
    return k;
}

}  // namespace vlm
