// image_decode.cpp: decode_image entry point. Sniffs the format from magic
// bytes (never the extension), enforces the byte cap, dispatches to the
// per-format decoders (image_jpeg/png/webp/gif.cpp) and applies the EXIF
// orientation the way Pillow's ImageOps.exif_transpose does (IFD0 tag 0x0112
// read with libexif, falling back to tiff:Orientation in XMP). Colour
// management (ICC profiles, gamma) is deliberately ignored, as Pillow does.
#include "image/image.h"
#include "image/image_codecs.h"

#include <libexif/exif-data.h>

#include <cstdio>
#include <cstring>
#include <memory>

namespace vlm {
namespace {

enum class ImageFormat { Unknown, Jpeg, Png, WebP, Gif };

ImageFormat sniff_format(const uint8_t *b, size_t n) {
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return ImageFormat::Jpeg;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    if (n >= 8 && std::memcmp(b, png_sig, 8) == 0) return ImageFormat::Png;
    if (n >= 6 && (std::memcmp(b, "GIF87a", 6) == 0 || std::memcmp(b, "GIF89a", 6) == 0))
        return ImageFormat::Gif;
    if (n >= 12 && std::memcmp(b, "RIFF", 4) == 0 && std::memcmp(b + 8, "WEBP", 4) == 0)
        return ImageFormat::WebP;
    return ImageFormat::Unknown;
}

int orientation_from_xmp(const std::string &xmp) {
    // Pillow: re.search(r'tiff:Orientation(="|>)([0-9])', xmp)
    static const char key[] = "tiff:Orientation";
    const size_t klen = sizeof(key) - 1;
    for (size_t pos = xmp.find(key); pos != std::string::npos; pos = xmp.find(key, pos + 1)) {
        size_t p = pos + klen;
        if (p + 1 < xmp.size() && xmp[p] == '=' && xmp[p + 1] == '"') p += 2;
        else if (p < xmp.size() && xmp[p] == '>') p += 1;
        else continue;
        if (p < xmp.size() && xmp[p] >= '0' && xmp[p] <= '9') return xmp[p] - '0';
    }
    return 0;
}

struct ExifDataDeleter {
    void operator()(ExifData *d) const { exif_data_unref(d); }
};

}  // namespace

bool check_image_dimensions(int64_t width, int64_t height, const ImageLimits &lim,
                            std::string &err) {
    if (width <= 0 || height <= 0) {
        err = "image has zero width or height (" + std::to_string(width) + "x" +
              std::to_string(height) + ")";
        return false;
    }
    // Header fields are at most 32 bits wide, so the product fits in 64 bits.
    if (width > 0xFFFFFFFFll || height > 0xFFFFFFFFll) {
        err = "image is " + std::to_string(width) + "x" + std::to_string(height) +
              ", over the limit of " + std::to_string(lim.max_pixels) + " pixels";
        return false;
    }
    const uint64_t pixels = uint64_t(width) * uint64_t(height);
    if (lim.max_pixels < 0 || pixels > uint64_t(lim.max_pixels)) {
        err = "image is " + std::to_string(width) + "x" + std::to_string(height) + " = " +
              std::to_string(pixels) + " pixels, over the limit of " +
              std::to_string(lim.max_pixels);
        return false;
    }
    return true;
}

int exif_orientation(const std::vector<uint8_t> &exif, const std::string &xmp) {
    int from_exif = -1;  // -1: tag absent
    if (!exif.empty()) {
        static const uint8_t header[6] = {'E', 'x', 'i', 'f', 0, 0};
        std::vector<uint8_t> buf;
        if (exif.size() < 6 || std::memcmp(exif.data(), header, 6) != 0) {
            buf.assign(header, header + 6);  // libexif wants the APP1 header
        }
        buf.insert(buf.end(), exif.begin(), exif.end());
        if (buf.size() <= 0xFFFFFFFFu) {
            std::unique_ptr<ExifData, ExifDataDeleter> ed(exif_data_new());
            if (ed) {
                // Read what is there; do not let libexif "repair" the tags.
                exif_data_unset_option(ed.get(), EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
                exif_data_load_data(ed.get(), buf.data(), static_cast<unsigned>(buf.size()));
                ExifEntry *e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
                if (e) {
                    from_exif = 0;  // present but unusable: Pillow does not consult XMP then
                    const ExifByteOrder bo = exif_data_get_byte_order(ed.get());
                    if (e->components == 1 && e->data) {
                        if (e->format == EXIF_FORMAT_SHORT && e->size >= 2)
                            from_exif = exif_get_short(e->data, bo);
                        else if (e->format == EXIF_FORMAT_LONG && e->size >= 4)
                            from_exif = static_cast<int>(exif_get_long(e->data, bo) & 0xFFFF);
                        else if (e->format == EXIF_FORMAT_BYTE && e->size >= 1)
                            from_exif = e->data[0];
                    }
                }
            }
        }
    }
    int o = from_exif >= 0 ? from_exif : orientation_from_xmp(xmp);
    return (o >= 1 && o <= 8) ? o : 1;
}

void apply_orientation(int orientation, int &width, int &height, std::vector<uint8_t> &rgb) {
    if (orientation < 2 || orientation > 8) return;
    const int w = width, h = height;
    const bool swap = orientation >= 5;
    const int ow = swap ? h : w, oh = swap ? w : h;
    std::vector<uint8_t> out(static_cast<size_t>(ow) * oh * 3);
    for (int y = 0; y < oh; ++y) {
        for (int x = 0; x < ow; ++x) {
            int sx = x, sy = y;
            switch (orientation) {
                case 2: sx = w - 1 - x; sy = y; break;             // FLIP_LEFT_RIGHT
                case 3: sx = w - 1 - x; sy = h - 1 - y; break;     // ROTATE_180
                case 4: sx = x; sy = h - 1 - y; break;             // FLIP_TOP_BOTTOM
                case 5: sx = y; sy = x; break;                     // TRANSPOSE
                case 6: sx = y; sy = h - 1 - x; break;             // ROTATE_270 (90 cw)
                case 7: sx = w - 1 - y; sy = h - 1 - x; break;     // TRANSVERSE
                case 8: sx = w - 1 - y; sy = x; break;             // ROTATE_90 (90 ccw)
            }
            const uint8_t *s = &rgb[(static_cast<size_t>(sy) * w + sx) * 3];
            uint8_t *d = &out[(static_cast<size_t>(y) * ow + x) * 3];
            d[0] = s[0]; d[1] = s[1]; d[2] = s[2];
        }
    }
    rgb.swap(out);
    width = ow;
    height = oh;
}

bool decode_image(const uint8_t *bytes, size_t size, const ImageLimits &lim, RgbImage &out,
                  std::string &err) {
    out = RgbImage{};
    if (size == 0 || bytes == nullptr) {
        err = "image is empty (0 bytes)";
        return false;
    }
    if (size > lim.max_bytes) {
        err = "image is " + std::to_string(size) + " bytes, over the limit of " +
              std::to_string(lim.max_bytes);
        return false;
    }
    DecodedFrame f;
    bool ok = false;
    switch (sniff_format(bytes, size)) {
        case ImageFormat::Jpeg: ok = decode_jpeg(bytes, size, lim, f, err); break;
        case ImageFormat::Png:  ok = decode_png(bytes, size, lim, f, err); break;
        case ImageFormat::WebP: ok = decode_webp(bytes, size, lim, f, err); break;
        case ImageFormat::Gif:  ok = decode_gif(bytes, size, lim, f, err); break;
        case ImageFormat::Unknown:
            err = "unsupported image format (expected JPEG, PNG, WebP or GIF)";
            return false;
    }
    if (!ok) return false;
    apply_orientation(exif_orientation(f.exif, f.xmp), f.width, f.height, f.rgb);
    out.width = f.width;
    out.height = f.height;
    out.rgb = std::move(f.rgb);
    out.has_colour_key = f.has_colour_key;
    std::memcpy(out.colour_key, f.colour_key, 3);
    return true;
}

void composite_colour_key_on_white(RgbImage &img) {
    if (!img.has_colour_key) return;
    const uint8_t r = img.colour_key[0], g = img.colour_key[1], b = img.colour_key[2];
    for (size_t i = 0; i + 2 < img.rgb.size(); i += 3) {
        if (img.rgb[i] == r && img.rgb[i + 1] == g && img.rgb[i + 2] == b)
            img.rgb[i] = img.rgb[i + 1] = img.rgb[i + 2] = 255;
    }
    img.has_colour_key = false;
}

bool decode_image_file(const std::string &path, const ImageLimits &lim, RgbImage &out,
                       std::string &err) {
    std::unique_ptr<FILE, int (*)(FILE *)> fp(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!fp) {
        err = path + ": cannot open";
        return false;
    }
    std::vector<uint8_t> data;
    uint8_t chunk[65536];
    size_t n;
    while ((n = std::fread(chunk, 1, sizeof chunk, fp.get())) > 0) {
        if (data.size() + n > lim.max_bytes) {
            err = path + ": image is over the limit of " + std::to_string(lim.max_bytes) + " bytes";
            return false;
        }
        data.insert(data.end(), chunk, chunk + n);
    }
    if (std::ferror(fp.get())) {
        err = path + ": read error";
        return false;
    }
    if (!decode_image(data.data(), data.size(), lim, out, err)) {
        err = path + ": " + err;
        return false;
    }
    return true;
}

}  // namespace vlm
