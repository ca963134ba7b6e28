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
};

// Decodes `bytes` (untrusted) into RGB with orientation applied. False with a
// one-line reason (unsupported format, truncated, over a limit).
bool decode_image(const uint8_t *bytes, size_t size, const ImageLimits &lim,
                  RgbImage &out, std::string &err);
bool decode_image_file(const std::string &path, const ImageLimits &lim,
                       RgbImage &out, std::string &err);

// smart_resize: the (height, width) the processor resizes to. False when the
// aspect ratio or size is out of the processor's range.
bool smart_resize(int height, int width, const PreprocessorConfig &pp,
                  int &out_h, int &out_w, std::string &err);

// Bicubic resize with antialiasing, bit-exact with the reference's uint8 path.
RgbImage resize_bicubic(const RgbImage &src, int out_w, int out_h);

// Full preprocessing of one decoded image appended to `batch`:
// resize -> rescale -> normalise -> temporal duplication -> patchify.
bool preprocess_image(const RgbImage &img, const PreprocessorConfig &pp,
                      PixelBatch &batch, std::string &err);

}  // namespace vlm
