// utf8.cpp: see utf8.h.
#include "util/utf8.h"

namespace vlm {

namespace utf8 {

ScanResult scan(std::string_view s, size_t i)
{
    const auto b0 = static_cast<uint8_t>(s[i]);
    if (b0 < 0x80) return {Scan::VALID, 1, b0};

    size_t   need;                    // continuation bytes required
    uint8_t  lo = 0x80, hi = 0xBF;    // allowed range of the first continuation
    uint32_t cp;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1;
        cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2;
        cp = b0 & 0x0F;
        if (b0 == 0xE0) lo = 0xA0;    // no overlong forms
        if (b0 == 0xED) hi = 0x9F;    // no surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3;
        cp = b0 & 0x07;
        if (b0 == 0xF0) lo = 0x90;    // no overlong forms
        if (b0 == 0xF4) hi = 0x8F;    // <= U+10FFFF
    } else {
        return {Scan::INVALID, 1, 0};
    }
    for (size_t k = 1; k <= need; ++k) {
        if (i + k >= s.size()) return {Scan::INCOMPLETE, k, 0};
        const auto b = static_cast<uint8_t>(s[i + k]);
        const uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (b < l || b > h) return {Scan::INVALID, k, 0};
        cp = (cp << 6) | (b & 0x3F);
    }
    return {Scan::VALID, need + 1, cp};
}

bool is_valid(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const ScanResult r = scan(s, i);
        if (r.kind != Scan::VALID) return false;
        i += r.length;
    }
    return true;
}

void append_codepoint(std::string &out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

}  // namespace utf8

size_t utf8_sequence_length(const unsigned char *s, size_t n)
{
    if (n == 0) return 0;
    utf8::ScanResult r = utf8::scan(std::string_view(reinterpret_cast<const char *>(s), n), 0);
    return r.kind == utf8::Scan::VALID ? r.length : 0;
}

bool utf8_valid(const std::string &s)
{
    for (size_t i = 0; i < s.size();) {
        utf8::ScanResult r = utf8::scan(s, i);
        if (r.kind != utf8::Scan::VALID) return false;
        i += r.length;
    }
    return true;
}

size_t utf8_length(std::string_view s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.size(); n++) i += utf8::scan(s, i).length;
    return n;
}

std::string utf8_lossy(const std::string &s)
{
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        utf8::ScanResult r = utf8::scan(s, i);
        if (r.kind == utf8::Scan::VALID) {
            out.append(s, i, r.length);
            i += r.length;
        } else {
            out += "\xEF\xBF\xBD";
            i++;
        }
    }
    return out;
}

}  // namespace vlm
