
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_response: everything the client sees: OpenAI-shaped errors,
 * JSON answers (chat.completion, alt text, summary), SSE streams in
 * chat.completion.chunk shape ending with "data: [DONE]", CORS headers.
 * Not here: deciding what went wrong (callers pass status and message).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_vlm_module.h"


typedef struct {
    ngx_uint_t                  status;
    const char                 *type;       /* OpenAI error type */
    const char                 *code;       /* or NULL */
} ngx_http_vlm_status_error_t;


static ngx_int_t ngx_http_vlm_send_buffer(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, u_char *data, size_t len);
static ngx_int_t ngx_http_vlm_send_chunk(ngx_http_request_t *r, json_t *obj,
    ngx_uint_t last);
static json_t *ngx_http_vlm_chunk_object(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx);
static json_t *ngx_http_vlm_usage(ngx_http_vlm_ctx_t *ctx);
static ngx_int_t ngx_http_vlm_dump(ngx_http_request_t *r, json_t *obj,
    ngx_str_t *out);
static ngx_int_t ngx_http_vlm_cache_header(ngx_http_request_t *r);
static json_t *ngx_http_vlm_json_text(ngx_http_request_t *r, u_char *text,
    size_t len);
static void ngx_http_vlm_ascii_unless_utf8(u_char *p, u_char *last);


/* what a status from vlmd or the IPC is to a client; the last row is
 * also every status not listed */
static ngx_http_vlm_status_error_t  ngx_http_vlm_status_errors[] = {
    { NGX_HTTP_BAD_REQUEST, "invalid_request_error", NULL },
    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "invalid_request_error", NULL },
    { NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, "invalid_request_error", NULL },
    { NGX_HTTP_TOO_MANY_REQUESTS, "rate_limit_error", "queue_full" },
    { NGX_HTTP_SERVICE_UNAVAILABLE, "service_unavailable",
      "daemon_unavailable" },
    { NGX_HTTP_GATEWAY_TIME_OUT, "timeout", "timeout" },
    { NGX_HTTP_INTERNAL_SERVER_ERROR, "server_error", NULL }
};

static ngx_str_t  ngx_http_vlm_json_type = ngx_string("application/json");
static ngx_str_t  ngx_http_vlm_sse_type = ngx_string("text/event-stream");


ngx_int_t
ngx_http_vlm_set_header(ngx_http_request_t *r, char *key, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.len = ngx_strlen(key);
    h->key.data = (u_char *) key;
    h->value = *value;

    return NGX_OK;
}


/*
 * A JSON string of model text. Token boundaries can split a UTF-8
 * sequence; jansson refuses invalid UTF-8, so such bytes become U+FFFD.
 */
static json_t *
ngx_http_vlm_json_text(ngx_http_request_t *r, u_char *text, size_t len)
{
    u_char      *p, *last, *out, *o;
    json_t      *s;
    uint32_t     ch, min;
    ngx_uint_t   n, i;

    s = json_stringn((char *) text, len);
    if (s != NULL) {
        return s;
    }

    out = ngx_pnalloc(r->pool, 3 * len + 1);
    if (out == NULL) {
        return NULL;
    }

    o = out;
    p = text;
    last = text + len;

    while (p < last) {
        if (*p < 0x80) {
            *o++ = *p++;
            continue;
        }

        if ((*p & 0xe0) == 0xc0) {
            n = 1; ch = *p & 0x1f; min = 0x80;

        } else if ((*p & 0xf0) == 0xe0) {
            n = 2; ch = *p & 0x0f; min = 0x800;

        } else if ((*p & 0xf8) == 0xf0) {
            n = 3; ch = *p & 0x07; min = 0x10000;

        } else {
            n = 0; ch = 0; min = 1;
        }

        for (i = 1; n && i <= n; i++) {
            if (p + i >= last || (p[i] & 0xc0) != 0x80) {
                n = 0;
                break;
            }

            ch = (ch << 6) | (p[i] & 0x3f);
        }

        if (n == 0 || ch < min || ch > 0x10ffff
            || (ch >= 0xd800 && ch <= 0xdfff))
        {
            o = ngx_cpymem(o, "\xef\xbf\xbd", 3);
            p++;
            continue;
        }

        o = ngx_cpymem(o, p, n + 1);
        p += n + 1;
    }

    return json_stringn((char *) out, o - out);
}


static ngx_int_t
ngx_http_vlm_cache_header(ngx_http_request_t *r)
{
    ngx_http_vlm_ctx_t  *ctx;

    static ngx_str_t  names[] = {
        ngx_null_string,
        ngx_string("HIT"),
        ngx_string("MISS"),
        ngx_string("BYPASS")
    };

    ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);

    if (ctx == NULL || ctx->cache_status == NGX_HTTP_VLM_CACHE_NONE) {
        return NGX_OK;
    }

    return ngx_http_vlm_set_header(r, "X-VLM-Cache",
                                   &names[ctx->cache_status]);
}


ngx_int_t
ngx_http_vlm_add_cors(ngx_http_request_t *r)
{
    ngx_str_t                 *origin, value;
    ngx_uint_t                 i;
    ngx_table_elt_t           *h;
    ngx_list_part_t           *part;
    ngx_http_vlm_loc_conf_t   *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

    if (vlcf->cors_origins == NULL) {
        return NGX_OK;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_OK;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("origin") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "origin",
                               sizeof("origin") - 1)
               == 0)
        {
            h = &h[i];
            break;
        }
    }

    /* only configured origins are echoed; anything else gets no CORS */
    origin = vlcf->cors_origins->elts;

    for (i = 0; i < vlcf->cors_origins->nelts; i++) {
        if ((origin[i].len == 1 && origin[i].data[0] == '*')
            || (origin[i].len == h->value.len
                && ngx_strncmp(origin[i].data, h->value.data, h->value.len)
                   == 0))
        {
            if (ngx_http_vlm_set_header(r, "Access-Control-Allow-Origin",
                                        &h->value)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            ngx_str_set(&value, "Origin");
            if (ngx_http_vlm_set_header(r, "Vary", &value) != NGX_OK) {
                return NGX_ERROR;
            }

            ngx_str_set(&value, "Authorization, Content-Type");
            if (ngx_http_vlm_set_header(r, "Access-Control-Allow-Headers",
                                        &value)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            ngx_str_set(&value, "GET, POST, OPTIONS");
            if (ngx_http_vlm_set_header(r, "Access-Control-Allow-Methods",
                                        &value)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            ngx_str_set(&value, "X-VLM-Cache, Retry-After");
            return ngx_http_vlm_set_header(r,
                                           "Access-Control-Expose-Headers",
                                           &value);
        }
    }

    return NGX_OK;
}


/*
 * Messages can quote client bytes (a form field's name, a model string, a
 * character cut at the buffer's end) that are not UTF-8; jansson refuses
 * those, and the client would get no answer at all.  Found by fuzz_ngx_body.
 */
static void
ngx_http_vlm_ascii_unless_utf8(u_char *p, u_char *last)
{
    json_t  *utf8;

    utf8 = json_stringn((char *) p, last - p);
    if (utf8 != NULL) {
        json_decref(utf8);
        return;
    }

    for ( /* void */ ; p < last; p++) {
        if (*p >= 0x80) {
            *p = '?';
        }
    }
}


ngx_int_t
ngx_http_vlm_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, const char *param, const char *code,
    const char *fmt, ...)
{
    u_char                   *p;
    va_list                   args;
    ngx_str_t                 value, out;
    ngx_http_vlm_loc_conf_t  *vlcf;
    u_char                    msg[512];

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + sizeof(msg) - 1, fmt, args);
    va_end(args);
    *p = '\0';

    ngx_http_vlm_ascii_unless_utf8(msg, p);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "vlm: %ui %s", status, msg);

    if (ngx_http_vlm_error_body(r, (char *) msg, type, param, code, &out)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

    if (status == NGX_HTTP_TOO_MANY_REQUESTS
        || status == NGX_HTTP_SERVICE_UNAVAILABLE)
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

    if (status == NGX_HTTP_UNAUTHORIZED) {
        ngx_str_set(&value, "Bearer error=\"invalid_token\"");
        if (ngx_http_vlm_set_header(r, "WWW-Authenticate", &value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_vlm_send_buffer(r, status, &ngx_http_vlm_json_type,
                                    out.data, out.len);
}


/* {"error": {...}} and a newline, in r->pool; message is UTF-8 */
ngx_int_t
ngx_http_vlm_error_body(ngx_http_request_t *r, const char *message,
    const char *type, const char *param, const char *code, ngx_str_t *out)
{
    json_t     *obj;
    ngx_int_t   rc;

    obj = json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error",
                    "message", message, "type", type,
                    "param", param, "code", code);
    if (obj == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_vlm_dump(r, obj, out);
    json_decref(obj);

    return rc;
}


/* an error whose type and code follow from the status (the table) */
ngx_int_t
ngx_http_vlm_send_status_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *message)
{
    ngx_http_vlm_status_error_t  *e;

    for (e = ngx_http_vlm_status_errors;
         e->status != NGX_HTTP_INTERNAL_SERVER_ERROR;
         e++)
    {
        if (e->status == status) {
            break;
        }
    }

    return ngx_http_vlm_send_error(r, e->status, e->type, NULL, e->code,
                                   "%V", message);
}


ngx_int_t
ngx_http_vlm_send_json(ngx_http_request_t *r, ngx_uint_t status,
    json_t *obj)
{
    ngx_str_t  out;

    if (ngx_http_vlm_dump(r, obj, &out) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_vlm_send_buffer(r, status, &ngx_http_vlm_json_type,
                                    out.data, out.len);
}


static ngx_int_t
ngx_http_vlm_dump(ngx_http_request_t *r, json_t *obj, ngx_str_t *out)
{
    char    *s;
    size_t   len;

    s = json_dumps(obj, JSON_COMPACT);
    if (s == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(s);

    out->data = ngx_pnalloc(r->pool, len + 1);
    if (out->data == NULL) {
        free(s);
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, s, len);
    out->data[len] = '\n';
    out->len = len + 1;
    free(s);

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_send_buffer(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *data, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_length_n = len;

    if (ngx_http_vlm_add_cors(r) != NGX_OK
        || ngx_http_vlm_cache_header(r) != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static json_t *
ngx_http_vlm_usage(ngx_http_vlm_ctx_t *ctx)
{
    return json_pack("{s:I, s:I, s:I}",
                     "prompt_tokens", (json_int_t) ctx->prompt_tokens,
                     "completion_tokens", (json_int_t) ctx->completion_tokens,
                     "total_tokens", (json_int_t) (ctx->prompt_tokens
                                                   + ctx->completion_tokens));
}


ngx_int_t
ngx_http_vlm_answer_json(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_str_t *out)
{
    json_t                   *obj, *usage, *text, *lang;
    ngx_int_t                 rc;
    ngx_str_t                *finish;
    ngx_http_vlm_loc_conf_t  *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);
    finish = ngx_http_vlm_finish_name(ctx->finish_reason);

    usage = ngx_http_vlm_usage(ctx);
    text = ngx_http_vlm_json_text(r, ctx->text->pos,
                                  ctx->text->last - ctx->text->pos);
    lang = json_stringn_nocheck((char *) ctx->task->language.data,
                                ctx->task->language.len);

    if (usage == NULL || text == NULL || lang == NULL) {
        json_decref(usage);
        json_decref(text);
        json_decref(lang);
        return NGX_ERROR;
    }

    if (vlcf->api == NGX_HTTP_VLM_API_CHAT) {
        obj = json_pack("{s:s%, s:s, s:I, s:s%, s:[{s:i, s:{s:s, s:o},"
                        " s:O, s:s%}], s:o}",
                        "id", ctx->id.data, ctx->id.len,
                        "object", "chat.completion",
                        "created", (json_int_t) ctx->created,
                        "model", ctx->task->model.data, ctx->task->model.len,
                        "choices",
                        "index", 0,
                        "message", "role", "assistant", "content", text,
                        "logprobs", ctx->logprobs ? ctx->logprobs
                                                  : json_null(),
                        "finish_reason", finish->data, finish->len,
                        "usage", usage);
        json_decref(lang);

    } else {
        obj = json_pack("{s:o, s:o, s:b, s:s%, s:s%, s:o}",
                        vlcf->api == NGX_HTTP_VLM_API_ALT_TEXT
                        ? "alt_text" : "summary", text,
                        "language", lang,
                        "cached",
                        ctx->cache_status == NGX_HTTP_VLM_CACHE_HIT,
                        "model", ctx->task->model.data, ctx->task->model.len,
                        "finish_reason", finish->data, finish->len,
                        "usage", usage);

        if (obj != NULL && vlcf->api == NGX_HTTP_VLM_API_SUMMARY) {
            if (json_object_set_new(obj, "kind", json_string(
                    ctx->task->kind == NGX_HTTP_VLM_TASK_SEO
                    ? "seo_description" : "summary"))
                != 0)
            {
                json_decref(obj);
                obj = NULL;
            }
        }
    }

    if (obj == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_vlm_dump(r, obj, out);
    json_decref(obj);

    return rc;
}


ngx_int_t
ngx_http_vlm_send_answer(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx)
{
    ngx_int_t  rc;
    ngx_str_t  out;

    if (ctx->task->stream) {
        if (!ctx->headers_sent) {
            rc = ngx_http_vlm_stream_start(r, ctx);
            if (rc == NGX_ERROR || rc > NGX_OK) {
                return rc;
            }
        }

        if (ctx->text->last > ctx->text->pos) {
            rc = ngx_http_vlm_stream_delta(r, ctx, ctx->text->pos,
                                           ctx->text->last - ctx->text->pos);
            if (rc == NGX_ERROR) {
                return rc;
            }
        }

        return ngx_http_vlm_stream_end(r, ctx);
    }

    if (ngx_http_vlm_answer_json(r, ctx, &out) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_vlm_send_buffer(r, NGX_HTTP_OK, &ngx_http_vlm_json_type,
                                    out.data, out.len);
}


ngx_int_t
ngx_http_vlm_stream_start(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx)
{
    ngx_int_t                  rc;
    ngx_str_t                  value;
    ngx_http_core_loc_conf_t  *clcf;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type = ngx_http_vlm_sse_type;
    r->headers_out.content_type_len = ngx_http_vlm_sse_type.len;
    r->headers_out.content_length_n = -1;

    ngx_str_set(&value, "no-cache");
    if (ngx_http_vlm_set_header(r, "Cache-Control", &value) != NGX_OK) {
        return NGX_ERROR;
    }

    /* another proxy in front must not buffer the events either */
    ngx_str_set(&value, "no");
    if (ngx_http_vlm_set_header(r, "X-Accel-Buffering", &value) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_vlm_add_cors(r) != NGX_OK
        || ngx_http_vlm_cache_header(r) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->headers_sent = 1;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->tcp_nodelay && ngx_tcp_nodelay(r->connection) != NGX_OK) {
        return NGX_ERROR;
    }

    return rc;
}


static json_t *
ngx_http_vlm_chunk_object(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx)
{
    return json_pack("{s:s%, s:s, s:I, s:s%}",
                     "id", ctx->id.data, ctx->id.len,
                     "object", "chat.completion.chunk",
                     "created", (json_int_t) ctx->created,
                     "model", ctx->task->model.data, ctx->task->model.len);
}


static ngx_int_t
ngx_http_vlm_send_chunk(ngx_http_request_t *r, json_t *obj, ngx_uint_t last)
{
    char         *s;
    size_t        len;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    static u_char  done[] = "data: [DONE]\n\n";

    len = 0;
    s = NULL;

    if (obj != NULL) {
        s = json_dumps(obj, JSON_COMPACT);
        if (s == NULL) {
            return NGX_ERROR;
        }

        len = ngx_strlen(s);
    }

    b = ngx_create_temp_buf(r->pool, sizeof("data: \n\n") - 1 + len
                                     + (last ? sizeof(done) - 1 : 0));
    if (b == NULL) {
        free(s);
        return NGX_ERROR;
    }

    if (s != NULL) {
        b->last = ngx_cpymem(b->last, "data: ", sizeof("data: ") - 1);
        b->last = ngx_cpymem(b->last, s, len);
        b->last = ngx_cpymem(b->last, "\n\n", sizeof("\n\n") - 1);
        free(s);
    }

    if (last) {
        b->last = ngx_cpymem(b->last, done, sizeof(done) - 1);
        b->last_buf = (r == r->main) ? 1 : 0;
        b->last_in_chain = 1;
    }

    /* each event leaves at once instead of waiting for postpone_output */
    b->flush = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_vlm_stream_delta(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    u_char *text, size_t len)
{
    json_t     *obj, *choice;
    ngx_int_t   rc;

    obj = ngx_http_vlm_chunk_object(r, ctx);
    if (obj == NULL) {
        return NGX_ERROR;
    }

    choice = json_pack("[{s:i, s:{s:s, s:o}, s:n, s:n}]",
                       "index", 0,
                       "delta", "role", "assistant",
                       "content", ngx_http_vlm_json_text(r, text, len),
                       "logprobs", "finish_reason");

    if (choice == NULL || json_object_set_new(obj, "choices", choice) != 0) {
        json_decref(obj);
        return NGX_ERROR;
    }

    rc = ngx_http_vlm_send_chunk(r, obj, 0);
    json_decref(obj);

    return rc;
}


ngx_int_t
ngx_http_vlm_stream_end(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx)
{
    json_t     *obj, *choice, *usage;
    ngx_int_t   rc;
    ngx_str_t  *finish;

    obj = ngx_http_vlm_chunk_object(r, ctx);
    if (obj == NULL) {
        return NGX_ERROR;
    }

    finish = ngx_http_vlm_finish_name(ctx->finish_reason);

    choice = json_pack("[{s:i, s:{}, s:n, s:s%}]",
                       "index", 0, "delta", "logprobs",
                       "finish_reason", finish->data, finish->len);

    if (choice == NULL || json_object_set_new(obj, "choices", choice) != 0) {
        json_decref(obj);
        return NGX_ERROR;
    }

    if (!ctx->task->include_usage) {
        rc = ngx_http_vlm_send_chunk(r, obj, 1);
        json_decref(obj);
        return rc;
    }

    rc = ngx_http_vlm_send_chunk(r, obj, 0);
    json_decref(obj);

    if (rc == NGX_ERROR) {
        return rc;
    }

    /* OpenAI's stream_options.include_usage: one more chunk, no choices */
    obj = ngx_http_vlm_chunk_object(r, ctx);
    usage = ngx_http_vlm_usage(ctx);

    if (obj == NULL || usage == NULL
        || json_object_set_new(obj, "choices", json_array()) != 0
        || json_object_set_new(obj, "usage", usage) != 0)
    {
        json_decref(obj);
        return NGX_ERROR;
    }

    rc = ngx_http_vlm_send_chunk(r, obj, 1);
    json_decref(obj);

    return rc;
}


ngx_int_t
ngx_http_vlm_stream_error(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *message)
{
    json_t     *obj;
    ngx_int_t   rc;

    /* headers are gone: the error becomes the stream's last event */
    obj = json_pack("{s:{s:s%, s:s, s:n, s:i}}", "error",
                    "message", message->data, message->len,
                    "type", status == NGX_HTTP_SERVICE_UNAVAILABLE
                            ? "service_unavailable" : "server_error",
                    "param", "code", (int) status);
    if (obj == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_vlm_send_chunk(r, obj, 1);
    json_decref(obj);

    return rc;
}
