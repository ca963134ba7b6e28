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
#include "utf8_oracle.h"

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

void check_round_trip(const vlm::Tokenizer &tok, const std::string &text) {
    for (bool parse_special : {false, true}) {
        const auto ids = tok.encode(text, parse_special);
        std::string back;
        for (int32_t id : ids) {
            if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
            back += tok.token_bytes(id);
        }
        if (back != text) __builtin_trap();   // byte-level BPE loses nothing
        if (!oracle_valid_utf8(text)) continue;
        vlm::TokenStreamDecoder dec(tok, false);
        std::string streamed;
        for (int32_t id : ids) {
            const std::string piece = dec.push(id);
            if (!oracle_valid_utf8(piece)) __builtin_trap();
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
