// image_codecs.h: internal interface between decode_image (sniffing, limits,
// EXIF orientation) and the per-format decoders. Each decoder turns untrusted
// bytes into 8-bit RGB exactly as Pillow's Image.open(...).convert("RGB")
// would (alpha dropped, not composited), reports the colour key Pillow keeps
// in info["transparency"] (PNG tRNS, GIF transparent index) and hands back
// the raw EXIF / XMP payloads it saw; orientation is applied by the caller.
// Not a public API.
#pragma once

#include "image/image.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vlm {

struct DecodedFrame {
    int                  width = 0, height = 0;
    std::vector<uint8_t> rgb;    // height * width * 3
    std::vector<uint8_t> exif;   // TIFF payload, with or without "Exif\0\0"
    std::string          xmp;    // XMP packet text, if any
    bool                 has_colour_key = false;   // see RgbImage
    uint8_t              colour_key[3] = {0, 0, 0};
};

// Refuses zero-sized or over-limit dimensions before any pixel allocation.
// The message names the size and the limit.
bool check_image_dimensions(int64_t width, int64_t height,
                            const ImageLimits &lim, std::string &err);

bool decode_jpeg(const uint8_t *bytes, size_t size, const ImageLimits &lim,
                 DecodedFrame &out, std::string &err);
bool decode_png(const uint8_t *bytes, size_t size, const ImageLimits &lim,
                DecodedFrame &out, std::string &err);
bool decode_webp(const uint8_t *bytes, size_t size, const ImageLimits &lim,
                 DecodedFrame &out, std::string &err);
bool decode_gif(const uint8_t *bytes, size_t size, const ImageLimits &lim,
                DecodedFrame &out, std::string &err);

// EXIF orientation (1..8) as Pillow's Image.getexif() reports it: IFD0 tag
// 0x0112, else tiff:Orientation in the XMP packet; 1 when absent or invalid.
int exif_orientation(const std::vector<uint8_t> &exif, const std::string &xmp);

// Applies one of the 8 EXIF orientations as ImageOps.exif_transpose does.
void apply_orientation(int orientation, int &width, int &height,
                       std::vector<uint8_t> &rgb);

}  // namespace vlm
