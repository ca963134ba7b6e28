/*
 * fuzz_ngx_image_sniff.c: libFuzzer target for the nginx module's image
 * header sniffer (ngx_http_vlm_image_sniff: JPEG SOFn, PNG IHDR, GIF screen
 * descriptor, WebP VP8/VP8L/VP8X). The input is the whole image, in an
 * exact-size heap block, so any read past it is an ASan error. The result
 * must be one of OK / DECLINED / ERROR; OK needs a known type and non-zero
 * dimensions within what the format can encode; DECLINED leaves 0x0.
 * Seeds: the images in tests/fixtures/images (build.sh copies them).
 */

#include "ngx_harness.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char      *p;
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

    switch (type) {
    case NGX_HTTP_VLM_IMAGE_PNG:
        max = 0xffffffff;
        break;
    case NGX_HTTP_VLM_IMAGE_WEBP:
        max = 1 << 24;
        break;
    default:    /* JPEG and GIF: 16-bit fields */
        max = 0xffff;
        break;
    }

    if (width > max || height > max) {
        __builtin_trap();
    }

    return 0;
}
