
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_image_sniff: the type and dimensions of an image read from
 * its headers only (JPEG SOFn, PNG IHDR, GIF logical screen descriptor,
 * WebP VP8/VP8L/VP8X), so that unsupported types and pixel bombs are
 * refused before vlmd decodes a byte. Every read is bounds-checked; the
 * whole image is in memory, so nothing needs to resume.
 * Not here: decoding (vlmd does it) and byte/pixel limits (the caller's).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_vlm_module.h"


#define ngx_http_vlm_be16(p)  ((ngx_uint_t) (p)[0] << 8 | (p)[1])
#define ngx_http_vlm_le16(p)  ((ngx_uint_t) (p)[1] << 8 | (p)[0])
#define ngx_http_vlm_be32(p)                                                 \
    ((ngx_uint_t) (p)[0] << 24 | (ngx_uint_t) (p)[1] << 16                   \
     | (ngx_uint_t) (p)[2] << 8 | (p)[3])
#define ngx_http_vlm_le24(p)                                                 \
    ((ngx_uint_t) (p)[2] << 16 | (ngx_uint_t) (p)[1] << 8 | (p)[0])


static ngx_int_t ngx_http_vlm_sniff_jpeg(u_char *p, size_t len,
    ngx_uint_t *width, ngx_uint_t *height);
static ngx_int_t ngx_http_vlm_sniff_webp(u_char *p, size_t len,
    ngx_uint_t *width, ngx_uint_t *height);


/*
 * NGX_OK: type and size known; NGX_DECLINED: not a supported image type;
 * NGX_ERROR: a supported type whose header is truncated or invalid.
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

        if (len < 24 || ngx_http_vlm_be32(p + 8) != 13
            || ngx_memcmp(p + 12, "IHDR", 4) != 0)
        {
            return NGX_ERROR;
        }

        *width = ngx_http_vlm_be32(p + 16);
        *height = ngx_http_vlm_be32(p + 20);
        rc = NGX_OK;

    } else if (len >= 6 && (ngx_memcmp(p, "GIF87a", 6) == 0
                            || ngx_memcmp(p, "GIF89a", 6) == 0))
    {
        *type = NGX_HTTP_VLM_IMAGE_GIF;

        if (len < 10) {
            return NGX_ERROR;
        }

        *width = ngx_http_vlm_le16(p + 6);
        *height = ngx_http_vlm_le16(p + 8);
        rc = NGX_OK;

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
ngx_http_vlm_sniff_jpeg(u_char *p, size_t len, ngx_uint_t *width,
    ngx_uint_t *height)
{
    u_char  marker;
    size_t  pos, seg;

    pos = 2;

    while (pos < len) {

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

        if (marker == 0xd9 || marker == 0xda) {
            /* end of image or start of scan before any frame header */
            return NGX_ERROR;
        }

        if ((marker >= 0xd0 && marker <= 0xd7) || marker == 0x01) {
            continue;
        }

        if (len - pos < 2) {
            return NGX_ERROR;
        }

        seg = ngx_http_vlm_be16(p + pos);
        if (seg < 2 || seg > len - pos) {
            return NGX_ERROR;
        }

        if (marker >= 0xc0 && marker <= 0xcf && marker != 0xc4
            && marker != 0xc8 && marker != 0xcc)
        {
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
    size_t   chunk;

    if (len < 20) {
        return NGX_ERROR;
    }

    chunk = (size_t) p[16] | (size_t) p[17] << 8 | (size_t) p[18] << 16
            | (size_t) p[19] << 24;
    d = p + 20;

    if (ngx_memcmp(p + 12, "VP8 ", 4) == 0) {
        /* frame tag (3), start code 9d 01 2a, 14-bit width and height */
        if (len < 30 || chunk < 10 || d[3] != 0x9d || d[4] != 0x01
            || d[5] != 0x2a)
        {
            return NGX_ERROR;
        }

        *width = ngx_http_vlm_le16(d + 6) & 0x3fff;
        *height = ngx_http_vlm_le16(d + 8) & 0x3fff;
        return NGX_OK;
    }

    if (ngx_memcmp(p + 12, "VP8L", 4) == 0) {
        /* signature 0x2f, then 14 bits width-1 and 14 bits height-1 */
        if (len < 25 || chunk < 5 || d[0] != 0x2f) {
            return NGX_ERROR;
        }

        *width = ((ngx_uint_t) d[1] | ((ngx_uint_t) (d[2] & 0x3f) << 8)) + 1;
        *height = (((ngx_uint_t) d[2] >> 6) | ((ngx_uint_t) d[3] << 2)
                   | ((ngx_uint_t) (d[4] & 0x0f) << 10)) + 1;
        return NGX_OK;
    }

    if (ngx_memcmp(p + 12, "VP8X", 4) == 0) {
        /* flags (4), canvas width-1 (24 bits), canvas height-1 (24 bits) */
        if (len < 30 || chunk < 10) {
            return NGX_ERROR;
        }

        *width = ngx_http_vlm_le24(d + 4) + 1;
        *height = ngx_http_vlm_le24(d + 7) + 1;
        return NGX_OK;
    }

    return NGX_ERROR;
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
