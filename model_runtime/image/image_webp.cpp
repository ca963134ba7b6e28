// image_webp.cpp: WebP -> RGB with libwebp. Still images (simple or VP8X,
// lossy or lossless, with or without alpha) decode straight to RGB; alpha is
// dropped without compositing, as Pillow's convert("RGB") does. For animated
// files the first ANMF frame is decoded and placed on a zero-filled canvas
// (what WebPAnimDecoder, used by Pillow, shows for frame 0), without linking
// libwebpdemux: the frame payload (optional ALPH + VP8/VP8L) is a bitstream
// WebPDecode accepts directly. Collects the EXIF and "XMP " chunks.
#include "image/image_codecs.h"

#include <webp/decode.h>

#include <cstring>

namespace vlm {
namespace {

inline uint32_t le24(const uint8_t *p) { return p[0] | (p[1] << 8) | (uint32_t(p[2]) << 16); }
inline uint32_t le32(const uint8_t *p) { return le24(p) | (uint32_t(p[3]) << 24); }

struct RiffChunk {
    const uint8_t *fourcc;
    const uint8_t *payload;
    size_t         size;
};

// Walks the chunks after "RIFF....WEBP", bounded by both the buffer and the
// RIFF size. Returns false on a chunk that runs past the end.
template <typename Fn>
bool for_each_chunk(const uint8_t *bytes, size_t size, Fn &&fn) {
    size_t end = size;
    const uint32_t riff_size = le32(bytes + 4);
    if (size_t(riff_size) + 8 < end) end = size_t(riff_size) + 8;
    size_t pos = 12;
    while (pos + 8 <= end) {
        const uint32_t len = le32(bytes + pos + 4);
        if (len > end - pos - 8) return false;
        if (!fn(RiffChunk{bytes + pos, bytes + pos + 8, len})) return true;
        pos += 8 + size_t(len) + (len & 1);
    }
    return true;
}

bool decode_still_into(const uint8_t *data, size_t size, int w, int h, uint8_t *dst,
                       size_t stride, std::string &err) {
    if (!WebPDecodeRGBInto(data, size, dst, stride * static_cast<size_t>(h), static_cast<int>(stride))) {
        err = "corrupt or truncated WebP (" + std::to_string(w) + "x" + std::to_string(h) + ")";
        return false;
    }
    return true;
}

}  // namespace

bool decode_webp(const uint8_t *bytes, size_t size, const ImageLimits &lim, DecodedFrame &out,
                 std::string &err) {
    // An extended file states its canvas first: refuse a pixel bomb from
    // the VP8X fields even when the rest of the file is junk.
    if (size >= 30 && std::memcmp(bytes + 12, "VP8X", 4) == 0 &&
        !check_image_dimensions(int64_t(le24(bytes + 24)) + 1, int64_t(le24(bytes + 27)) + 1, lim, err))
        return false;
    WebPBitstreamFeatures feat;
    const VP8StatusCode st = WebPGetFeatures(bytes, size, &feat);
    if (st != VP8_STATUS_OK) {
        err = st == VP8_STATUS_NOT_ENOUGH_DATA ? "truncated WebP (header incomplete)"
                                               : "corrupt WebP header";
        return false;
    }
    if (!check_image_dimensions(feat.width, feat.height, lim, err)) return false;

    const uint8_t *anmf = nullptr;
    size_t anmf_size = 0;
    const bool chunks_ok = for_each_chunk(bytes, size, [&](const RiffChunk &c) {
        if (std::memcmp(c.fourcc, "EXIF", 4) == 0 && out.exif.empty())
            out.exif.assign(c.payload, c.payload + c.size);
        else if (std::memcmp(c.fourcc, "XMP ", 4) == 0 && out.xmp.empty())
            out.xmp.assign(reinterpret_cast<const char *>(c.payload), c.size);
        else if (std::memcmp(c.fourcc, "ANMF", 4) == 0 && !anmf) {
            anmf = c.payload;
            anmf_size = c.size;
        }
        return true;
    });

    const int w = feat.width, h = feat.height;
    out.width = w;
    out.height = h;
    out.rgb.assign(static_cast<size_t>(w) * h * 3, 0);
    const size_t stride = static_cast<size_t>(w) * 3;
    if (!feat.has_animation) {
        if (!decode_still_into(bytes, size, w, h, out.rgb.data(), stride, err)) {
            out = DecodedFrame{};
            return false;
        }
        return true;
    }
    if (!chunks_ok || !anmf || anmf_size < 16) {
        err = "corrupt or truncated animated WebP (no complete first frame)";
        out = DecodedFrame{};
        return false;
    }
    const int fx = static_cast<int>(le24(anmf) * 2), fy = static_cast<int>(le24(anmf + 3) * 2);
    const int fw = static_cast<int>(le24(anmf + 6) + 1), fh = static_cast<int>(le24(anmf + 9) + 1);
    if (fx + fw > w || fy + fh > h) {
        err = "corrupt animated WebP (first frame outside the canvas)";
        out = DecodedFrame{};
        return false;
    }
    WebPBitstreamFeatures ff;
    if (WebPGetFeatures(anmf + 16, anmf_size - 16, &ff) != VP8_STATUS_OK || ff.width != fw ||
        ff.height != fh) {
        err = "corrupt animated WebP (first frame header)";
        out = DecodedFrame{};
        return false;
    }
    uint8_t *dst = &out.rgb[static_cast<size_t>(fy) * stride + static_cast<size_t>(fx) * 3];
    // Decode into the canvas in place; stride keeps rows apart. The final row
    // needs only fw*3 bytes, which is what libwebp checks against.
    const size_t room = stride * static_cast<size_t>(fh - 1) + static_cast<size_t>(fw) * 3;
    if (!WebPDecodeRGBInto(anmf + 16, anmf_size - 16, dst, room, static_cast<int>(stride))) {
        err = "corrupt or truncated animated WebP (first frame)";
        out = DecodedFrame{};
        return false;
    }
    return true;
}

}  // namespace vlm
