
/*
 * Copyright (C) vlm authors
 *
 * Header and body filters for the answers nginx itself gives where vlm
 * serves: in a vlm_api location, and in a server with vlm_api locations
 * before a location is chosen or when none matches (a bad header line, a
 * duplicate Content-Length, an unknown Transfer-Encoding, an unknown
 * path). limit_req's 429, limit_conn's, the 413 of client_max_body_size,
 * a bad chunked body's 400 and the module's own NGX_HTTP_* return codes
 * all come from nginx's error pages: HTML without CORS or Retry-After,
 * where the API promises OpenAI's {"error": {...}} (issue 12). The header
 * filter swaps the page for that JSON, same status, and adds Retry-After on
 * 429 and 503 and the CORS headers; the body filter drops the HTML and
 * sends the JSON. Our own answers are left as they are.
 * Also here: the request line that nginx logs ($request, the error log's
 * 'request: "..."') loses its query string in such servers, so a key sent
 * as ?api_key= is never written to a log.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_vlm_module.h"


typedef struct {
    ngx_uint_t                  status;
    const char                 *type;       /* OpenAI error type */
    const char                 *code;
    const char                 *message;
} ngx_http_vlm_core_error_t;


static ngx_uint_t ngx_http_vlm_in_scope(ngx_http_request_t *r);
static ngx_int_t ngx_http_vlm_post_read(ngx_http_request_t *r);
static void ngx_http_vlm_hide_args(ngx_http_request_t *r);
static ngx_uint_t ngx_http_vlm_has_header_out(ngx_http_request_t *r,
    const char *key);
static ngx_int_t ngx_http_vlm_core_error(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx);
static ngx_int_t ngx_http_vlm_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_vlm_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


/* by status, ended by the row for any other 4xx, then any other 5xx */
static ngx_http_vlm_core_error_t  ngx_http_vlm_core_errors[] = {
    { NGX_HTTP_BAD_REQUEST, "invalid_request_error", "bad_request",
      "the request is malformed: its headers or its body's framing" },
    { NGX_HTTP_FORBIDDEN, "permission_error", "forbidden",
      "access to this endpoint is not allowed from here" },
    { NGX_HTTP_NOT_FOUND, "invalid_request_error", "not_found",
      "there is no such endpoint" },
    { NGX_HTTP_NOT_ALLOWED, "invalid_request_error", "method_not_allowed",
      "this method is not allowed here" },
    { NGX_HTTP_REQUEST_TIME_OUT, "invalid_request_error", "request_timeout",
      "the request did not arrive in time" },
    { NGX_HTTP_LENGTH_REQUIRED, "invalid_request_error", "length_required",
      "send the body with Content-Length or chunked" },
    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "invalid_request_error",
      "request_too_large", "the request body is larger than this server "
      "accepts (client_max_body_size)" },
    { NGX_HTTP_REQUEST_URI_TOO_LARGE, "invalid_request_error",
      "uri_too_long", "the request URI is too long" },
    { NGX_HTTP_TOO_MANY_REQUESTS, "rate_limit_error", "rate_limited",
      "too many requests; retry after the seconds in Retry-After" },
    { NGX_HTTP_NOT_IMPLEMENTED, "invalid_request_error", "not_implemented",
      "unsupported Transfer-Encoding or method" },
    { NGX_HTTP_SERVICE_UNAVAILABLE, "service_unavailable",
      "service_unavailable", "the service is busy; retry after the "
      "seconds in Retry-After" },
    { NGX_HTTP_GATEWAY_TIME_OUT, "timeout", "timeout",
      "the answer took too long" },

    { NGX_HTTP_BAD_REQUEST, "invalid_request_error", "bad_request",
      "the request was refused" },
    { NGX_HTTP_INTERNAL_SERVER_ERROR, "server_error", "internal_error",
      "internal error" },
    { 0, NULL, NULL, NULL }
};

static ngx_str_t  ngx_http_vlm_json_type = ngx_string("application/json");


static ngx_http_output_header_filter_pt  ngx_http_vlm_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_vlm_next_body_filter;


/*
 * A vlm_api location, or no location yet (or none matched) in a server
 * that has one: nginx's default answers there are the API's.
 */
static ngx_uint_t
ngx_http_vlm_in_scope(ngx_http_request_t *r)
{
    ngx_http_vlm_srv_conf_t    *vscf;
    ngx_http_vlm_loc_conf_t    *vlcf;
    ngx_http_core_srv_conf_t   *cscf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

    if (vlcf->api != NGX_HTTP_VLM_API_NONE) {
        return 1;
    }

    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);
    vscf = ngx_http_get_module_srv_conf(r, ngx_http_vlm_module);

    return vscf->api && r->loc_conf == cscf->ctx->loc_conf;
}


/* before anything can log the request line with its location's name */
static ngx_int_t
ngx_http_vlm_post_read(ngx_http_request_t *r)
{
    ngx_http_vlm_hide_args(r);

    return NGX_DECLINED;
}


/*
 * "METHOD target?query PROTOCOL" becomes "METHOD target?... PROTOCOL"
 * for the logs, in a server with vlm_api locations (the API takes no
 * query string, so nothing is lost). Idempotent.
 */
static void
ngx_http_vlm_hide_args(ngx_http_request_t *r)
{
    u_char                   *p, *old, *last, *target, *end, *q;
    size_t                    len;
    ngx_http_vlm_srv_conf_t  *vscf;

    vscf = ngx_http_get_module_srv_conf(r, ngx_http_vlm_module);

    if (vscf == NULL || !vscf->api || r->request_line.len == 0) {
        return;
    }

    old = r->request_line.data;
    last = old + r->request_line.len;

    target = ngx_strlchr(old, last, ' ');
    if (target == NULL) {
        return;
    }

    target++;

    /* the last space ends the target; HTTP/0.9 has no protocol after it */
    for (end = last; end > target && end[-1] != ' '; end--) { /* void */ }

    end = (end > target) ? end - 1 : last;

    q = ngx_strlchr(target, end, '?');

    if (q == NULL
        || (end - q == sizeof("?...") - 1
            && ngx_strncmp(q, "?...", sizeof("?...") - 1) == 0))
    {
        return;
    }

    len = (q - old) + sizeof("?...") - 1 + (last - end);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        /* the line stays as it was rather than fail the request */
        return;
    }

    r->request_line.data = p;
    r->request_line.len = len;

    p = ngx_cpymem(p, old, q - old);
    p = ngx_cpymem(p, "?...", sizeof("?...") - 1);
    ngx_memcpy(p, end, last - end);
}


static ngx_uint_t
ngx_http_vlm_has_header_out(ngx_http_request_t *r, const char *key)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(key);
    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 0;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash != 0 && h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) key, len) == 0)
        {
            return 1;
        }
    }
}


/*
 * nginx's error page becomes our JSON: ctx->core_error holds it for the
 * body filter, and the headers describe it instead of the page.
 */
static ngx_int_t
ngx_http_vlm_core_error(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx)
{
    ngx_uint_t                  status;
    ngx_http_vlm_core_error_t  *e;

    status = r->headers_out.status;

    for (e = ngx_http_vlm_core_errors; e[2].status != 0; e++) {
        if (e->status == status) {
            break;
        }
    }

    if (e->status != status) {
        /* e is the row for any other 4xx; the next one is for 5xx */
        e += (status >= NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    if (ngx_http_vlm_error_body(r, e->message, e->type, NULL, e->code,
                                &ctx->core_error)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    r->headers_out.content_type = ngx_http_vlm_json_type;
    r->headers_out.content_type_len = ngx_http_vlm_json_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = ctx->core_error.len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_header_filter(ngx_http_request_t *r)
{
    u_char                   *p;
    ngx_str_t                 value;
    ngx_http_vlm_ctx_t       *ctx;
    ngx_http_vlm_loc_conf_t  *vlcf;

    if (r != r->main) {
        return ngx_http_vlm_next_header_filter(r);
    }

    /* the access log is written after this; the error log may still be */
    ngx_http_vlm_hide_args(r);

    if (r->headers_out.status < NGX_HTTP_BAD_REQUEST
        || !ngx_http_vlm_in_scope(r))
    {
        return ngx_http_vlm_next_header_filter(r);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "vlm header filter, status %ui", r->headers_out.status);

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

    /* nginx's error pages, and only those, set err_status */
    if (r->err_status != 0) {
        ctx = ngx_http_vlm_get_ctx(r);
        if (ctx == NULL || ngx_http_vlm_core_error(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if ((r->headers_out.status == NGX_HTTP_TOO_MANY_REQUESTS
         || r->headers_out.status == NGX_HTTP_SERVICE_UNAVAILABLE)
        && !ngx_http_vlm_has_header_out(r, "Retry-After"))
    {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        value.data = p;
        value.len = ngx_sprintf(p, "%ui", vlcf->retry_after) - p;

        if (ngx_http_vlm_set_header(r, "Retry-After", &value) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (!ngx_http_vlm_has_header_out(r, "Access-Control-Allow-Origin")
        && ngx_http_vlm_add_cors(r) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_vlm_next_header_filter(r);
}


/* nginx's page is dropped; our JSON goes out with its last buffer */
static ngx_int_t
ngx_http_vlm_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t           *b;
    ngx_uint_t           last;
    ngx_chain_t         *cl, out;
    ngx_http_vlm_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);

    if (ctx == NULL || ctx->core_error.data == NULL || in == NULL) {
        return ngx_http_vlm_next_body_filter(r, in);
    }

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;

        if (cl->buf->last_buf) {
            last = 1;
        }
    }

    if (!last) {
        return NGX_OK;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->core_error.data;
    b->last = ctx->core_error.data + ctx->core_error.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    ngx_str_null(&ctx->core_error);

    return ngx_http_vlm_next_body_filter(r, &out);
}


ngx_int_t
ngx_http_vlm_filter_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_POST_READ_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_vlm_post_read;

    ngx_http_vlm_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_vlm_header_filter;

    ngx_http_vlm_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_vlm_body_filter;

    return NGX_OK;
}
