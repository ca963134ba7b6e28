
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_ipc: this worker's connection to vlmd through the client
 * library of model_runtime/ipc/vlm_ipc_client.h. The library's socket is
 * put into nginx's event loop; images and the JSON body are written once
 * into the shared request arena; vlmd's results are translated into
 * ngx_http_vlm_ipc_event_t and handed to the {handler, data} stored with
 * the request (as nginx's resolver calls ctx->handler). vlmd gone:
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


#define NGX_HTTP_VLM_IPC_BACKOFF_MIN  50      /* ms */
#define NGX_HTTP_VLM_IPC_BACKOFF_MAX  1000
#define NGX_HTTP_VLM_IPC_GRACE        5000    /* after vlm_timeout, ms */
#define NGX_HTTP_VLM_IPC_STATS_WAIT   1000    /* ms */

#define NGX_HTTP_VLM_IPC_REQ_SUBMIT   0
#define NGX_HTTP_VLM_IPC_REQ_STATS    1


/* on the heap: vlmd's final event may arrive after the request is freed */
struct ngx_http_vlm_ipc_req_s {
    ngx_http_request_t             *r;          /* NULL once over */
    ngx_http_vlm_ipc_handler_pt     handler;
    void                           *data;
    ngx_event_t                     timer;      /* nginx-side deadline */
    ngx_uint_t                      kind;       /* NGX_HTTP_VLM_IPC_REQ_* */
    uint32_t                        slot;
    uint32_t                        gen;
    unsigned                        logprobs:1; /* DELTA carries them */
};


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
static json_t *ngx_http_vlm_ipc_logprobs(vlm_ipc_event *ev);
static ngx_uint_t ngx_http_vlm_ipc_finish(uint32_t reason);
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
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0, "vlm ipc reconnect");

    ngx_http_vlm_ipc_connect();
}


static void
ngx_http_vlm_ipc_read_handler(ngx_event_t *rev)
{
    int             rc;
    vlm_ipc_event   ev;
    vlm_ipc_client *client;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, rev->log, 0, "vlm ipc read handler");

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
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_vlm_ipc_req_t    *req;
    ngx_http_vlm_ipc_event_t   e;

    req = ev->user;
    if (req == NULL) {
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "vlm ipc event %uD, slot %uD, final:%d", ev->kind,
                   ev->slot, ev->final);

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

    ngx_memzero(&e, sizeof(ngx_http_vlm_ipc_event_t));
    e.final = ev->final;

    if (req->kind == NGX_HTTP_VLM_IPC_REQ_STATS) {
        e.kind = NGX_HTTP_VLM_IPC_STATS;
        e.final = 1;

        if (ev->kind == VLM_IPC_RES_STATS) {
            e.text.data = (u_char *) ev->text;
            e.text.len = ev->text_length;
        }

    } else {
        switch (ev->kind) {

        case VLM_IPC_RES_DELTA:
            e.kind = NGX_HTTP_VLM_IPC_DELTA;
            e.text.data = (u_char *) ev->text;
            e.text.len = ev->text_length;

            if (req->logprobs) {
                e.logprobs = ngx_http_vlm_ipc_logprobs(ev);
            }

            break;

        case VLM_IPC_RES_DONE:
            e.kind = NGX_HTTP_VLM_IPC_DONE;
            e.text.data = (u_char *) ev->text;
            e.text.len = ev->text_length;
            e.prompt_tokens = ev->prompt_tokens;
            e.completion_tokens = ev->completion_tokens;
            e.finish_reason = ngx_http_vlm_ipc_finish(ev->finish_reason);
            e.language.data = (u_char *) ev->language;
            e.language.len = ngx_strlen(ev->language);

            if (e.finish_reason != NGX_HTTP_VLM_FINISH_NONE) {
                break;
            }

            /* a reason this module does not know is vlmd's error */
            ngx_memzero(&e, sizeof(ngx_http_vlm_ipc_event_t));
            e.kind = NGX_HTTP_VLM_IPC_ERROR;
            e.final = ev->final;
            e.status = NGX_HTTP_BAD_GATEWAY;
            ngx_str_set(&e.text, "vlmd sent an unknown finish reason");
            break;

        default: /* VLM_IPC_RES_ERROR */
            e.kind = NGX_HTTP_VLM_IPC_ERROR;
            e.status = ev->status ? ev->status : NGX_HTTP_BAD_GATEWAY;
            e.text.data = (u_char *) ev->text;
            e.text.len = ev->text_length;

            if (e.text.len == 0) {
                ngx_str_set(&e.text, "vlmd failed the request");
            }

            break;
        }
    }

    if (e.final) {
        req->r = NULL;

        if (req->timer.timer_set) {
            ngx_del_timer(&req->timer);
        }
    }

    c = r->connection;
    ngx_http_set_log_request(c->log, r);

    req->handler(r, req->data, &e);

    if (e.logprobs != NULL) {
        json_decref(e.logprobs);
    }

    if (ev->final) {
        ngx_free(req);
    }

    ngx_http_run_posted_requests(c);
}


static ngx_uint_t
ngx_http_vlm_ipc_finish(uint32_t reason)
{
    switch (reason) {

    case VLM_IPC_FINISH_STOP:
        return NGX_HTTP_VLM_FINISH_STOP;

    case VLM_IPC_FINISH_LENGTH:
        return NGX_HTTP_VLM_FINISH_LENGTH;

    case VLM_IPC_FINISH_CANCELLED:
        return NGX_HTTP_VLM_FINISH_CANCELLED;

    case VLM_IPC_FINISH_DEADLINE:
        return NGX_HTTP_VLM_FINISH_DEADLINE;

    default:
        return NGX_HTTP_VLM_FINISH_NONE;
    }
}


/* a DELTA's logprob records as OpenAI's logprobs.content entries */
static json_t *
ngx_http_vlm_ipc_logprobs(vlm_ipc_event *ev)
{
    json_t           *entries, *entry, *top, *t, *bytes;
    size_t            pos;
    uint32_t          i, k, n;
    vlm_ipc_logprob   lp, alt;

    entries = json_array();
    if (entries == NULL) {
        return NULL;
    }

    pos = 0;

    for (i = 0; i < ev->n_tokens; i++) {
        if (!vlm_ipc_logprob_next(ev, &pos, &lp)
            || !vlm_ipc_logprob_count(ev, &pos, &n))
        {
            return entries;
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
            return entries;
        }

        for (k = 0; k < n; k++) {
            if (!vlm_ipc_logprob_next(ev, &pos, &alt)) {
                json_decref(entry);
                return entries;
            }

            t = json_stringn((const char *) alt.bytes, alt.n_bytes);
            (void) json_array_append_new(top,
                       json_pack("{s:o, s:f}", "token",
                                 t ? t : json_string(""),
                                 "logprob", (double) alt.logprob));
        }

        (void) json_array_append_new(entries, entry);
    }

    return entries;
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
 * NGX_OK: submitted, *reqp set, and events will go to handler(r, data, ev)
 * until a final one; otherwise the HTTP status to answer with (503 vlmd
 * unavailable, 429 no room, 400 does not fit).
 */
ngx_int_t
ngx_http_vlm_ipc_submit(ngx_http_request_t *r, ngx_http_vlm_task_t *task,
    ngx_http_vlm_ipc_handler_pt handler, void *data,
    ngx_http_vlm_ipc_req_t **reqp)
{
    int                       rc;
    char                     *s;
    u_char                   *p;
    json_t                   *images, *img;
    size_t                    len, total;
    uint32_t                  slot, gen;
    uint64_t                  regions[2], offset;
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

    n = 0;
    status = NGX_HTTP_TOO_MANY_REQUESTS;
    im = task->images->elts;

    images = json_array();
    if (images == NULL
        || json_object_set_new(task->body, "images", images) != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * Every image in one arena region and the body in a second: two
     * regions whatever the number of images. One region per image plus
     * the body needed nine for vlm_max_images 8, one more than the client
     * library frees with a request (VLM_IPC_MAX_REGIONS), and 8 images
     * were refused.
     */
    total = 0;

    for (i = 0; i < task->images->nelts; i++) {
        total += im[i].data.len;
    }

    if (total) {
        p = vlm_ipc_alloc(ngx_http_vlm_ipc.client, total, &regions[n]);
        if (p == NULL) {
            goto failed;
        }

        offset = regions[n++];

        for (i = 0; i < task->images->nelts; i++) {
            p = ngx_cpymem(p, im[i].data.data, im[i].data.len);

            img = json_pack("{s:I, s:I}", "offset", (json_int_t) offset,
                            "length", (json_int_t) im[i].data.len);
            offset += im[i].data.len;

            if (img == NULL || json_array_append_new(images, img) != 0) {
                status = NGX_HTTP_INTERNAL_SERVER_ERROR;
                goto failed;
            }
        }
    }

    s = json_dumps(task->body, JSON_COMPACT);
    (void) json_object_del(task->body, "images");

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
    req->handler = handler;
    req->data = data;
    req->kind = NGX_HTTP_VLM_IPC_REQ_SUBMIT;
    req->slot = slot;
    req->gen = gen;
    req->logprobs = task->logprobs;

    /* vlmd enforces the deadline; this catches a hung vlmd */
    req->timer.handler = ngx_http_vlm_ipc_timeout;
    req->timer.data = req;
    req->timer.log = r->connection->log;
    ngx_add_timer(&req->timer,
                  vlcf->request_timeout + NGX_HTTP_VLM_IPC_GRACE);

    *reqp = req;

    return NGX_OK;

failed:

    (void) json_object_del(task->body, "images");

    for (i = 0; i < n; i++) {
        vlm_ipc_free(ngx_http_vlm_ipc.client, regions[i]);
    }

    return status;
}


/* the handler will not be called again; NULL is allowed */
void
ngx_http_vlm_ipc_cancel(ngx_http_vlm_ipc_req_t *req)
{
    if (req == NULL) {
        return;
    }

    req->r = NULL;

    if (req->timer.timer_set) {
        ngx_del_timer(&req->timer);
    }

    if (ngx_http_vlm_ipc.client != NULL
        && req->kind == NGX_HTTP_VLM_IPC_REQ_SUBMIT)
    {
        /* vlmd stops generating; its final DONE frees the record */
        (void) vlm_ipc_cancel(ngx_http_vlm_ipc.client, req->slot, req->gen);
    }
}


static void
ngx_http_vlm_ipc_timeout(ngx_event_t *ev)
{
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_vlm_ipc_req_t    *req;
    ngx_http_vlm_ipc_event_t   e;

    req = ev->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "vlm ipc timeout, slot %uD", req->slot);

    r = req->r;
    if (r == NULL) {
        return;
    }

    ngx_memzero(&e, sizeof(ngx_http_vlm_ipc_event_t));
    e.final = 1;

    if (req->kind == NGX_HTTP_VLM_IPC_REQ_STATS) {
        /* no STATS in time: an empty answer; vlmd's reply frees req */
        e.kind = NGX_HTTP_VLM_IPC_STATS;
        req->r = NULL;

    } else {
        e.kind = NGX_HTTP_VLM_IPC_ERROR;
        e.status = NGX_HTTP_GATEWAY_TIME_OUT;
        ngx_str_set(&e.text, "vlmd did not answer in time");
        ngx_http_vlm_ipc_cancel(req);
    }

    c = r->connection;
    ngx_http_set_log_request(c->log, r);

    req->handler(r, req->data, &e);

    ngx_http_run_posted_requests(c);
}


/*
 * Asks vlmd for its metrics: NGX_OK, *reqp set, and handler(r, data, ev)
 * gets one STATS event with the JSON, or with empty text when vlmd fails
 * or is slow; NGX_DECLINED when vlmd is not attached (no call then).
 */
ngx_int_t
ngx_http_vlm_ipc_stats(ngx_http_request_t *r,
    ngx_http_vlm_ipc_handler_pt handler, void *data,
    ngx_http_vlm_ipc_req_t **reqp)
{
    uint32_t                 slot, gen;
    ngx_http_vlm_ipc_req_t  *req;

    if (ngx_http_vlm_ipc_ready() != NGX_OK) {
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
    req->handler = handler;
    req->data = data;
    req->kind = NGX_HTTP_VLM_IPC_REQ_STATS;
    req->slot = slot;
    req->gen = gen;
    req->timer.handler = ngx_http_vlm_ipc_timeout;
    req->timer.data = req;
    req->timer.log = r->connection->log;
    ngx_add_timer(&req->timer, NGX_HTTP_VLM_IPC_STATS_WAIT);

    *reqp = req;

    return NGX_OK;
}
