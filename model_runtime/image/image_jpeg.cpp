// image_jpeg.cpp: JPEG -> RGB with libjpeg-turbo, matching Pillow: islow
// DCT, fancy upsampling, grayscale replicated, CMYK/YCCK read with Adobe
// (inverted) polarity and converted with Pillow's integer cmyk->rgb formula.
// Errors longjmp back to us (libjpeg's default would exit()); a premature
// end of file is an error, as it is for Pillow. Collects the EXIF APP1
// segments (concatenated as Pillow does) and the XMP packet; ignores ICC.
#include "image/image_codecs.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <jpeglib.h>
#include <jerror.h>

namespace vlm {
namespace {

struct JpegErrorManager {
    jpeg_error_mgr pub;
    jmp_buf        jump;
    char           message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit_to_caller(j_common_ptr cinfo) {
    auto *mgr = reinterpret_cast<JpegErrorManager *>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, mgr->message);
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
    std::memset(&cinfo, 0, sizeof cinfo);
    jerr.message[0] = 0;
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_error_exit_to_caller;
    jerr.pub.emit_message = jpeg_quiet_message;
    // No local with a destructor may live across a longjmp: buffers live in
    // `out` or in libjpeg's own pools (freed by jpeg_destroy_decompress).
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        err = std::string("corrupt or truncated JPEG: ") + jerr.message;
        out = DecodedFrame{};
        return false;
    }
    jpeg_create_decompress(&cinfo);
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
