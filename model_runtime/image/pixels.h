// pixels.h: what the image layer hands the model: the processor's settings
// (preprocessor_config.json, read by model/model_config.cpp) and preprocessed
// pixels in the processor's patch layout. Plain data; no model types, so the
// image decoders can be used without the model (vlm-bulk does).
#pragma once

#include <cstdint>
#include <vector>

namespace vlm {

struct PreprocessorConfig {
    long   min_pixels          = 12544;       // size.shortest_edge (transformers 5.23 default)
    long   max_pixels          = 11760000;    // size.longest_edge
    int    patch_size          = 14;
    int    temporal_patch_size = 2;
    int    merge_size          = 2;
    bool   do_resize           = true;
    bool   do_rescale          = true;
    double rescale_factor      = 1.0 / 255.0;
    bool   do_normalize        = true;
    bool   do_convert_rgb      = true;
    float  image_mean[3]       = {0.48145466f, 0.4578275f, 0.40821073f};
    float  image_std[3]        = {0.26862954f, 0.26130258f, 0.27577711f};
};

struct ImageGrid {
    int t = 1, h = 0, w = 0;   // in patches (h, w divisible by merge size)
};

// Preprocessed images of one request, in the processor's layout.
struct PixelBatch {
    std::vector<float>     values;   // (n_patch, C*T*P*P) row-major, (c,t,y,x) order
    std::vector<ImageGrid> grids;    // one per image
    int64_t                n_patch = 0;
    int                    patch_dim = 0;
};

}  // namespace vlm
