
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_request: one request's path through the module.
 *   content handler: method, auth (before the body), content type
 *   -> body read -> parse and validate -> cache key -> Redis GET
 *   -> hit: answer; miss, bypass or any Redis failure: submit to vlmd
 *   -> deltas streamed or collected -> final answer, Redis SET.
 * Redis and vlmd answer through the handler passed with each operation
 * (ngx_http_vlm_cache_done, ngx_http_vlm_vlmd_handler): the files below
 * this one never call it by name. The request waits on Redis or vlmd
 * with r->main->count held; the one ngx_http_finalize_request() happens
 * in ngx_http_vlm_end(). A client that leaves runs the cleanup, which
 * cancels the Redis op and the vlmd slot.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_vlm_module.h"


#define NGX_HTTP_VLM_READY_LEN  64      /* bytes of /readyz's reason */


static ngx_int_t ngx_http_vlm_refuse_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_vlm_simple(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx);
static ngx_int_t ngx_http_vlm_models(ngx_http_request_t *r);
static void ngx_http_vlm_body_handler(ngx_http_request_t *r);
static void ngx_http_vlm_cache_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc, ngx_str_t *value);
static void ngx_http_vlm_submit(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx);
static void ngx_http_vlm_vlmd_handler(ngx_http_request_t *r, void *data,
    ngx_http_vlm_ipc_event_t *ev);
static void ngx_http_vlm_add_logprobs(ngx_http_vlm_ctx_t *ctx,
    json_t *entries);
static void ngx_http_vlm_on_delta(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, u_char *text, size_t len);
static void ngx_http_vlm_on_final(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_uint_t status, ngx_str_t *message);
static void ngx_http_vlm_abort(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_int_t rc);
static void ngx_http_vlm_end(ngx_http_request_t *r, ngx_int_t rc);
static void ngx_http_vlm_fail_request(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_uint_t status, ngx_str_t *message);
static ngx_int_t ngx_http_vlm_send_parse_error(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_int_t rc);
static void ngx_http_vlm_cleanup(void *data);
static void ngx_http_vlm_writer(ngx_http_request_t *r);
static ngx_int_t ngx_http_vlm_make_id(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx);
static void ngx_http_vlm_ctx_cleanup(void *data);


static ngx_str_t  ngx_http_vlm_json = ngx_string("application/json");
static ngx_str_t  ngx_http_vlm_form = ngx_string("multipart/form-data");


ngx_http_vlm_ctx_t *
ngx_http_vlm_get_ctx(ngx_http_request_t *r)
{
    ngx_http_cleanup_t   *cln;
    ngx_pool_cleanup_t   *pcln;
    ngx_http_vlm_ctx_t   *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);
    if (ctx != NULL) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_vlm_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     ctx->cache_status = NGX_HTTP_VLM_CACHE_NONE;
     *     ctx->cache_op = NULL;
     *     ctx->ipc = NULL;
     *     ctx->logprobs = NULL;
     */

    ctx->start = ngx_current_msec;
    ctx->created = ngx_time();

    cln = ngx_http_cleanup_add(r, 0);
    pcln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL || pcln == NULL) {
        return NULL;
    }

    /* runs on normal completion and on client abort alike: idempotent */
    cln->handler = ngx_http_vlm_cleanup;
    cln->data = r;

    pcln->handler = ngx_http_vlm_ctx_cleanup;
    pcln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_vlm_module);

    return ctx;
}


static void
ngx_http_vlm_ctx_cleanup(void *data)
{
    ngx_http_vlm_ctx_t  *ctx = data;

    if (ctx->logprobs != NULL) {
        json_decref(ctx->logprobs);
        ctx->logprobs = NULL;
    }
}


static void
ngx_http_vlm_cleanup(void *data)
{
    ngx_http_request_t  *r = data;

    ngx_http_vlm_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);
    if (ctx == NULL) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "vlm cleanup, waiting:%ui finalized:%ui",
                   (ngx_uint_t) ctx->waiting, (ngx_uint_t) ctx->finalized);

    if (ctx->waiting && !ctx->finalized) {
        /*
         * The client left while Redis or vlmd was working. A stream has
         * already sent "200"; the log and metrics still say 499.
         */
        r->headers_out.status = NGX_HTTP_CLIENT_CLOSED_REQUEST;
    }

    ngx_http_vlm_cache_cancel(ctx->cache_op);
    ctx->cache_op = NULL;

    ngx_http_vlm_ipc_cancel(ctx->ipc);
    ctx->ipc = NULL;
}


ngx_int_t
ngx_http_vlm_handler(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_http_vlm_ctx_t       *ctx;
    ngx_http_vlm_loc_conf_t  *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "vlm handler, api %ui", vlcf->api);

    ctx = ngx_http_vlm_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method == NGX_HTTP_OPTIONS && vlcf->cors_origins != NULL) {
        /* CORS preflight carries no credentials */
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        r->headers_out.status = NGX_HTTP_NO_CONTENT;
        r->header_only = 1;
        r->headers_out.content_length_n = 0;

        if (ngx_http_vlm_add_cors(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_send_header(r);
    }

    if (vlcf->api == NGX_HTTP_VLM_API_HEALTH
        || vlcf->api == NGX_HTTP_VLM_API_READY
        || vlcf->api == NGX_HTTP_VLM_API_METRICS
        || vlcf->api == NGX_HTTP_VLM_API_MODELS)
    {
        return ngx_http_vlm_simple(r, ctx);
    }

    if (r->method != NGX_HTTP_POST) {
        if (ngx_http_vlm_refuse_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_vlm_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                       "invalid_request_error", NULL,
                                       "method_not_allowed",
                                       "use POST");
    }

    /* credentials first: a stranger never gets to upload a body */
    if (ngx_http_vlm_authenticate(r, ctx) != NGX_OK) {
        if (ngx_http_vlm_refuse_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_vlm_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                       "authentication_error", NULL,
                                       "invalid_api_key", "%V",
                                       &ctx->auth_error);
    }

    if (!ngx_http_vlm_has_content_type(r, &ngx_http_vlm_json)
        && !(vlcf->api == NGX_HTTP_VLM_API_ALT_TEXT
             && ngx_http_vlm_has_content_type(r, &ngx_http_vlm_form)))
    {
        if (ngx_http_vlm_refuse_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_vlm_send_error(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                       "invalid_request_error", NULL,
                                       "unsupported_content_type",
                                       "Content-Type must be "
                                       "application/json%s",
                                       vlcf->api == NGX_HTTP_VLM_API_ALT_TEXT
                                       ? " or multipart/form-data" : "");
    }

    /*
     * room in nginx's body buffer for what came with the headers, so that
     * the body can be made one buffer in place (ngx_http_vlm_body.c)
     */
    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_vlm_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static ngx_int_t
ngx_http_vlm_refuse_body(ngx_http_request_t *r)
{
    /*
     * Discarding would answer "Expect: 100-continue" and invite the upload
     * we are about to refuse; say nothing and close after the response.
     */
    r->expect_tested = 1;
    r->keepalive = 0;

    return ngx_http_discard_request_body(r);
}


static ngx_int_t
ngx_http_vlm_simple(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx)
{
    u_char                   *p, *last;
    json_t                   *obj;
    ngx_int_t                 rc;
    ngx_uint_t                ready, total;
    ngx_http_vlm_loc_conf_t  *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (vlcf->api) {

    case NGX_HTTP_VLM_API_METRICS:
        return ngx_http_vlm_metrics_handler(r);

    case NGX_HTTP_VLM_API_MODELS:
        if (ngx_http_vlm_authenticate(r, ctx) != NGX_OK) {
            return ngx_http_vlm_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                           "authentication_error", NULL,
                                           "invalid_api_key", "%V",
                                           &ctx->auth_error);
        }

        return ngx_http_vlm_models(r);

    case NGX_HTTP_VLM_API_READY:
        /* ready when every worker is attached, not just this one */
        if (ngx_http_vlm_ipc_ready_all(&ready, &total) != NGX_OK) {
            p = ngx_pnalloc(r->pool, NGX_HTTP_VLM_READY_LEN);
            if (p == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            last = ngx_slprintf(p, p + NGX_HTTP_VLM_READY_LEN,
                                "vlmd is attached in %ui of %ui nginx "
                                "workers", ready, total);

            obj = json_pack("{s:s, s:s%, s:{s:s%, s:s, s:n, s:s}}",
                            "status", "unavailable",
                            "reason", p, (size_t) (last - p),
                            "error", "message", p, (size_t) (last - p),
                            "type", "service_unavailable", "param",
                            "code", "daemon_unavailable");
            rc = NGX_HTTP_SERVICE_UNAVAILABLE;
            break;
        }

        obj = json_pack("{s:s}", "status", "ready");
        rc = NGX_HTTP_OK;
        break;

    default: /* NGX_HTTP_VLM_API_HEALTH */
        obj = json_pack("{s:s}", "status", "ok");
        rc = NGX_HTTP_OK;
        break;
    }

    if (obj == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_vlm_send_json(r, rc, obj);
    json_decref(obj);

    return rc;
}


static ngx_int_t
ngx_http_vlm_models(ngx_http_request_t *r)
{
    json_t                    *obj;
    ngx_int_t                  rc;
    ngx_http_vlm_main_conf_t  *vmcf;

    vmcf = ngx_http_get_module_main_conf(r, ngx_http_vlm_module);

    obj = json_pack("{s:s, s:[{s:s%, s:s, s:I, s:s}]}",
                    "object", "list", "data",
                    "id", vmcf->model_name.data, vmcf->model_name.len,
                    "object", "model",
                    "created", (json_int_t) 0,
                    "owned_by", "vlm");
    if (obj == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_vlm_send_json(r, NGX_HTTP_OK, obj);
    json_decref(obj);

    return rc;
}


static ngx_int_t
ngx_http_vlm_send_parse_error(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_int_t rc)
{
    if (ctx->error.message == NULL) {
        return ngx_http_vlm_send_error(r, (ngx_uint_t) rc, "server_error",
                                       NULL, NULL, "internal error");
    }

    return ngx_http_vlm_send_error(r, ctx->error.status, ctx->error.type,
                                   ctx->error.param, ctx->error.code, "%s",
                                   ctx->error.message);
}


static void
ngx_http_vlm_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_vlm_ctx_t        *ctx;
    ngx_http_vlm_loc_conf_t   *vlcf;
    ngx_http_vlm_main_conf_t  *vmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);
    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);
    vmcf = ngx_http_get_module_main_conf(r, ngx_http_vlm_module);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "vlm body handler");

    ctx->body_done = 1;

    rc = ngx_http_vlm_parse_body(r, ctx);
    if (rc != NGX_OK) {
        ngx_http_vlm_end(r, ngx_http_vlm_send_parse_error(r, ctx, rc));
        return;
    }

    if (ngx_http_vlm_make_id(r, ctx) != NGX_OK) {
        ngx_http_vlm_end(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* the answer may not come through this handler again */
    r->read_event_handler = ngx_http_test_reading;

    if (!vlcf->cache || !ctx->task->deterministic
        || vmcf->redis_addr.len == 0)
    {
        ctx->cache_status = NGX_HTTP_VLM_CACHE_BYPASS;
        ngx_http_vlm_submit(r, ctx);
        return;
    }

    if (ngx_http_vlm_cache_key(r, ctx, &vmcf->model_revision) != NGX_OK) {
        ngx_http_vlm_end(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->cache_op = ngx_http_vlm_cache_get(r, &ctx->cache_key,
                                           ngx_http_vlm_cache_done, ctx);
    if (ctx->cache_op != NULL) {
        ctx->waiting = 1;
        return;
    }

    ngx_http_vlm_cache_done(r, ctx, NGX_ERROR, NULL);
}


/*
 * The one place Redis answers land: NGX_OK with the stored record is a hit;
 * a nil reply (NGX_DECLINED) is a miss; every error, timeout or
 * disconnect (NGX_ERROR) is served like a miss and marked BYPASS.
 */
static void
ngx_http_vlm_cache_done(ngx_http_request_t *r, void *data, ngx_int_t rc,
    ngx_str_t *value)
{
    ngx_http_vlm_ctx_t *ctx = data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "vlm cache done: %i", rc);

    ctx->cache_op = NULL;
    ctx->waiting = 0;

    if (rc == NGX_OK) {
        ctx->cache_status = NGX_HTTP_VLM_CACHE_HIT;
        ngx_http_vlm_metrics_cache(r, NGX_HTTP_VLM_CACHE_HIT);

        rc = ngx_http_vlm_cache_read(r, ctx, value);

        if (rc == NGX_OK) {
            ngx_http_vlm_end(r, ngx_http_vlm_send_answer(r, ctx));
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_http_vlm_end(r, NGX_ERROR);
            return;
        }

        /* an unreadable record is a miss; the new answer replaces it */
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "vlm: unreadable cache record, treated as a miss");
        rc = NGX_DECLINED;
    }

    if (rc == NGX_DECLINED) {
        ctx->cache_status = NGX_HTTP_VLM_CACHE_MISS;

    } else {
        ctx->cache_status = NGX_HTTP_VLM_CACHE_BYPASS;
    }

    ngx_http_vlm_metrics_cache(r, ctx->cache_status);

    ngx_http_vlm_submit(r, ctx);
}


static void
ngx_http_vlm_submit(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx)
{
    u_char     digest[NGX_HTTP_VLM_SHA256_LEN];
    ngx_int_t  rc;
    ngx_str_t  msg;

    ctx->text = ngx_create_temp_buf(r->pool, 1024);
    if (ctx->text == NULL) {
        ngx_http_vlm_end(r, NGX_ERROR);
        return;
    }

    /*
     * vlmd shares batch slots fairly between clients: the subject (key or
     * token holder) is the client, named by a hash so vlmd never sees it
     */
    if (ctx->subject.len) {
        ngx_http_vlm_sha256(ctx->subject.data, ctx->subject.len, digest);
        ngx_memcpy(&ctx->task->client, digest, sizeof(uint64_t));
        ctx->task->client |= 1;
    }

    rc = ngx_http_vlm_ipc_submit(r, ctx->task, ngx_http_vlm_vlmd_handler,
                                 ctx, &ctx->ipc);

    if (rc == NGX_OK) {
        ctx->waiting = 1;
        return;
    }

    switch (rc) {

    case NGX_HTTP_TOO_MANY_REQUESTS:
        ngx_str_set(&msg, "vlmd's queue is full, retry later");
        break;

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        ngx_str_set(&msg, "vlmd is not available, retry later");
        break;

    default:
        ngx_http_vlm_end(r, ngx_http_vlm_send_error(r, NGX_HTTP_BAD_REQUEST,
                                                    "invalid_request_error",
                                                    NULL,
                                                    "request_too_large",
                                                    "the request does not "
                                                    "fit vlmd's request "
                                                    "memory"));
        return;
    }

    ngx_http_vlm_fail_request(r, ctx, rc, &msg);
}


/* the one place vlmd's events for a request land */
static void
ngx_http_vlm_vlmd_handler(ngx_http_request_t *r, void *data,
    ngx_http_vlm_ipc_event_t *ev)
{
    ngx_http_vlm_ctx_t *ctx = data;

    ngx_str_t  *lang;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "vlm vlmd event %ui, %uz bytes, final:%ui", ev->kind,
                   ev->text.len, (ngx_uint_t) ev->final);

    if (ev->final) {
        ctx->ipc = NULL;
    }

    switch (ev->kind) {

    case NGX_HTTP_VLM_IPC_DELTA:
        if (ctx->task->kind != NGX_HTTP_VLM_TASK_CHAT) {
            /* vlmd sends tasks no deltas; one would be appended twice */
            break;
        }

        if (ev->logprobs != NULL) {
            ngx_http_vlm_add_logprobs(ctx, ev->logprobs);
        }

        ngx_http_vlm_on_delta(r, ctx, ev->text.data, ev->text.len);
        break;

    case NGX_HTTP_VLM_IPC_DONE:
        ctx->prompt_tokens = ev->prompt_tokens;
        ctx->completion_tokens = ev->completion_tokens;

        ctx->finish_reason = ev->finish_reason;

        if (ev->language.len) {
            lang = &ctx->task->language;
            lang->data = ngx_pstrdup(r->pool, &ev->language);
            lang->len = lang->data ? ev->language.len : 0;
        }

        if (ev->text.len && ctx->task->kind != NGX_HTTP_VLM_TASK_CHAT) {
            /* a task's answer comes whole, post-processed, in its DONE */
            ngx_http_vlm_on_delta(r, ctx, ev->text.data, ev->text.len);
        }

        ngx_http_vlm_on_final(r, ctx, 0, NULL);
        break;

    default: /* NGX_HTTP_VLM_IPC_ERROR */
        ngx_http_vlm_on_final(r, ctx, ev->status, &ev->text);
        break;
    }
}


static void
ngx_http_vlm_add_logprobs(ngx_http_vlm_ctx_t *ctx, json_t *entries)
{
    if (ctx->logprobs == NULL) {
        ctx->logprobs = json_pack("{s:[]}", "content");
        if (ctx->logprobs == NULL) {
            return;
        }
    }

    (void) json_array_extend(json_object_get(ctx->logprobs, "content"),
                             entries);
}


static void
ngx_http_vlm_on_delta(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    u_char *text, size_t len)
{
    size_t       size;
    ngx_buf_t   *b;
    ngx_int_t    rc;

    if (len == 0 || ctx->finalized) {
        return;
    }

    if ((size_t) (ctx->text->end - ctx->text->last) < len) {
        size = 2 * (ctx->text->end - ctx->text->start) + len;

        b = ngx_create_temp_buf(r->pool, size);
        if (b == NULL) {
            ngx_http_vlm_abort(r, ctx, NGX_ERROR);
            return;
        }

        b->last = ngx_cpymem(b->last, ctx->text->pos,
                             ctx->text->last - ctx->text->pos);
        ctx->text = b;
    }

    ctx->text->last = ngx_cpymem(ctx->text->last, text, len);

    if (!ctx->task->stream) {
        return;
    }

    if (!ctx->headers_sent) {
        rc = ngx_http_vlm_stream_start(r, ctx);
        if (rc == NGX_ERROR || rc > NGX_OK) {
            ngx_http_vlm_abort(r, ctx, rc);
            return;
        }

        r->write_event_handler = ngx_http_vlm_writer;
    }

    /*
     * NGX_AGAIN leaves the event in r->out; the writer drains it. Tokens are
     * bounded by max_tokens, so a slow reader costs bounded memory.
     */
    rc = ngx_http_vlm_stream_delta(r, ctx, text, len);

    if (rc == NGX_ERROR || r->connection->error) {
        ngx_http_vlm_abort(r, ctx, NGX_HTTP_CLIENT_CLOSED_REQUEST);
    }
}


static void
ngx_http_vlm_on_final(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *message)
{
    ngx_int_t   rc;
    ngx_str_t   timeout;

    ctx->waiting = 0;

    if (ctx->finalized) {
        return;
    }

    if (status == 0 && ctx->finish_reason == NGX_HTTP_VLM_FINISH_DEADLINE) {
        status = NGX_HTTP_GATEWAY_TIME_OUT;
        ngx_str_set(&timeout, "the answer took longer than vlm_timeout");
        message = &timeout;
    }

    if (status != 0) {
        ngx_http_vlm_fail_request(r, ctx, status, message);
        return;
    }

    if (ctx->task->deterministic && ctx->cache_key.len
        && (ctx->finish_reason == NGX_HTTP_VLM_FINISH_STOP
            || ctx->finish_reason == NGX_HTTP_VLM_FINISH_LENGTH))
    {
        /* a complete answer for these parameters */
        ngx_http_vlm_cache_store(r, ctx);
    }

    if (ctx->task->stream && ctx->headers_sent) {
        rc = ngx_http_vlm_stream_end(r, ctx);

    } else {
        rc = ngx_http_vlm_send_answer(r, ctx);
    }

    ngx_http_vlm_end(r, rc);
}


/* vlmd's work for this request is no longer wanted */
static void
ngx_http_vlm_abort(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_int_t rc)
{
    ngx_http_vlm_ipc_cancel(ctx->ipc);
    ctx->ipc = NULL;

    /*
     * A stream has sent "200" already, and nginx keeps a status once bytes
     * are out: say why it ended (499 when our write found the client gone,
     * as the cleanup does when nginx finds it first), for the log and
     * the metrics.
     */
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE && r->header_sent) {
        r->headers_out.status = rc;
    }

    ngx_http_vlm_end(r, rc);
}


static void
ngx_http_vlm_fail_request(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *message)
{
    if (ctx->headers_sent) {
        ngx_http_vlm_end(r, ngx_http_vlm_stream_error(r, ctx, status,
                                                      message));
        return;
    }

    ngx_http_vlm_end(r, ngx_http_vlm_send_status_error(r, status, message));
}


static void
ngx_http_vlm_writer(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_event_t               *wev;
    ngx_connection_t          *c;
    ngx_http_vlm_ctx_t        *ctx;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;
    wev = c->write;
    ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "vlm writer");

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "vlm: client timed out");
        c->timedout = 1;
        ngx_http_vlm_abort(r, ctx, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    rc = ngx_http_output_filter(r, NULL);

    if (rc == NGX_ERROR) {
        ngx_http_vlm_abort(r, ctx, NGX_HTTP_CLIENT_CLOSED_REQUEST);
        return;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->buffered || c->buffered) {
        if (!wev->delayed) {
            ngx_add_timer(wev, clcf->send_timeout);
        }

        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            ngx_http_vlm_end(r, NGX_ERROR);
        }

        return;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }
}


static void
ngx_http_vlm_end(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_vlm_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);

    if (ctx->finalized) {
        return;
    }

    ctx->finalized = 1;
    ctx->waiting = 0;

    if (r->write_event_handler == ngx_http_vlm_writer) {
        r->write_event_handler = ngx_http_request_empty_handler;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_vlm_make_id(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx)
{
    u_char    *p;
    uint32_t   rnd[3];

    rnd[0] = (uint32_t) ngx_random();
    rnd[1] = (uint32_t) ngx_random();
    rnd[2] = (uint32_t) ngx_pid ^ (uint32_t) ngx_current_msec;

    ctx->id.data = ngx_pnalloc(r->pool, sizeof("chatcmpl-") - 1
                                        + 2 * sizeof(rnd));
    if (ctx->id.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(ctx->id.data, "chatcmpl-", sizeof("chatcmpl-") - 1);
    p = ngx_hex_dump(p, (u_char *) rnd, sizeof(rnd));
    ctx->id.len = p - ctx->id.data;

    return NGX_OK;
}


ngx_int_t
ngx_http_vlm_log_handler(ngx_http_request_t *r)
{
    ngx_uint_t                status;
    ngx_http_vlm_ctx_t       *ctx;
    ngx_http_vlm_loc_conf_t  *vlcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);
    if (ctx == NULL || ctx->counted || r != r->main) {
        return NGX_OK;
    }

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);
    ctx->counted = 1;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "vlm log handler");

    status = r->headers_out.status;
    if (r->connection->error && !ctx->finalized) {
        status = NGX_HTTP_CLIENT_CLOSED_REQUEST;
    }

    if (r->err_status) {
        status = r->err_status;
    }

    ngx_http_vlm_metrics_request(r, vlcf->api, status,
                                 ngx_current_msec - ctx->start);

    return NGX_OK;
}
