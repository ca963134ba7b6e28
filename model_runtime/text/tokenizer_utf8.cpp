// tokenizer_utf8.cpp: lossy repair (Unicode 3.9 "maximal subpart" rule,
// through util/utf8.h's scan) and the GPT-2 byte alphabet.
#include "text/tokenizer_utf8.h"

namespace vlm::utf8 {

std::string sanitize(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        const ScanResult r = scan(s, i);
        if (r.kind == Scan::VALID) {
            out.append(s.substr(i, r.length));
        } else {
            out += "\xEF\xBF\xBD";
        }
        i += r.length;
    }
    return out;
}

ByteAlphabet::ByteAlphabet() {
    for (auto &v : cp_to_byte) v = -1;
    // Printable Latin-1 bytes keep their code point; the other 68 bytes are
    // moved to 256, 257, ... in byte order so every byte has a visible glyph.
    uint32_t next_extra = 256;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
                               (b >= 0xAE && b <= 0xFF);
        const uint32_t cp = printable ? static_cast<uint32_t>(b) : next_extra++;
        byte_to_cp[b] = cp;
        cp_to_byte[cp] = static_cast<int16_t>(b);
        append_codepoint(byte_to_utf8[b], cp);
    }
}

void ByteAlphabet::encode(std::string_view raw, std::string &out) const {
    for (unsigned char c : raw) out += byte_to_utf8[c];
}

bool ByteAlphabet::decode(std::string_view text, std::string &out) const {
    for (size_t i = 0; i < text.size();) {
        const ScanResult r = scan(text, i);
        if (r.kind != Scan::VALID || r.codepoint >= 512 || cp_to_byte[r.codepoint] < 0)
            return false;
        out += static_cast<char>(cp_to_byte[r.codepoint]);
        i += r.length;
    }
    return true;
}

}  // namespace vlm::utf8
