// utf8.cpp: see utf8.h.
#include "util/utf8.h"

namespace vlm {

size_t utf8_sequence_length(const unsigned char *s, size_t n)
{
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;   // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;          // no overlongs
        if (c == 0xED) hi = 0x9F;          // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;          // no overlongs
        if (c == 0xF4) hi = 0x8F;          // <= U+10FFFF
    } else {
        return 0;
    }
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

bool utf8_valid(const std::string &s)
{
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    size_t i = 0, n = s.size();
    while (i < n) {
        size_t len = utf8_sequence_length(p + i, n - i);
        if (len == 0) return false;
        i += len;
    }
    return true;
}

std::string utf8_lossy(const std::string &s)
{
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    std::string out;
    out.reserve(s.size());
    size_t i = 0, n = s.size();
    while (i < n) {
        size_t len = utf8_sequence_length(p + i, n - i);
        if (len == 0) {
            out += "\xEF\xBF\xBD";
            i++;
        } else {
            out.append(s, i, len);
            i += len;
        }
    }
    return out;
}

}  // namespace vlm
