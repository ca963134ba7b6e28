
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_util: small helpers several files share and that depend on
 * no other file of the module: SHA-256 (API keys, image hashes) and
 * recording a refusal in ctx->error in OpenAI's shape.
 * Not here: sending anything (ngx_http_vlm_response.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/evp.h>
#include "ngx_http_vlm_module.h"


/* bytes of ctx->error.message, NUL included */
#define NGX_HTTP_VLM_ERROR_LEN  256


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
