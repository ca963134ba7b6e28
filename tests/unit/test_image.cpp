// Image decoding and preprocessing against transformers 5.23's default
// GLM-4.6V processor (torchvision backend) on the fixture images: decoded
// size after EXIF, decoded pixels vs Pillow's (decoded/*.png), resized uint8
// (max diff <= 1), pixel_values and grids; smart_resize on a table computed
// with the reference smart_resize; and hostile inputs (truncated files of
// every format, garbage, empty, over the byte cap, pixel-bomb headers,
// unsupported formats), each refused with a one-line reason; and headers
// that understate what the decoders would decode or allocate (a GIF frame
// outside its screen, PNG rows with no data behind them, a JPEG of many
// scans, a WebP frame unlike its canvas), refused before the allocation.
#include "image/image.h"
#include "model/model_config.h"
#include "model/safetensors.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <new>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <sys/resource.h>

// The largest single allocation through operator new (every std::vector the
// decoders fill), so a test can say that a refused image cost no memory.
// GCC cannot see that the replaced new and delete below pair malloc/free.
static std::atomic<size_t> largest_new{0};
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void *operator new(std::size_t n) {
    size_t seen = largest_new.load(std::memory_order_relaxed);
    while (n > seen && !largest_new.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {}
    if (void *p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void *p) noexcept { std::free(p); }
void operator delete(void *p, std::size_t) noexcept { std::free(p); }

// After the standard headers: check.h defines a `fail` macro that breaks
// <istream> when it is parsed later.
#include <check.h>
#include <jansson.h>

using namespace vlm;

namespace {

std::string fixtures_dir() {
    const char *d = std::getenv("VLM_FIXTURES");
    ck_assert_msg(d && *d, "VLM_FIXTURES is not set");
    return d;
}

std::vector<uint8_t> read_bytes(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    ck_assert_msg(f.good(), "missing fixture %s", path.c_str());
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

bool contains(const std::string &s, const char *needle) { return s.find(needle) != std::string::npos; }

// Decoding `bytes` must fail, without crashing, with `needle` in the reason.
void expect_refused(const std::vector<uint8_t> &bytes, const ImageLimits &lim, const char *needle,
                    const char *what) {
    RgbImage img;
    std::string err;
    const bool ok = decode_image(bytes.data(), bytes.size(), lim, img, err);
    printf("  %-28s -> %s\n", what, ok ? "DECODED (unexpected)" : err.c_str());
    ck_assert_msg(!ok, "%s: decoded but should be refused", what);
    ck_assert_msg(contains(err, needle), "%s: reason '%s' lacks '%s'", what, err.c_str(), needle);
    ck_assert_msg(err.find('\n') == std::string::npos, "%s: reason is not one line", what);
}

PreprocessorConfig config_from_cases(json_t *header) {
    PreprocessorConfig pp;
    pp.min_pixels = static_cast<long>(json_integer_value(json_object_get(header, "min_pixels")));
    pp.max_pixels = static_cast<long>(json_integer_value(json_object_get(header, "max_pixels")));
    json_t *cfg = json_object_get(header, "processor_config");
    pp.patch_size = static_cast<int>(json_integer_value(json_object_get(cfg, "patch_size")));
    pp.temporal_patch_size = static_cast<int>(json_integer_value(json_object_get(cfg, "temporal_patch_size")));
    pp.merge_size = static_cast<int>(json_integer_value(json_object_get(cfg, "merge_size")));
    for (int c = 0; c < 3; ++c) {
        pp.image_mean[c] = static_cast<float>(json_number_value(json_array_get(json_object_get(cfg, "image_mean"), c)));
        pp.image_std[c] = static_cast<float>(json_number_value(json_array_get(json_object_get(cfg, "image_std"), c)));
    }
    ck_assert(pp.min_pixels > 0 && pp.max_pixels > 0 && pp.patch_size > 0);
    return pp;
}

std::string string_field(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(json_is_string(v), "cases.json: missing string '%s'", key);
    return json_string_value(v);
}

int integer_field(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(json_is_integer(v), "cases.json: missing integer '%s'", key);
    return static_cast<int>(json_integer_value(v));
}

}  // namespace

// Every fixture image: decode, EXIF, resize, normalise, patchify vs golden.
START_TEST(fixtures_match_reference) {
    const std::string fx = fixtures_dir();
    json_error_t jerr;
    json_t *root = json_load_file((fx + "/preprocess/cases.json").c_str(), 0, &jerr);
    ck_assert_msg(root, "cases.json: %s", jerr.text);
    const PreprocessorConfig pp = config_from_cases(json_object_get(root, "header"));
    SafetensorsSet golden;
    std::string err;
    ck_assert_msg(golden.open_file(fx + "/preprocess/golden.safetensors", err), "%s", err.c_str());

    json_t *cases = json_object_get(root, "cases");
    ck_assert_msg(json_array_size(cases) >= 10, "too few fixture cases");
    int n_pixel_values_checked = 0, n_resized_checked = 0, n_decoded_checked = 0;
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const std::string stem = string_field(c, "stem");
        const std::string file = string_field(c, "file");
        ImageLimits lim;
        RgbImage img;
        ck_assert_msg(decode_image_file(fx + "/images/" + file, lim, img, err), "%s", err.c_str());
        ck_assert_msg(img.width == integer_field(c, "width") && img.height == integer_field(c, "height"),
                      "%s: decoded %dx%d, reference %dx%d", file.c_str(), img.width, img.height,
                      integer_field(c, "width"), integer_field(c, "height"));

        // Decoded pixels vs Pillow's (stored losslessly as PNG by the generator,
        // for most images; the resized golden covers the others).
        int decode_diff = -1;
        if (json_t *dec_png = json_object_get(c, "decoded_png"); json_is_string(dec_png)) {
            RgbImage pil;
            ck_assert_msg(decode_image_file(fx + "/preprocess/" + json_string_value(dec_png), lim, pil, err),
                          "%s", err.c_str());
            ck_assert(pil.width == img.width && pil.height == img.height);
            decode_diff = 0;
            for (size_t k = 0; k < img.rgb.size(); ++k)
                decode_diff = std::max(decode_diff, std::abs(int(img.rgb[k]) - int(pil.rgb[k])));
            ++n_decoded_checked;
        }

        int rh = 0, rw = 0;
        ck_assert_msg(smart_resize(img.height, img.width, pp, rh, rw, err), "%s", err.c_str());
        ck_assert_msg(rh == integer_field(c, "resized_h") && rw == integer_field(c, "resized_w"),
                      "%s: smart_resize %dx%d, reference %dx%d", file.c_str(), rw, rh,
                      integer_field(c, "resized_w"), integer_field(c, "resized_h"));
        const RgbImage resized = (rh == img.height && rw == img.width) ? img : resize_bicubic(img, rw, rh);
        // The generator keeps the resized golden for most images (not all, to
        // stay small); the decode, size and grid checks cover the others.
        int resize_diff = -1;
        long n_differ = 0;
        const TensorView *ref = golden.find(stem + ".resized");
        ck_assert_msg(ref || !json_is_true(json_object_get(c, "has_resized")),
                      "%s.resized missing from golden.safetensors", stem.c_str());
        if (ref) {
            ck_assert_msg(ref->dtype == DType::F32 && ref->numel() == int64_t(rh) * rw * 3,
                          "%s.resized: dtype %d, %lld values, expected F32 %dx%dx3", stem.c_str(),
                          int(ref->dtype), (long long)ref->numel(), rh, rw);
            const float *rv = static_cast<const float *>(ref->data);
            resize_diff = 0;
            for (size_t k = 0; k < resized.rgb.size(); ++k) {
                const int d = std::abs(int(resized.rgb[k]) - int(std::lround(rv[k])));
                resize_diff = std::max(resize_diff, d);
                n_differ += d != 0;
            }
            ++n_resized_checked;
        }

        PixelBatch batch;
        ck_assert_msg(preprocess_image(img, pp, batch, err), "%s", err.c_str());
        json_t *grid = json_object_get(c, "grid_thw");
        ck_assert_int_eq(batch.grids.size(), 1);
        ck_assert_int_eq(batch.grids[0].t, json_integer_value(json_array_get(grid, 0)));
        ck_assert_int_eq(batch.grids[0].h, json_integer_value(json_array_get(grid, 1)));
        ck_assert_int_eq(batch.grids[0].w, json_integer_value(json_array_get(grid, 2)));
        ck_assert_int_eq(batch.n_patch, integer_field(c, "n_patches"));
        ck_assert_int_eq(batch.patch_dim, 3 * pp.temporal_patch_size * pp.patch_size * pp.patch_size);

        double pv_diff = -1;
        const TensorView *pv = golden.find(stem + ".pixel_values");
        ck_assert_msg(pv || !json_is_true(json_object_get(c, "has_pixel_values")),
                      "%s.pixel_values missing from golden.safetensors", stem.c_str());
        if (pv) {
            ck_assert_int_eq(pv->numel(), int64_t(batch.values.size()));
            const float *p = static_cast<const float *>(pv->data);
            pv_diff = 0;
            for (size_t k = 0; k < batch.values.size(); ++k)
                pv_diff = std::max(pv_diff, double(std::fabs(batch.values[k] - p[k])));
            ++n_pixel_values_checked;
        }
        char pv_text[32];
        std::snprintf(pv_text, sizeof pv_text, "%.3g", pv_diff);
        printf("  %-15s %4dx%-4d -> %3dx%-3d decode max|d|=%s  resized max|d|=%s (%ld values differ)  "
               "pixel_values max|d|=%s\n",
               stem.c_str(), img.width, img.height, rw, rh,
               decode_diff < 0 ? "(no png)" : std::to_string(decode_diff).c_str(),
               resize_diff < 0 ? "(no golden)" : std::to_string(resize_diff).c_str(), n_differ,
               pv_diff < 0 ? "(no golden)" : pv_text);
        ck_assert_msg(decode_diff <= 0, "%s: decoded pixels differ from Pillow by %d", stem.c_str(), decode_diff);
        ck_assert_msg(resize_diff <= 1, "%s: resized differs by %d", stem.c_str(), resize_diff);
        // One uint8 step after normalisation is 1/(255*std) <= 0.0153; when the
        // resized bytes agree the float path must agree to rounding (~1e-6).
        if (pv_diff >= 0) {
            ck_assert_msg(pv_diff <= (resize_diff <= 0 ? 1e-5 : 0.016), "%s: pixel_values differ by %g",
                          stem.c_str(), pv_diff);
        }
    }
    printf("  checked %d decoded, %d resized and %d pixel_values goldens\n", n_decoded_checked,
           n_resized_checked, n_pixel_values_checked);
    ck_assert_msg(n_decoded_checked >= 4, "only %d decoded references found", n_decoded_checked);
    ck_assert_msg(n_resized_checked >= 4, "only %d resized goldens found", n_resized_checked);
    // Full pixel_values goldens live with the model fixtures (see below).
    json_decref(root);
}
END_TEST

// Every model golden case: the request's images decoded and preprocessed with
// that model's preprocessor_config.json give exactly the pixel_values
// transformers fed the model (rows of all images concatenated).
START_TEST(model_goldens_pixel_values) {
    const std::string fx = fixtures_dir();
    int n_checked = 0;
    // golden-transparency: the colour-key and alpha images (make_transparency.py).
    const std::pair<const char *, const char *> sets[] = {
        {"tiny-flash", "golden"}, {"tiny-alt", "golden"}, {"tiny-flash-bf16", "golden"},
        {"tiny-flash", "golden-transparency"}};
    for (const auto &[model, golden_dir] : sets) {
        const std::string dir = fx + "/models/" + model;
        PreprocessorConfig pp;
        std::string err;
        ck_assert_msg(load_preprocessor_config(dir + "/preprocessor_config.json", pp, err), "%s", err.c_str());
        json_error_t jerr;
        json_t *root = json_load_file((dir + "/" + golden_dir + "/cases.json").c_str(), 0, &jerr);
        ck_assert_msg(root, "%s/%s: %s", model, golden_dir, jerr.text);
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(root, "cases"), i, c) {
            json_t *images = json_object_get(c, "images");
            if (json_array_size(images) == 0) continue;
            PixelBatch batch;
            size_t j;
            json_t *name;
            json_array_foreach(images, j, name) {
                const std::vector<uint8_t> bytes = read_bytes(fx + "/images/" + json_string_value(name));
                RgbImage img;
                ck_assert_msg(decode_image(bytes.data(), bytes.size(), ImageLimits{}, img, err), "%s", err.c_str());
                ck_assert_msg(preprocess_image(img, pp, batch, err), "%s", err.c_str());
            }
            SafetensorsSet golden;
            ck_assert_msg(golden.open_file(fx + "/" + json_string_value(json_object_get(c, "pixel_values_file")), err),
                          "%s", err.c_str());
            const char *key = json_string_value(json_object_get(c, "pixel_values_key"));
            const TensorView *pv = golden.find(key);
            ck_assert_msg(pv != nullptr, "%s missing", key);
            ck_assert_int_eq(pv->numel(), int64_t(batch.values.size()));
            const float *ref = static_cast<const float *>(pv->data);
            double max_diff = 0;
            for (size_t k = 0; k < batch.values.size(); ++k)
                max_diff = std::max(max_diff, std::fabs(double(batch.values[k]) - ref[k]));
            json_t *grids = json_object_get(c, "image_grid_thw");
            ck_assert_int_eq(json_array_size(grids), batch.grids.size());
            for (size_t g = 0; g < batch.grids.size(); ++g) {
                json_t *thw = json_array_get(grids, g);
                ck_assert_int_eq(json_integer_value(json_array_get(thw, 1)), batch.grids[g].h);
                ck_assert_int_eq(json_integer_value(json_array_get(thw, 2)), batch.grids[g].w);
            }
            printf("  %s/%s: pixel_values max|d|=%g over %zu values\n", model,
                   json_string_value(json_object_get(c, "name")), max_diff, batch.values.size());
            // Identical resized bytes leave only float rounding (~1e-6).
            ck_assert_msg(max_diff <= 1e-5, "%s: pixel_values differ by %g", key, max_diff);
            ++n_checked;
        }
        json_decref(root);
    }
    ck_assert_msg(n_checked >= 8, "only %d pixel_values goldens checked", n_checked);
}
END_TEST

// Colour keys and alpha channels (tests/fixtures/preprocess/transparency/):
// Pillow keeps a PNG tRNS key / GIF transparent index through
// convert("RGB") and the processor composites that colour onto white; alpha
// channels are dropped. Decoded + composite_colour_key_on_white must equal
// the processor's RGB view exactly, the key must be reported exactly when
// Pillow kept one, and the processor's resize must agree to one step.
START_TEST(transparency_fixtures_match_reference) {
    const std::string fx = fixtures_dir();
    const std::string dir = fx + "/preprocess/transparency";
    json_error_t jerr;
    json_t *root = json_load_file((dir + "/cases.json").c_str(), 0, &jerr);
    ck_assert_msg(root, "transparency/cases.json: %s", jerr.text);
    const PreprocessorConfig pp = config_from_cases(json_object_get(root, "header"));
    SafetensorsSet golden;
    std::string err;
    ck_assert_msg(golden.open_file(dir + "/golden.safetensors", err), "%s", err.c_str());
    size_t i;
    json_t *c;
    int n_keyed = 0, n_cases = 0;
    json_array_foreach(json_object_get(root, "cases"), i, c) {
        const std::string stem = string_field(c, "stem"), file = string_field(c, "file");
        RgbImage img;
        ck_assert_msg(decode_image_file(fx + "/images/" + file, ImageLimits{}, img, err), "%s", err.c_str());
        const bool pil_key = !json_is_null(json_object_get(c, "colour_key"));
        ck_assert_msg(img.has_colour_key == pil_key, "%s: colour key %s, Pillow %s", file.c_str(),
                      img.has_colour_key ? "found" : "not found", pil_key ? "kept one" : "kept none");
        RgbImage view = img;
        composite_colour_key_on_white(view);
        ck_assert(!view.has_colour_key);
        long turned_white = 0;
        for (size_t k = 0; k < img.rgb.size(); k += 3)
            turned_white += std::memcmp(&img.rgb[k], &view.rgb[k], 3) != 0;
        RgbImage ref;
        ck_assert_msg(decode_image_file(dir + "/" + string_field(c, "decoded_png"), ImageLimits{}, ref, err), "%s",
                      err.c_str());
        ck_assert_msg(ref.width == view.width && ref.height == view.height, "%s: %dx%d, reference %dx%d",
                      file.c_str(), view.width, view.height, ref.width, ref.height);
        long n_diff = 0;
        for (size_t k = 0; k < view.rgb.size(); ++k) n_diff += view.rgb[k] != ref.rgb[k];
        int rh = 0, rw = 0;
        ck_assert_msg(smart_resize(view.height, view.width, pp, rh, rw, err), "%s", err.c_str());
        const RgbImage resized = resize_bicubic(view, rw, rh);
        const TensorView *rv = golden.find(stem + ".resized");
        ck_assert_msg(rv && rv->numel() == int64_t(rh) * rw * 3, "%s.resized missing or %dx%d wrong", stem.c_str(),
                      rw, rh);
        int resize_diff = 0;
        for (size_t k = 0; k < resized.rgb.size(); ++k)
            resize_diff = std::max(resize_diff, std::abs(int(resized.rgb[k]) -
                                                         int(std::lround(static_cast<const float *>(rv->data)[k]))));
        // preprocess_image composites on its own (do_convert_rgb): same grid
        // and the same first patch as from the composited image.
        PixelBatch from_decoded, from_view;
        ck_assert_msg(preprocess_image(img, pp, from_decoded, err) && preprocess_image(view, pp, from_view, err),
                      "%s", err.c_str());
        ck_assert_msg(from_decoded.values == from_view.values, "%s: preprocess_image did not apply the key",
                      file.c_str());
        printf("  %-18s %-5s key %-13s %5ld px white (Pillow %lld)  decode diff %ld  resized max|d|=%d\n",
               file.c_str(), string_field(c, "pil_mode").c_str(),
               img.has_colour_key ? (std::to_string(img.colour_key[0]) + "," + std::to_string(img.colour_key[1]) +
                                     "," + std::to_string(img.colour_key[2])).c_str() : "-",
               turned_white, (long long)json_integer_value(json_object_get(c, "pixels_turned_white")), n_diff,
               resize_diff);
        ck_assert_msg(turned_white == json_integer_value(json_object_get(c, "pixels_turned_white")),
                      "%s: %ld pixels turned white, Pillow %lld", file.c_str(), turned_white,
                      (long long)json_integer_value(json_object_get(c, "pixels_turned_white")));
        ck_assert_msg(n_diff == 0, "%s: %ld samples differ from the processor's RGB", file.c_str(), n_diff);
        ck_assert_msg(resize_diff <= 1, "%s: resized differs by %d", file.c_str(), resize_diff);
        n_keyed += pil_key;
        ++n_cases;
    }
    ck_assert_msg(n_cases >= 12 && n_keyed >= 8, "only %d cases, %d with a key", n_cases, n_keyed);
    json_decref(root);
}
END_TEST

// Rows of patches are appended image after image, grids in order.
START_TEST(batch_appends_images) {
    PreprocessorConfig pp;
    pp.min_pixels = 12544;
    pp.max_pixels = 9633792;
    RgbImage a{56, 56, std::vector<uint8_t>(56 * 56 * 3, 10)};
    RgbImage b{112, 84, std::vector<uint8_t>(112 * 84 * 3, 200)};
    PixelBatch batch;
    std::string err;
    ck_assert(preprocess_image(a, pp, batch, err));
    const int64_t after_a = batch.n_patch;
    ck_assert(preprocess_image(b, pp, batch, err));
    ck_assert_int_eq(batch.grids.size(), 2);
    ck_assert_int_eq(batch.n_patch, after_a + int64_t(batch.grids[1].h) * batch.grids[1].w);
    ck_assert_int_eq(int64_t(batch.values.size()), batch.n_patch * batch.patch_dim);
    // Constant images normalise to one constant per channel.
    const float first_b = batch.values[size_t(after_a) * batch.patch_dim];
    ck_assert_float_eq_tol(first_b, (200.0f - pp.image_mean[0] * 255.0f) / (pp.image_std[0] * 255.0f), 1e-5f);
}
END_TEST

// Expected values from transformers.models.glm46v smart_resize (Python).
START_TEST(smart_resize_table) {
    struct Row { int h, w; long mn, mx; int eh, ew; };
    static const Row rows[] = {
        {28, 28, 12544, 9633792, 84, 84},
        {1, 1, 12544, 9633792, 84, 84},
        {42, 1000, 12544, 9633792, 56, 1008},     // 1.5 -> 2
        {70, 1000, 12544, 9633792, 56, 1008},     // 2.5 -> 2 (half to even)
        {98, 1000, 12544, 9633792, 112, 1008},    // 3.5 -> 4
        {126, 1000, 12544, 9633792, 112, 1008},   // 4.5 -> 4 (half to even)
        {1000, 70, 12544, 9633792, 1008, 56},
        {1024, 1024, 12544, 9633792, 1036, 1036},
        {1080, 1920, 12544, 9633792, 1092, 1932},
        {4000, 3000, 12544, 9633792, 2520, 1876},
        {10000, 10000, 12544, 9633792, 2184, 2184},
        {20, 60, 12544, 9633792, 56, 140},
        {13, 500, 12544, 9633792, 28, 1064},
        {28, 5600, 12544, 9633792, 28, 5600},
        {28, 5601, 12544, 9633792, -1, -1},       // aspect 200.04
        {10, 2001, 12544, 9633792, -1, -1},       // aspect 200.07 after the small-image path
        {5600, 28, 12544, 9633792, 5600, 28},
        {1, 200, 12544, 9633792, 28, 5600},
        {50000, 300, 12544, 9633792, 28308, 168},
        {3000, 7, 12544, 9633792, -1, -1},
        {224, 224, 12544, 9633792, 224, 224},
        {111, 111, 12544, 9633792, 112, 112},
        {6000, 6000, 12544, 9633792, 2184, 2184},
        {3072, 4096, 12544, 9633792, 1876, 2520},
        {123, 4567, 12544, 9633792, 112, 4564},
        {28, 28, 12544, 25088, 84, 84},
        {42, 1000, 12544, 25088, 28, 532},
        {70, 1000, 12544, 25088, 28, 420},
        {98, 1000, 12544, 25088, 28, 336},
        {126, 1000, 12544, 25088, 28, 308},
        {1000, 70, 12544, 25088, 420, 28},
        {1024, 1024, 12544, 25088, 112, 112},
        {1080, 1920, 12544, 25088, 84, 140},
        {4000, 3000, 12544, 25088, 112, 84},
        {10000, 10000, 12544, 25088, 84, 84},
        {13, 500, 12544, 25088, 28, 672},
        {28, 5600, 12544, 25088, 28, 1568},
        {5600, 28, 12544, 25088, 1568, 28},
        {1, 200, 12544, 25088, 28, 1568},
        {50000, 300, 12544, 25088, 1428, 28},
        {3072, 4096, 12544, 25088, 84, 112},
        {123, 4567, 12544, 25088, 28, 672},
    };
    for (const Row &r : rows) {
        PreprocessorConfig pp;
        pp.min_pixels = r.mn;
        pp.max_pixels = r.mx;
        int h = 0, w = 0;
        std::string err;
        const bool ok = smart_resize(r.h, r.w, pp, h, w, err);
        if (r.eh < 0) {
            ck_assert_msg(!ok, "%dx%d should be refused", r.w, r.h);
            ck_assert_msg(contains(err, "aspect ratio"), "reason: %s", err.c_str());
        } else {
            ck_assert_msg(ok, "%dx%d: %s", r.w, r.h, err.c_str());
            ck_assert_msg(h == r.eh && w == r.ew, "(h=%d,w=%d) max=%ld -> (%d,%d), expected (%d,%d)", r.h, r.w,
                          r.mx, h, w, r.eh, r.ew);
        }
    }
}
END_TEST

namespace {

uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) {
        c ^= p[i];
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

void put_be32(std::vector<uint8_t> &v, uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}

std::vector<uint8_t> png_bomb_header() {
    std::vector<uint8_t> v = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    std::vector<uint8_t> ihdr = {'I', 'H', 'D', 'R'};
    put_be32(ihdr, 100000);
    put_be32(ihdr, 100000);
    ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});   // 8-bit RGB, no interlace
    put_be32(v, 13);
    v.insert(v.end(), ihdr.begin(), ihdr.end());
    put_be32(v, crc32_of(ihdr.data(), ihdr.size()));
    return v;
}

std::vector<uint8_t> jpeg_bomb_header() {
    // SOI, SOF0 60000x60000 3 components, SOS, a few bytes, EOI.
    return {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xEA, 0x60, 0xEA, 0x60, 0x03,
            0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01,
            0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3F, 0x00,
            0x12, 0x34, 0xFF, 0xD9};
}

std::vector<uint8_t> gif_bomb_header() {
    return {'G', 'I', 'F', '8', '9', 'a', 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00,
            ',', 0, 0, 0, 0, 1, 0, 1, 0, 0, 0x02, 0x02, 0x44, 0x01, 0x00, ';'};
}

std::vector<uint8_t> webp_bomb_header() {
    // RIFF/WEBP with a VP8X canvas of 100000x100000 (24-bit minus-one fields).
    std::vector<uint8_t> v = {'R', 'I', 'F', 'F', 30, 0, 0, 0, 'W', 'E', 'B', 'P',
                              'V', 'P', '8', 'X', 10, 0, 0, 0, 0, 0, 0, 0};
    const uint32_t m = 100000 - 1;
    for (int k = 0; k < 2; ++k) { v.push_back(m & 0xFF); v.push_back((m >> 8) & 0xFF); v.push_back(m >> 16); }
    v.insert(v.end(), {'V', 'P', '8', 'L', 0, 0, 0, 0});
    return v;
}

// GIF89a with no colour table: a 1x1 screen, then frames (left, top, width,
// height), the first with the 1x1 LZW data of gif_bomb_header, the others
// with no data at all (only their descriptors matter).
std::vector<uint8_t> gif_with_frames(std::initializer_list<std::array<int, 4>> frames) {
    std::vector<uint8_t> v = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x00, 0x00, 0x00};
    bool first = true;
    for (const auto &f : frames) {
        v.push_back(',');
        for (int x : f) { v.push_back(uint8_t(x)); v.push_back(uint8_t(x >> 8)); }
        v.push_back(0);
        if (first) v.insert(v.end(), {0x02, 0x02, 0x44, 0x01, 0x00});
        else v.insert(v.end(), {0x02, 0x00});
        first = false;
    }
    v.push_back(';');
    return v;
}

// A PNG whose IHDR asks for width x height RGBA16 (8 bytes a pixel) and
// whose IDAT holds only idat_bytes: a zlib header, then filler.
std::vector<uint8_t> png_with_idat(uint32_t width, uint32_t height, size_t idat_bytes) {
    std::vector<uint8_t> v = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    auto chunk = [&](const char *type, const std::vector<uint8_t> &data) {
        put_be32(v, uint32_t(data.size()));
        std::vector<uint8_t> td(type, type + 4);
        td.insert(td.end(), data.begin(), data.end());
        v.insert(v.end(), td.begin(), td.end());
        put_be32(v, crc32_of(td.data(), td.size()));
    };
    std::vector<uint8_t> ihdr;
    put_be32(ihdr, width);
    put_be32(ihdr, height);
    ihdr.insert(ihdr.end(), {16, 6, 0, 0, 0});
    chunk("IHDR", ihdr);
    std::vector<uint8_t> idat(idat_bytes, 0x55);
    idat[0] = 0x78;
    idat[1] = 0x9C;
    chunk("IDAT", idat);
    chunk("IEND", {});
    return v;
}

// A 1x1 PNG carrying n_chunks zTXt chunks that each inflate to about
// inflated_mb MB of 'A': fixed-Huffman deflate, one literal then matches of
// 258 at distance 1 (13 bits each), with the zlib header and Adler-32.
std::vector<uint8_t> png_with_text_bombs(int n_chunks, int inflated_mb) {
    std::vector<uint8_t> z = {0x78, 0x01};
    uint32_t acc = 0;
    int nacc = 0;
    auto put = [&](uint32_t v, int n) {   // LSB first
        acc |= v << nacc;
        nacc += n;
        while (nacc >= 8) { z.push_back(uint8_t(acc)); acc >>= 8; nacc -= 8; }
    };
    auto code = [&](uint32_t c, int n) {  // Huffman codes go MSB first
        for (int i = n - 1; i >= 0; --i) put((c >> i) & 1, 1);
    };
    put(1, 1);                      // BFINAL
    put(1, 2);                      // fixed Huffman
    code(0x30 + 'A', 8);            // literal 'A' (text stops at a NUL)
    const uint32_t matches = uint32_t(inflated_mb) * (1u << 20) / 258;
    for (uint32_t m = 0; m < matches; ++m) {
        code(0xC5, 8);              // length 258 (code 285)
        code(0, 5);                 // distance 1
    }
    code(0, 7);                     // end of block
    if (nacc) put(0, 8 - nacc);
    const uint64_t n = 1 + uint64_t(matches) * 258;
    const uint64_t a = (1 + 'A' * n) % 65521, b = (n + 'A' * (n * (n + 1) / 2 % 65521)) % 65521;
    put_be32(z, uint32_t(b << 16 | a));

    std::vector<uint8_t> v = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    auto chunk = [&](const char *type, const std::vector<uint8_t> &data) {
        put_be32(v, uint32_t(data.size()));
        std::vector<uint8_t> td(type, type + 4);
        td.insert(td.end(), data.begin(), data.end());
        v.insert(v.end(), td.begin(), td.end());
        put_be32(v, crc32_of(td.data(), td.size()));
    };
    chunk("IHDR", {0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0});   // 1x1 grey
    std::vector<uint8_t> ztxt = {'C', 'o', 'm', 'm', 'e', 'n', 't', 0, 0};
    ztxt.insert(ztxt.end(), z.begin(), z.end());
    for (int i = 0; i < n_chunks; ++i) chunk("zTXt", ztxt);
    // zlib of the one row "filter 0, pixel 0x80", stored
    chunk("IDAT", {0x78, 0x01, 0x01, 0x02, 0x00, 0xFD, 0xFF, 0x00, 0x80, 0x00, 0x82, 0x00, 0x81});
    chunk("IEND", {});
    return v;
}

long max_rss_kb() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

// A 64x64 greyscale progressive JPEG of n_bands single-coefficient AC bands,
// each sent in a first and a refinement scan, after the DC scans: 2 + 2 *
// n_bands scans (libjpeg's own progressive script has 6).
std::vector<uint8_t> jpeg_with_scans(int n_bands) {
    jpeg_compress_struct c;
    jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *buf = nullptr;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &buf, &size);
    c.image_width = 64;
    c.image_height = 64;
    c.input_components = 1;
    c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    std::vector<jpeg_scan_info> scans;
    scans.push_back({1, {0}, 0, 0, 0, 1});
    for (int k = 1; k <= n_bands; ++k) scans.push_back({1, {0}, k, k, 0, 1});
    scans.push_back({1, {0}, 0, 0, 1, 0});
    for (int k = 1; k <= n_bands; ++k) scans.push_back({1, {0}, k, k, 1, 0});
    c.scan_info = scans.data();
    c.num_scans = int(scans.size());
    jpeg_start_compress(&c, TRUE);
    std::vector<uint8_t> row(64);
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < 64; ++x) row[x] = uint8_t(x * 4 + c.next_scanline);
        JSAMPROW r = row.data();
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    std::vector<uint8_t> out(buf, buf + size);
    std::free(buf);
    return out;
}

// A VP8X file: canvas width x height, then one VP8L bitstream header of the
// given size (the pixels are never reached).
std::vector<uint8_t> webp_canvas_and_frame(uint32_t cw, uint32_t ch, uint32_t fw, uint32_t fh) {
    std::vector<uint8_t> v = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P',
                              'V', 'P', '8', 'X', 10, 0, 0, 0, 0, 0, 0, 0};
    for (uint32_t m : {cw - 1, ch - 1}) { v.push_back(m & 0xFF); v.push_back((m >> 8) & 0xFF); v.push_back(m >> 16); }
    v.insert(v.end(), {'V', 'P', '8', 'L', 13, 0, 0, 0, 0x2F});
    const uint32_t bits = (fw - 1) | (fh - 1) << 14;
    for (int k = 0; k < 4; ++k) v.push_back(uint8_t(bits >> (8 * k)));
    v.insert(v.end(), 9, 0);
    const uint32_t riff = uint32_t(v.size() - 8);
    for (int k = 0; k < 4; ++k) v[4 + k] = uint8_t(riff >> (8 * k));
    return v;
}

// Refused, with `needle` in the reason, and no allocation over 1 MB on the way.
void expect_refused_cheaply(const std::vector<uint8_t> &bytes, const ImageLimits &lim, const char *needle,
                            const char *what) {
    largest_new = 0;
    expect_refused(bytes, lim, needle, what);
    ck_assert_msg(largest_new < (1u << 20), "%s: allocated %zu bytes before refusing", what,
                  size_t(largest_new));
}

}  // namespace

// Issue 12: headers that understate what the decoders allocate or decode.
START_TEST(lying_headers_refused_before_allocation) {
    ImageLimits lim;
    lim.max_pixels = 16777216;   // the module's default vlm_max_pixels

    // The first frame is what vlmd decodes, on a canvas grown to hold it: a
    // 1x1 screen with a 7000x7000 frame is a 49 Mpx image. Frames after the
    // first are never read, however large.
    expect_refused_cheaply(gif_with_frames({{0, 0, 7000, 7000}}), lim,
                           "image is 7000x7000 = 49000000 pixels, over the limit of 16777216",
                           "GIF frame outside its screen");
    RgbImage img;
    std::string err;
    const std::vector<uint8_t> later = gif_with_frames({{0, 0, 1, 1}, {0, 0, 7000, 7000}});
    largest_new = 0;
    ck_assert_msg(decode_image(later.data(), later.size(), lim, img, err), "%s", err.c_str());
    ck_assert(img.width == 1 && img.height == 1 && largest_new < (1u << 20));

    // 4000x4000 RGBA16 is 128 MB of rows, allocated before libpng read the
    // 1 KB of IDAT that cannot fill them (deflate expands at most 1032:1).
    expect_refused_cheaply(png_with_idat(4000, 4000, 1024), lim, "truncated PNG", "PNG IDAT too short for IHDR");

    // A progressive JPEG is decoded scan by scan, each scan a pass over its
    // whole component: 128 scans of 64x64 are cheap, of 4096x4096 are not.
    RgbImage ok;
    const std::vector<uint8_t> few = jpeg_with_scans(40), many = jpeg_with_scans(63);
    ck_assert_msg(decode_image(few.data(), few.size(), lim, ok, err), "82 scans: %s", err.c_str());
    ck_assert(ok.width == 64 && ok.height == 64);
    expect_refused(many, lim, "more than 100 scans", "JPEG of 128 scans");

    // Text chunks: libpng's defaults let each zTXt inflate to 8 MB and kept
    // up to 1000 of them, so 40 chunks of 1.8 MB made 280 MB of text behind
    // a 1x1 image. Now each may inflate to 1 MB (Pillow's limit) and at most
    // 32 are kept; the pixels decode as before.
    const std::vector<uint8_t> text = png_with_text_bombs(40, 7);
    const long rss0 = max_rss_kb();
    RgbImage px;
    ck_assert_msg(decode_image(text.data(), text.size(), lim, px, err), "text bombs: %s", err.c_str());
    ck_assert(px.width == 1 && px.height == 1 && px.rgb[0] == 0x80);
    const long grown_mb = (max_rss_kb() - rss0) / 1024;
    printf("  %-28s -> decoded, peak RSS +%ld MB\n", "PNG of 40 zTXt bombs", grown_mb);
    ck_assert_msg(grown_mb < 64, "PNG text bombs: peak RSS grew %ld MB", grown_mb);

    // libwebp refuses a VP8X canvas unlike its bitstream before decoding.
    expect_refused_cheaply(webp_canvas_and_frame(64, 64, 3000, 3000), lim, "WebP", "WebP frame larger than canvas");
}
END_TEST

START_TEST(hostile_inputs_refused) {
    const std::string fx = fixtures_dir() + "/images/";
    const ImageLimits lim;
    // Cut inside the header, inside the (first frame's) pixel data and, except
    // for the multi-frame GIF whose later frames are never read, near the end.
    struct { const char *file; const char *what; bool cut_tail; } truncations[] = {
        {"photo.jpg", "truncated JPEG", true}, {"alpha.png", "truncated PNG", true},
        {"anim.gif", "truncated GIF", false}, {"photo_webp.webp", "truncated WebP", true},
    };
    for (const auto &t : truncations) {
        std::vector<uint8_t> b = read_bytes(fx + t.file);
        std::vector<size_t> keeps = {size_t(40), b.size() / 4};
        if (t.cut_tail) keeps.push_back(b.size() - 16);
        for (size_t keep : keeps) {
            std::vector<uint8_t> cut(b.begin(), b.begin() + keep);
            expect_refused(cut, lim, "truncated", t.what);
        }
    }
    std::vector<uint8_t> garbage(4096);
    for (size_t k = 0; k < garbage.size(); ++k) garbage[k] = uint8_t(k * 2654435761u >> 13);
    expect_refused(garbage, lim, "unsupported image format (expected JPEG, PNG, WebP or GIF)", "garbage bytes");
    expect_refused({}, lim, "empty", "0 bytes");

    ImageLimits small = lim;
    small.max_bytes = 1000;
    expect_refused(read_bytes(fx + "photo.jpg"), small, "over the limit of 1000", "over the byte cap");

    auto expect_bomb = [&](const std::vector<uint8_t> &b, const char *needle, const char *what) {
        const auto t0 = std::chrono::steady_clock::now();
        expect_refused(b, lim, needle, what);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        ck_assert_msg(ms < 50.0, "%s took %.1f ms", what, ms);
    };
    expect_bomb(png_bomb_header(), "image is 100000x100000 = 10000000000 pixels, over the limit of 50000000",
                "PNG 100000x100000 header");
    expect_bomb(webp_bomb_header(), "image is 100000x100000 = 10000000000 pixels, over the limit of 50000000",
                "WebP 100000x100000 header");
    expect_bomb(jpeg_bomb_header(), "image is 60000x60000 = 3600000000 pixels, over the limit of 50000000",
                "JPEG 60000x60000 header");
    expect_bomb(gif_bomb_header(), "image is 65535x65535 = 4294836225 pixels, over the limit of 50000000",
                "GIF 65535x65535 header");

    const std::vector<uint8_t> bmp = {'B', 'M', 0x46, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 0x28, 0, 0, 0};
    const std::vector<uint8_t> tiff = {'I', 'I', 0x2A, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0};
    expect_refused(bmp, lim, "unsupported image format (expected JPEG, PNG, WebP or GIF)", "BMP");
    expect_refused(tiff, lim, "unsupported image format (expected JPEG, PNG, WebP or GIF)", "TIFF");

    // A flipped byte in the middle of entropy-coded / compressed data must not crash.
    for (const auto &t : truncations) {
        std::vector<uint8_t> b = read_bytes(fx + t.file);
        for (size_t pos = b.size() / 3; pos < b.size(); pos += b.size() / 7) {
            b[pos] ^= 0x5A;
            RgbImage img;
            std::string err;
            if (decode_image(b.data(), b.size(), lim, img, err))
                ck_assert(img.rgb.size() == size_t(img.width) * img.height * 3);
        }
    }
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv) {
    setvbuf(stdout, nullptr, _IONBF, 0);  // keep the measured numbers if a check aborts
    return vlm_check_main(argc, argv, "image", {
        {"core", 0, {
            fixtures_match_reference,
            model_goldens_pixel_values,
            transparency_fixtures_match_reference,
            batch_appends_images,
            smart_resize_table,
            hostile_inputs_refused,
            lying_headers_refused_before_allocation,
        }},
    });
}
