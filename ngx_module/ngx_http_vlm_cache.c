
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_cache: finished answers in Redis. The key is a SHA-256 over
 * the model revision, the prompt-template version, the canonical vlmd body
 * (task, language, generation parameters, prompt text, image positions;
 * keys sorted), the SHA-256 of each image's bytes and, with
 * vlm_cache_scope subject, the caller's subject. The record is JSON,
 * written and read only here: {"text", "finish_reason" ("stop" or
 * "length": complete answers only), "language", "prompt_tokens",
 * "completion_tokens", and "logprobs" when they were asked for}.
 * hiredis 0.14 runs asynchronously on a small adapter onto nginx's event
 * loop: one connection per worker, level-triggered (hiredis reads 16k at a
 * time), a timer per GET because 0.14 has no async timeouts, reconnect with
 * backoff on a cancelable timer. A GET's outcome goes to the {handler,
 * data} stored with it (as nginx's subrequests report through
 * ngx_http_post_subrequest_t): the record, a miss, or NGX_ERROR for every
 * failure, which the caller serves as a miss.
 * Not here: coalescing identical requests.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/evp.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include "ngx_http_vlm_module.h"


#define NGX_HTTP_VLM_REDIS_BACKOFF_MIN  100
#define NGX_HTTP_VLM_REDIS_BACKOFF_MAX  5000


/* on the heap: hiredis may call back after the request is gone */
struct ngx_http_vlm_cache_op_s {
    ngx_http_request_t             *r;          /* NULL once answered */
    ngx_http_vlm_cache_handler_pt   handler;
    void                           *data;
    ngx_event_t                     timer;
    unsigned                        done:1;     /* handler has run */
};


typedef struct {
    redisAsyncContext          *ac;
    ngx_connection_t           *conn;
    ngx_event_t                 reconnect;
    ngx_msec_t                  backoff;    /* ms until the next attempt */
    ngx_cycle_t                *cycle;
    ngx_http_vlm_main_conf_t   *vmcf;
    unsigned                    connected:1;
} ngx_http_vlm_redis_t;


static void ngx_http_vlm_redis_connect(void);
static void ngx_http_vlm_redis_schedule(void);
static void ngx_http_vlm_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_http_vlm_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_vlm_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_http_vlm_redis_read(ngx_event_t *ev);
static void ngx_http_vlm_redis_write(ngx_event_t *ev);
static void ngx_http_vlm_redis_add_read(void *data);
static void ngx_http_vlm_redis_del_read(void *data);
static void ngx_http_vlm_redis_add_write(void *data);
static void ngx_http_vlm_redis_del_write(void *data);
static void ngx_http_vlm_redis_cleanup(void *data);
static void ngx_http_vlm_redis_get_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_vlm_redis_timeout(ngx_event_t *ev);
static void ngx_http_vlm_redis_answer(ngx_http_vlm_cache_op_t *op,
    ngx_int_t rc, ngx_str_t *value);
static void ngx_http_vlm_cache_set(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_str_t *value);


/* per worker process; set up in init_process */
static ngx_http_vlm_redis_t  ngx_http_vlm_redis;


ngx_int_t
ngx_http_vlm_cache_key(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_str_t *revision)
{
    char                     *canon;
    u_char                   *p;
    ngx_uint_t                i;
    EVP_MD_CTX               *md;
    unsigned int              n;
    ngx_http_vlm_image_t     *img;
    ngx_http_vlm_loc_conf_t  *vlcf;
    u_char                    version[NGX_INT_T_LEN];
    u_char                    digest[NGX_HTTP_VLM_SHA256_LEN];

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

    /* sorted keys make the serialisation canonical for equal requests */
    canon = json_dumps(ctx->task->body, JSON_COMPACT | JSON_SORT_KEYS);
    if (canon == NULL) {
        return NGX_ERROR;
    }

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        free(canon);
        return NGX_ERROR;
    }

    p = ngx_sprintf(version, "%d", NGX_HTTP_VLM_TEMPLATE_VERSION);
    img = ctx->task->images->elts;

    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(md, revision->data, revision->len) != 1
        || EVP_DigestUpdate(md, "\0", 1) != 1
        || EVP_DigestUpdate(md, version, p - version) != 1
        || EVP_DigestUpdate(md, "\0", 1) != 1
        || EVP_DigestUpdate(md, canon, ngx_strlen(canon)) != 1)
    {
        EVP_MD_CTX_free(md);
        free(canon);
        return NGX_ERROR;
    }

    free(canon);

    for (i = 0; i < ctx->task->images->nelts; i++) {
        if (EVP_DigestUpdate(md, img[i].sha256, NGX_HTTP_VLM_SHA256_LEN)
            != 1)
        {
            EVP_MD_CTX_free(md);
            return NGX_ERROR;
        }
    }

    /* vlm_cache_scope subject: another caller's answers are never seen */
    if (vlcf->cache_scope == NGX_HTTP_VLM_CACHE_SCOPE_SUBJECT
        && (EVP_DigestUpdate(md, "\0subject\0", sizeof("\0subject\0") - 1)
            != 1
            || EVP_DigestUpdate(md, ctx->subject.data, ctx->subject.len)
               != 1))
    {
        EVP_MD_CTX_free(md);
        return NGX_ERROR;
    }

    if (EVP_DigestFinal_ex(md, digest, &n) != 1) {
        EVP_MD_CTX_free(md);
        return NGX_ERROR;
    }

    EVP_MD_CTX_free(md);

    ctx->cache_key.data = ngx_pnalloc(r->pool,
                                      sizeof("vlm:v1:") - 1
                                      + 2 * NGX_HTTP_VLM_SHA256_LEN);
    if (ctx->cache_key.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(ctx->cache_key.data, "vlm:v1:", sizeof("vlm:v1:") - 1);
    p = ngx_hex_dump(p, digest, NGX_HTTP_VLM_SHA256_LEN);
    ctx->cache_key.len = p - ctx->cache_key.data;

    return NGX_OK;
}


/*
 * Starts a GET whose outcome goes to handler(r, data, ...) once; NULL when
 * Redis is unavailable right now (nothing will be called then).
 */
ngx_http_vlm_cache_op_t *
ngx_http_vlm_cache_get(ngx_http_request_t *r, ngx_str_t *key,
    ngx_http_vlm_cache_handler_pt handler, void *data)
{
    size_t                    argvlen[2];
    const char               *argv[2];
    ngx_http_vlm_cache_op_t  *op;

    if (!ngx_http_vlm_redis.connected || ngx_http_vlm_redis.ac == NULL) {
        return NULL;
    }

    op = ngx_calloc(sizeof(ngx_http_vlm_cache_op_t), r->connection->log);
    if (op == NULL) {
        return NULL;
    }

    argv[0] = "GET";
    argvlen[0] = sizeof("GET") - 1;
    argv[1] = (char *) key->data;
    argvlen[1] = key->len;

    if (redisAsyncCommandArgv(ngx_http_vlm_redis.ac,
                              ngx_http_vlm_redis_get_reply, op, 2, argv,
                              argvlen)
        != REDIS_OK)
    {
        ngx_free(op);
        return NULL;
    }

    op->r = r;
    op->handler = handler;
    op->data = data;
    op->timer.handler = ngx_http_vlm_redis_timeout;
    op->timer.data = op;
    op->timer.log = r->connection->log;
    ngx_add_timer(&op->timer, ngx_http_vlm_redis.vmcf->redis_timeout);

    return op;
}


/* the handler will not be called; the op is freed when hiredis replies */
void
ngx_http_vlm_cache_cancel(ngx_http_vlm_cache_op_t *op)
{
    if (op == NULL) {
        return;
    }

    op->r = NULL;
    op->done = 1;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }
}


/* the finished answer in ctx becomes the record under ctx->cache_key */
void
ngx_http_vlm_cache_store(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx)
{
    char       *s;
    json_t     *rec;
    ngx_str_t   value, *finish;

    finish = ngx_http_vlm_finish_name(ctx->finish_reason);

    rec = json_pack("{s:s%, s:s%, s:s%, s:I, s:I}",
                    "text", ctx->text->pos,
                    (size_t) (ctx->text->last - ctx->text->pos),
                    "finish_reason", finish->data, finish->len,
                    "language", ctx->task->language.data,
                    ctx->task->language.len,
                    "prompt_tokens", (json_int_t) ctx->prompt_tokens,
                    "completion_tokens", (json_int_t) ctx->completion_tokens);
    if (rec == NULL) {
        /* e.g. a token boundary left invalid UTF-8: just do not cache */
        return;
    }

    if (ctx->logprobs != NULL
        && json_object_set(rec, "logprobs", ctx->logprobs) != 0)
    {
        json_decref(rec);
        return;
    }

    s = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);

    if (s == NULL) {
        return;
    }

    value.data = (u_char *) s;
    value.len = ngx_strlen(s);

    ngx_http_vlm_cache_set(r, ctx, &value);
    free(s);
}


/*
 * A record read back into ctx as if vlmd had just answered: NGX_OK;
 * NGX_DECLINED when it is unreadable (served as a miss); NGX_ERROR.
 */
ngx_int_t
ngx_http_vlm_cache_read(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_str_t *value)
{
    size_t         len;
    json_t        *rec, *lp;
    ngx_str_t      src;
    json_int_t     pt, ct;
    const char    *text, *finish, *lang;
    json_error_t   err;

    rec = json_loadb((char *) value->data, value->len, 0, &err);
    if (rec == NULL) {
        return NGX_DECLINED;
    }

    text = NULL;
    finish = NULL;
    lang = NULL;
    lp = NULL;
    pt = 0;
    ct = 0;
    len = 0;

    if (json_unpack(rec, "{s:s%, s:s, s?s, s:I, s:I, s?o}",
                    "text", &text, &len, "finish_reason", &finish,
                    "language", &lang, "prompt_tokens", &pt,
                    "completion_tokens", &ct, "logprobs", &lp)
        != 0)
    {
        json_decref(rec);
        return NGX_DECLINED;
    }

    ctx->finish_reason = ngx_http_vlm_finish_code((u_char *) finish,
                                                  ngx_strlen(finish));
    if (ctx->finish_reason == NGX_HTTP_VLM_FINISH_NONE) {
        json_decref(rec);
        return NGX_DECLINED;
    }

    ctx->text = ngx_create_temp_buf(r->pool, len + 1);
    if (ctx->text == NULL) {
        json_decref(rec);
        return NGX_ERROR;
    }

    ctx->text->last = ngx_cpymem(ctx->text->pos, text, len);

    if (lang != NULL) {
        src.data = (u_char *) lang;
        src.len = ngx_strlen(lang);
        ctx->task->language.data = ngx_pstrdup(r->pool, &src);
        ctx->task->language.len = src.len;

        if (ctx->task->language.data == NULL) {
            json_decref(rec);
            return NGX_ERROR;
        }
    }

    ctx->prompt_tokens = (ngx_uint_t) pt;
    ctx->completion_tokens = (ngx_uint_t) ct;

    if (lp != NULL && ctx->task->logprobs && ctx->logprobs == NULL) {
        ctx->logprobs = json_incref(lp);
    }

    json_decref(rec);

    return NGX_OK;
}


static void
ngx_http_vlm_cache_set(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_str_t *value)
{
    u_char      *p;
    size_t       argvlen[5];
    const char  *argv[5];
    u_char       ttl[NGX_TIME_T_LEN];

    if (!ngx_http_vlm_redis.connected || ngx_http_vlm_redis.ac == NULL
        || ctx->cache_key.len == 0)
    {
        return;
    }

    p = ngx_sprintf(ttl, "%T", ngx_http_vlm_redis.vmcf->cache_ttl);

    argv[0] = "SET";
    argvlen[0] = sizeof("SET") - 1;
    argv[1] = (char *) ctx->cache_key.data;
    argvlen[1] = ctx->cache_key.len;
    argv[2] = (char *) value->data;
    argvlen[2] = value->len;
    argv[3] = "EX";
    argvlen[3] = sizeof("EX") - 1;
    argv[4] = (char *) ttl;
    argvlen[4] = p - ttl;

    /* fire and forget: a lost SET only costs a later miss */
    if (redisAsyncCommandArgv(ngx_http_vlm_redis.ac, NULL, NULL, 5, argv,
                              argvlen)
        != REDIS_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "vlm: redis SET not sent");
    }
}


static void
ngx_http_vlm_redis_get_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply               *rr = reply;
    ngx_str_t                 value;
    ngx_http_vlm_cache_op_t  *op = privdata;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "vlm redis reply, type %d", rr ? rr->type : -1);

    if (op->r != NULL && !op->done) {

        if (rr == NULL || rr->type == REDIS_REPLY_ERROR) {
            ngx_http_vlm_redis_answer(op, NGX_ERROR, NULL);

        } else if (rr->type == REDIS_REPLY_STRING) {
            value.data = (u_char *) rr->str;
            value.len = rr->len;
            ngx_http_vlm_redis_answer(op, NGX_OK, &value);

        } else {
            ngx_http_vlm_redis_answer(op, NGX_DECLINED, NULL);
        }
    }

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    ngx_free(op);
}


static void
ngx_http_vlm_redis_timeout(ngx_event_t *ev)
{
    ngx_http_vlm_cache_op_t  *op = ev->data;

    ngx_log_error(NGX_LOG_WARN, ev->log, 0, "vlm: redis GET timed out");

    /* the op stays allocated until hiredis calls back */
    ngx_http_vlm_redis_answer(op, NGX_ERROR, NULL);
}


static void
ngx_http_vlm_redis_answer(ngx_http_vlm_cache_op_t *op, ngx_int_t rc,
    ngx_str_t *value)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = op->r;
    if (r == NULL || op->done) {
        return;
    }

    op->done = 1;
    op->r = NULL;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    c = r->connection;
    ngx_http_set_log_request(c->log, r);

    op->handler(r, op->data, rc, value);

    ngx_http_run_posted_requests(c);
}


ngx_int_t
ngx_http_vlm_redis_init(ngx_cycle_t *cycle)
{
    ngx_http_vlm_main_conf_t  *vmcf;

    vmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_vlm_module);

    ngx_memzero(&ngx_http_vlm_redis, sizeof(ngx_http_vlm_redis_t));

    if (vmcf == NULL || vmcf->redis_addr.len == 0) {
        return NGX_OK;
    }

    ngx_http_vlm_redis.cycle = cycle;
    ngx_http_vlm_redis.vmcf = vmcf;
    ngx_http_vlm_redis.backoff = NGX_HTTP_VLM_REDIS_BACKOFF_MIN;
    ngx_http_vlm_redis.reconnect.handler =
                                         ngx_http_vlm_redis_reconnect_handler;
    ngx_http_vlm_redis.reconnect.log = cycle->log;
    ngx_http_vlm_redis.reconnect.data = &ngx_http_vlm_redis;

    /* a pending reconnect must not keep a worker alive on shutdown */
    ngx_http_vlm_redis.reconnect.cancelable = 1;

    ngx_http_vlm_redis_connect();

    return NGX_OK;
}


void
ngx_http_vlm_redis_exit(ngx_cycle_t *cycle)
{
    if (ngx_http_vlm_redis.reconnect.timer_set) {
        ngx_del_timer(&ngx_http_vlm_redis.reconnect);
    }

    if (ngx_http_vlm_redis.ac != NULL) {
        ngx_http_vlm_redis.vmcf = NULL;
        redisAsyncFree(ngx_http_vlm_redis.ac);
        ngx_http_vlm_redis.ac = NULL;
    }
}


static void
ngx_http_vlm_redis_connect(void)
{
    u_char                    *p, *colon;
    ngx_int_t                  port;
    ngx_str_t                 *addr;
    redisAsyncContext         *ac;
    ngx_connection_t          *c;
    u_char                     host[NGX_SOCKADDR_STRLEN + 1];

    addr = &ngx_http_vlm_redis.vmcf->redis_addr;

    if (addr->len > sizeof("unix:") - 1
        && ngx_strncmp(addr->data, "unix:", sizeof("unix:") - 1) == 0)
    {
        p = ngx_cpystrn(host, addr->data + sizeof("unix:") - 1,
                        ngx_min(addr->len - (sizeof("unix:") - 1) + 1,
                                sizeof(host)));
        ac = redisAsyncConnectUnix((char *) host);

    } else {
        /* an IP literal only: a host name would block in getaddrinfo */
        colon = ngx_strlchr(addr->data, addr->data + addr->len, ':');
        port = 6379;

        if (colon != NULL) {
            port = ngx_atoi(colon + 1, addr->data + addr->len - colon - 1);
        }

        p = ngx_cpystrn(host, addr->data,
                        ngx_min((size_t) ((colon ? colon : addr->data
                                           + addr->len) - addr->data) + 1,
                                sizeof(host)));
        ac = (port > 0 && port < 65536)
             ? redisAsyncConnect((char *) host, (int) port) : NULL;
    }

    (void) p;

    if (ac == NULL || ac->err) {
        ngx_log_error(NGX_LOG_WARN, ngx_http_vlm_redis.cycle->log, 0,
                      "vlm: redis \"%V\" connect failed: %s", addr,
                      ac ? ac->errstr : "out of memory");
        if (ac != NULL) {
            redisAsyncFree(ac);
        }

        ngx_http_vlm_redis_schedule();
        return;
    }

    c = ngx_get_connection(ac->c.fd, ngx_http_vlm_redis.cycle->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_vlm_redis_schedule();
        return;
    }

    c->data = ac;
    c->read->handler = ngx_http_vlm_redis_read;
    c->write->handler = ngx_http_vlm_redis_write;
    c->read->log = c->log;
    c->write->log = c->log;

    ngx_http_vlm_redis.ac = ac;
    ngx_http_vlm_redis.conn = c;

    ac->ev.data = c;
    ac->ev.addRead = ngx_http_vlm_redis_add_read;
    ac->ev.delRead = ngx_http_vlm_redis_del_read;
    ac->ev.addWrite = ngx_http_vlm_redis_add_write;
    ac->ev.delWrite = ngx_http_vlm_redis_del_write;
    ac->ev.cleanup = ngx_http_vlm_redis_cleanup;

    if (redisAsyncSetConnectCallback(ac, ngx_http_vlm_redis_on_connect)
        != REDIS_OK
        || redisAsyncSetDisconnectCallback(ac,
                                           ngx_http_vlm_redis_on_disconnect)
           != REDIS_OK)
    {
        redisAsyncFree(ac);
        ngx_http_vlm_redis_schedule();
        return;
    }

    /* the connect completes when the socket becomes writable */
    ngx_http_vlm_redis_add_write(c);
}


static void
ngx_http_vlm_redis_schedule(void)
{
    if (ngx_exiting || ngx_terminate || ngx_http_vlm_redis.vmcf == NULL) {
        return;
    }

    if (!ngx_http_vlm_redis.reconnect.timer_set) {
        ngx_add_timer(&ngx_http_vlm_redis.reconnect,
                      ngx_http_vlm_redis.backoff);
    }

    ngx_http_vlm_redis.backoff = ngx_min(ngx_http_vlm_redis.backoff * 2,
                                         NGX_HTTP_VLM_REDIS_BACKOFF_MAX);
}


static void
ngx_http_vlm_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0, "vlm redis reconnect");

    if (ngx_http_vlm_redis.ac == NULL) {
        ngx_http_vlm_redis_connect();
    }
}


static void
ngx_http_vlm_redis_on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "vlm: redis connect failed: %s", ac->errstr);

        /* hiredis frees the context after this returns */
        ngx_http_vlm_redis.ac = NULL;
        ngx_http_vlm_redis.connected = 0;
        ngx_http_vlm_redis_schedule();
        return;
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0, "vlm: redis connected");

    ngx_http_vlm_redis.connected = 1;
    ngx_http_vlm_redis.backoff = NGX_HTTP_VLM_REDIS_BACKOFF_MIN;
}


static void
ngx_http_vlm_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "vlm: redis disconnected: %s", ac->errstr);
    }

    ngx_http_vlm_redis.ac = NULL;
    ngx_http_vlm_redis.connected = 0;
    ngx_http_vlm_redis_schedule();
}


static void
ngx_http_vlm_redis_read(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0, "vlm redis read handler");

    redisAsyncHandleRead(c->data);
}


static void
ngx_http_vlm_redis_write(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "vlm redis write handler");

    redisAsyncHandleWrite(c->data);
}


/* level-triggered (flags 0): hiredis reads at most 16k per call */

static void
ngx_http_vlm_redis_add_read(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->read->active) {
        if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "vlm: redis add read event failed");
        }
    }
}


static void
ngx_http_vlm_redis_del_read(void *data)
{
    ngx_connection_t  *c = data;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_vlm_redis_add_write(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "vlm: redis add write event failed");
        }
    }
}


static void
ngx_http_vlm_redis_del_write(void *data)
{
    ngx_connection_t  *c = data;

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


static void
ngx_http_vlm_redis_cleanup(void *data)
{
    ngx_connection_t  *c = data;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    /* hiredis closes the fd itself; only give the connection slot back */
    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);

    if (ngx_http_vlm_redis.conn == c) {
        ngx_http_vlm_redis.conn = NULL;
    }
}
