// fuzz_image_decode.cpp: libFuzzer target for decode_image (format sniffing,
// JPEG/PNG/WebP/GIF decoders, EXIF orientation) with small limits so huge
// headers are refused quickly. On success the whole pixel buffer is read so
// ASan flags any size mismatch; a failure must give a one-line reason. A
// successful decode is also preprocessed at a tiny pixel budget. Seeds:
// tests/fixtures/images/*.
#include "image/image.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vlm::ImageLimits lim;
    lim.max_bytes = 1u << 20;
    lim.max_pixels = 1 << 20;
    vlm::RgbImage img;
    std::string err;
    if (!vlm::decode_image(data, size, lim, img, err)) {
        if (err.empty() || err.find('\n') != std::string::npos || img.width != 0) __builtin_trap();
        return 0;
    }
    if (img.width <= 0 || img.height <= 0 ||
        int64_t(img.width) * img.height > lim.max_pixels ||
        img.rgb.size() != size_t(img.width) * size_t(img.height) * 3)
        __builtin_trap();
    uint8_t acc = 0;
    for (uint8_t v : img.rgb) acc ^= v;
    volatile uint8_t sink = acc;
    (void)sink;

    vlm::PreprocessorConfig pp;
    pp.min_pixels = 28 * 28;
    pp.max_pixels = 28 * 28 * 8;
    vlm::PixelBatch batch;
    if (vlm::preprocess_image(img, pp, batch, err) &&
        batch.values.size() != size_t(batch.n_patch) * size_t(batch.patch_dim))
        __builtin_trap();
    return 0;
}
