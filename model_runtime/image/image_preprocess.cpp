// image_preprocess.cpp: decoded RGB -> model pixels, as transformers 5.x's
// default GLM-4.6V image processor (Glm46VImageProcessor, torchvision
// backend) does: smart_resize (Python double math, round half to even), a
// uint8 bicubic resize with antialiasing reproducing torch's CPU uint8 kernel
// (separable, horizontal pass first, cubic a = -0.5 with support scaled by
// the downscale factor, int16 fixed-point weights, uint8 round+clamp between
// passes), then fused rescale+normalise in float32, temporal duplication and
// patchify in merge-block order. Video frames are out of scope.
#include "image/image.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace vlm {
namespace {

// Python round(): half to even (nearbyint under the default rounding mode).
double py_round(double v) { return std::nearbyint(v); }

double cubic_keys(double x) {
    const double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    return 0.0;
}

// Per output position: first input index, tap count, and int16 weights.
struct ResampleTaps {
    int                  max_taps = 0;
    int                  precision = 0;   // fixed-point fraction bits
    std::vector<int>     first, count;
    std::vector<int16_t> weights;         // out_size * max_taps
};

ResampleTaps compute_taps(int in_size, int out_size) {
    ResampleTaps t;
    const double scale = static_cast<double>(in_size) / out_size;
    const double support = scale >= 1.0 ? 2.0 * scale : 2.0;   // interp_size 4 / 2
    const double inv_scale = scale >= 1.0 ? 1.0 / scale : 1.0;
    t.max_taps = static_cast<int>(std::ceil(support)) * 2 + 1;
    t.first.resize(out_size);
    t.count.resize(out_size);
    std::vector<double> wf(static_cast<size_t>(out_size) * t.max_taps, 0.0);
    double wt_max = 0.0;
    for (int i = 0; i < out_size; ++i) {
        const double center = scale * (i + 0.5);
        const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
        int64_t n = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in_size) - lo;
        n = std::clamp<int64_t>(n, 0, t.max_taps);
        double *w = &wf[static_cast<size_t>(i) * t.max_taps];
        double total = 0.0;
        for (int64_t j = 0; j < n; ++j) {
            w[j] = cubic_keys((static_cast<double>(j + lo) - center + 0.5) * inv_scale);
            total += w[j];
        }
        if (total != 0.0)
            for (int64_t j = 0; j < n; ++j) w[j] /= total;
        for (int64_t j = 0; j < n; ++j) wt_max = std::max(wt_max, w[j]);
        t.first[i] = static_cast<int>(lo);
        t.count[i] = static_cast<int>(n);
    }
    // Largest precision that keeps 2 * the biggest weight below 2^15.
    int p = 0;
    for (p = 0; p < 22; ++p) {
        const int next = static_cast<int>(0.5 + wt_max * (1 << (p + 1)));
        if (next >= (1 << 15)) break;
    }
    t.precision = p;
    t.weights.resize(wf.size());
    for (size_t k = 0; k < wf.size(); ++k) {
        const double v = wf[k] * (1 << p);
        t.weights[k] = static_cast<int16_t>(v < 0 ? static_cast<int>(-0.5 + v) : static_cast<int>(0.5 + v));
    }
    return t;
}

inline uint8_t round_shift_clamp(int32_t acc, int precision) {
    const int32_t v = acc >> precision;
    return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Resamples along x (rows stay). src/dst are (h, w, 3) uint8.
void resample_horizontal(const uint8_t *src, int w_in, int h, uint8_t *dst, int w_out) {
    const ResampleTaps t = compute_taps(w_in, w_out);
    const int32_t half = 1 << (t.precision - 1);
    for (int y = 0; y < h; ++y) {
        const uint8_t *row = src + static_cast<size_t>(y) * w_in * 3;
        uint8_t *out = dst + static_cast<size_t>(y) * w_out * 3;
        for (int x = 0; x < w_out; ++x) {
            const int16_t *w = &t.weights[static_cast<size_t>(x) * t.max_taps];
            const uint8_t *s = row + static_cast<size_t>(t.first[x]) * 3;
            int32_t r = half, g = half, b = half;
            for (int k = 0; k < t.count[x]; ++k, s += 3) {
                r += s[0] * w[k];
                g += s[1] * w[k];
                b += s[2] * w[k];
            }
            out[3 * x + 0] = round_shift_clamp(r, t.precision);
            out[3 * x + 1] = round_shift_clamp(g, t.precision);
            out[3 * x + 2] = round_shift_clamp(b, t.precision);
        }
    }
}

// Resamples along y. src/dst are (h, w, 3) uint8.
void resample_vertical(const uint8_t *src, int w, int h_in, uint8_t *dst, int h_out) {
    const ResampleTaps t = compute_taps(h_in, h_out);
    const int32_t half = 1 << (t.precision - 1);
    const size_t row_len = static_cast<size_t>(w) * 3;
    std::vector<int32_t> acc(row_len);
    for (int y = 0; y < h_out; ++y) {
        std::fill(acc.begin(), acc.end(), half);
        const int16_t *wt = &t.weights[static_cast<size_t>(y) * t.max_taps];
        for (int k = 0; k < t.count[y]; ++k) {
            const uint8_t *s = src + static_cast<size_t>(t.first[y] + k) * row_len;
            const int32_t wk = wt[k];
            for (size_t i = 0; i < row_len; ++i) acc[i] += s[i] * wk;
        }
        uint8_t *out = dst + static_cast<size_t>(y) * row_len;
        for (size_t i = 0; i < row_len; ++i) out[i] = round_shift_clamp(acc[i], t.precision);
    }
}

}  // namespace

bool smart_resize(int height, int width, const PreprocessorConfig &pp, int &out_h, int &out_w,
                  std::string &err) {
    const int factor = pp.patch_size * pp.merge_size;
    const int temporal_factor = pp.temporal_patch_size;
    const int num_frames = pp.temporal_patch_size;  // a still image is padded to one temporal patch
    if (height <= 0 || width <= 0 || factor <= 0 || temporal_factor <= 0) {
        err = "smart_resize: invalid size " + std::to_string(width) + "x" + std::to_string(height);
        return false;
    }
    double h = height, w = width;
    if (height < factor || width < factor) {
        const double scale = std::max(static_cast<double>(factor) / height, static_cast<double>(factor) / width);
        h = std::trunc(h * scale);   // Python int() truncates
        w = std::trunc(w * scale);
    }
    if (h < 1 || w < 1 || std::max(h, w) / std::min(h, w) > 200.0) {
        err = "absolute aspect ratio must be smaller than 200, got " +
              std::to_string(std::max(h, w) / std::max(1.0, std::min(h, w))) + " (image " +
              std::to_string(width) + "x" + std::to_string(height) + ")";
        return false;
    }
    double h_bar = py_round(h / factor) * factor;
    double w_bar = py_round(w / factor) * factor;
    const double t_bar = py_round(static_cast<double>(num_frames) / temporal_factor) * temporal_factor;
    const double frames_hw = static_cast<double>(num_frames) * h * w;   // exact below 2^53
    if (t_bar * h_bar * w_bar > static_cast<double>(pp.max_pixels)) {
        const double beta = std::sqrt(frames_hw / static_cast<double>(pp.max_pixels));
        h_bar = std::max<double>(factor, std::floor(h / beta / factor) * factor);
        w_bar = std::max<double>(factor, std::floor(w / beta / factor) * factor);
    } else if (t_bar * h_bar * w_bar < static_cast<double>(pp.min_pixels)) {
        const double beta = std::sqrt(static_cast<double>(pp.min_pixels) / frames_hw);
        h_bar = std::ceil(h * beta / factor) * factor;
        w_bar = std::ceil(w * beta / factor) * factor;
    }
    if (h_bar < factor || w_bar < factor || h_bar > 1e9 || w_bar > 1e9) {
        err = "smart_resize: no valid size for " + std::to_string(width) + "x" + std::to_string(height);
        return false;
    }
    out_h = static_cast<int>(h_bar);
    out_w = static_cast<int>(w_bar);
    return true;
}

RgbImage resize_bicubic(const RgbImage &src, int out_w, int out_h) {
    RgbImage cur = src;
    if (out_w != src.width) {
        RgbImage next;
        next.width = out_w;
        next.height = cur.height;
        next.rgb.resize(static_cast<size_t>(out_w) * cur.height * 3);
        resample_horizontal(cur.rgb.data(), cur.width, cur.height, next.rgb.data(), out_w);
        cur = std::move(next);
    }
    if (out_h != src.height) {
        RgbImage next;
        next.width = cur.width;
        next.height = out_h;
        next.rgb.resize(static_cast<size_t>(cur.width) * out_h * 3);
        resample_vertical(cur.rgb.data(), cur.width, cur.height, next.rgb.data(), out_h);
        cur = std::move(next);
    }
    return cur;
}

bool preprocess_image(const RgbImage &img, const PreprocessorConfig &pp, PixelBatch &batch,
                      std::string &err) {
    const int P = pp.patch_size, M = pp.merge_size, T = pp.temporal_patch_size, C = 3;
    if (P <= 0 || M <= 0 || T <= 0) {
        err = "preprocessor config: patch_size, merge_size and temporal_patch_size must be positive";
        return false;
    }
    if (img.width <= 0 || img.height <= 0 ||
        img.rgb.size() != static_cast<size_t>(img.width) * img.height * 3) {
        err = "preprocess_image: empty or inconsistent image";
        return false;
    }
    const int patch_dim = C * T * P * P;
    if (batch.patch_dim != 0 && batch.patch_dim != patch_dim) {
        err = "preprocess_image: patch_dim " + std::to_string(patch_dim) +
              " differs from the batch's " + std::to_string(batch.patch_dim);
        return false;
    }

    // convert_to_rgb: a colour key composited onto white before the resize.
    RgbImage keyed_storage;
    const RgbImage *src = &img;
    if (pp.do_convert_rgb && img.has_colour_key) {
        keyed_storage = img;
        composite_colour_key_on_white(keyed_storage);
        src = &keyed_storage;
    }
    int h = src->height, w = src->width;
    RgbImage resized_storage;
    const RgbImage *resized = src;
    if (pp.do_resize) {
        if (!smart_resize(src->height, src->width, pp, h, w, err)) return false;
        if (h != src->height || w != src->width) {
            resized_storage = resize_bicubic(*src, w, h);
            resized = &resized_storage;
        }
    }
    if (h % (P * M) != 0 || w % (P * M) != 0) {
        err = "preprocess_image: size " + std::to_string(w) + "x" + std::to_string(h) +
              " is not a multiple of patch_size*merge_size = " + std::to_string(P * M);
        return false;
    }

    // Per-channel affine map in float32, in the reference's order: fused
    // (x - mean/r) / (std/r) when both steps are on, else x*r then (x-m)/s.
    float mean[3], stdv[3];
    const bool fused = pp.do_rescale && pp.do_normalize;
    const float inv_rescale = static_cast<float>(1.0 / pp.rescale_factor);
    for (int c = 0; c < 3; ++c) {
        mean[c] = fused ? pp.image_mean[c] * inv_rescale : pp.image_mean[c];
        stdv[c] = fused ? pp.image_std[c] * inv_rescale : pp.image_std[c];
    }
    const float rescale = static_cast<float>(pp.rescale_factor);
    float lut[3][256];
    for (int c = 0; c < 3; ++c) {
        for (int v = 0; v < 256; ++v) {
            float x = static_cast<float>(v);
            if (fused) {
                x = (x - mean[c]) / stdv[c];
            } else {
                if (pp.do_rescale) x = x * rescale;
                if (pp.do_normalize) x = (x - mean[c]) / stdv[c];
            }
            lut[c][v] = x;
        }
    }

    const int gh = h / P, gw = w / P;
    const int64_t n_rows = static_cast<int64_t>(gh) * gw;
    const size_t base = batch.values.size();
    batch.values.resize(base + static_cast<size_t>(n_rows) * patch_dim);
    float *out = batch.values.data() + base;
    const uint8_t *px = resized->rgb.data();
    // Rows in merge-block order; each row (c, t, y, x) with t duplicated.
    for (int bh = 0; bh < gh / M; ++bh)
        for (int bw = 0; bw < gw / M; ++bw)
            for (int ir = 0; ir < M; ++ir)
                for (int ic = 0; ic < M; ++ic) {
                    const int prow = bh * M + ir, pcol = bw * M + ic;
                    for (int c = 0; c < C; ++c) {
                        float *first = out;
                        for (int y = 0; y < P; ++y) {
                            const uint8_t *src = px + (static_cast<size_t>(prow * P + y) * w +
                                                       static_cast<size_t>(pcol) * P) * 3 + c;
                            for (int x = 0; x < P; ++x) *out++ = lut[c][src[3 * x]];
                        }
                        for (int t = 1; t < T; ++t) {
                            std::memcpy(out, first, sizeof(float) * P * P);
                            out += P * P;
                        }
                    }
                }
    batch.grids.push_back(ImageGrid{1, gh, gw});
    batch.n_patch += n_rows;
    batch.patch_dim = patch_dim;
    return true;
}

}  // namespace vlm
