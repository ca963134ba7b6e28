// image_jpeg.cpp: JPEG -> RGB with libjpeg-turbo, matching Pillow: islow
// DCT, fancy upsampling, grayscale replicated, CMYK/YCCK read with Adobe
// (inverted) polarity and converted with Pillow's integer cmyk->rgb formula.
// Errors longjmp back to us (libjpeg's default would exit()); a premature
// end of file is an error, as it is for Pillow. Collects the EXIF APP1
// segments (concatenated as Pillow does) and the XMP packet; ignores ICC.
// Besides the pixel limit, the scans of a file and libjpeg's whole-image
// buffers are bounded, so that a small file cannot buy a long decode.
#include "image/image_codecs.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <jpeglib.h>
#include <jerror.h>

namespace vlm {
namespace {

// A file of several scans (progressive, or one scan per component) is
// decoded scan by scan, and each scan is a pass over every block of its
// components: a few bytes of scan header buy a pass over the whole image.
// Encoders write a handful (libjpeg's progressive script: 10 for colour).
constexpr int kMaxScans = 100;

struct JpegErrorManager {
    jpeg_error_mgr pub;
    jmp_buf        jump;
    char           message[JMSG_LENGTH_MAX];
    bool           over_limit;   // message names a limit, not corruption
};

void jpeg_error_exit_to_caller(j_common_ptr cinfo) {
    auto *mgr = reinterpret_cast<JpegErrorManager *>(cinfo->err);
    if (cinfo->err->msg_code == JERR_NO_BACKING_STORE) {
        // jmemnobs.c's answer to a buffer over max_memory_to_use
        std::snprintf(mgr->message, sizeof mgr->message,
                      "JPEG needs more decoder memory than its pixel limit allows");
        mgr->over_limit = true;
    } else {
        (*cinfo->err->format_message)(cinfo, mgr->message);
    }
    std::longjmp(mgr->jump, 1);
}

// Called before each unit of input is consumed; input_scan_number counts
// the SOS markers read so far.
void jpeg_limit_scans(j_common_ptr cinfo) {
    const auto *d = reinterpret_cast<j_decompress_ptr>(cinfo);
    if (!cinfo->is_decompressor || d->input_scan_number <= kMaxScans) return;
    auto *mgr = reinterpret_cast<JpegErrorManager *>(cinfo->err);
    std::snprintf(mgr->message, sizeof mgr->message, "JPEG has more than %d scans", kMaxScans);
    mgr->over_limit = true;
    std::longjmp(mgr->jump, 1);
}

void jpeg_quiet_message(j_common_ptr cinfo, int msg_level) {
    auto *mgr = reinterpret_cast<JpegErrorManager *>(cinfo->err);
    if (msg_level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        // Truncated file: Pillow refuses it, so do we.
        std::snprintf(mgr->message, sizeof mgr->message, "premature end of file");
        std::longjmp(mgr->jump, 1);
    }
    if (msg_level < 0) cinfo->err->num_warnings++;
}

// Pillow's MULDIV255: a * b / 255 rounded, in integers.
inline int muldiv255(int a, int b) {
    const int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

}  // namespace

bool decode_jpeg(const uint8_t *bytes, size_t size, const ImageLimits &lim, DecodedFrame &out,
                 std::string &err) {
    jpeg_decompress_struct cinfo;
    JpegErrorManager jerr;
    jpeg_progress_mgr progress;
    std::memset(&cinfo, 0, sizeof cinfo);
    jerr.message[0] = 0;
    jerr.over_limit = false;
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_error_exit_to_caller;
    jerr.pub.emit_message = jpeg_quiet_message;
    // No local with a destructor may live across a longjmp: buffers live in
    // `out` or in libjpeg's own pools (freed by jpeg_destroy_decompress).
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        err = jerr.over_limit ? std::string(jerr.message)
                              : std::string("corrupt or truncated JPEG: ") + jerr.message;
        out = DecodedFrame{};
        return false;
    }
    jpeg_create_decompress(&cinfo);
    std::memset(&progress, 0, sizeof progress);
    progress.progress_monitor = jpeg_limit_scans;
    cinfo.progress = &progress;
    // Whole-image coefficient buffers (files of several scans) come from
    // libjpeg's memory manager, which fails past max_memory_to_use: room for
    // four 16-bit coefficients per pixel at the pixel limit, twice over, plus
    // libjpeg's tables. The pixel check comes first; this is the backstop
    // should sampling factors and padding make the buffers larger than the
    // pixel count suggests.
    const int64_t max_pixels = lim.max_pixels < 0 ? 0 : lim.max_pixels;
    cinfo.mem->max_memory_to_use = static_cast<long>(
        std::min<int64_t>(max_pixels, (int64_t(1) << 40)) * 16 + (int64_t(16) << 20));
    jpeg_mem_src(&cinfo, bytes, static_cast<unsigned long>(size));
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);

    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
        if (m->marker != JPEG_APP0 + 1) continue;
        static const char exif_hdr[6] = {'E', 'x', 'i', 'f', 0, 0};
        static const char xmp_hdr[] = "http://ns.adobe.com/xap/1.0/";
        if (m->data_length >= 6 && std::memcmp(m->data, exif_hdr, 6) == 0) {
            // Pillow appends later Exif segments without their header.
            const uint8_t *from = out.exif.empty() ? m->data : m->data + 6;
            const uint8_t *to = m->data + m->data_length;
            out.exif.insert(out.exif.end(), from, to);
        } else if (m->data_length >= sizeof xmp_hdr &&
                   std::memcmp(m->data, xmp_hdr, sizeof xmp_hdr) == 0) {
            out.xmp.assign(reinterpret_cast<const char *>(m->data) + sizeof xmp_hdr,
                           m->data_length - sizeof xmp_hdr);
        }
    }

    if (!check_image_dimensions(cinfo.image_width, cinfo.image_height, lim, err)) {
        jpeg_destroy_decompress(&cinfo);
        out = DecodedFrame{};
        return false;
    }

    const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    const bool gray = cinfo.jpeg_color_space == JCS_GRAYSCALE;
    cinfo.out_color_space = cmyk ? JCS_CMYK : gray ? JCS_GRAYSCALE : JCS_RGB;
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&cinfo);

    const int w = static_cast<int>(cinfo.output_width), h = static_cast<int>(cinfo.output_height);
    const int comps = cinfo.output_components;
    out.width = w;
    out.height = h;
    out.rgb.assign(static_cast<size_t>(w) * h * 3, 0);
    JSAMPARRAY rows = (*cinfo.mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(&cinfo),
                                                 JPOOL_IMAGE, static_cast<JDIMENSION>(w) * comps, 1);
    const uint8_t *row = rows[0];
    while (cinfo.output_scanline < cinfo.output_height) {
        const int y = static_cast<int>(cinfo.output_scanline);
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) break;
        uint8_t *dst = &out.rgb[static_cast<size_t>(y) * w * 3];
        if (comps == 3) {
            std::memcpy(dst, row, static_cast<size_t>(w) * 3);
        } else if (comps == 1) {
            for (int x = 0; x < w; ++x) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
        } else {  // CMYK stored inverted (Adobe): c = 255 - sample
            for (int x = 0; x < w; ++x) {
                const uint8_t *s = &row[static_cast<size_t>(x) * 4];
                const int nk = s[3];  // 255 - k
                for (int c = 0; c < 3; ++c) {
                    const int v = nk - muldiv255(255 - s[c], nk);
                    dst[3 * x + c] = static_cast<uint8_t>(v < 0 ? 0 : v);
                }
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return true;
}

}  // namespace vlm
