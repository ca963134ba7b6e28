/*
 * fuzz_ngx_body.c: libFuzzer target for the nginx module's request body
 * parser (ngx_http_vlm_parse_body: JSON within its depth and value limits,
 * the chat / alt-text / summary schemas, multipart/form-data, strict base64
 * data: URLs, every image sniffed and bounded). Input byte 0 picks the endpoint (bits 0-1:
 * chat, alt-text, summary, chat), multipart (bit 2) and where the body is
 * cut into two buffers (bits 3-7; bit 3 also turns vlm_remote_images on).
 * Multipart inputs carry their Content-Type value up to the first '\n';
 * the rest is the body.
 *
 * On success every limit must hold (max_tokens and temperature as sent to
 * vlmd, defaults included; a chat request may leave temperature to vlmd) and every image's bytes are read (ASan) and
 * re-sniffed within the pixel limit; a refusal must be a 4xx with a
 * non-empty NUL-terminated message in ctx->error. The request pool is then
 * destroyed, running the module's json_decref cleanups, so a reference
 * leak is a LeakSanitizer error. Seeds: build.sh writes them; with
 * FUZZ_NGX_DEBUG=1 set, each run prints the status and error message, or
 * the body for vlmd with sorted keys.
 */

#include "ngx_harness.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void
check_task(ngx_http_vlm_task_t *task, ngx_http_vlm_loc_conf_t *vlcf)
{
    char                  *s;
    json_t                *max_tokens, *temperature;
    ngx_uint_t             i, type, width, height;
    volatile u_char        sink;
    ngx_http_vlm_image_t  *img;

    if (task == NULL || !json_is_object(task->body)
        || json_object_get(task->body, "task") == NULL
        || task->images->nelts > vlcf->max_images
        || task->prompt_bytes > vlcf->max_prompt_bytes
        || task->json_values > vlcf->max_json_values)
    {
        __builtin_trap();
    }

    /* what vlmd will be asked for: within the limits, defaults included */
    max_tokens = json_object_get(task->body, "max_tokens");
    temperature = json_object_get(task->body, "temperature");

    /* a chat request that names no temperature sends none: vlmd then uses
     * the model's generation_config.json (issue 11) */
    if (!json_is_integer(max_tokens) || json_integer_value(max_tokens) < 1
        || json_integer_value(max_tokens) > (json_int_t) vlcf->max_tokens
        || (temperature == NULL && vlcf->api != NGX_HTTP_VLM_API_CHAT)
        || (temperature != NULL
            && (!json_is_real(temperature) || json_real_value(temperature) < 0
                || json_real_value(temperature) > 2)))
    {
        __builtin_trap();
    }

    img = task->images->elts;
    sink = 0;

    for (i = 0; i < task->images->nelts; i++) {
        if (img[i].data.len == 0 || img[i].data.len > vlcf->max_image_bytes)
        {
            __builtin_trap();
        }

        /* an image kept is one the sniffer reads, within the pixel limit */
        if (ngx_http_vlm_image_sniff(img[i].data.data, img[i].data.len,
                                     &type, &width, &height)
            != NGX_OK
            || width == 0 || height == 0
            || width > vlcf->max_pixels / height)
        {
            __builtin_trap();
        }

        for (size_t k = 0; k < img[i].data.len; k++) {
            sink ^= img[i].data.data[k];
        }
    }

    (void) sink;

    s = json_dumps(task->body, JSON_SORT_KEYS | JSON_COMPACT);
    if (s == NULL) {
        __builtin_trap();
    }

    free(s);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                      *s;
    u_char                    *nl;
    size_t                     len;
    ngx_int_t                  rc;
    ngx_uint_t                 mode;
    ngx_pool_t                *pool;
    ngx_http_request_t        *r;
    ngx_http_vlm_ctx_t        *ctx;
    ngx_http_vlm_loc_conf_t    vlcf;
    ngx_http_vlm_main_conf_t   vmcf;

    static const ngx_uint_t  apis[4] = {
        NGX_HTTP_VLM_API_CHAT, NGX_HTTP_VLM_API_ALT_TEXT,
        NGX_HTTP_VLM_API_SUMMARY, NGX_HTTP_VLM_API_CHAT
    };

    if (size < 1) {
        return 0;
    }

    mode = data[0];
    data++;
    size--;

    /* small limits so every refusal is reachable from small inputs */
    ngx_memzero(&vmcf, sizeof(vmcf));
    ngx_str_set(&vmcf.model_name, "glm-4.6v-flash");

    ngx_memzero(&vlcf, sizeof(vlcf));
    vlcf.api = apis[mode & 3];
    vlcf.max_images = 4;
    vlcf.max_image_bytes = 4096;
    vlcf.max_pixels = 1 << 20;
    vlcf.max_prompt_bytes = 2048;
    vlcf.max_tokens = 2048;
    vlcf.default_max_tokens = 512;
    vlcf.max_json_depth = 16;
    vlcf.max_json_values = 256;
    vlcf.remote_images = (mode >> 3) & 1;

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, NULL);
    r = ngx_harness_request(pool, &vmcf, &vlcf);
    ctx = ngx_pcalloc(pool, sizeof(ngx_http_vlm_ctx_t));

    if (mode & 4) {
        nl = memchr(data, '\n', size);
        len = nl ? (size_t) (nl - data) : size;
        ngx_harness_set_content_type(r, data, len);
        data += nl ? len + 1 : len;
        size -= nl ? len + 1 : len;

    } else {
        ngx_harness_set_content_type(r, (u_char *) "application/json", 16);
    }

    ngx_harness_set_body(r, data, size, (mode >> 3) * size / 31);

    rc = ngx_http_vlm_parse_body(r, ctx);

    if (getenv("FUZZ_NGX_DEBUG")) {     /* to check what a seed reaches */
        s = (rc == NGX_OK) ? json_dumps(ctx->task->body,
                                        JSON_SORT_KEYS | JSON_COMPACT)
                           : NULL;
        fprintf(stderr, "rc=%d %s %s\n", (int) rc,
                rc == NGX_OK ? "ok" : (char *) ctx->error.message,
                s ? s : "");
        free(s);
    }

    if (rc == NGX_OK) {
        check_task(ctx->task, &vlcf);

    } else {
        /* every refusal is a 4xx that says why. The message may quote
         * client bytes that are not UTF-8: ngx_http_vlm_send_error makes
         * it JSON-safe (a bug this target found; see test_limits.py) */
        if (rc < 400 || rc > 499 || (ngx_uint_t) rc != ctx->error.status
            || ctx->error.message == NULL
            || strlen((char *) ctx->error.message) > 255
            || ctx->error.code == NULL || ctx->error.type == NULL)
        {
            __builtin_trap();
        }

        if (ctx->error.message[0] == '\0') {
            __builtin_trap();
        }
    }

    ngx_destroy_pool(pool);

    return 0;
}
