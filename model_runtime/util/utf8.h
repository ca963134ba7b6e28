// utf8.h: the runtime's one UTF-8 decoder and encoder, and the checks built
// on them for text that leaves the runtime (JSON output, streamed deltas, log
// lines).
// Strict, as in RFC 3629: overlongs, surrogates and code points above
// U+10FFFF are invalid. Ill-formed input is split into "maximal subparts"
// (Unicode 3.9), the unit that Python's errors="replace" turns into one
// U+FFFD. The tokenizer (text/tokenizer_utf8.h), the chat-template renderer
// (text/jinja/), the task layer's text passes (tasks/) and the logger all
// decode through scan().
// Not here: normalisation, Unicode properties (PCRE2 has them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vlm {

namespace utf8 {

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

// True when every sequence in `s` scans VALID.
bool is_valid(std::string_view s);

// Appends the UTF-8 encoding of `cp` (a code point below 0x110000).
void append_codepoint(std::string &out, uint32_t cp);

}  // namespace utf8

// Length of the valid UTF-8 sequence starting at s[0] (1-4), or 0 if the bytes
// there are not a complete valid sequence within n bytes.
size_t utf8_sequence_length(const unsigned char *s, size_t n);

bool utf8_valid(const std::string &s);

// Code points in `s`; each ill-formed subpart counts as one.
size_t utf8_length(std::string_view s);

// `s` with every byte that is not part of a valid sequence replaced by U+FFFD
// (one replacement per byte, so lengths in bytes stay comparable).
std::string utf8_lossy(const std::string &s);

}  // namespace vlm
