// image_png.cpp: PNG -> RGB with libpng, converted the way Pillow's
// Image.open(...).convert("RGB") does: palette looked up (indices past PLTE
// are black), 1/2/4-bit gray scaled to 8 bits, 16-bit colour keeps the high
// byte, 16-bit gray is clipped to 255 (Pillow's I;16 -> RGB), alpha dropped
// without compositing, interlacing resolved, gamma/ICC/sBIT ignored. A tRNS
// colour key is not applied to the pixels but reported as the colour Pillow
// keeps in info["transparency"] after convert("RGB") (DecodedFrame::
// colour_key; what Pillow 13 does per colour type is spelled out at
// png_colour_key). Collects the eXIf chunk and the XMP iTXt
// ("XML:com.adobe.xmp"); the legacy "Raw profile type exif" text chunk is
// not read.
#include "image/image_codecs.h"

#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstring>

namespace vlm {
namespace {

struct PngMemoryReader {
    const uint8_t *data;
    size_t         size;
    size_t         pos;
};

void png_read_from_memory(png_structp png, png_bytep dst, png_size_t n) {
    auto *r = static_cast<PngMemoryReader *>(png_get_io_ptr(png));
    if (n > r->size - r->pos) png_error(png, "truncated PNG (unexpected end of data)");
    std::memcpy(dst, r->data + r->pos, n);
    r->pos += n;
}

void png_error_to_caller(png_structp png, png_const_charp msg) {
    auto *buf = static_cast<std::string *>(png_get_error_ptr(png));
    if (buf) *buf = msg ? msg : "unknown libpng error";
    png_longjmp(png, 1);
}

void png_ignore_warning(png_structp, png_const_charp) {}

// The rows are allocated before libpng reads any image data, and libpng
// fails only when that data runs out. Every row holds a filter byte and
// ceil(width * bits / 8) bytes (an interlaced image's passes hold at least
// as much), and deflate expands at most 1032:1, so IDAT chunks shorter than
// rows * (row + 1) / 1032 bytes cannot fill them. False, with the reason,
// for such a file; true when it may be whole (libpng judges the rest).
bool png_data_can_fill(const uint8_t *bytes, size_t size, std::string &err) {
    if (size < 33 || std::memcmp(bytes + 12, "IHDR", 4) != 0) return true;
    auto be32 = [&](size_t o) {
        return (uint32_t(bytes[o]) << 24) | (uint32_t(bytes[o + 1]) << 16) |
               (uint32_t(bytes[o + 2]) << 8) | bytes[o + 3];
    };
    const uint64_t width = be32(16), height = be32(20), depth = bytes[24];
    const int color = bytes[25];
    const uint64_t channels = color == 0 || color == 3 ? 1 : color == 2 ? 3 : color == 4 ? 2 : color == 6 ? 4 : 0;
    if (channels == 0 || depth == 0 || depth > 16) return true;   // libpng refuses the header
    // Divided before multiplying: width and height are 32-bit, bits <= 64.
    const uint64_t row = (width * channels * depth + 7) / 8 + 1;
    const uint64_t need = std::max<uint64_t>(1, height / 1032 * row + height % 1032 * row / 1032);
    uint64_t idat = 0;
    for (size_t pos = 33; size - pos >= 8;) {
        const uint32_t len = be32(pos);
        if (std::memcmp(bytes + pos + 4, "IDAT", 4) == 0) {
            idat += std::min<uint64_t>(len, size - pos - 8);
            if (idat >= need) return true;
        }
        if (std::memcmp(bytes + pos + 4, "IEND", 4) == 0 || size - pos < 12 || len > size - pos - 12) break;
        pos += 12 + size_t(len);
    }
    err = "truncated PNG: " + std::to_string(idat) + " bytes of image data cannot fill " +
          std::to_string(width) + "x" + std::to_string(height) + " (it needs at least " +
          std::to_string(need) + ")";
    return false;
}

// Everything with a destructor lives here, outside the frames that setjmp.
struct PngState {
    png_structp          png = nullptr;
    png_infop            info = nullptr;
    png_infop            end_info = nullptr;
    PngMemoryReader      reader{};
    std::string          libpng_message;
    std::vector<uint8_t> raw;        // decoded rows, rowbytes each
    std::vector<png_bytep> rows;
    size_t               rowbytes = 0;
    png_uint_32          width = 0, height = 0;
    int                  bit_depth = 0, color_type = 0;
    uint8_t              palette[256][3];
    int                  palette_size = 0;
    bool                 dims_refused = false;
    ~PngState() { png_destroy_read_struct(&png, &info, &end_info); }
};

void collect_metadata(PngState &s, png_infop info, DecodedFrame &out) {
#ifdef PNG_eXIf_SUPPORTED
    png_uint_32 exif_len = 0;
    png_bytep exif = nullptr;
    if (out.exif.empty() && png_get_eXIf_1(s.png, info, &exif_len, &exif) && exif && exif_len)
        out.exif.assign(exif, exif + exif_len);
#endif
    png_textp text = nullptr;
    int n_text = 0;
    if (png_get_text(s.png, info, &text, &n_text) > 0) {
        for (int i = 0; i < n_text; ++i) {
            if (text[i].key && std::strcmp(text[i].key, "XML:com.adobe.xmp") == 0 && text[i].text) {
                const size_t len = text[i].itxt_length ? text[i].itxt_length : text[i].text_length;
                out.xmp.assign(text[i].text, len);
            }
        }
    }
}

// Header and pixels. Only trivially destructible locals: libpng longjmps here.
bool png_read_pixels(PngState &s, const ImageLimits &lim, DecodedFrame &out, std::string &err) {
    if (setjmp(png_jmpbuf(s.png))) return false;
    png_set_read_fn(s.png, &s.reader, png_read_from_memory);
    png_set_user_limits(s.png, 0x7FFFFFFF, 0x7FFFFFFF);  // our own pixel cap applies
    // Ancillary chunks as Pillow bounds text: each may inflate to 1 MB and
    // 32 are kept, the rest skipped. libpng's defaults (8 MB, 1000) let a
    // 2 MB file of zTXt hold gigabytes behind a 1x1 image.
    png_set_chunk_malloc_max(s.png, 1u << 20);
    png_set_chunk_cache_max(s.png, 32);
    png_read_info(s.png, s.info);
    int interlace = 0;
    png_get_IHDR(s.png, s.info, &s.width, &s.height, &s.bit_depth, &s.color_type, &interlace,
                 nullptr, nullptr);
    if (!check_image_dimensions(s.width, s.height, lim, err)) {
        s.dims_refused = true;
        return false;
    }
    if (s.color_type == PNG_COLOR_TYPE_PALETTE) {
        // Indices past the PLTE length read as black in Pillow 13.
        std::memset(s.palette, 0, sizeof s.palette);
        png_colorp plte = nullptr;
        if (png_get_PLTE(s.png, s.info, &plte, &s.palette_size) && plte) {
            for (int i = 0; i < s.palette_size && i < 256; ++i) {
                s.palette[i][0] = plte[i].red;
                s.palette[i][1] = plte[i].green;
                s.palette[i][2] = plte[i].blue;
            }
        }
    }
    if (s.bit_depth < 8) png_set_packing(s.png);  // one byte per sample, unscaled
    png_set_interlace_handling(s.png);
    png_read_update_info(s.png, s.info);
    s.rowbytes = png_get_rowbytes(s.png, s.info);
    s.raw.resize(s.rowbytes * s.height);
    s.rows.resize(s.height);
    for (png_uint_32 y = 0; y < s.height; ++y) s.rows[y] = &s.raw[s.rowbytes * y];
    png_read_image(s.png, s.rows.data());
    collect_metadata(s, s.info, out);
    return true;
}

// Trailing chunks (an eXIf after IDAT). A damaged tail loses only metadata,
// as the pixels are already complete.
void png_read_trailer(PngState &s, DecodedFrame &out) {
    if (setjmp(png_jmpbuf(s.png))) return;
    png_read_end(s.png, s.end_info);
    collect_metadata(s, s.end_info, out);
}

void png_to_rgb(const PngState &s, DecodedFrame &out) {
    const int w = static_cast<int>(s.width), h = static_cast<int>(s.height);
    const bool wide = s.bit_depth == 16;
    const int ct = s.color_type;
    const int channels = ct == PNG_COLOR_TYPE_GRAY ? 1 : ct == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                       : ct == PNG_COLOR_TYPE_RGB ? 3 : ct == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : 1;
    const int gray_scale = s.bit_depth == 1 ? 255 : s.bit_depth == 2 ? 85 : s.bit_depth == 4 ? 17 : 1;
    out.width = w;
    out.height = h;
    out.rgb.assign(static_cast<size_t>(w) * h * 3, 0);
    for (int y = 0; y < h; ++y) {
        const uint8_t *src = &s.raw[s.rowbytes * y];
        uint8_t *dst = &out.rgb[static_cast<size_t>(y) * w * 3];
        for (int x = 0; x < w; ++x, dst += 3) {
            const size_t stride = static_cast<size_t>(channels) * (wide ? 2 : 1);
            const uint8_t *p = src + stride * x;
            if (ct == PNG_COLOR_TYPE_PALETTE) {
                const uint8_t *c = s.palette[p[0]];
                dst[0] = c[0]; dst[1] = c[1]; dst[2] = c[2];
            } else if (channels <= 2) {
                uint8_t v;
                if (!wide) v = uint8_t(p[0] * gray_scale);
                else if (channels == 1) {  // I;16 -> RGB clips
                    const int v16 = (p[0] << 8) | p[1];
                    v = uint8_t(v16 > 255 ? 255 : v16);
                } else v = p[0];           // LA;16B keeps the high byte
                dst[0] = dst[1] = dst[2] = v;
            } else {
                const int step = wide ? 2 : 1;  // big-endian: high byte first
                dst[0] = p[0]; dst[1] = p[step]; dst[2] = p[2 * step];
            }
        }
    }
}

uint32_t be32(const uint8_t *p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

// The payload of the last tRNS chunk before IEND, as Pillow sees it: it reads
// the chunks before IDAT when opening and the ones after IDAT when loading,
// into the same info dict, so a later tRNS replaces an earlier one. libpng's
// own view of tRNS (which it may drop as invalid) does not matter here.
bool find_trns(const uint8_t *bytes, size_t size, std::vector<uint8_t> &out) {
    bool found = false;
    size_t pos = 8;
    while (pos + 12 <= size) {
        const uint32_t len = be32(bytes + pos);
        const uint8_t *type = bytes + pos + 4;
        if (len > size - pos - 12) break;
        if (std::memcmp(type, "IEND", 4) == 0) break;
        if (std::memcmp(type, "tRNS", 4) == 0) {
            out.assign(bytes + pos + 8, bytes + pos + 8 + len);
            found = true;
        }
        pos += 12 + size_t(len);
    }
    return found;
}

// The colour of the decoded RGB image that transformers' convert_to_rgb
// composites onto white, from Pillow 13's handling of tRNS (PngImagePlugin
// chunk_tRNS, Image.convert, convert_transparent), one rule per mode:
//   P (palette):  a tRNS of 0xff bytes with exactly one 0x00 makes that index
//                 transparent and convert("RGB") turns it into its palette
//                 colour; any other tRNS (partial alpha, as pngquant writes)
//                 is dropped by convert("RGB"): no key, alpha ignored.
//   L (gray 2/4/8-bit): the 16-bit key clamped to 255, as gray (k, k, k),
//                 compared with the scaled samples (so a 4-bit key 5 only
//                 matches a pixel of 85 when 85 == 5 * 17: never).
//   1 (gray 1-bit) and I;16 (gray 16-bit): convert("RGB") leaves the key an
//                 integer, which convert_transparent reads as red:
//                 (key & 0xff, 0, 0); 1-bit keys are 0 or 255 first.
//   RGB (8/16-bit): each 16-bit key sample & 0xff, compared with the 8-bit
//                 samples (for 16-bit files: the high bytes).
//   gray+alpha, RGBA: tRNS is not used.
// A tRNS too short for its colour type makes Pillow refuse the file; we
// decode it without a key.
void png_colour_key(const PngState &s, const std::vector<uint8_t> &trns, DecodedFrame &out) {
    const size_t n = trns.size();
    auto be16 = [&](size_t o) { return unsigned(trns[o] << 8 | trns[o + 1]); };
    auto set = [&](unsigned r, unsigned g, unsigned b) {
        out.has_colour_key = true;
        out.colour_key[0] = uint8_t(r);
        out.colour_key[1] = uint8_t(g);
        out.colour_key[2] = uint8_t(b);
    };
    switch (s.color_type) {
        case PNG_COLOR_TYPE_PALETTE: {
            size_t zeros = 0, index = 0;
            for (size_t i = 0; i < n; ++i) {
                if (trns[i] == 0x00) { ++zeros; index = i; }
                else if (trns[i] != 0xff) return;
            }
            if (zeros != 1) return;
            if (index < 256) set(s.palette[index][0], s.palette[index][1], s.palette[index][2]);
            else set(0, 0, 0);   // past any palette: black, like the pixels
            return;
        }
        case PNG_COLOR_TYPE_GRAY: {
            if (n < 2) return;
            const unsigned k = be16(0);
            if (s.bit_depth == 1) set(k ? 255 : 0, 0, 0);
            else if (s.bit_depth == 16) set(k & 0xff, 0, 0);
            else {
                const unsigned g = k > 255 ? 255 : k;
                set(g, g, g);
            }
            return;
        }
        case PNG_COLOR_TYPE_RGB:
            if (n < 6) return;
            set(be16(0) & 0xff, be16(2) & 0xff, be16(4) & 0xff);
            return;
        default:
            return;
    }
}

}  // namespace

bool decode_png(const uint8_t *bytes, size_t size, const ImageLimits &lim, DecodedFrame &out,
                std::string &err) {
    // IHDR is always the first chunk: refuse a pixel bomb from its fields
    // before libpng reads any further (png_read_info reads the next chunks).
    if (size >= 24 && std::memcmp(bytes + 12, "IHDR", 4) == 0) {
        if (!check_image_dimensions(be32(bytes + 16), be32(bytes + 20), lim, err)) return false;
    }
    if (!png_data_can_fill(bytes, size, err)) return false;
    PngState s;
    s.reader = PngMemoryReader{bytes, size, 0};
    s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s.libpng_message, png_error_to_caller,
                                   png_ignore_warning);
    if (!s.png) { err = "PNG: out of memory"; return false; }
    s.info = png_create_info_struct(s.png);
    s.end_info = png_create_info_struct(s.png);
    if (!s.info || !s.end_info) { err = "PNG: out of memory"; return false; }
    if (!png_read_pixels(s, lim, out, err)) {
        if (!s.dims_refused) err = "corrupt or truncated PNG: " + s.libpng_message;
        out = DecodedFrame{};
        return false;
    }
    png_read_trailer(s, out);
    png_to_rgb(s, out);
    std::vector<uint8_t> trns;
    if (find_trns(bytes, size, trns)) png_colour_key(s, trns, out);
    return true;
}

}  // namespace vlm
