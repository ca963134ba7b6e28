// tokenizer_utf8.h: UTF-8 scanning that tolerates untrusted bytes, and the
// GPT-2 byte <-> unicode alphabet used by byte-level BPE. No normalization
// or Unicode property tables here (PCRE2 provides those).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vlm::utf8 {

enum class Scan { VALID, INCOMPLETE, INVALID };

struct ScanResult {
    Scan     kind;
    size_t   length;     // VALID: sequence length; INVALID: maximal ill-formed
                         // subpart (>= 1); INCOMPLETE: bytes present
    uint32_t codepoint;  // VALID only
};

// Looks at the sequence starting at s[i] (i < s.size()). INCOMPLETE means the
// bytes are a valid prefix cut off by the end of `s`.
ScanResult scan(std::string_view s, size_t i);

bool is_valid(std::string_view s);
void append_codepoint(std::string &out, uint32_t cp);
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
