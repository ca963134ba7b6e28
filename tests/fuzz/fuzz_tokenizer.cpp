// fuzz_tokenizer.cpp: libFuzzer target for the tokenizer. Arbitrary bytes are
// encoded with the fixture tokenizer (loaded once; $VLM_FIXTURES or the
// source tree) with and without special-token parsing, decoded back, and must
// round-trip byte for byte; valid UTF-8 must also stream-decode to itself in
// valid UTF-8 pieces. Inputs that start with '{' are additionally loaded as
// an (untrusted) tokenizer.json, which must fail cleanly or work.
#include "text/tokenizer.h"

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace {

const vlm::Tokenizer &fixture_tokenizer() {
    static const std::unique_ptr<vlm::Tokenizer> tok = [] {
        const char *env = std::getenv("VLM_FIXTURES");
        std::string dir = env ? env : std::string(__FILE__).substr(0, std::string(__FILE__).rfind('/')) +
                                          "/../fixtures";
        std::string err;
        auto t = vlm::Tokenizer::load(dir + "/tokenizer/tokenizer.json", err);
        if (!t) {
            std::fprintf(stderr, "fuzz_tokenizer: %s\n", err.c_str());
            std::abort();
        }
        return t;
    }();
    return *tok;
}

bool valid_utf8(const std::string &s) {
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        size_t n;
        uint32_t cp;
        if (c < 0x80) { n = 1; cp = c; }
        else if ((c >> 5) == 6) { n = 2; cp = c & 0x1F; }
        else if ((c >> 4) == 14) { n = 3; cp = c & 0x0F; }
        else if ((c >> 3) == 30) { n = 4; cp = c & 0x07; }
        else return false;
        if (i + n > s.size()) return false;
        for (size_t k = 1; k < n; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n;
    }
    return true;
}

void check_round_trip(const vlm::Tokenizer &tok, const std::string &text) {
    for (bool parse_special : {false, true}) {
        const auto ids = tok.encode(text, parse_special);
        std::string back;
        for (int32_t id : ids) {
            if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
            back += tok.token_bytes(id);
        }
        if (back != text) __builtin_trap();   // byte-level BPE loses nothing
        if (!valid_utf8(text)) continue;
        vlm::TokenStreamDecoder dec(tok, false);
        std::string streamed;
        for (int32_t id : ids) {
            const std::string piece = dec.push(id);
            if (!valid_utf8(piece)) __builtin_trap();
            streamed += piece;
        }
        streamed += dec.finish();
        if (streamed != text) __builtin_trap();
    }
}

void try_load_json(const uint8_t *data, size_t size) {
    const std::string path = "/tmp/fuzz_tokenizer_" + std::to_string(getpid()) + ".json";
    FILE *f = std::fopen(path.c_str(), "wb");
    if (!f) return;
    std::fwrite(data, 1, size, f);
    std::fclose(f);
    std::string err;
    auto tok = vlm::Tokenizer::load(path, err);
    if (!tok) {
        if (err.empty()) __builtin_trap();   // a refusal must say why
        return;
    }
    const auto ids = tok->encode("Hello, world! 你好 <|user|>", true);
    for (int32_t id : ids)
        if (id < 0 || id >= tok->vocab_size()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const std::string text(reinterpret_cast<const char *>(data), size);
    check_round_trip(fixture_tokenizer(), text);
    if (size > 0 && data[0] == '{') try_load_json(data, size);
    return 0;
}
