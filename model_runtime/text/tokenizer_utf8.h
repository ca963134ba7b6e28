// tokenizer_utf8.h: what the tokenizer needs beyond the shared UTF-8 decoder
// and encoder (util/utf8.h): lossy repair and the GPT-2 byte <-> unicode
// alphabet used by byte-level BPE. No normalization or Unicode property
// tables here (PCRE2 provides those).
#pragma once

#include "util/utf8.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vlm::utf8 {

// scan(), is_valid() and append_codepoint(), the decoder and encoder every
// part of the runtime uses, are in util/utf8.h.

// Replaces each ill-formed subpart with U+FFFD (what Rust's from_utf8_lossy
// and Python's errors="replace" do).
std::string sanitize(std::string_view s);

// The GPT-2 reversible byte <-> code point table. Mapped code points are all
// below 0x144.
struct ByteAlphabet {
    uint32_t    byte_to_cp[256];
    std::string byte_to_utf8[256];
    int16_t     cp_to_byte[512];   // -1 when the code point is not a mapped byte

    ByteAlphabet();
    // Raw bytes -> byte-level unicode text.
    void encode(std::string_view raw, std::string &out) const;
    // Byte-level text -> raw bytes; false when a character is not in the
    // alphabet (then `out` is unspecified).
    bool decode(std::string_view text, std::string &out) const;
};

}  // namespace vlm::utf8
