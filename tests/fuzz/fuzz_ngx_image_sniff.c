/*
 * fuzz_ngx_image_sniff.c: libFuzzer target for the nginx module's image
 * header sniffer (ngx_http_vlm_image_sniff: JPEG SOFn, PNG IHDR and IDAT,
 * GIF screen and image descriptors, WebP VP8/VP8L/VP8X/ANMF). The input is
 * the whole image, in an exact-size heap block, so any read past it is an
 * ASan error. The result must be one of OK / DECLINED / ERROR; OK needs a
 * known type and non-zero dimensions within what the format can encode;
 * DECLINED leaves 0x0.
 *
 * The oracle: the sniffer must never report less than the decoding
 * libraries would decode. When it says OK with WxH, every frame that
 * giflib (first image, on the screen grown to hold it, as vlmd's decoder
 * does), libjpeg (jpeg_read_header) or libwebp (WebPGetInfo on the
 * bitstream of a simple file, of the first VP8/VP8L chunk of a still VP8X
 * file, of every ANMF frame, placed at its offset) finds must fit in WxH,
 * and a PNG's IDAT chunks must hold at least rows * (1 + rowbytes) / 1032
 * bytes (libpng's png_get_rowbytes; deflate expands at most 1032:1), since
 * libpng allocates the whole image before it finds the data missing.
 * tests/fuzz/regressions/ngx_image_sniff holds inputs the sniffer let
 * through before it walked frames and segments as the decoders do.
 * Seeds: the images in tests/fixtures/images (build.sh copies them).
 */

#include "ngx_harness.h"

#include <gif_lib.h>
#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>


typedef struct {
    const uint8_t  *data;
    size_t          size;
    size_t          pos;
} oracle_reader_t;

typedef struct {
    struct jpeg_error_mgr  pub;
    jmp_buf                jump;
} oracle_jpeg_error_t;


static uint32_t
le32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t) p[3] << 24;
}


static uint32_t
le24(const uint8_t *p)
{
    return p[0] | p[1] << 8 | (uint32_t) p[2] << 16;
}


static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}


static void
grow(uint64_t *w, uint64_t *h, uint64_t fw, uint64_t fh)
{
    *w = fw > *w ? fw : *w;
    *h = fh > *h ? fh : *h;
}


static int
gif_read(GifFileType *gif, GifByteType *dst, int n)
{
    oracle_reader_t  *r = gif->UserData;
    size_t            take;

    take = (size_t) n < r->size - r->pos ? (size_t) n : r->size - r->pos;
    memcpy(dst, r->data + r->pos, take);
    r->pos += take;

    return (int) take;
}


/* giflib's first image on the screen grown to hold it (vlmd's canvas) */
static void
oracle_gif(const uint8_t *data, size_t size, uint64_t *w, uint64_t *h)
{
    int               err, code;
    GifByteType      *ext;
    GifFileType      *gif;
    GifRecordType     rec;
    oracle_reader_t   r = { data, size, 0 };

    gif = DGifOpen(&r, gif_read, &err);
    if (gif == NULL) {
        return;
    }

    while (DGifGetRecordType(gif, &rec) == GIF_OK
           && rec != TERMINATE_RECORD_TYPE)
    {
        if (rec == EXTENSION_RECORD_TYPE) {
            if (DGifGetExtension(gif, &code, &ext) == GIF_ERROR) {
                break;
            }

            while (ext != NULL) {
                if (DGifGetExtensionNext(gif, &ext) == GIF_ERROR) {
                    goto done;
                }
            }

            continue;
        }

        if (rec == IMAGE_DESC_RECORD_TYPE && DGifGetImageDesc(gif) == GIF_OK)
        {
            grow(w, h, gif->SWidth, gif->SHeight);
            grow(w, h, (uint64_t) gif->Image.Left + gif->Image.Width,
                 (uint64_t) gif->Image.Top + gif->Image.Height);
        }

        break;
    }

done:

    DGifCloseFile(gif, &err);
}


static void
jpeg_error_exit(j_common_ptr cinfo)
{
    longjmp(((oracle_jpeg_error_t *) cinfo->err)->jump, 1);
}


static void
jpeg_quiet(j_common_ptr cinfo, int level)
{
}


/* the frame header libjpeg reads */
static void
oracle_jpeg(const uint8_t *data, size_t size, uint64_t *w, uint64_t *h)
{
    oracle_jpeg_error_t            jerr;
    struct jpeg_decompress_struct  cinfo;

    memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_error_exit;
    jerr.pub.emit_message = jpeg_quiet;

    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return;
    }

    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long) size);

    if (jpeg_read_header(&cinfo, TRUE) == JPEG_HEADER_OK) {
        grow(w, h, cinfo.image_width, cinfo.image_height);
    }

    jpeg_destroy_decompress(&cinfo);
}


static void
png_read(png_structp png, png_bytep dst, png_size_t n)
{
    oracle_reader_t  *r = png_get_io_ptr(png);

    if (n > r->size - r->pos) {
        png_error(png, "truncated");
    }

    memcpy(dst, r->data + r->pos, n);
    r->pos += n;
}


static void
png_fail(png_structp png, png_const_charp msg)
{
    png_longjmp(png, 1);
}


static void
png_quiet(png_structp png, png_const_charp msg)
{
}


/*
 * 1 when the IDAT chunks are too short for libpng's rows, however well
 * compressed; 0 otherwise or when libpng refuses the header itself
 */
static int
oracle_png_short(const uint8_t *data, size_t size)
{
    size_t                   pos, n, idat;
    uint64_t                 rows, rowbytes;
    png_infop                info;
    png_structp              png;
    volatile int             ok;
    oracle_reader_t          r = { data, size, 0 };

    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_fail,
                                 png_quiet);
    info = png ? png_create_info_struct(png) : NULL;
    rows = 0;
    rowbytes = 0;
    ok = 0;

    if (info != NULL && setjmp(png_jmpbuf(png)) == 0) {
        png_set_read_fn(png, &r, png_read);
        png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
        png_read_info(png, info);
        rows = png_get_image_height(png, info);
        rowbytes = png_get_rowbytes(png, info);
        ok = 1;
    }

    png_destroy_read_struct(&png, &info, NULL);

    if (!ok) {
        return 0;
    }

    idat = 0;

    for (pos = 8; size - pos >= 8; pos += 12 + n) {
        n = be32(data + pos);

        if (memcmp(data + pos + 4, "IDAT", 4) == 0) {
            idat += n < size - pos - 8 ? n : size - pos - 8;
        }

        if (size - pos < 12 || n > size - pos - 12) {
            break;
        }
    }

    /* rows * (1 + rowbytes) > 1032 * idat, in 128 bits */
    return (unsigned __int128) rows * (1 + rowbytes)
           > (unsigned __int128) idat * 1032 + 1031 || idat == 0;
}


/* the bitstream size of a VP8/VP8L chunk, as libwebp reads it */
static void
webp_bitstream(const uint8_t *chunk, size_t avail, uint64_t x, uint64_t y,
    uint64_t *w, uint64_t *h)
{
    int     fw, fh;
    size_t  n;

    if (avail < 8 || (memcmp(chunk, "VP8 ", 4) != 0
                      && memcmp(chunk, "VP8L", 4) != 0))
    {
        return;
    }

    n = le32(chunk + 4) < avail - 8 ? le32(chunk + 4) : avail - 8;

    if (WebPGetInfo(chunk + 8, n, &fw, &fh)) {
        grow(w, h, x + fw, y + fh);
    }
}


/* every frame libwebp (or vlmd's first-ANMF path) would decode */
static void
oracle_webp(const uint8_t *data, size_t size, uint64_t *w, uint64_t *h)
{
    int        fw, fh, animated, found;
    size_t     pos, n, avail, in;
    uint64_t   x, y;

    if (size < 20 || memcmp(data + 12, "VP8X", 4) != 0) {
        if (WebPGetInfo(data, size, &fw, &fh)) {
            grow(w, h, fw, fh);
        }

        return;
    }

    if (size < 30) {
        return;
    }

    animated = data[20] & 0x02;
    found = 0;

    for (pos = 12; size - pos >= 8; pos += 8 + n + (n & 1)) {
        n = le32(data + pos + 4);
        avail = n < size - pos - 8 ? n : size - pos - 8;

        if (!animated && !found && pos > 12) {
            if (memcmp(data + pos, "VP8 ", 4) == 0
                || memcmp(data + pos, "VP8L", 4) == 0)
            {
                webp_bitstream(data + pos, size - pos, 0, 0, w, h);
                found = 1;
            }

        } else if (animated && memcmp(data + pos, "ANMF", 4) == 0
                   && avail >= 16)
        {
            x = (uint64_t) le24(data + pos + 8) * 2;
            y = (uint64_t) le24(data + pos + 11) * 2;
            grow(w, h, x + le24(data + pos + 14) + 1,
                 y + le24(data + pos + 17) + 1);

            /* the frame's chunks: ALPH, then VP8 or VP8L */
            for (in = 16; avail - in >= 8; /* void */) {
                webp_bitstream(data + pos + 8 + in, avail - in, x, y, w, h);

                if (le32(data + pos + 12 + in) > avail - in - 8) {
                    break;
                }

                in += 8 + le32(data + pos + 12 + in);
                in += in & 1;

                if (in > avail) {
                    break;
                }
            }
        }

        if (n > size - pos - 8 || size - pos - 8 - n < (n & 1)) {
            break;
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char      *p;
    uint64_t     ow, oh;
    ngx_int_t    rc;
    ngx_uint_t   type, width, height, max;

    /* a fresh block even for size 0, so the sniffer gets a real pointer */
    p = malloc(size ? size : 1);
    if (p == NULL) {
        return 0;
    }

    if (size) {
        memcpy(p, data, size);
    }

    type = 0;
    rc = ngx_http_vlm_image_sniff(p, size, &type, &width, &height);
    free(p);

    if (rc == NGX_DECLINED) {
        if (width != 0 || height != 0) {
            __builtin_trap();
        }

        return 0;
    }

    if (rc == NGX_ERROR) {
        if (type < NGX_HTTP_VLM_IMAGE_JPEG || type > NGX_HTTP_VLM_IMAGE_WEBP) {
            __builtin_trap();       /* an error is only for a known type */
        }

        return 0;
    }

    if (rc != NGX_OK || width == 0 || height == 0
        || strcmp(ngx_http_vlm_image_type_name(type), "unknown") == 0)
    {
        __builtin_trap();
    }

    ow = 0;
    oh = 0;

    switch (type) {
    case NGX_HTTP_VLM_IMAGE_PNG:
        max = 0xffffffff;
        if (oracle_png_short(data, size)) {
            __builtin_trap();       /* libpng would allocate, then fail */
        }
        break;
    case NGX_HTTP_VLM_IMAGE_WEBP:
        max = 1 << 24;
        oracle_webp(data, size, &ow, &oh);
        break;
    case NGX_HTTP_VLM_IMAGE_GIF:
        /* a frame at offset 65535 that is 65535 wide */
        max = 2 * 0xffff;
        oracle_gif(data, size, &ow, &oh);
        break;
    default:
        max = 0xffff;
        oracle_jpeg(data, size, &ow, &oh);
        break;
    }

    if (width > max || height > max) {
        __builtin_trap();
    }

    if (getenv("FUZZ_NGX_DEBUG")) {
        fprintf(stderr, "sniffed %lux%lu, decoders %llux%llu\n",
                (unsigned long) width, (unsigned long) height,
                (unsigned long long) ow, (unsigned long long) oh);
    }

    if (ow > width || oh > height) {
        __builtin_trap();           /* vlmd would decode more than allowed */
    }

    return 0;
}
