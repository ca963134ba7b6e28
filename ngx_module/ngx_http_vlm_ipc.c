
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
 * A request that arrives while this worker's handshake is under way waits
 * for it (up to a second) instead of failing; each worker publishes the
 * epoch it is attached to in a shared zone, and /readyz is ready only when
 * every worker is attached to the same vlmd (issue 12: one worker said
 * ready while another still answered 503).
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
#define NGX_HTTP_VLM_IPC_ATTACH_WAIT  1000    /* ms, for a handshake */

#define NGX_HTTP_VLM_IPC_REQ_SUBMIT   0
#define NGX_HTTP_VLM_IPC_REQ_STATS    1
#define NGX_HTTP_VLM_IPC_REQ_WAIT     2       /* queued until attached */

/* one word per worker in the "vlm_workers" zone: pid << 32 | epoch */
#define NGX_HTTP_VLM_IPC_ZONE_SIZE    (64 * 1024)
#define ngx_http_vlm_ipc_word(pid, epoch)                                     \
    ((ngx_atomic_uint_t) (pid) << 32 | (ngx_atomic_uint_t) (epoch))


/* on the heap: vlmd's final event may arrive after the request is freed */
struct ngx_http_vlm_ipc_req_s {
    ngx_http_request_t             *r;          /* NULL once over */
    ngx_http_vlm_ipc_handler_pt     handler;
    void                           *data;
    ngx_event_t                     timer;      /* nginx-side deadline */
    ngx_queue_t                     queue;      /* WAIT: in ipc.waiting */
    ngx_http_vlm_task_t            *task;       /* WAIT: to submit */
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
    ngx_queue_t                 waiting;    /* requests until attached */
    ngx_atomic_t               *workers;    /* the zone's words */
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
static ngx_int_t ngx_http_vlm_ipc_push(ngx_http_request_t *r,
    ngx_http_vlm_task_t *task, ngx_http_vlm_ipc_req_t *req);
static void ngx_http_vlm_ipc_release_waiting(ngx_uint_t status);
static void ngx_http_vlm_ipc_wait_timeout(ngx_event_t *ev);
static void ngx_http_vlm_ipc_fail(ngx_http_vlm_ipc_req_t *req,
    ngx_uint_t status);
static ngx_int_t ngx_http_vlm_ipc_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_vlm_ipc_publish(uint64_t epoch);
static uint32_t ngx_http_vlm_ipc_epoch32(uint64_t epoch);


/* per worker process; set up in init_process */
static ngx_http_vlm_ipc_t  ngx_http_vlm_ipc;


/* the per-worker attach states, shared by every worker (/readyz) */
char *
ngx_http_vlm_ipc_zone(ngx_conf_t *cf, ngx_http_vlm_main_conf_t *vmcf)
{
    ngx_str_t  name;

    ngx_str_set(&name, "vlm_workers");

    vmcf->workers_zone = ngx_shared_memory_add(cf, &name,
                                               NGX_HTTP_VLM_IPC_ZONE_SIZE,
                                               &ngx_http_vlm_module);
    if (vmcf->workers_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    vmcf->workers_zone->init = ngx_http_vlm_ipc_init_zone;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_vlm_ipc_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_atomic_t     *words;
    ngx_slab_pool_t  *shpool;

    /* a reload keeps the words: the old workers still own theirs */
    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    words = ngx_slab_calloc(shpool, NGX_MAX_PROCESSES * sizeof(ngx_atomic_t));
    if (words == NULL) {
        return NGX_ERROR;
    }

    shpool->data = (void *) words;
    shm_zone->data = (void *) words;

    return NGX_OK;
}


ngx_int_t
ngx_http_vlm_ipc_init(ngx_cycle_t *cycle)
{
    ngx_http_vlm_main_conf_t  *vmcf;

    vmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_vlm_module);

    ngx_memzero(&ngx_http_vlm_ipc, sizeof(ngx_http_vlm_ipc_t));
    ngx_queue_init(&ngx_http_vlm_ipc.waiting);

    if (vmcf == NULL) {
        return NGX_OK;
    }

    ngx_http_vlm_ipc.cycle = cycle;
    ngx_http_vlm_ipc.vmcf = vmcf;

    if (vmcf->workers_zone != NULL && ngx_worker < NGX_MAX_PROCESSES) {
        /* this worker's word is ours now, whoever had it before a reload */
        ngx_http_vlm_ipc.workers = vmcf->workers_zone->data;
        ngx_http_vlm_ipc.workers[ngx_worker] =
                                       ngx_http_vlm_ipc_word(ngx_pid, 0);
    }

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
    ngx_atomic_t       *w;
    ngx_atomic_uint_t   old;

    if (ngx_http_vlm_ipc.workers != NULL) {
        /* only if a new worker has not taken the word already */
        w = &ngx_http_vlm_ipc.workers[ngx_worker];
        old = *w;

        if (old >> 32 == (ngx_atomic_uint_t) ngx_pid) {
            (void) ngx_atomic_cmp_set(w, old, 0);
        }

        ngx_http_vlm_ipc.workers = NULL;
    }

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
    u_char             path[256];
    ngx_socket_t       fd;
    ngx_connection_t  *c;

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

    if (rc == VLM_IPC_OK && vlm_ipc_client_ready(client)) {
        ngx_http_vlm_ipc_publish(ngx_http_vlm_ipc.epoch);
        ngx_http_vlm_ipc_release_waiting(0);
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
        ngx_http_vlm_ipc_publish(0);
        ngx_http_vlm_ipc_release_waiting(NGX_HTTP_SERVICE_UNAVAILABLE);
        ngx_http_vlm_ipc_schedule();
    }
}


/* this worker's word: attached to epoch, or (0) not attached */
static void
ngx_http_vlm_ipc_publish(uint64_t epoch)
{
    ngx_atomic_t       *w;
    ngx_atomic_uint_t   old, word;

    if (ngx_http_vlm_ipc.workers == NULL) {
        return;
    }

    w = &ngx_http_vlm_ipc.workers[ngx_worker];
    word = ngx_http_vlm_ipc_word(ngx_pid,
                                 epoch ? ngx_http_vlm_ipc_epoch32(epoch) : 0);

    /* an old worker after a reload must not write over the new one's */
    do {
        old = *w;

        if (old >> 32 != (ngx_atomic_uint_t) ngx_pid || old == word) {
            return;
        }

    } while (!ngx_atomic_cmp_set(w, old, word));
}


/* 32 bits of the epoch, never 0 (0 means "not attached") */
static uint32_t
ngx_http_vlm_ipc_epoch32(uint64_t epoch)
{
    uint32_t  e;

    e = (uint32_t) (epoch ^ (epoch >> 32));

    return e ? e : 1;
}


/*
 * /readyz: NGX_OK when this worker and every other one are attached to
 * the same vlmd; *ready of *total workers are.
 */
ngx_int_t
ngx_http_vlm_ipc_ready_all(ngx_uint_t *ready, ngx_uint_t *total)
{
    uint32_t            mine;
    ngx_uint_t          i, n;
    ngx_core_conf_t    *ccf;
    ngx_atomic_uint_t   word;

    *ready = 0;
    *total = 1;

    if (ngx_http_vlm_ipc_ready() != NGX_OK) {
        return NGX_DECLINED;
    }

    if (ngx_http_vlm_ipc.workers == NULL || ngx_process != NGX_PROCESS_WORKER) {
        *ready = 1;
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_http_vlm_ipc.cycle->conf_ctx,
                                           ngx_core_module);

    n = ngx_min((ngx_uint_t) ccf->worker_processes, NGX_MAX_PROCESSES);
    mine = ngx_http_vlm_ipc_epoch32(ngx_http_vlm_ipc.epoch);
    *total = n;

    for (i = 0; i < n; i++) {
        word = ngx_http_vlm_ipc.workers[i];

        if (word >> 32 != 0 && (uint32_t) word == mine) {
            (*ready)++;
        }
    }

    return (*ready == n) ? NGX_OK : NGX_DECLINED;
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
 * NGX_OK: submitted (or waiting for this worker's handshake), *reqp set,
 * and events will go to handler(r, data, ev) until a final one; otherwise
 * the HTTP status to answer with (503 vlmd unavailable, 429 no room, 400
 * does not fit).
 */
ngx_int_t
ngx_http_vlm_ipc_submit(ngx_http_request_t *r, ngx_http_vlm_task_t *task,
    ngx_http_vlm_ipc_handler_pt handler, void *data,
    ngx_http_vlm_ipc_req_t **reqp)
{
    ngx_int_t                 rc;
    ngx_http_vlm_ipc_req_t   *req;
    ngx_http_vlm_loc_conf_t  *vlcf;

    if (ngx_http_vlm_ipc.client == NULL) {
        /* try now rather than at the next backoff tick */
        if (ngx_http_vlm_ipc.reconnect.timer_set) {
            ngx_del_timer(&ngx_http_vlm_ipc.reconnect);
        }

        ngx_http_vlm_ipc_connect();
    }

    if (ngx_http_vlm_ipc.client == NULL
        || vlm_ipc_client_closed(ngx_http_vlm_ipc.client))
    {
        /* vlmd is not there: say so at once */
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    req = ngx_calloc(sizeof(ngx_http_vlm_ipc_req_t), r->connection->log);
    if (req == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    req->r = r;
    req->handler = handler;
    req->data = data;
    req->task = task;
    req->timer.data = req;
    req->timer.log = r->connection->log;

    if (ngx_http_vlm_ipc_ready() != NGX_OK) {
        /*
         * The handshake is under way (vlmd has just come back, or this
         * worker has just started): wait for it instead of failing.
         */
        vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

        req->kind = NGX_HTTP_VLM_IPC_REQ_WAIT;
        ngx_queue_insert_tail(&ngx_http_vlm_ipc.waiting, &req->queue);

        req->timer.handler = ngx_http_vlm_ipc_wait_timeout;
        ngx_add_timer(&req->timer, ngx_min(vlcf->request_timeout,
                                           NGX_HTTP_VLM_IPC_ATTACH_WAIT));

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "vlm ipc: waiting for the handshake");

        *reqp = req;
        return NGX_OK;
    }

    rc = ngx_http_vlm_ipc_push(r, task, req);

    if (rc != NGX_OK) {
        ngx_free(req);
        return rc;
    }

    *reqp = req;

    return NGX_OK;
}


/*
 * The request into the arena and the ring, on an attached connection;
 * req is filled in (slot, deadline) on NGX_OK, else the HTTP status.
 */
static ngx_int_t
ngx_http_vlm_ipc_push(ngx_http_request_t *r, ngx_http_vlm_task_t *task,
    ngx_http_vlm_ipc_req_t *req)
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
    ngx_http_vlm_loc_conf_t  *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

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

    rc = vlm_ipc_submit(ngx_http_vlm_ipc.client, regions[n - 1], len,
                        (uint32_t) vlcf->request_timeout, task->client,
                        regions, n, req, &slot, &gen);

    if (rc != VLM_IPC_OK) {
        status = (rc == VLM_IPC_AGAIN) ? NGX_HTTP_TOO_MANY_REQUESTS
                 : (rc == VLM_IPC_CLOSED) ? NGX_HTTP_SERVICE_UNAVAILABLE
                 : NGX_HTTP_BAD_REQUEST;
        goto failed;
    }

    req->kind = NGX_HTTP_VLM_IPC_REQ_SUBMIT;
    req->slot = slot;
    req->gen = gen;
    req->logprobs = task->logprobs;

    /* vlmd enforces the deadline; this catches a hung vlmd */
    req->timer.handler = ngx_http_vlm_ipc_timeout;
    ngx_add_timer(&req->timer,
                  vlcf->request_timeout + NGX_HTTP_VLM_IPC_GRACE);

    return NGX_OK;

failed:

    (void) json_object_del(task->body, "images");

    for (i = 0; i < n; i++) {
        vlm_ipc_free(ngx_http_vlm_ipc.client, regions[i]);
    }

    return status;
}


/*
 * The handshake ended: attached (status 0), every waiting request is
 * submitted now; or failed, and they fail with status.
 */
static void
ngx_http_vlm_ipc_release_waiting(ngx_uint_t status)
{
    ngx_int_t                rc;
    ngx_queue_t             *q;
    ngx_http_vlm_ipc_req_t  *req;

    while (!ngx_queue_empty(&ngx_http_vlm_ipc.waiting)) {
        q = ngx_queue_head(&ngx_http_vlm_ipc.waiting);
        req = ngx_queue_data(q, ngx_http_vlm_ipc_req_t, queue);

        ngx_queue_remove(q);

        if (req->timer.timer_set) {
            ngx_del_timer(&req->timer);
        }

        rc = status ? (ngx_int_t) status
                    : ngx_http_vlm_ipc_push(req->r, req->task, req);

        if (rc != NGX_OK) {
            ngx_http_vlm_ipc_fail(req, rc);
        }
    }
}


static void
ngx_http_vlm_ipc_wait_timeout(ngx_event_t *ev)
{
    ngx_http_vlm_ipc_req_t  *req;

    req = ev->data;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "vlm ipc: no handshake in time");

    ngx_queue_remove(&req->queue);

    ngx_http_vlm_ipc_fail(req, NGX_HTTP_SERVICE_UNAVAILABLE);
}


/* a request that never reached vlmd: its final event, then the record */
static void
ngx_http_vlm_ipc_fail(ngx_http_vlm_ipc_req_t *req, ngx_uint_t status)
{
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_vlm_ipc_event_t   e;

    r = req->r;

    ngx_memzero(&e, sizeof(ngx_http_vlm_ipc_event_t));
    e.kind = NGX_HTTP_VLM_IPC_ERROR;
    e.final = 1;
    e.status = status;

    switch (status) {

    case NGX_HTTP_TOO_MANY_REQUESTS:
        ngx_str_set(&e.text, "vlmd's queue is full, retry later");
        break;

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        ngx_str_set(&e.text, "vlmd is not available, retry later");
        break;

    case NGX_HTTP_BAD_REQUEST:
        ngx_str_set(&e.text, "the request does not fit vlmd's request "
                             "memory");
        break;

    default:
        ngx_str_set(&e.text, "internal error");
        break;
    }

    c = r->connection;
    ngx_http_set_log_request(c->log, r);

    req->handler(r, req->data, &e);
    ngx_free(req);

    ngx_http_run_posted_requests(c);
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

    if (req->kind == NGX_HTTP_VLM_IPC_REQ_WAIT) {
        /* never submitted: nothing will come for it */
        ngx_queue_remove(&req->queue);
        ngx_free(req);
        return;
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
