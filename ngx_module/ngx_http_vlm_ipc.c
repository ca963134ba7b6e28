
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_ipc: this worker's connection to vlmd through the client
 * library of model_runtime/ipc/vlm_ipc_client.h. The library's socket is
 * put into nginx's event loop; images and the JSON body are written once
 * into the shared request arena; results come back as events that are
 * handed to the request (ngx_http_vlm_on_delta/_on_final). vlmd gone:
 * in-flight requests fail with 503 at once and the worker reconnects with
 * backoff on a cancelable timer (a new vlmd epoch needs no nginx restart).
 * A request that leaves early cancels its slot; its final event, which
 * always comes, frees the heap record. Not here: HTTP output.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_vlm_module.h"
#include "vlm_ipc_client.h"


#define NGX_HTTP_VLM_IPC_BACKOFF_MIN  50
#define NGX_HTTP_VLM_IPC_BACKOFF_MAX  1000

#define NGX_HTTP_VLM_IPC_SUBMIT       0
#define NGX_HTTP_VLM_IPC_STATS        1


/* on the heap: vlmd's final event may arrive after the request is freed */
typedef struct {
    ngx_http_request_t         *r;          /* NULL once the request left */
    ngx_event_t                 timer;      /* nginx-side deadline */
    ngx_uint_t                  kind;       /* NGX_HTTP_VLM_IPC_* */
    uint32_t                    slot;
    uint32_t                    gen;
} ngx_http_vlm_ipc_req_t;


typedef struct {
    vlm_ipc_client             *client;
    ngx_connection_t           *conn;
    ngx_event_t                 reconnect;
    ngx_msec_t                  backoff;    /* ms until the next attempt */
    ngx_cycle_t                *cycle;
    ngx_http_vlm_main_conf_t   *vmcf;
    uint64_t                    epoch;
} ngx_http_vlm_ipc_t;


static void ngx_http_vlm_ipc_connect(void);
static void ngx_http_vlm_ipc_close(void);
static void ngx_http_vlm_ipc_schedule(void);
static void ngx_http_vlm_ipc_reconnect_handler(ngx_event_t *ev);
static void ngx_http_vlm_ipc_read_handler(ngx_event_t *ev);
static void ngx_http_vlm_ipc_dispatch(vlm_ipc_event *ev);
static void ngx_http_vlm_ipc_timeout(ngx_event_t *ev);
static void ngx_http_vlm_ipc_logprobs(ngx_http_vlm_ctx_t *ctx,
    vlm_ipc_event *ev);
static ngx_int_t ngx_http_vlm_ipc_alloc_copy(ngx_http_request_t *r,
    u_char *data, size_t len, uint64_t *offset);


/* per worker process; set up in init_process */
static ngx_http_vlm_ipc_t  ngx_http_vlm_ipc;


ngx_int_t
ngx_http_vlm_ipc_init(ngx_cycle_t *cycle)
{
    ngx_http_vlm_main_conf_t  *vmcf;

    vmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_vlm_module);

    ngx_memzero(&ngx_http_vlm_ipc, sizeof(ngx_http_vlm_ipc_t));

    if (vmcf == NULL) {
        return NGX_OK;
    }

    ngx_http_vlm_ipc.cycle = cycle;
    ngx_http_vlm_ipc.vmcf = vmcf;
    ngx_http_vlm_ipc.backoff = NGX_HTTP_VLM_IPC_BACKOFF_MIN;
    ngx_http_vlm_ipc.reconnect.handler = ngx_http_vlm_ipc_reconnect_handler;
    ngx_http_vlm_ipc.reconnect.log = cycle->log;
    ngx_http_vlm_ipc.reconnect.data = &ngx_http_vlm_ipc;
    ngx_http_vlm_ipc.reconnect.cancelable = 1;

    ngx_http_vlm_ipc_connect();

    return NGX_OK;
}


void
ngx_http_vlm_ipc_exit(ngx_cycle_t *cycle)
{
    ngx_http_vlm_ipc.vmcf = NULL;

    if (ngx_http_vlm_ipc.reconnect.timer_set) {
        ngx_del_timer(&ngx_http_vlm_ipc.reconnect);
    }

    ngx_http_vlm_ipc_close();
}


static void
ngx_http_vlm_ipc_connect(void)
{
    int                rc;
    char               err[256];
    ngx_socket_t       fd;
    ngx_connection_t  *c;
    u_char             path[256];

    if (ngx_http_vlm_ipc.client != NULL || ngx_http_vlm_ipc.vmcf == NULL) {
        return;
    }

    if (ngx_http_vlm_ipc.vmcf->vlmd_socket.len >= sizeof(path)) {
        return;
    }

    (void) ngx_cpystrn(path, ngx_http_vlm_ipc.vmcf->vlmd_socket.data,
                       ngx_http_vlm_ipc.vmcf->vlmd_socket.len + 1);

    ngx_http_vlm_ipc.client = vlm_ipc_client_new();
    if (ngx_http_vlm_ipc.client == NULL) {
        ngx_http_vlm_ipc_schedule();
        return;
    }

    rc = vlm_ipc_client_connect(ngx_http_vlm_ipc.client, (char *) path, err,
                                sizeof(err));
    if (rc != VLM_IPC_OK) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_http_vlm_ipc.cycle->log, 0,
                       "vlm: vlmd connect: %s", err);
        vlm_ipc_client_free(ngx_http_vlm_ipc.client);
        ngx_http_vlm_ipc.client = NULL;
        ngx_http_vlm_ipc_schedule();
        return;
    }

    fd = vlm_ipc_client_fd(ngx_http_vlm_ipc.client);

    c = ngx_get_connection(fd, ngx_http_vlm_ipc.cycle->log);
    if (c == NULL) {
        vlm_ipc_client_free(ngx_http_vlm_ipc.client);
        ngx_http_vlm_ipc.client = NULL;
        ngx_http_vlm_ipc_schedule();
        return;
    }

    c->data = ngx_http_vlm_ipc.client;
    c->read->handler = ngx_http_vlm_ipc_read_handler;
    c->read->log = c->log;
    c->write->log = c->log;
    ngx_http_vlm_ipc.conn = c;

    /* level-triggered: doorbells are drained by the library as it likes */
    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_http_vlm_ipc_close();
        ngx_http_vlm_ipc_schedule();
    }
}


static void
ngx_http_vlm_ipc_close(void)
{
    ngx_connection_t  *c;

    c = ngx_http_vlm_ipc.conn;

    if (c != NULL) {
        /* the library owns the fd and may already have closed it */
        if (c->read->active && vlm_ipc_client_fd(ngx_http_vlm_ipc.client)
                               == c->fd)
        {
            (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
        }

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        c->read->active = 0;
        c->fd = (ngx_socket_t) -1;
        ngx_free_connection(c);
        ngx_http_vlm_ipc.conn = NULL;
    }

    if (ngx_http_vlm_ipc.client != NULL) {
        vlm_ipc_client_free(ngx_http_vlm_ipc.client);
        ngx_http_vlm_ipc.client = NULL;
    }
}


static void
ngx_http_vlm_ipc_schedule(void)
{
    if (ngx_exiting || ngx_terminate || ngx_http_vlm_ipc.vmcf == NULL) {
        return;
    }

    if (!ngx_http_vlm_ipc.reconnect.timer_set) {
        ngx_add_timer(&ngx_http_vlm_ipc.reconnect, ngx_http_vlm_ipc.backoff);
    }

    ngx_http_vlm_ipc.backoff = ngx_min(ngx_http_vlm_ipc.backoff * 2,
                                       NGX_HTTP_VLM_IPC_BACKOFF_MAX);
}


static void
ngx_http_vlm_ipc_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_vlm_ipc_connect();
}


static void
ngx_http_vlm_ipc_read_handler(ngx_event_t *rev)
{
    int             rc;
    vlm_ipc_event   ev;
    vlm_ipc_client *client;

    client = ngx_http_vlm_ipc.client;
    if (client == NULL) {
        return;
    }

    rc = vlm_ipc_client_process(client);

    if (rc == VLM_IPC_OK && vlm_ipc_client_ready(client)
        && vlm_ipc_client_epoch(client) != ngx_http_vlm_ipc.epoch)
    {
        ngx_http_vlm_ipc.epoch = vlm_ipc_client_epoch(client);
        ngx_http_vlm_ipc.backoff = NGX_HTTP_VLM_IPC_BACKOFF_MIN;
        ngx_log_error(NGX_LOG_NOTICE, rev->log, 0,
                      "vlm: attached to vlmd, epoch %uL",
                      ngx_http_vlm_ipc.epoch);
    }

    /* after CLOSED the library turns each request in flight into ERROR */
    while (vlm_ipc_next_event(client, &ev)) {
        ngx_http_vlm_ipc_dispatch(&ev);
    }

    if (rc == VLM_IPC_CLOSED || rc == VLM_IPC_ERROR
        || vlm_ipc_client_closed(client))
    {
        ngx_log_error(NGX_LOG_WARN, rev->log, 0,
                      "vlm: vlmd connection lost: %s",
                      vlm_ipc_client_error(client));
        ngx_http_vlm_ipc_close();
        ngx_http_vlm_ipc_schedule();
    }
}


static void
ngx_http_vlm_ipc_dispatch(vlm_ipc_event *ev)
{
    ngx_str_t                msg, value;
    ngx_connection_t        *c;
    ngx_http_request_t      *r;
    ngx_http_vlm_ctx_t      *ctx;
    ngx_http_vlm_ipc_req_t  *req;

    req = ev->user;
    if (req == NULL) {
        return;
    }

    r = req->r;

    if (r == NULL) {
        /* the request already left; only the record remains to free */
        if (ev->final) {
            if (req->timer.timer_set) {
                ngx_del_timer(&req->timer);
            }

            ngx_free(req);
        }

        return;
    }

    c = r->connection;
    ngx_http_set_log_request(c->log, r);

    if (ev->final) {
        req->r = NULL;

        if (req->timer.timer_set) {
            ngx_del_timer(&req->timer);
        }
    }

    if (req->kind == NGX_HTTP_VLM_IPC_STATS) {
        ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);
        ctx->ipc = NULL;
        req->r = NULL;

        value.data = (u_char *) ev->text;
        value.len = ev->kind == VLM_IPC_RES_STATS ? ev->text_length : 0;
        ngx_http_vlm_metrics_send(r, &value);

    } else {
        ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);

        if (ev->final) {
            ctx->ipc = NULL;
        }

        switch (ev->kind) {

        case VLM_IPC_RES_DELTA:
            if (ctx->task->logprobs) {
                ngx_http_vlm_ipc_logprobs(ctx, ev);
            }

            ngx_http_vlm_on_delta(r, (u_char *) ev->text, ev->text_length);
            break;

        case VLM_IPC_RES_DONE:
            ctx->prompt_tokens = ev->prompt_tokens;
            ctx->completion_tokens = ev->completion_tokens;

            ctx->finish_reason.len = ngx_strlen(ev->finish_reason);
            ctx->finish_reason.data = ngx_pnalloc(r->pool,
                                                  ctx->finish_reason.len);
            if (ctx->finish_reason.data == NULL) {
                ngx_str_set(&msg, "out of memory");
                ngx_http_vlm_on_final(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      &msg);
                break;
            }

            ngx_memcpy(ctx->finish_reason.data, ev->finish_reason,
                       ctx->finish_reason.len);

            if (ev->language[0] != '\0') {
                ctx->task->language.len = ngx_strlen(ev->language);
                ctx->task->language.data = ngx_pnalloc(r->pool,
                                                ctx->task->language.len);
                if (ctx->task->language.data != NULL) {
                    ngx_memcpy(ctx->task->language.data, ev->language,
                               ctx->task->language.len);

                } else {
                    ctx->task->language.len = 0;
                }
            }

            if (ev->text_length && ctx->task->kind != NGX_HTTP_VLM_TASK_CHAT)
            {
                /* tasks: the post-processed answer replaces the deltas */
                ctx->text->last = ctx->text->pos;
                ctx->task->stream = 0;
                ngx_http_vlm_on_delta(r, (u_char *) ev->text,
                                      ev->text_length);
            }

            ngx_http_vlm_on_final(r, 0, NULL);
            break;

        default: /* VLM_IPC_RES_ERROR */
            msg.data = (u_char *) ev->text;
            msg.len = ev->text_length;

            if (msg.len == 0) {
                ngx_str_set(&msg, "vlmd failed the request");
            }

            ngx_http_vlm_on_final(r, ev->status ? ev->status
                                                : NGX_HTTP_BAD_GATEWAY,
                                  &msg);
            break;
        }
    }

    if (ev->final) {
        ngx_free(req);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_vlm_ipc_logprobs(ngx_http_vlm_ctx_t *ctx, vlm_ipc_event *ev)
{
    json_t           *entry, *top, *t, *bytes;
    size_t            pos;
    uint32_t          i, k, n;
    vlm_ipc_logprob   lp, alt;

    if (ctx->logprobs == NULL) {
        ctx->logprobs = json_pack("{s:[]}", "content");
        if (ctx->logprobs == NULL) {
            return;
        }
    }

    pos = 0;

    for (i = 0; i < ev->n_tokens; i++) {
        if (!vlm_ipc_logprob_next(ev, &pos, &lp)
            || !vlm_ipc_logprob_count(ev, &pos, &n))
        {
            return;
        }

        top = json_array();
        bytes = json_array();

        for (k = 0; k < lp.n_bytes && bytes != NULL; k++) {
            (void) json_array_append_new(bytes, json_integer(lp.bytes[k]));
        }

        /* a token may end inside a UTF-8 sequence: then "token" is "" */
        t = json_stringn((const char *) lp.bytes, lp.n_bytes);
        entry = json_pack("{s:o, s:f, s:o, s:o}",
                          "token", t ? t : json_string(""),
                          "logprob", (double) lp.logprob,
                          "bytes", bytes, "top_logprobs", top);
        if (entry == NULL) {
            return;
        }

        for (k = 0; k < n; k++) {
            if (!vlm_ipc_logprob_next(ev, &pos, &alt)) {
                json_decref(entry);
                return;
            }

            t = json_stringn((const char *) alt.bytes, alt.n_bytes);
            (void) json_array_append_new(top,
                       json_pack("{s:o, s:f}", "token",
                                 t ? t : json_string(""),
                                 "logprob", (double) alt.logprob));
        }

        (void) json_array_append_new(json_object_get(ctx->logprobs,
                                                     "content"),
                                     entry);
    }
}


ngx_int_t
ngx_http_vlm_ipc_ready(void)
{
    if (ngx_http_vlm_ipc.client != NULL
        && vlm_ipc_client_ready(ngx_http_vlm_ipc.client))
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_vlm_ipc_alloc_copy(ngx_http_request_t *r, u_char *data, size_t len,
    uint64_t *offset)
{
    void  *p;

    p = vlm_ipc_alloc(ngx_http_vlm_ipc.client, len ? len : 1, offset);
    if (p == NULL) {
        return NGX_AGAIN;
    }

    ngx_memcpy(p, data, len);

    return NGX_OK;
}


/*
 * NGX_OK: submitted, events will follow; otherwise the HTTP status to
 * answer with (503 vlmd unavailable, 429 no room, 400 does not fit).
 */
ngx_int_t
ngx_http_vlm_ipc_submit(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx)
{
    int                       rc;
    char                     *s;
    json_t                   *images, *img;
    size_t                    len;
    uint32_t                  slot, gen;
    uint64_t                  regions[VLM_IPC_MAX_REGIONS];
    ngx_int_t                 status;
    ngx_uint_t                i, n;
    ngx_http_vlm_image_t     *im;
    ngx_http_vlm_ipc_req_t   *req;
    ngx_http_vlm_loc_conf_t  *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

    if (ngx_http_vlm_ipc.client == NULL) {
        /* try now rather than at the next backoff tick */
        if (ngx_http_vlm_ipc.reconnect.timer_set) {
            ngx_del_timer(&ngx_http_vlm_ipc.reconnect);
        }

        ngx_http_vlm_ipc_connect();
    }

    if (ngx_http_vlm_ipc_ready() != NGX_OK) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (ctx->task->images->nelts + 1 > VLM_IPC_MAX_REGIONS) {
        return NGX_HTTP_BAD_REQUEST;
    }

    n = 0;
    status = NGX_HTTP_TOO_MANY_REQUESTS;
    im = ctx->task->images->elts;

    images = json_array();
    if (images == NULL
        || json_object_set_new(ctx->task->body, "images", images) != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < ctx->task->images->nelts; i++) {
        if (ngx_http_vlm_ipc_alloc_copy(r, im[i].data.data, im[i].data.len,
                                        &regions[n])
            != NGX_OK)
        {
            goto failed;
        }

        img = json_pack("{s:I, s:I}", "offset", (json_int_t) regions[n],
                        "length", (json_int_t) im[i].data.len);
        n++;

        if (img == NULL || json_array_append_new(images, img) != 0) {
            status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            goto failed;
        }
    }

    s = json_dumps(ctx->task->body, JSON_COMPACT);
    (void) json_object_del(ctx->task->body, "images");

    if (s == NULL) {
        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto failed;
    }

    len = ngx_strlen(s);

    if (ngx_http_vlm_ipc_alloc_copy(r, (u_char *) s, len, &regions[n])
        != NGX_OK)
    {
        free(s);
        goto failed;
    }

    free(s);
    n++;

    req = ngx_calloc(sizeof(ngx_http_vlm_ipc_req_t), r->connection->log);
    if (req == NULL) {
        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto failed;
    }

    rc = vlm_ipc_submit(ngx_http_vlm_ipc.client, regions[n - 1], len,
                        (uint32_t) vlcf->request_timeout, regions, n, req,
                        &slot, &gen);

    if (rc != VLM_IPC_OK) {
        ngx_free(req);
        status = (rc == VLM_IPC_AGAIN) ? NGX_HTTP_TOO_MANY_REQUESTS
                 : (rc == VLM_IPC_CLOSED) ? NGX_HTTP_SERVICE_UNAVAILABLE
                 : NGX_HTTP_BAD_REQUEST;
        goto failed;
    }

    req->r = r;
    req->kind = NGX_HTTP_VLM_IPC_SUBMIT;
    req->slot = slot;
    req->gen = gen;

    /* vlmd enforces the deadline; this catches a hung vlmd */
    req->timer.handler = ngx_http_vlm_ipc_timeout;
    req->timer.data = req;
    req->timer.log = r->connection->log;
    ngx_add_timer(&req->timer, vlcf->request_timeout + 5000);

    ctx->ipc = req;

    return NGX_OK;

failed:

    (void) json_object_del(ctx->task->body, "images");

    for (i = 0; i < n; i++) {
        vlm_ipc_free(ngx_http_vlm_ipc.client, regions[i]);
    }

    return status;
}


void
ngx_http_vlm_ipc_cancel(ngx_http_vlm_ctx_t *ctx)
{
    ngx_http_vlm_ipc_req_t  *req;

    if (ctx == NULL || ctx->ipc == NULL) {
        return;
    }

    req = ctx->ipc;
    ctx->ipc = NULL;
    req->r = NULL;

    if (req->timer.timer_set) {
        ngx_del_timer(&req->timer);
    }

    if (ngx_http_vlm_ipc.client != NULL
        && req->kind == NGX_HTTP_VLM_IPC_SUBMIT)
    {
        /* vlmd stops generating; its final DONE frees the record */
        (void) vlm_ipc_cancel(ngx_http_vlm_ipc.client, req->slot, req->gen);
    }
}


static void
ngx_http_vlm_ipc_timeout(ngx_event_t *ev)
{
    ngx_str_t                msg;
    ngx_connection_t        *c;
    ngx_http_request_t      *r;
    ngx_http_vlm_ctx_t      *ctx;
    ngx_http_vlm_ipc_req_t  *req = ev->data;

    r = req->r;
    if (r == NULL) {
        return;
    }

    c = r->connection;

    if (req->kind == NGX_HTTP_VLM_IPC_STATS) {
        ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);
        ctx->ipc = NULL;
        req->r = NULL;
        ngx_str_null(&msg);
        ngx_http_vlm_metrics_send(r, &msg);
        ngx_http_run_posted_requests(c);
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);
    ngx_http_vlm_ipc_cancel(ctx);

    ngx_str_set(&msg, "vlmd did not answer in time");
    ngx_http_vlm_on_final(r, NGX_HTTP_GATEWAY_TIME_OUT, &msg);
    ngx_http_run_posted_requests(c);
}


/*
 * Asks vlmd for its metrics; ngx_http_vlm_metrics_send() is called with
 * the JSON, or with an empty string when vlmd is away or slow.
 */
ngx_int_t
ngx_http_vlm_ipc_stats(ngx_http_request_t *r)
{
    uint32_t                 slot, gen;
    ngx_http_vlm_ctx_t      *ctx;
    ngx_http_vlm_ipc_req_t  *req;

    ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);

    if (ctx == NULL || ngx_http_vlm_ipc_ready() != NGX_OK) {
        return NGX_DECLINED;
    }

    req = ngx_calloc(sizeof(ngx_http_vlm_ipc_req_t), r->connection->log);
    if (req == NULL) {
        return NGX_DECLINED;
    }

    if (vlm_ipc_stats(ngx_http_vlm_ipc.client, req, &slot, &gen)
        != VLM_IPC_OK)
    {
        ngx_free(req);
        return NGX_DECLINED;
    }

    req->r = r;
    req->kind = NGX_HTTP_VLM_IPC_STATS;
    req->slot = slot;
    req->gen = gen;
    req->timer.handler = ngx_http_vlm_ipc_timeout;
    req->timer.data = req;
    req->timer.log = r->connection->log;
    ngx_add_timer(&req->timer, 1000);

    ctx->ipc = req;

    return NGX_OK;
}
