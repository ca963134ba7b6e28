// Fits an image to the service's per-image limits before upload, as the browser client's prepareImage does:
// an image already within both limits goes out byte for byte; a larger one is decoded (the runtime's decoders,
// EXIF orientation applied), composited over white if it has alpha, box-filtered down to the pixel cap and
// re-encoded as JPEG (quality 90, then lower, then smaller) until it is under the byte cap.
// Leaves out: colour management (ICC profiles are dropped, as the service ignores them too) and the alpha of
// animated WebP and GIF frames (their transparent pixels keep the colour the runtime decoder gives them).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "image_source.h"

namespace vlm::bulk {

struct ShrinkLimits {
    size_t max_bytes = 10485760;           // the service's vlm_max_image_bytes (10m)
    int64_t max_pixels = 16777216;         // the service's vlm_max_pixels, width * height from the header
    int64_t max_decode_pixels = 100'000'000;  // larger images are refused before any pixel allocation
    size_t max_input_bytes = max_image_bytes;   // what load_image reads at most (image_source.h)
};

struct ShrinkInfo {
    bool shrunk = false;                   // bytes were replaced by a JPEG copy
    int64_t src_width = 0, src_height = 0; // as stored (before EXIF orientation)
    int out_width = 0, out_height = 0;     // of the JPEG copy, upright
    int quality = 0;                       // of the JPEG copy
};

// Replaces `bytes` (and `mime`) with a JPEG copy when the image is over a limit; leaves them untouched when it
// is within both. False with a one-line reason on an unreadable, unsupported or over-cap image.
bool fit_image_for_service(std::string& bytes, std::string& mime, const ShrinkLimits& lim, ShrinkInfo& info,
                           std::string& err);

// Width and height from the header alone (JPEG SOF, PNG IHDR, GIF logical screen, WebP canvas), as the
// service measures them. False when the header is missing or damaged.
bool probe_image_size(const std::string& bytes, int64_t& width, int64_t& height, std::string& err);

// Largest (w, h) with w * h <= max_pixels keeping the aspect ratio of (width, height) as closely as integers
// allow; both at least 1.
void fit_pixels(int64_t width, int64_t height, int64_t max_pixels, int& out_w, int& out_h);

// Area-averaging (box) downscale of packed 8-bit RGB; out_w <= width and out_h <= height.
std::vector<uint8_t> box_downscale(const std::vector<uint8_t>& rgb, int width, int height, int out_w, int out_h);

// Baseline JPEG of packed 8-bit RGB with libjpeg. False (with err) only on a libjpeg error.
bool encode_jpeg(const std::vector<uint8_t>& rgb, int width, int height, int quality, std::string& out,
                 std::string& err);

}  // namespace vlm::bulk
