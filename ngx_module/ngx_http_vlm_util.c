
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_util: small helpers several files share and that depend on
 * no other file of the module: SHA-256 (API keys, image hashes),
 * recording a refusal in ctx->error in OpenAI's shape, the request's
 * Content-Type, and the names of the finish reasons.
 * Not here: sending anything (ngx_http_vlm_response.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/evp.h>
#include "ngx_http_vlm_module.h"


/* bytes of ctx->error.message, NUL included */
#define NGX_HTTP_VLM_ERROR_LEN  256


/* indexed by NGX_HTTP_VLM_FINISH_*; as OpenAI's "finish_reason" spells it */
static ngx_str_t  ngx_http_vlm_finish_names[] = {
    ngx_null_string,
    ngx_string("stop"),
    ngx_string("length"),
    ngx_string("cancelled"),
    ngx_string("deadline")
};


void
ngx_http_vlm_sha256(u_char *data, size_t len, u_char *out)
{
    unsigned int  n;

    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1) {
        /* cannot fail for SHA-256 in practice; never match on failure */
        ngx_memset(out, 0xff, NGX_HTTP_VLM_SHA256_LEN);
    }
}


/*
 * Records why a request is refused, for the caller to send; returns the
 * status, or 500 when even the message cannot be allocated.
 */
ngx_int_t
ngx_http_vlm_set_error(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_uint_t status, const char *param, const char *code,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    ctx->error.status = status;
    ctx->error.param = param;
    ctx->error.code = code;
    ctx->error.type = "invalid_request_error";

    ctx->error.message = ngx_pnalloc(r->pool, NGX_HTTP_VLM_ERROR_LEN);
    if (ctx->error.message == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(ctx->error.message,
                      ctx->error.message + NGX_HTTP_VLM_ERROR_LEN - 1, fmt,
                      args);
    va_end(args);
    *p = '\0';

    return status;
}


/* the request's Content-Type is type, perhaps with parameters after it */
ngx_uint_t
ngx_http_vlm_has_content_type(ngx_http_request_t *r, ngx_str_t *type)
{
    ngx_str_t  *ct;

    if (r->headers_in.content_type == NULL) {
        return 0;
    }

    ct = &r->headers_in.content_type->value;

    return ct->len >= type->len
           && ngx_strncasecmp(ct->data, type->data, type->len) == 0;
}


/* the empty string for NGX_HTTP_VLM_FINISH_NONE and unknown values */
ngx_str_t *
ngx_http_vlm_finish_name(ngx_uint_t reason)
{
    if (reason >= sizeof(ngx_http_vlm_finish_names) / sizeof(ngx_str_t)) {
        reason = NGX_HTTP_VLM_FINISH_NONE;
    }

    return &ngx_http_vlm_finish_names[reason];
}


/* NGX_HTTP_VLM_FINISH_NONE for a name that is none of them */
ngx_uint_t
ngx_http_vlm_finish_code(u_char *name, size_t len)
{
    ngx_uint_t  i;

    for (i = 1; i < sizeof(ngx_http_vlm_finish_names) / sizeof(ngx_str_t);
         i++)
    {
        if (ngx_http_vlm_finish_names[i].len == len
            && ngx_strncmp(ngx_http_vlm_finish_names[i].data, name, len) == 0)
        {
            return i;
        }
    }

    return NGX_HTTP_VLM_FINISH_NONE;
}
