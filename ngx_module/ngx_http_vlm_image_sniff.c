
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_image_sniff: the type of an image and the size vlmd will
 * decode it to, read from its headers only, so that unsupported types and
 * pixel bombs are refused before vlmd decodes a byte. The size is the one
 * the decoders use, not the first one a file states: a GIF's canvas grows
 * to hold its frames, a JPEG's segments are walked the way libjpeg walks
 * them, a PNG must carry enough IDAT bytes to fill its IHDR, and a WebP
 * frame must fit its VP8X canvas. Every read is bounds-checked and every
 * walk stops after NGX_HTTP_VLM_SNIFF_MAX_STEPS steps; the whole image is
 * in memory, so nothing needs to resume.
 * Not here: decoding (vlmd does it) and byte/pixel limits (the caller's).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_vlm_module.h"


/*
 * At most this many GIF sub-blocks, PNG chunks or WebP chunks per image:
 * a real image reaches its first frame (and enough PNG image data) in a few
 * dozen, and 64k steps take well under a millisecond. An image that needs
 * more is refused if the frame vlmd decodes lies beyond (decided safely),
 * accepted if only frames vlmd never decodes do.
 */
#define NGX_HTTP_VLM_SNIFF_MAX_STEPS    65536

/* deflate expands at most 1032:1 (a 258-byte match coded in 2 bits) */
#define NGX_HTTP_VLM_DEFLATE_MAX_RATIO  1032


#define ngx_http_vlm_be16(p)  ((ngx_uint_t) (p)[0] << 8 | (p)[1])
#define ngx_http_vlm_le16(p)  ((ngx_uint_t) (p)[1] << 8 | (p)[0])
#define ngx_http_vlm_be32(p)                                                 \
    ((ngx_uint_t) (p)[0] << 24 | (ngx_uint_t) (p)[1] << 16                   \
     | (ngx_uint_t) (p)[2] << 8 | (p)[3])
#define ngx_http_vlm_le24(p)                                                 \
    ((ngx_uint_t) (p)[2] << 16 | (ngx_uint_t) (p)[1] << 8 | (p)[0])
#define ngx_http_vlm_le32(p)                                                 \
    ((size_t) (p)[3] << 24 | (size_t) (p)[2] << 16 | (size_t) (p)[1] << 8    \
     | (p)[0])


static ngx_int_t ngx_http_vlm_sniff_png(u_char *p, size_t len,
    ngx_uint_t *width, ngx_uint_t *height);
static ngx_uint_t ngx_http_vlm_png_bits(ngx_uint_t depth, ngx_uint_t color);
static ngx_int_t ngx_http_vlm_sniff_gif(u_char *p, size_t len,
    ngx_uint_t *width, ngx_uint_t *height);
static ngx_int_t ngx_http_vlm_sniff_jpeg(u_char *p, size_t len,
    ngx_uint_t *width, ngx_uint_t *height);
static ngx_int_t ngx_http_vlm_sniff_webp(u_char *p, size_t len,
    ngx_uint_t *width, ngx_uint_t *height);
static ngx_int_t ngx_http_vlm_sniff_webp_frames(u_char *p, size_t len,
    ngx_uint_t animated, ngx_uint_t width, ngx_uint_t height);
static ngx_int_t ngx_http_vlm_sniff_anmf(u_char *d, size_t len,
    ngx_uint_t width, ngx_uint_t height, ngx_uint_t *steps);
static ngx_int_t ngx_http_vlm_sniff_vp8(u_char *fourcc, u_char *d,
    size_t len, ngx_uint_t *width, ngx_uint_t *height);


/*
 * NGX_OK: type and decoded size known; NGX_DECLINED: not a supported image
 * type; NGX_ERROR: a supported type that is truncated, invalid, or whose
 * headers disagree. With NGX_ERROR, *width and *height may still hold the
 * size read so far (never more than vlmd would decode), so that a header
 * with nothing behind it is refused as too large rather than as invalid.
 */
ngx_int_t
ngx_http_vlm_image_sniff(u_char *p, size_t len, ngx_uint_t *type,
    ngx_uint_t *width, ngx_uint_t *height)
{
    ngx_int_t  rc;

    *width = 0;
    *height = 0;

    if (len >= 8 && ngx_memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) {
        *type = NGX_HTTP_VLM_IMAGE_PNG;
        rc = ngx_http_vlm_sniff_png(p, len, width, height);

    } else if (len >= 6 && (ngx_memcmp(p, "GIF87a", 6) == 0
                            || ngx_memcmp(p, "GIF89a", 6) == 0))
    {
        *type = NGX_HTTP_VLM_IMAGE_GIF;
        rc = ngx_http_vlm_sniff_gif(p, len, width, height);

    } else if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) {
        *type = NGX_HTTP_VLM_IMAGE_JPEG;
        rc = ngx_http_vlm_sniff_jpeg(p, len, width, height);

    } else if (len >= 12 && ngx_memcmp(p, "RIFF", 4) == 0
               && ngx_memcmp(p + 8, "WEBP", 4) == 0)
    {
        *type = NGX_HTTP_VLM_IMAGE_WEBP;
        rc = ngx_http_vlm_sniff_webp(p, len, width, height);

    } else {
        return NGX_DECLINED;
    }

    if (rc != NGX_OK || *width == 0 || *height == 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_sniff_png(u_char *p, size_t len, ngx_uint_t *width,
    ngx_uint_t *height)
{
    size_t      pos, chunk, idat;
    uint64_t    row, need;
    ngx_uint_t  bits, steps;

    /* IHDR comes first: length 13, width, height, depth, colour type, ... */
    if (len < 33 || ngx_http_vlm_be32(p + 8) != 13
        || ngx_memcmp(p + 12, "IHDR", 4) != 0)
    {
        return NGX_ERROR;
    }

    *width = ngx_http_vlm_be32(p + 16);
    *height = ngx_http_vlm_be32(p + 20);

    bits = ngx_http_vlm_png_bits(p[24], p[25]);
    if (bits == 0) {
        return NGX_ERROR;
    }

    /*
     * libpng fails an image whose data ends before its last row, after it
     * has allocated the whole image. Each row holds at least a filter byte
     * and ceil(width * bits / 8) bytes (interlaced or not), and deflate
     * expands at most 1032:1, so fewer IDAT bytes than rows * (row + 1) /
     * 1032 cannot be a whole image. Divided before multiplying: width and
     * height are 32-bit, bits at most 64.
     */
    row = ((uint64_t) *width * bits + 7) / 8 + 1;
    need = (uint64_t) (*height / NGX_HTTP_VLM_DEFLATE_MAX_RATIO) * row
           + (uint64_t) (*height % NGX_HTTP_VLM_DEFLATE_MAX_RATIO) * row
             / NGX_HTTP_VLM_DEFLATE_MAX_RATIO;
    need = ngx_max(need, 1);

    idat = 0;
    pos = 33;

    /* chunks: length, type, data, CRC; counting stops once there is enough */
    for (steps = 0; steps < NGX_HTTP_VLM_SNIFF_MAX_STEPS; steps++) {

        if (len - pos < 8) {
            break;
        }

        chunk = ngx_http_vlm_be32(p + pos);

        if (ngx_memcmp(p + pos + 4, "IDAT", 4) == 0) {
            idat += ngx_min(chunk, len - pos - 8);

            if (idat >= need) {
                return NGX_OK;
            }
        }

        if (ngx_memcmp(p + pos + 4, "IEND", 4) == 0
            || len - pos < 12 || chunk > len - pos - 12)
        {
            break;
        }

        pos += 12 + chunk;
    }

    return NGX_ERROR;
}


/* bits per pixel of a PNG bit depth and colour type; 0 if libpng refuses */
static ngx_uint_t
ngx_http_vlm_png_bits(ngx_uint_t depth, ngx_uint_t color)
{
    switch (color) {

    case 0:     /* grey: 1, 2, 4, 8, 16 */
        return (depth == 1 || depth == 2 || depth == 4 || depth == 8
                || depth == 16) ? depth : 0;

    case 3:     /* palette: 1, 2, 4, 8 */
        return (depth == 1 || depth == 2 || depth == 4 || depth == 8)
               ? depth : 0;

    case 2:     /* RGB */
        return (depth == 8 || depth == 16) ? 3 * depth : 0;

    case 4:     /* grey and alpha */
        return (depth == 8 || depth == 16) ? 2 * depth : 0;

    case 6:     /* RGBA */
        return (depth == 8 || depth == 16) ? 4 * depth : 0;

    default:
        return 0;
    }
}


/*
 * vlmd decodes the first frame onto a canvas that is the logical screen,
 * grown to hold the frame if it sticks out; every later frame within the
 * walk grows the size too, in case a decoder ever composites them.
 */
static ngx_int_t
ngx_http_vlm_sniff_gif(u_char *p, size_t len, ngx_uint_t *width,
    ngx_uint_t *height)
{
    size_t      pos;
    ngx_uint_t  steps, frames, right, bottom;

    /* signature, then the screen: width, height, flags, background, aspect */
    if (len < 13) {
        return NGX_ERROR;
    }

    *width = ngx_http_vlm_le16(p + 6);
    *height = ngx_http_vlm_le16(p + 8);

    pos = 13;

    if (p[10] & 0x80) {
        /* the global colour table: 2^(n + 1) RGB entries */
        pos += (size_t) 3 << ((p[10] & 0x07) + 1);
    }

    frames = 0;

    for (steps = 0; steps < NGX_HTTP_VLM_SNIFF_MAX_STEPS; /* void */) {

        if (pos >= len) {
            break;
        }

        if (p[pos] == 0x21) {
            /* an extension: introducer, label, then data sub-blocks */
            pos += 2;

        } else if (p[pos] == 0x2c) {
            /* an image: left, top, width, height, flags */
            if (len - pos < 10) {
                break;
            }

            right = ngx_http_vlm_le16(p + pos + 1)
                    + ngx_http_vlm_le16(p + pos + 5);
            bottom = ngx_http_vlm_le16(p + pos + 3)
                     + ngx_http_vlm_le16(p + pos + 7);

            *width = ngx_max(*width, right);
            *height = ngx_max(*height, bottom);
            frames++;

            if (p[pos + 9] & 0x80) {
                pos += (size_t) 3 << ((p[pos + 9] & 0x07) + 1);
            }

            /* the descriptor, then the LZW minimum code size */
            pos += 11;

        } else {
            /* the trailer, or a byte giflib refuses as a record */
            break;
        }

        /* sub-blocks: a length byte and that many bytes, until length 0 */
        while (pos < len && steps++ < NGX_HTTP_VLM_SNIFF_MAX_STEPS) {

            if (p[pos] == 0) {
                pos++;
                break;
            }

            pos += 1 + (size_t) p[pos];
        }
    }

    /* only the first frame is decoded: what follows it may be cut or bad */
    return frames ? NGX_OK : NGX_ERROR;
}


static ngx_int_t
ngx_http_vlm_sniff_jpeg(u_char *p, size_t len, ngx_uint_t *width,
    ngx_uint_t *height)
{
    u_char  marker;
    size_t  pos, seg;

    pos = 2;

    while (pos < len) {

        /*
         * Between segments libjpeg skips any bytes that are not a marker,
         * "ff 00" among them, so a frame header hidden in what looks like
         * the length of such a segment would be the one it decodes. Only a
         * marker right where the previous segment ends is accepted, and
         * only one that libjpeg reads as a segment (anything else it skips
         * or refuses).
         */
        if (p[pos] != 0xff) {
            return NGX_ERROR;
        }

        /* any number of 0xff fill bytes may precede a marker */
        while (pos < len && p[pos] == 0xff) {
            pos++;
        }

        if (pos >= len) {
            return NGX_ERROR;
        }

        marker = p[pos++];

        if ((marker >= 0xd0 && marker <= 0xd7) || marker == 0x01) {
            /* RSTn and TEM have no length */
            continue;
        }

        /*
         * SOFn, DHT (c4), DAC (cc), DQT (db), DNL (dc), DRI (dd), APPn and
         * COM have a length; JPG (c8), SOI, EOI, SOS before a frame header,
         * the reserved markers and 00 (no marker) mean libjpeg fails or
         * reads elsewhere.
         */
        if (!((marker >= 0xc0 && marker <= 0xcf && marker != 0xc8)
              || (marker >= 0xdb && marker <= 0xdd)
              || (marker >= 0xe0 && marker <= 0xef)
              || marker == 0xfe))
        {
            return NGX_ERROR;
        }

        if (len - pos < 2) {
            return NGX_ERROR;
        }

        seg = ngx_http_vlm_be16(p + pos);
        if (seg < 2 || seg > len - pos) {
            return NGX_ERROR;
        }

        if (marker >= 0xc0 && marker <= 0xcf && marker != 0xc4
            && marker != 0xcc)
        {
            /* libjpeg decodes the first frame header (and fails on another) */
            if (seg < 7) {
                return NGX_ERROR;
            }

            *height = ngx_http_vlm_be16(p + pos + 3);
            *width = ngx_http_vlm_be16(p + pos + 5);
            return NGX_OK;
        }

        pos += seg;
    }

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_vlm_sniff_webp(u_char *p, size_t len, ngx_uint_t *width,
    ngx_uint_t *height)
{
    u_char  *d;
    size_t   chunk, avail, pos;

    if (len < 20) {
        return NGX_ERROR;
    }

    chunk = ngx_http_vlm_le32(p + 16);
    d = p + 20;
    avail = ngx_min(chunk, len - 20);

    if (ngx_memcmp(p + 12, "VP8X", 4) != 0) {
        /* a simple file: the bitstream is the first chunk */
        return ngx_http_vlm_sniff_vp8(p + 12, d, avail, width, height)
               == NGX_OK ? NGX_OK : NGX_ERROR;
    }

    /* flags (4), canvas width-1 (24 bits), canvas height-1 (24 bits) */
    if (avail < 10) {
        return NGX_ERROR;
    }

    *width = ngx_http_vlm_le24(d + 4) + 1;
    *height = ngx_http_vlm_le24(d + 7) + 1;

    if (chunk > len - 20) {
        return NGX_ERROR;
    }

    /* chunks are padded to an even size */
    pos = ngx_min(20 + chunk + (chunk & 1), len);

    return ngx_http_vlm_sniff_webp_frames(p + pos, len - pos, d[0] & 0x02,
                                          *width, *height);
}


/*
 * The chunks after VP8X. A still image: libwebp decodes the first VP8 or
 * VP8L chunk and refuses one whose size differs from the canvas. An
 * animation: vlmd decodes the first ANMF frame into the canvas; each frame
 * must lie inside the canvas and be as large as its bitstream says.
 */
static ngx_int_t
ngx_http_vlm_sniff_webp_frames(u_char *p, size_t len, ngx_uint_t animated,
    ngx_uint_t width, ngx_uint_t height)
{
    size_t      pos, chunk, avail;
    ngx_int_t   rc;
    ngx_uint_t  steps, frames, fw, fh;

    pos = 0;
    frames = 0;

    for (steps = 0; steps < NGX_HTTP_VLM_SNIFF_MAX_STEPS; steps++) {

        if (len - pos < 8) {
            break;
        }

        chunk = ngx_http_vlm_le32(p + pos + 4);
        avail = ngx_min(chunk, len - pos - 8);

        if (!animated) {
            rc = ngx_http_vlm_sniff_vp8(p + pos, p + pos + 8, avail, &fw,
                                        &fh);
            if (rc != NGX_DECLINED) {
                return (rc == NGX_OK && fw == width && fh == height)
                       ? NGX_OK : NGX_ERROR;
            }

        } else if (ngx_memcmp(p + pos, "ANMF", 4) == 0) {
            if (ngx_http_vlm_sniff_anmf(p + pos + 8, avail, width, height,
                                        &steps)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            frames++;
        }

        if (chunk > len - pos - 8) {
            break;
        }

        /* chunks are padded to an even size */
        pos += 8 + chunk;

        if (chunk & 1) {
            if (pos == len) {
                break;
            }

            pos++;
        }
    }

    /* a still image needs its bitstream; walked past: frames unchecked */
    return frames ? NGX_OK : NGX_ERROR;
}


/* one ANMF payload: x/2, y/2, width-1, height-1, duration, flags, chunks */
static ngx_int_t
ngx_http_vlm_sniff_anmf(u_char *d, size_t len, ngx_uint_t width,
    ngx_uint_t height, ngx_uint_t *steps)
{
    size_t      pos, chunk;
    ngx_int_t   rc;
    ngx_uint_t  x, y, w, h, fw, fh;

    if (len < 16) {
        return NGX_ERROR;
    }

    x = ngx_http_vlm_le24(d) * 2;
    y = ngx_http_vlm_le24(d + 3) * 2;
    w = ngx_http_vlm_le24(d + 6) + 1;
    h = ngx_http_vlm_le24(d + 9) + 1;

    if (x + w > width || y + h > height) {
        return NGX_ERROR;
    }

    /* the frame's bitstream follows ALPH (or chunks libwebp skips) */
    for (pos = 16; *steps < NGX_HTTP_VLM_SNIFF_MAX_STEPS; (*steps)++) {

        if (len - pos < 8) {
            return NGX_ERROR;
        }

        chunk = ngx_http_vlm_le32(d + pos + 4);

        rc = ngx_http_vlm_sniff_vp8(d + pos, d + pos + 8,
                                    ngx_min(chunk, len - pos - 8), &fw, &fh);
        if (rc != NGX_DECLINED) {
            return (rc == NGX_OK && fw == w && fh == h) ? NGX_OK : NGX_ERROR;
        }

        if (chunk > len - pos - 8 || len - pos - 8 - chunk < (chunk & 1)) {
            return NGX_ERROR;
        }

        pos += 8 + chunk + (chunk & 1);
    }

    return NGX_ERROR;
}


/*
 * The size in a "VP8 " or "VP8L" chunk's bitstream header: NGX_OK, NGX_ERROR
 * if the header is short or wrong, NGX_DECLINED for any other chunk.
 */
static ngx_int_t
ngx_http_vlm_sniff_vp8(u_char *fourcc, u_char *d, size_t len,
    ngx_uint_t *width, ngx_uint_t *height)
{
    if (ngx_memcmp(fourcc, "VP8 ", 4) == 0) {
        /* frame tag (3), start code 9d 01 2a, 14-bit width and height */
        if (len < 10 || d[3] != 0x9d || d[4] != 0x01 || d[5] != 0x2a) {
            return NGX_ERROR;
        }

        *width = ngx_http_vlm_le16(d + 6) & 0x3fff;
        *height = ngx_http_vlm_le16(d + 8) & 0x3fff;
        return NGX_OK;
    }

    if (ngx_memcmp(fourcc, "VP8L", 4) == 0) {
        /* signature 0x2f, then 14 bits width-1 and 14 bits height-1 */
        if (len < 5 || d[0] != 0x2f) {
            return NGX_ERROR;
        }

        *width = ((ngx_uint_t) d[1] | ((ngx_uint_t) (d[2] & 0x3f) << 8)) + 1;
        *height = (((ngx_uint_t) d[2] >> 6) | ((ngx_uint_t) d[3] << 2)
                   | ((ngx_uint_t) (d[4] & 0x0f) << 10)) + 1;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


const char *
ngx_http_vlm_image_type_name(ngx_uint_t type)
{
    switch (type) {
    case NGX_HTTP_VLM_IMAGE_JPEG:
        return "image/jpeg";
    case NGX_HTTP_VLM_IMAGE_PNG:
        return "image/png";
    case NGX_HTTP_VLM_IMAGE_GIF:
        return "image/gif";
    case NGX_HTTP_VLM_IMAGE_WEBP:
        return "image/webp";
    default:
        return "unknown";
    }
}
