// synthetic_image.h: images made on the spot for benchmarks and tests, where
// what matters is what they cost to decode, not what they show (a large
// image compresses to a few kilobytes, so nothing big is committed).
#pragma once

#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vlm {

// An 8-bit grey PNG of w x h pixels (a diagonal ramp); empty on a zlib error.
inline std::vector<uint8_t> synthetic_grey_png(uint32_t w, uint32_t h)
{
    std::vector<uint8_t> raw;
    raw.reserve(size_t(w + 1) * h);
    for (uint32_t y = 0; y < h; ++y) {
        raw.push_back(0);   // filter: none
        for (uint32_t x = 0; x < w; ++x) raw.push_back(uint8_t(x + y));
    }
    uLongf zlen = compressBound(uLong(raw.size()));
    std::vector<uint8_t> z(zlen);
    if (compress2(z.data(), &zlen, raw.data(), uLong(raw.size()), 1) != Z_OK) return {};
    z.resize(zlen);
    std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    auto be32 = [&](uint32_t v) {
        for (int s = 24; s >= 0; s -= 8) png.push_back(uint8_t(v >> s));
    };
    auto chunk = [&](const char *type, const std::vector<uint8_t> &data) {
        be32(uint32_t(data.size()));
        const size_t start = png.size();
        png.insert(png.end(), type, type + 4);
        png.insert(png.end(), data.begin(), data.end());
        be32(uint32_t(crc32(0, png.data() + start, uInt(png.size() - start))));
    };
    chunk("IHDR", {uint8_t(w >> 24), uint8_t(w >> 16), uint8_t(w >> 8), uint8_t(w), uint8_t(h >> 24),
                   uint8_t(h >> 16), uint8_t(h >> 8), uint8_t(h), 8, 0, 0, 0, 0});
    chunk("IDAT", z);
    chunk("IEND", {});
    return png;
}

// `png` with a tEXt chunk saying `text` before IEND: the same pixels, other
// bytes (so another SHA-256: no cache knows it), made without re-encoding.
inline std::vector<uint8_t> with_text_chunk(const std::vector<uint8_t> &png, const std::string &text)
{
    if (png.size() < 12) return png;
    std::vector<uint8_t> chunk;
    auto be32 = [&](uint32_t v) {
        for (int s = 24; s >= 0; s -= 8) chunk.push_back(uint8_t(v >> s));
    };
    be32(uint32_t(8 + text.size()));
    const std::string body = std::string("tEXtComment") + '\0' + text;
    chunk.insert(chunk.end(), body.begin(), body.end());
    be32(uint32_t(crc32(0, chunk.data() + 4, uInt(chunk.size() - 4))));
    std::vector<uint8_t> out(png.begin(), png.end() - 12);   // IEND is the last 12 bytes
    out.insert(out.end(), chunk.begin(), chunk.end());
    out.insert(out.end(), png.end() - 12, png.end());
    return out;
}

}  // namespace vlm
