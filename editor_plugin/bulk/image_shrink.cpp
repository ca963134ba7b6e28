// Shrinking of over-limit images before upload. Decoding reuses the runtime's per-format decoders
// (model_runtime/image_{jpeg,png,webp,gif}.cpp: bounds-checked, fuzzed, dimension caps before allocation) and
// its EXIF orientation; only the alpha of still PNG and WebP images is read here (libpng's simplified API,
// libwebp), because the runtime drops alpha without compositing. Encoding is libjpeg's jpeg_compress.
// Leaves out: decoding at reduced size through libjpeg's DCT scaling (a 100 MP decode is ~300 MB per worker).
#include "image_shrink.h"

#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "image/image_codecs.h"

namespace vlm::bulk {

namespace {

enum class Format { unknown, jpeg, png, gif, webp };

Format sniff(const std::string& b) {
    auto starts = [&](const char* magic, size_t n, size_t at = 0) {
        return b.size() >= at + n && b.compare(at, n, magic, n) == 0;
    };
    if (starts("\x89PNG\r\n\x1a\n", 8)) return Format::png;
    if (starts("\xff\xd8\xff", 3)) return Format::jpeg;
    if (starts("GIF87a", 6) || starts("GIF89a", 6)) return Format::gif;
    if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return Format::webp;
    return Format::unknown;
}

const char* mime_of(Format f) {
    switch (f) {
        case Format::png: return "image/png";
        case Format::jpeg: return "image/jpeg";
        case Format::gif: return "image/gif";
        case Format::webp: return "image/webp";
        case Format::unknown: break;
    }
    return "";
}

const uint8_t* u8(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// JPEG: walk the marker segments up to the first SOFn, bounded by the buffer.
bool jpeg_size(const std::string& s, int64_t& w, int64_t& h) {
    const uint8_t* b = u8(s);
    const size_t n = s.size();
    size_t p = 2;
    while (p < n) {
        if (b[p] != 0xFF) return false;
        while (p < n && b[p] == 0xFF) ++p;  // fill bytes
        if (p >= n) return false;
        const uint8_t m = b[p++];
        if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;  // no length field
        if (m == 0xD9 || m == 0xDA) return false;  // end of image or scan data before any frame header
        if (n - p < 2) return false;
        const size_t len = (size_t{b[p]} << 8) | b[p + 1];
        if (len < 2 || len > n - p) return false;
        const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (sof) {
            if (len < 7) return false;
            h = (int64_t{b[p + 3]} << 8) | b[p + 4];
            w = (int64_t{b[p + 5]} << 8) | b[p + 6];
            return true;
        }
        p += len;
    }
    return false;
}

struct JpegEncodeState {
    jpeg_compress_struct cinfo;
    jpeg_error_mgr err_mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    unsigned char* buf = nullptr;
    unsigned long len = 0;
};

void jpeg_encode_error_exit(j_common_ptr cinfo) {
    auto* s = static_cast<JpegEncodeState*>(cinfo->client_data);
    (*cinfo->err->format_message)(cinfo, s->message);
    std::longjmp(s->jump, 1);
}

// Only trivially destructible locals here: libjpeg longjmps back into this frame.
bool jpeg_encode_into(JpegEncodeState& s, const uint8_t* rgb, int width, int height, int quality) {
    if (setjmp(s.jump)) return false;
    jpeg_create_compress(&s.cinfo);
    jpeg_mem_dest(&s.cinfo, &s.buf, &s.len);
    s.cinfo.image_width = static_cast<JDIMENSION>(width);
    s.cinfo.image_height = static_cast<JDIMENSION>(height);
    s.cinfo.input_components = 3;
    s.cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&s.cinfo);
    jpeg_set_quality(&s.cinfo, quality, TRUE);
    jpeg_start_compress(&s.cinfo, TRUE);
    const size_t stride = static_cast<size_t>(width) * 3;
    while (s.cinfo.next_scanline < s.cinfo.image_height) {
        JSAMPROW row = const_cast<JSAMPROW>(rgb + stride * s.cinfo.next_scanline);
        jpeg_write_scanlines(&s.cinfo, &row, 1);
    }
    jpeg_finish_compress(&s.cinfo);
    return true;
}

// Out-pixel i of a box filter from src to dst samples covers [i*src/dst, (i+1)*src/dst) of the input; each
// input sample it overlaps contributes in proportion to the overlap.
struct BoxTaps {
    std::vector<size_t> begin;  // dst + 1 offsets into index/weight
    std::vector<int> index;
    std::vector<float> weight;
};

BoxTaps box_taps(int src, int dst) {
    BoxTaps t;
    t.begin.reserve(static_cast<size_t>(dst) + 1);
    const double ratio = static_cast<double>(src) / dst;
    for (int i = 0; i < dst; ++i) {
        t.begin.push_back(t.index.size());
        const double lo = i * ratio, hi = i + 1 == dst ? src : (i + 1) * ratio;
        const int j0 = static_cast<int>(std::floor(lo));
        const int j1 = std::min(src, static_cast<int>(std::ceil(hi)));
        for (int j = j0; j < j1; ++j) {
            const double overlap = std::min(hi, j + 1.0) - std::max(lo, static_cast<double>(j));
            if (overlap <= 0) continue;
            t.index.push_back(j);
            t.weight.push_back(static_cast<float>(overlap / (hi - lo)));
        }
    }
    t.begin.push_back(t.index.size());
    return t;
}

inline uint8_t over_white(uint8_t c, uint8_t a) {
    return static_cast<uint8_t>((c * a + 255 * (255 - a) + 127) / 255);
}

// PNG with an alpha channel or tRNS: libpng's simplified reader gives 8-bit RGBA (not premultiplied), which
// replaces the runtime's alpha-dropped RGB. Returns false (rgb untouched) when there is no alpha to honour.
bool png_composite_alpha(const std::string& bytes, int width, int height, std::vector<uint8_t>& rgb) {
    png_image img;
    std::memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size())) return false;
    if (!(img.format & PNG_FORMAT_FLAG_ALPHA) || img.width != static_cast<png_uint_32>(width)
        || img.height != static_cast<png_uint_32>(height)) {
        png_image_free(&img);
        return false;
    }
    img.format = PNG_FORMAT_RGBA;
    std::vector<uint8_t> rgba(PNG_IMAGE_SIZE(img));
    if (!png_image_finish_read(&img, nullptr, rgba.data(), 0, nullptr)) {
        png_image_free(&img);
        return false;
    }
    const size_t pixels = static_cast<size_t>(width) * height;
    for (size_t i = 0; i < pixels; ++i) {
        const uint8_t* s = &rgba[4 * i];
        for (int c = 0; c < 3; ++c) rgb[3 * i + c] = over_white(s[c], s[3]);
    }
    return true;
}

bool webp_composite_alpha(const std::string& bytes, int width, int height, std::vector<uint8_t>& rgb) {
    WebPBitstreamFeatures feat;
    if (WebPGetFeatures(u8(bytes), bytes.size(), &feat) != VP8_STATUS_OK || !feat.has_alpha
        || feat.has_animation || feat.width != width || feat.height != height)
        return false;
    int w = 0, h = 0;
    uint8_t* rgba = WebPDecodeRGBA(u8(bytes), bytes.size(), &w, &h);
    if (!rgba) return false;
    if (w == width && h == height) {
        const size_t pixels = static_cast<size_t>(width) * height;
        for (size_t i = 0; i < pixels; ++i)
            for (int c = 0; c < 3; ++c) rgb[3 * i + c] = over_white(rgba[4 * i + c], rgba[4 * i + 3]);
    }
    WebPFree(rgba);
    return true;
}

}  // namespace

bool probe_image_size(const std::string& bytes, int64_t& width, int64_t& height, std::string& err) {
    const uint8_t* b = u8(bytes);
    bool ok = false;
    switch (sniff(bytes)) {
        case Format::jpeg:
            ok = jpeg_size(bytes, width, height);
            break;
        case Format::png:
            if (bytes.size() >= 24 && bytes.compare(12, 4, "IHDR") == 0) {
                auto be32 = [&](size_t o) {
                    return (int64_t{b[o]} << 24) | (int64_t{b[o + 1]} << 16) | (int64_t{b[o + 2]} << 8) | b[o + 3];
                };
                width = be32(16);
                height = be32(20);
                ok = true;
            }
            break;
        case Format::gif:
            if (bytes.size() >= 10) {
                width = b[6] | (b[7] << 8);
                height = b[8] | (b[9] << 8);
                ok = true;
            }
            break;
        case Format::webp: {
            WebPBitstreamFeatures feat;
            if (WebPGetFeatures(b, bytes.size(), &feat) == VP8_STATUS_OK) {
                width = feat.width;
                height = feat.height;
                ok = true;
            }
            break;
        }
        case Format::unknown:
            err = "not a PNG, JPEG, GIF or WebP image";
            return false;
    }
    if (ok && (width <= 0 || height <= 0)) ok = false;
    if (!ok) err = std::string("unreadable ") + mime_of(sniff(bytes)) + " header";
    return ok;
}

void fit_pixels(int64_t width, int64_t height, int64_t max_pixels, int& out_w, int& out_h) {
    max_pixels = std::max<int64_t>(1, max_pixels);
    if (width * height <= max_pixels) {
        out_w = static_cast<int>(width);
        out_h = static_cast<int>(height);
        return;
    }
    const double scale = std::sqrt(static_cast<double>(max_pixels) / (static_cast<double>(width) * height));
    int64_t w = std::max<int64_t>(1, static_cast<int64_t>(std::floor(width * scale)));
    int64_t h = std::max<int64_t>(1, static_cast<int64_t>(std::floor(height * scale)));
    // Rounding (or a side clamped to 1) can leave the product over: trim the side that is long for the ratio.
    while (w * h > max_pixels) {
        if (w > 1 && (h == 1 || w * height >= h * width)) --w;
        else --h;
    }
    out_w = static_cast<int>(w);
    out_h = static_cast<int>(h);
}

std::vector<uint8_t> box_downscale(const std::vector<uint8_t>& rgb, int width, int height, int out_w, int out_h) {
    const BoxTaps tx = box_taps(width, out_w), ty = box_taps(height, out_h);
    const size_t src_stride = static_cast<size_t>(width) * 3;
    std::vector<uint8_t> out(static_cast<size_t>(out_w) * out_h * 3);
    std::vector<float> acc(src_stride);
    for (int y = 0; y < out_h; ++y) {
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (size_t k = ty.begin[y]; k < ty.begin[y + 1]; ++k) {
            const uint8_t* row = &rgb[src_stride * static_cast<size_t>(ty.index[k])];
            const float wt = ty.weight[k];
            for (size_t i = 0; i < src_stride; ++i) acc[i] += wt * row[i];
        }
        uint8_t* dst = &out[static_cast<size_t>(y) * out_w * 3];
        for (int x = 0; x < out_w; ++x) {
            float sum[3] = {0, 0, 0};
            for (size_t k = tx.begin[x]; k < tx.begin[x + 1]; ++k) {
                const float* px = &acc[static_cast<size_t>(tx.index[k]) * 3];
                for (int c = 0; c < 3; ++c) sum[c] += tx.weight[k] * px[c];
            }
            for (int c = 0; c < 3; ++c)
                dst[3 * x + c] = static_cast<uint8_t>(std::clamp(sum[c] + 0.5f, 0.0f, 255.0f));
        }
    }
    return out;
}

bool encode_jpeg(const std::vector<uint8_t>& rgb, int width, int height, int quality, std::string& out,
                 std::string& err) {
    auto* s = new JpegEncodeState;
    std::memset(&s->cinfo, 0, sizeof s->cinfo);
    s->message[0] = 0;
    s->cinfo.err = jpeg_std_error(&s->err_mgr);
    s->cinfo.client_data = s;
    s->err_mgr.error_exit = jpeg_encode_error_exit;
    const bool ok = jpeg_encode_into(*s, rgb.data(), width, height, quality);
    jpeg_destroy_compress(&s->cinfo);
    if (ok) out.assign(reinterpret_cast<const char*>(s->buf), s->len);
    else err = std::string("JPEG encoding failed: ") + s->message;
    std::free(s->buf);
    delete s;
    return ok;
}

bool fit_image_for_service(std::string& bytes, std::string& mime, const ShrinkLimits& lim, ShrinkInfo& info,
                           std::string& err) {
    info = ShrinkInfo{};
    const Format fmt = sniff(bytes);
    if (fmt == Format::unknown) {
        err = "not a PNG, JPEG, GIF or WebP image";
        return false;
    }
    int64_t w = 0, h = 0;
    std::string probe_err;
    const bool probed = probe_image_size(bytes, w, h, probe_err);
    if (probed) {
        info.src_width = w;
        info.src_height = h;
    }
    if (bytes.size() <= lim.max_bytes && (!probed || w * h <= lim.max_pixels)) {
        // Within both limits, or a header only the service can judge: the original bytes, never a lossy copy.
        mime = mime_of(fmt);
        return true;
    }
    if (probed && w * h > lim.max_decode_pixels) {
        err = "image is " + std::to_string(w) + "x" + std::to_string(h) + ", over the limit of "
              + std::to_string(lim.max_decode_pixels) + " pixels that vlm-bulk decodes to shrink it";
        return false;
    }

    vlm::ImageLimits dl;
    dl.max_bytes = lim.max_input_bytes;
    dl.max_pixels = lim.max_decode_pixels;
    if (bytes.size() > dl.max_bytes) {
        err = "image is " + std::to_string(bytes.size()) + " bytes, over the limit of "
              + std::to_string(dl.max_bytes);
        return false;
    }
    vlm::DecodedFrame f;
    std::string derr;
    bool ok = false;
    switch (fmt) {
        case Format::jpeg: ok = vlm::decode_jpeg(u8(bytes), bytes.size(), dl, f, derr); break;
        case Format::png: ok = vlm::decode_png(u8(bytes), bytes.size(), dl, f, derr); break;
        case Format::gif: ok = vlm::decode_gif(u8(bytes), bytes.size(), dl, f, derr); break;
        case Format::webp: ok = vlm::decode_webp(u8(bytes), bytes.size(), dl, f, derr); break;
        case Format::unknown: break;
    }
    if (!ok) {
        err = "cannot shrink the image to the service's limits: " + derr;
        return false;
    }
    if (fmt == Format::png) png_composite_alpha(bytes, f.width, f.height, f.rgb);
    if (fmt == Format::webp) webp_composite_alpha(bytes, f.width, f.height, f.rgb);
    vlm::apply_orientation(vlm::exif_orientation(f.exif, f.xmp), f.width, f.height, f.rgb);
    f.exif.clear();
    f.xmp.clear();

    int tw = 0, th = 0;
    fit_pixels(f.width, f.height, lim.max_pixels, tw, th);
    static const int qualities[] = {90, 82, 72, 60};
    for (int round = 0; round < 8; ++round) {
        std::vector<uint8_t> scaled;
        const bool same = tw == f.width && th == f.height;
        if (!same) scaled = box_downscale(f.rgb, f.width, f.height, tw, th);
        const std::vector<uint8_t>& px = same ? f.rgb : scaled;
        for (int q : qualities) {
            std::string jpeg;
            if (!encode_jpeg(px, tw, th, q, jpeg, err)) return false;
            if (jpeg.size() <= lim.max_bytes) {
                bytes = std::move(jpeg);
                mime = "image/jpeg";
                info.shrunk = true;
                info.out_width = tw;
                info.out_height = th;
                info.quality = q;
                return true;
            }
        }
        if (tw < 16 || th < 16) break;
        tw = std::max(1, tw * 3 / 4);
        th = std::max(1, th * 3 / 4);
    }
    err = "cannot encode the image under " + std::to_string(lim.max_bytes) + " bytes";
    return false;
}

}  // namespace vlm::bulk
