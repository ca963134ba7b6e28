/*
 * fuzz_ngx_json.c: libFuzzer target for the nginx module's JSON parser
 * (ngx_http_vlm_json_parse), checked against jansson's own parser, which it
 * replaced for request bodies (issue 12: jansson's memory and time on
 * hostile bodies). Byte 0 sets the limits: bits 0-3 the depth (1..16), bit
 * 4 a small value budget (64); the rest is the body.
 *
 * Whatever the input: a tree we accept is an object that jansson
 * (JSON_REJECT_DUPLICATES) parses to an equal tree, within the depth and
 * value limits; a body we call invalid_json jansson refuses too, or parses
 * to something other than an object; every refusal has a code, a reason
 * and an offset inside the body. Only our limits (json_too_deep,
 * json_too_complex) may refuse what jansson takes, and a raw NUL byte,
 * which jansson's lexer skips after a token and we refuse. The input sits in an
 * exact-size block, so ASan sees a read or an unescaped write past it.
 */

#include "ngx_harness.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static ngx_uint_t
depth_of(json_t *v)
{
    size_t       i;
    json_t      *e;
    ngx_uint_t   d, m;
    const char  *k;

    m = 0;

    if (json_is_object(v)) {
        json_object_foreach(v, k, e) {
            d = depth_of(e);
            m = d > m ? d : m;
        }

        return m + 1;
    }

    if (json_is_array(v)) {
        json_array_foreach(v, i, e) {
            d = depth_of(e);
            m = d > m ? d : m;
        }

        return m + 1;
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char               *body;
    json_t               *ours, *ref;
    json_error_t          err;
    ngx_http_vlm_json_t   jp;

    if (size < 1) {
        return 0;
    }

    jp.max_depth = (data[0] & 0x0f) + 1;
    jp.max_values = (data[0] & 0x10) ? 64 : 1 << 20;
    data++;
    size--;

    body = malloc(size ? size : 1);
    if (body == NULL) {
        return 0;
    }

    memcpy(body, data, size);

    ours = ngx_http_vlm_json_parse(body, size, &jp);
    ref = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, &err);

    if (getenv("FUZZ_NGX_DEBUG")) {
        fprintf(stderr, "ours=%s code=%s reason=%s offset=%zu jansson=%s\n",
                ours ? "ok" : "refused", jp.code ? jp.code : "-",
                jp.reason ? jp.reason : "-", jp.offset,
                ref ? "ok" : err.text);
    }

    if (ours != NULL) {
        if (!json_is_object(ours) || ref == NULL || !json_equal(ours, ref)
            || depth_of(ours) > jp.max_depth || jp.values > jp.max_values)
        {
            __builtin_trap();
        }

    } else {
        if (jp.code == NULL || jp.reason == NULL || jp.offset > size) {
            __builtin_trap();
        }

        /* jansson skips a NUL byte that follows a token (its lexer reads
         * a NUL in its one-character buffer as "refill"): no reference */
        if (strcmp(jp.code, "invalid_json") == 0 && json_is_object(ref)
            && memchr(data, '\0', size) == NULL)
        {
            __builtin_trap();
        }

        if (strcmp(jp.code, "invalid_json") != 0
            && strcmp(jp.code, "json_too_deep") != 0
            && strcmp(jp.code, "json_too_complex") != 0)
        {
            __builtin_trap();
        }
    }

    json_decref(ours);
    json_decref(ref);
    free(body);

    return 0;
}
