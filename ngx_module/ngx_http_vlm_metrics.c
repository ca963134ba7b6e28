
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_metrics: counters in a shared zone (the stub_status pattern:
 * fixed arrays of ngx_atomic_t, no locks), updated from the log phase, and
 * GET /metrics in Prometheus text format 0.0.4: requests by endpoint and
 * status, cache hits/misses/bypasses, latency histograms per endpoint, then
 * vlmd's own metrics (its STATS JSON, flattened) under "vlmd_".
 * Labels are bounded: endpoint and status code only, never a user.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_vlm_module.h"


#define NGX_HTTP_VLM_STATUSES   16
#define NGX_HTTP_VLM_BUCKETS    13
#define NGX_HTTP_VLM_ZONE_SIZE  (256 * 1024)


typedef struct {
    ngx_atomic_t                requests[NGX_HTTP_VLM_API_COUNT]
                                        [NGX_HTTP_VLM_STATUSES];
    ngx_atomic_t                latency[NGX_HTTP_VLM_API_COUNT]
                                       [NGX_HTTP_VLM_BUCKETS + 1];
    ngx_atomic_t                latency_ms_sum[NGX_HTTP_VLM_API_COUNT];
    ngx_atomic_t                cache[4];   /* NGX_HTTP_VLM_CACHE_* */
} ngx_http_vlm_shctx_t;


static ngx_int_t ngx_http_vlm_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_http_vlm_status_index(ngx_uint_t status);
static ngx_http_vlm_shctx_t *ngx_http_vlm_metrics_shctx(
    ngx_http_request_t *r);
static void ngx_http_vlm_metrics_stats(ngx_http_request_t *r, void *data,
    ngx_http_vlm_ipc_event_t *ev);
static void ngx_http_vlm_metrics_send(ngx_http_request_t *r,
    ngx_str_t *vlmd_stats);
static u_char *ngx_http_vlm_flatten(u_char *p, u_char *last, json_t *v,
    u_char *name, size_t len);


static ngx_uint_t  ngx_http_vlm_statuses[NGX_HTTP_VLM_STATUSES] = {
    200, 204, 400, 401, 403, 404, 405, 413, 415, 429, 499, 500, 502, 503,
    504, 0 /* other */
};

/* upper bounds in ms; the last row counts everything slower */
static ngx_msec_t  ngx_http_vlm_buckets[NGX_HTTP_VLM_BUCKETS] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000
};

static const char  *ngx_http_vlm_api_names[NGX_HTTP_VLM_API_COUNT] = {
    "none", "chat_completions", "alt_text", "summary", "models", "health",
    "ready", "metrics"
};

static const char  *ngx_http_vlm_cache_names[4] = {
    "none", "hit", "miss", "bypass"
};


char *
ngx_http_vlm_metrics_zone(ngx_conf_t *cf, ngx_http_vlm_main_conf_t *vmcf)
{
    ngx_str_t  name;

    ngx_str_set(&name, "vlm_metrics");

    vmcf->metrics_zone = ngx_shared_memory_add(cf, &name,
                                               NGX_HTTP_VLM_ZONE_SIZE,
                                               &ngx_http_vlm_module);
    if (vmcf->metrics_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    vmcf->metrics_zone->init = ngx_http_vlm_metrics_init_zone;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_vlm_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t       *shpool;
    ngx_http_vlm_shctx_t  *sh;

    /* a reload keeps the counters */
    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_vlm_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;
    shm_zone->data = sh;

    return NGX_OK;
}


static ngx_http_vlm_shctx_t *
ngx_http_vlm_metrics_shctx(ngx_http_request_t *r)
{
    ngx_http_vlm_main_conf_t  *vmcf;

    vmcf = ngx_http_get_module_main_conf(r, ngx_http_vlm_module);

    if (vmcf == NULL || vmcf->metrics_zone == NULL) {
        return NULL;
    }

    return vmcf->metrics_zone->data;
}


static ngx_uint_t
ngx_http_vlm_status_index(ngx_uint_t status)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_VLM_STATUSES - 1; i++) {
        if (ngx_http_vlm_statuses[i] == status) {
            return i;
        }
    }

    return NGX_HTTP_VLM_STATUSES - 1;
}


void
ngx_http_vlm_metrics_request(ngx_http_request_t *r, ngx_uint_t api,
    ngx_uint_t status, ngx_msec_t ms)
{
    ngx_uint_t             b;
    ngx_http_vlm_shctx_t  *sh;

    sh = ngx_http_vlm_metrics_shctx(r);
    if (sh == NULL || api >= NGX_HTTP_VLM_API_COUNT) {
        return;
    }

    (void) ngx_atomic_fetch_add(
                       &sh->requests[api][ngx_http_vlm_status_index(status)],
                       1);

    for (b = 0; b < NGX_HTTP_VLM_BUCKETS; b++) {
        if (ms <= ngx_http_vlm_buckets[b]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&sh->latency[api][b], 1);
    (void) ngx_atomic_fetch_add(&sh->latency_ms_sum[api], ms);
}


void
ngx_http_vlm_metrics_cache(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_http_vlm_shctx_t  *sh;

    sh = ngx_http_vlm_metrics_shctx(r);
    if (sh == NULL || status > NGX_HTTP_VLM_CACHE_BYPASS) {
        return;
    }

    (void) ngx_atomic_fetch_add(&sh->cache[status], 1);
}


ngx_int_t
ngx_http_vlm_metrics_handler(ngx_http_request_t *r)
{
    ngx_str_t            none;
    ngx_http_vlm_ctx_t  *ctx;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "vlm metrics handler");

    ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);

    /* the answer may wait for vlmd's STATS; finalized in _send() */
    r->main->count++;

    if (ctx == NULL
        || ngx_http_vlm_ipc_stats(r, ngx_http_vlm_metrics_stats, ctx,
                                  &ctx->ipc)
           != NGX_OK)
    {
        ngx_str_null(&none);
        ngx_http_vlm_metrics_send(r, &none);
    }

    return NGX_DONE;
}


static void
ngx_http_vlm_metrics_stats(ngx_http_request_t *r, void *data,
    ngx_http_vlm_ipc_event_t *ev)
{
    ngx_http_vlm_ctx_t  *ctx = data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "vlm metrics: vlmd stats, %uz bytes", ev->text.len);

    ctx->ipc = NULL;

    ngx_http_vlm_metrics_send(r, &ev->text);
}


static void
ngx_http_vlm_metrics_send(ngx_http_request_t *r, ngx_str_t *vlmd_stats)
{
    u_char                *p, *last;
    size_t                 size;
    json_t                *stats;
    ngx_int_t              rc;
    ngx_buf_t             *b;
    ngx_uint_t             api, i, count;
    ngx_chain_t            out;
    json_error_t           err;
    ngx_http_vlm_shctx_t  *sh;
    u_char                 name[256];

    sh = ngx_http_vlm_metrics_shctx(r);
    if (sh == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    size = 64 * 1024 + 4 * vlmd_stats->len;

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = b->last;
    last = b->end;

    p = ngx_slprintf(p, last,
                     "# HELP vlm_http_requests_total Requests by endpoint "
                     "and status.\n"
                     "# TYPE vlm_http_requests_total counter\n");

    for (api = 1; api < NGX_HTTP_VLM_API_COUNT; api++) {
        for (i = 0; i < NGX_HTTP_VLM_STATUSES; i++) {
            if (sh->requests[api][i] == 0) {
                continue;
            }

            if (ngx_http_vlm_statuses[i]) {
                p = ngx_slprintf(p, last, "vlm_http_requests_total"
                                 "{endpoint=\"%s\",status=\"%ui\"} %uA\n",
                                 ngx_http_vlm_api_names[api],
                                 ngx_http_vlm_statuses[i],
                                 sh->requests[api][i]);
            } else {
                p = ngx_slprintf(p, last, "vlm_http_requests_total"
                                 "{endpoint=\"%s\",status=\"other\"} %uA\n",
                                 ngx_http_vlm_api_names[api],
                                 sh->requests[api][i]);
            }
        }
    }

    p = ngx_slprintf(p, last,
                     "# HELP vlm_cache_lookups_total Redis cache outcomes.\n"
                     "# TYPE vlm_cache_lookups_total counter\n");

    for (i = NGX_HTTP_VLM_CACHE_HIT; i <= NGX_HTTP_VLM_CACHE_BYPASS; i++) {
        p = ngx_slprintf(p, last,
                         "vlm_cache_lookups_total{result=\"%s\"} %uA\n",
                         ngx_http_vlm_cache_names[i], sh->cache[i]);
    }

    p = ngx_slprintf(p, last,
                     "# HELP vlm_http_request_duration_seconds Time from "
                     "request to last byte handed to nginx.\n"
                     "# TYPE vlm_http_request_duration_seconds histogram\n");

    for (api = 1; api < NGX_HTTP_VLM_API_COUNT; api++) {
        count = 0;

        for (i = 0; i <= NGX_HTTP_VLM_BUCKETS; i++) {
            count += sh->latency[api][i];
        }

        if (count == 0) {
            continue;
        }

        count = 0;

        for (i = 0; i < NGX_HTTP_VLM_BUCKETS; i++) {
            count += sh->latency[api][i];
            p = ngx_slprintf(p, last, "vlm_http_request_duration_seconds_"
                             "bucket{endpoint=\"%s\",le=\"%ui.%03ui\"} %ui\n",
                             ngx_http_vlm_api_names[api],
                             ngx_http_vlm_buckets[i] / 1000,
                             ngx_http_vlm_buckets[i] % 1000, count);
        }

        count += sh->latency[api][NGX_HTTP_VLM_BUCKETS];

        p = ngx_slprintf(p, last, "vlm_http_request_duration_seconds_bucket"
                         "{endpoint=\"%s\",le=\"+Inf\"} %ui\n"
                         "vlm_http_request_duration_seconds_sum"
                         "{endpoint=\"%s\"} %uA.%03uA\n"
                         "vlm_http_request_duration_seconds_count"
                         "{endpoint=\"%s\"} %ui\n",
                         ngx_http_vlm_api_names[api], count,
                         ngx_http_vlm_api_names[api],
                         sh->latency_ms_sum[api] / 1000,
                         sh->latency_ms_sum[api] % 1000,
                         ngx_http_vlm_api_names[api], count);
    }

    p = ngx_slprintf(p, last,
                     "# HELP vlm_vlmd_up 1 when vlmd answered STATS.\n"
                     "# TYPE vlm_vlmd_up gauge\n"
                     "vlm_vlmd_up %d\n", vlmd_stats->len ? 1 : 0);

    if (vlmd_stats->len) {
        stats = json_loadb((char *) vlmd_stats->data, vlmd_stats->len, 0,
                           &err);
        if (stats != NULL) {
            ngx_memcpy(name, "vlmd", sizeof("vlmd") - 1);
            p = ngx_http_vlm_flatten(p, last, stats, name,
                                     sizeof("vlmd") - 1);
            json_decref(stats);
        }
    }

    b->last = p;
    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    ngx_str_set(&r->headers_out.content_type, "text/plain; version=0.0.4");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    out.buf = b;
    out.next = NULL;

    ngx_http_finalize_request(r, ngx_http_output_filter(r, &out));
}


/* numbers and booleans of vlmd's STATS JSON as vlmd_<path> gauges */
static u_char *
ngx_http_vlm_flatten(u_char *p, u_char *last, json_t *v, u_char *name,
    size_t len)
{
    u_char      *q, c;
    size_t       i, klen;
    json_t      *item;
    const char  *key;

    if (json_is_object(v)) {
        json_object_foreach(v, key, item) {
            klen = ngx_strlen(key);
            if (len + 1 + klen >= 200) {
                continue;
            }

            q = name + len;
            *q++ = '_';

            for (i = 0; i < klen; i++) {
                c = key[i];
                *q++ = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                        || (c >= '0' && c <= '9')) ? c : '_';
            }

            p = ngx_http_vlm_flatten(p, last, item, name, q - name);
        }

        return p;
    }

    if (json_is_integer(v)) {
        return ngx_slprintf(p, last, "%*s %L\n", len, name,
                            (int64_t) json_integer_value(v));
    }

    if (json_is_real(v)) {
        return ngx_slprintf(p, last, "%*s %.6f\n", len, name,
                            json_real_value(v));
    }

    if (json_is_boolean(v)) {
        return ngx_slprintf(p, last, "%*s %d\n", len, name,
                            json_is_true(v) ? 1 : 0);
    }

    return p;
}
