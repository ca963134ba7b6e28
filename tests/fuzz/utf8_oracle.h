// utf8_oracle.h: strict UTF-8 validity (shortest form, no surrogates, at most
// U+10FFFF), written apart from util/utf8 on purpose: the fuzz targets use it
// to judge what the runtime outputs, so it must not share the runtime's bugs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

inline bool oracle_valid_utf8(const std::string &s) {
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
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
        if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n;
    }
    return true;
}
