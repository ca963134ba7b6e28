
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_auth: who is calling. "Authorization: Bearer <credential>"
 * where the credential is a JWT (verified in ngx_http_vlm_jwt.c) or an API
 * key, looked up by its SHA-256 in the vlm_api_keys file (keys are never
 * stored in clear). Runs before the body is read. A refused credential is
 * logged at vlm_auth_log_level with the reason, never the credential; a
 * missing one only at debug level (browsers and probes send none).
 * Not here: rate limits (limit_req on $vlm_subject) and per-subject
 * permissions.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/crypto.h>
#include "ngx_http_vlm_module.h"


#define NGX_HTTP_VLM_MAX_CREDENTIAL  8192
#define NGX_HTTP_VLM_SHA256_HEX      (2 * NGX_HTTP_VLM_SHA256_LEN)
#define NGX_HTTP_VLM_MAX_KEYS_FILE   (16 * 1024 * 1024)


static ngx_int_t ngx_http_vlm_api_key_lookup(ngx_http_request_t *r,
    ngx_http_vlm_loc_conf_t *vlcf, ngx_str_t *key, ngx_str_t *subject);
static ngx_int_t ngx_http_vlm_unhex(u_char *dst, u_char *src, size_t len);


ngx_int_t
ngx_http_vlm_authenticate(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx)
{
    u_char                   *p, *last;
    ngx_str_t                 token;
    ngx_uint_t                dots;
    ngx_http_vlm_loc_conf_t  *vlcf;

    if (ctx->auth_done) {
        return ctx->auth_rc;
    }

    ctx->auth_done = 1;
    ctx->auth_rc = NGX_HTTP_UNAUTHORIZED;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "vlm authenticate");

    if (!vlcf->auth || vlcf->api == NGX_HTTP_VLM_API_HEALTH
        || vlcf->api == NGX_HTTP_VLM_API_READY
        || vlcf->api == NGX_HTTP_VLM_API_METRICS)
    {
        ctx->auth_rc = NGX_OK;
        return NGX_OK;
    }

    if (r->headers_in.authorization == NULL) {
        ngx_str_set(&ctx->auth_error,
                    "missing credentials: send \"Authorization: Bearer "
                    "<token or API key>\"");
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "vlm: no credentials were sent");
        return ctx->auth_rc;
    }

    token = r->headers_in.authorization->value;

    if (token.len < sizeof("Bearer ") - 1
        || ngx_strncasecmp(token.data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1)
           != 0)
    {
        ngx_str_set(&ctx->auth_error,
                    "unsupported authorization scheme, expected Bearer");
        goto refused;
    }

    token.data += sizeof("Bearer ") - 1;
    token.len -= sizeof("Bearer ") - 1;

    while (token.len && token.data[0] == ' ') {
        token.data++;
        token.len--;
    }

    if (token.len == 0 || token.len > NGX_HTTP_VLM_MAX_CREDENTIAL) {
        ngx_str_set(&ctx->auth_error, "empty or oversized credential");
        goto refused;
    }

    dots = 0;
    last = token.data + token.len;

    for (p = token.data; p < last; p++) {
        if (*p == '.') {
            dots++;
        }
    }

    if (dots == 2) {
        if (vlcf->jwt_keys == NULL) {
            ngx_str_set(&ctx->auth_error, "JWTs are not accepted here");
            goto refused;
        }

        if (ngx_http_vlm_jwt_verify(r, vlcf, &token, &ctx->subject,
                                    &ctx->auth_error)
            != NGX_OK)
        {
            goto refused;
        }

        ctx->auth_rc = NGX_OK;
        return NGX_OK;
    }

    if (vlcf->api_keys == NULL) {
        ngx_str_set(&ctx->auth_error, "API keys are not accepted here");
        goto refused;
    }

    if (ngx_http_vlm_api_key_lookup(r, vlcf, &token, &ctx->subject)
        != NGX_OK)
    {
        ngx_str_set(&ctx->auth_error, "unknown or revoked API key");
        goto refused;
    }

    ctx->auth_rc = NGX_OK;

    return NGX_OK;

refused:

    /* the reason only: the credential may be a real secret, mistyped */
    ngx_log_error(vlcf->auth_log_level, r->connection->log, 0,
                  "vlm: credentials refused: %V", &ctx->auth_error);

    return ctx->auth_rc;
}


static ngx_int_t
ngx_http_vlm_api_key_lookup(ngx_http_request_t *r,
    ngx_http_vlm_loc_conf_t *vlcf, ngx_str_t *key, ngx_str_t *subject)
{
    ngx_int_t                found;
    ngx_uint_t               i;
    ngx_http_vlm_api_key_t  *k;
    u_char                   hash[NGX_HTTP_VLM_SHA256_LEN];

    ngx_http_vlm_sha256(key->data, key->len, hash);

    k = vlcf->api_keys->elts;
    found = NGX_DECLINED;

    /* compare against every key so timing says nothing about the match */
    for (i = 0; i < vlcf->api_keys->nelts; i++) {
        if (CRYPTO_memcmp(k[i].hash, hash, NGX_HTTP_VLM_SHA256_LEN) == 0) {
            *subject = k[i].subject;
            found = NGX_OK;
        }
    }

    return found;
}


static ngx_int_t
ngx_http_vlm_unhex(u_char *dst, u_char *src, size_t len)
{
    size_t  i;
    u_char  c, v;

    for (i = 0; i < len; i++) {
        c = src[i];

        if (c >= '0' && c <= '9') {
            v = c - '0';

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            v = (c | 0x20) - 'a' + 10;

        } else {
            return NGX_ERROR;
        }

        if (i % 2 == 0) {
            dst[i / 2] = (u_char) (v << 4);

        } else {
            dst[i / 2] |= v;
        }
    }

    return NGX_OK;
}


char *
ngx_http_vlm_load_api_keys(ngx_conf_t *cf, ngx_str_t *file,
    ngx_array_t *keys)
{
    u_char                  *p, *line, *end, *last, *hex;
    ssize_t                  n;
    ngx_fd_t                 fd;
    ngx_str_t                name;
    ngx_uint_t               lineno;
    ngx_file_info_t          fi;
    ngx_http_vlm_api_key_t  *k;

    name = *file;
    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &name);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > NGX_HTTP_VLM_MAX_KEYS_FILE)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is unreadable or larger than 16m", &name);
        (void) ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    p = ngx_pnalloc(cf->pool, ngx_file_size(&fi) + 1);
    if (p == NULL) {
        (void) ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_fd(fd, p, ngx_file_size(&fi));
    (void) ngx_close_file(fd);

    if (n != (ssize_t) ngx_file_size(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "short read of \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    last = p + n;
    lineno = 0;

    /* one key per line: "<sha256 hex of the key> [subject]", # comments */
    for (line = p; line < last; line = end + 1) {
        lineno++;

        end = ngx_strlchr(line, last, '\n');
        if (end == NULL) {
            end = last;
        }

        while (line < end && (*line == ' ' || *line == '\t')) {
            line++;
        }

        if (line == end || *line == '#' || *line == '\r') {
            continue;
        }

        if (end - line < NGX_HTTP_VLM_SHA256_HEX
            || (end - line > NGX_HTTP_VLM_SHA256_HEX
                && line[NGX_HTTP_VLM_SHA256_HEX] != ' '
                && line[NGX_HTTP_VLM_SHA256_HEX] != '\t'
                && line[NGX_HTTP_VLM_SHA256_HEX] != '\r'))
        {
            goto invalid;
        }

        k = ngx_array_push(keys);
        if (k == NULL) {
            return NGX_CONF_ERROR;
        }

        if (ngx_http_vlm_unhex(k->hash, line, NGX_HTTP_VLM_SHA256_HEX)
            != NGX_OK)
        {
            goto invalid;
        }

        hex = line;
        line += NGX_HTTP_VLM_SHA256_HEX;

        while (line < end && (*line == ' ' || *line == '\t')) {
            line++;
        }

        k->subject.data = line;
        k->subject.len = end - line;

        while (k->subject.len
               && (k->subject.data[k->subject.len - 1] == '\r'
                   || k->subject.data[k->subject.len - 1] == ' '))
        {
            k->subject.len--;
        }

        if (k->subject.len == 0) {
            /* no name given: the first 12 hex digits identify the key */
            k->subject.data = hex;
            k->subject.len = 12;
        }
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" line %ui: expected the SHA-256 of a key as "
                       "64 hex digits, then an optional subject",
                       &name, lineno);
    return NGX_CONF_ERROR;
}
