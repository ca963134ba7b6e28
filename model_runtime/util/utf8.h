// utf8.h: UTF-8 validation and lossy repair for text that leaves the runtime
// (JSON output, streamed deltas). Strict: overlongs, surrogates and code points
// above U+10FFFF are invalid, as in RFC 3629.
#pragma once

#include <cstddef>
#include <string>

namespace vlm {

// Length of the valid UTF-8 sequence starting at s[0] (1-4), or 0 if the bytes
// there are not a complete valid sequence within n bytes.
size_t utf8_sequence_length(const unsigned char *s, size_t n);

bool utf8_valid(const std::string &s);

// `s` with every invalid byte replaced by U+FFFD.
std::string utf8_lossy(const std::string &s);

}  // namespace vlm
