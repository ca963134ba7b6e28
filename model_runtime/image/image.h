// image.h: image bytes -> model pixels. Decodes JPEG (libjpeg-turbo), PNG
// (libpng: alpha, 16-bit, palette), WebP (libwebp) and GIF (giflib, first
// frame) to 8-bit RGB, applies EXIF orientation as a browser does, then
// resizes and normalises exactly as the pinned transformers' default GLM-4.6V
// image processor does (smart_resize, bicubic, rescale, normalise, patchify).
#pragma once

#include "image/pixels.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vlm {

struct ImageLimits {
    size_t  max_bytes  = 20u << 20;        // encoded size
    int64_t max_pixels = 50'000'000;       // decoded width * height
};

struct RgbImage {
    int                  width = 0, height = 0;
    std::vector<uint8_t> rgb;   // height * width * 3
    // A colour-key transparency that Pillow keeps through convert("RGB") as
    // info["transparency"]: a PNG tRNS key (palette with one transparent
    // index, or a gray / RGB key) or a GIF transparent index, as the RGB
    // colour it became. Alpha channels (RGBA, gray+alpha, WebP alpha, a
    // palette tRNS with partial alpha) are dropped by convert("RGB") and
    // leave no key. transformers' GLM-4.6V processor (convert_to_rgb, with
    // do_convert_rgb) turns every pixel of exactly this colour white:
    // composite_colour_key_on_white.
    bool                 has_colour_key = false;
    uint8_t              colour_key[3] = {0, 0, 0};
};

// Decodes `bytes` (untrusted) into RGB with orientation applied. False with a
// one-line reason (unsupported format, truncated, over a limit).
bool decode_image(const uint8_t *bytes, size_t size, const ImageLimits &lim,
                  RgbImage &out, std::string &err);
bool decode_image_file(const std::string &path, const ImageLimits &lim,
                       RgbImage &out, std::string &err);

// What the processor's convert_to_rgb does to a decoded image: with a colour
// key, pixels equal to it are composited onto white (they are fully
// transparent, the rest opaque); the key is then cleared. No-op without one.
void composite_colour_key_on_white(RgbImage &img);

// smart_resize: the (height, width) the processor resizes to. False when the
// aspect ratio or size is out of the processor's range.
bool smart_resize(int height, int width, const PreprocessorConfig &pp,
                  int &out_h, int &out_w, std::string &err);

// Bicubic resize with antialiasing, bit-exact with the reference's uint8 path.
RgbImage resize_bicubic(const RgbImage &src, int out_w, int out_h);

// Full preprocessing of one decoded image appended to `batch`: colour key
// onto white (when do_convert_rgb) -> resize -> rescale -> normalise ->
// temporal duplication -> patchify.
bool preprocess_image(const RgbImage &img, const PreprocessorConfig &pp,
                      PixelBatch &batch, std::string &err);

}  // namespace vlm
