
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_module: the types shared by the module's files (configuration,
 * per-request context, the parsed task) and the functions each file exports.
 * The shared-memory protocol with vlmd lives in model_runtime/ipc/vlm_ipc.h
 * and is only seen by ngx_http_vlm_ipc.c.
 */


#ifndef _NGX_HTTP_VLM_MODULE_H_INCLUDED_
#define _NGX_HTTP_VLM_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>


/* which API a location serves (vlm_api) */
#define NGX_HTTP_VLM_API_NONE         0
#define NGX_HTTP_VLM_API_CHAT         1
#define NGX_HTTP_VLM_API_ALT_TEXT     2
#define NGX_HTTP_VLM_API_SUMMARY      3
#define NGX_HTTP_VLM_API_MODELS       4
#define NGX_HTTP_VLM_API_HEALTH       5
#define NGX_HTTP_VLM_API_READY        6
#define NGX_HTTP_VLM_API_METRICS      7
#define NGX_HTTP_VLM_API_COUNT        8

/* task kinds sent to vlmd and mixed into the cache key */
#define NGX_HTTP_VLM_TASK_CHAT        0
#define NGX_HTTP_VLM_TASK_ALT_TEXT    1
#define NGX_HTTP_VLM_TASK_SUMMARY     2
#define NGX_HTTP_VLM_TASK_SEO         3

/* bumped whenever the alt-text / summary prompt wording changes */
#define NGX_HTTP_VLM_TEMPLATE_VERSION  1

#define NGX_HTTP_VLM_SHA256_LEN       32

/* why an answer ended (ctx->finish_reason), as vlmd reports it */
#define NGX_HTTP_VLM_FINISH_NONE      0
#define NGX_HTTP_VLM_FINISH_STOP      1
#define NGX_HTTP_VLM_FINISH_LENGTH    2
#define NGX_HTTP_VLM_FINISH_CANCELLED 3
#define NGX_HTTP_VLM_FINISH_DEADLINE  4

/* what vlmd sent (ngx_http_vlm_ipc_event_t.kind) */
#define NGX_HTTP_VLM_IPC_DELTA        1
#define NGX_HTTP_VLM_IPC_DONE         2
#define NGX_HTTP_VLM_IPC_ERROR        3
#define NGX_HTTP_VLM_IPC_STATS        4

#define NGX_HTTP_VLM_CACHE_NONE       0
#define NGX_HTTP_VLM_CACHE_HIT        1
#define NGX_HTTP_VLM_CACHE_MISS       2
#define NGX_HTTP_VLM_CACHE_BYPASS     3

/* who shares cached answers (vlm_cache_scope) */
#define NGX_HTTP_VLM_CACHE_SCOPE_SHARED   0
#define NGX_HTTP_VLM_CACHE_SCOPE_SUBJECT  1

#define NGX_HTTP_VLM_IMAGE_JPEG       1
#define NGX_HTTP_VLM_IMAGE_PNG        2
#define NGX_HTTP_VLM_IMAGE_GIF        3
#define NGX_HTTP_VLM_IMAGE_WEBP       4

#define NGX_HTTP_VLM_JWT_HS256        1
#define NGX_HTTP_VLM_JWT_RS256        2
#define NGX_HTTP_VLM_JWT_ES256        3


typedef struct {
    ngx_uint_t                  alg;        /* NGX_HTTP_VLM_JWT_* */
    ngx_str_t                   kid;        /* empty: any kid */
    ngx_str_t                   secret;     /* HS256 bytes */
    void                       *pkey;       /* EVP_PKEY * for RS/ES */
} ngx_http_vlm_jwt_key_t;


typedef struct {
    u_char                      hash[NGX_HTTP_VLM_SHA256_LEN];
    ngx_str_t                   subject;
} ngx_http_vlm_api_key_t;


/* http{}-level: one Redis, one vlmd socket, one metrics zone per worker */
typedef struct {
    ngx_str_t                   vlmd_socket;
    ngx_str_t                   redis_addr;     /* host:port or unix:path */
    ngx_msec_t                  redis_timeout;  /* ms per operation */
    time_t                      cache_ttl;      /* seconds */
    ngx_str_t                   model_name;     /* advertised model id */
    ngx_str_t                   model_revision; /* part of the cache key */
    ngx_shm_zone_t             *metrics_zone;
    ngx_shm_zone_t             *workers_zone;   /* attach state, /readyz */
} ngx_http_vlm_main_conf_t;


/* per server: what nginx's own answers and logs look like there */
typedef struct {
    ngx_flag_t                  api;            /* has vlm_api locations */
} ngx_http_vlm_srv_conf_t;


typedef struct {
    ngx_uint_t                  api;            /* NGX_HTTP_VLM_API_* */
    ngx_flag_t                  auth;
    ngx_uint_t                  auth_log_level; /* NGX_LOG_* */
    ngx_array_t                *jwt_keys;       /* ngx_http_vlm_jwt_key_t */
    ngx_str_t                   jwt_issuer;
    ngx_str_t                   jwt_audience;
    time_t                      jwt_leeway;     /* seconds */
    ngx_array_t                *api_keys;       /* ngx_http_vlm_api_key_t */
    ngx_flag_t                  cache;
    ngx_uint_t                  cache_scope;    /* NGX_HTTP_VLM_CACHE_SCOPE_* */
    ngx_uint_t                  max_images;
    size_t                      max_image_bytes;    /* decoded bytes */
    ngx_uint_t                  max_pixels;         /* width * height */
    size_t                      max_prompt_bytes;   /* all text, bytes */
    ngx_uint_t                  max_tokens;
    ngx_uint_t                  default_max_tokens; /* when not asked */
    ngx_uint_t                  max_json_depth;
    ngx_uint_t                  max_json_values;    /* per body */
    ngx_array_t                *cors_origins;   /* ngx_str_t */
    ngx_flag_t                  remote_images;
    ngx_msec_t                  request_timeout;    /* ms, whole answer */
    ngx_uint_t                  retry_after;        /* seconds */
} ngx_http_vlm_loc_conf_t;


typedef struct {
    ngx_str_t                   data;           /* decoded bytes */
    u_char                      sha256[NGX_HTTP_VLM_SHA256_LEN];
} ngx_http_vlm_image_t;


typedef struct {
    ngx_uint_t                  status;         /* NGX_HTTP_* */
    const char                 *type;           /* OpenAI error type */
    const char                 *param;          /* NULL or the field */
    const char                 *code;           /* NULL or a short code */
    u_char                     *message;        /* NUL-terminated */
} ngx_http_vlm_error_t;


/* limits in, and the refusal out, of ngx_http_vlm_json_parse() */
typedef struct {
    ngx_uint_t                  max_depth;
    ngx_uint_t                  max_values;
    const char                 *code;       /* error code; NULL: no memory */
    const char                 *reason;     /* never quotes the body */
    size_t                      offset;     /* bytes into the body */
    ngx_uint_t                  values;     /* parsed, or up to the error */
} ngx_http_vlm_json_t;


/*
 * a validated request: "body" is the JSON sent to vlmd (vlm_ipc.h) without
 * its "images" member, which needs arena offsets known only at submit time;
 * serialised with sorted keys it is also the canonical form the cache key
 * hashes, next to each image's SHA-256.
 */
typedef struct {
    ngx_uint_t                  kind;           /* NGX_HTTP_VLM_TASK_* */
    ngx_str_t                   model;
    ngx_str_t                   language;
    json_t                     *body;
    ngx_array_t                *images;         /* ngx_http_vlm_image_t */
    size_t                      prompt_bytes;   /* all text, bytes */
    uint64_t                    client;         /* whose: vlmd's fairness
                                                   key, 0: unknown */
    ngx_uint_t                  json_values;    /* in the body */
    size_t                      body_bytes;     /* the body as read */

    unsigned                    stream:1;
    unsigned                    include_usage:1;
    unsigned                    logprobs:1;
    unsigned                    deterministic:1;
} ngx_http_vlm_task_t;


/* a Redis GET in flight (ngx_http_vlm_cache.c) */
typedef struct ngx_http_vlm_cache_op_s  ngx_http_vlm_cache_op_t;

/*
 * A GET's outcome, called once with the request's log set: NGX_OK and the
 * stored record, NGX_DECLINED for a miss, NGX_ERROR for a Redis error, a
 * timeout or a lost connection. The op is freed afterwards: forget it.
 */
typedef void (*ngx_http_vlm_cache_handler_pt)(ngx_http_request_t *r,
    void *data, ngx_int_t rc, ngx_str_t *value);


/* a request to vlmd in flight (ngx_http_vlm_ipc.c) */
typedef struct ngx_http_vlm_ipc_req_s  ngx_http_vlm_ipc_req_t;

/*
 * What vlmd sent for one request; the bytes are valid during the handler
 * call only. text: DELTA the new text; DONE a task's post-processed answer
 * (empty for chat, whose answer is the deltas); ERROR the message; STATS
 * vlmd's JSON, empty when vlmd failed or did not answer in time.
 */
typedef struct {
    ngx_uint_t                  kind;           /* NGX_HTTP_VLM_IPC_* */
    ngx_str_t                   text;
    json_t                     *logprobs;       /* DELTA: entries or NULL */
    ngx_uint_t                  status;         /* ERROR: HTTP status */
    ngx_uint_t                  prompt_tokens;      /* DONE */
    ngx_uint_t                  completion_tokens;  /* DONE */
    ngx_uint_t                  finish_reason;      /* DONE */
    ngx_str_t                   language;       /* DONE: tasks, or empty */
    unsigned                    final:1;        /* the last event */
} ngx_http_vlm_ipc_event_t;

/* called with the request's log set; after a final event, forget the req */
typedef void (*ngx_http_vlm_ipc_handler_pt)(ngx_http_request_t *r,
    void *data, ngx_http_vlm_ipc_event_t *ev);


/* per request; lives in r->pool */
typedef struct {
    ngx_int_t                   auth_rc;        /* NGX_OK / NGX_HTTP_* */
    ngx_str_t                   auth_error;
    ngx_str_t                   subject;

    ngx_http_vlm_task_t        *task;
    ngx_http_vlm_error_t        error;          /* set when parsing fails */
    ngx_str_t                   cache_key;      /* hex, "vlm:v1:..." */
    ngx_uint_t                  cache_status;   /* NGX_HTTP_VLM_CACHE_* */
    ngx_http_vlm_cache_op_t    *cache_op;       /* a GET in flight */
    ngx_str_t                   core_error;     /* JSON for nginx's page */

    ngx_http_vlm_ipc_req_t     *ipc;            /* vlmd working for us */

    ngx_str_t                   id;             /* chatcmpl-... */
    time_t                      created;
    ngx_buf_t                  *text;           /* accumulated answer */
    json_t                     *logprobs;       /* chat logprobs.content */
    ngx_uint_t                  finish_reason;  /* NGX_HTTP_VLM_FINISH_* */
    ngx_uint_t                  prompt_tokens;
    ngx_uint_t                  completion_tokens;
    ngx_msec_t                  start;          /* ngx_current_msec */

    unsigned                    auth_done:1;
    unsigned                    body_done:1;
    unsigned                    headers_sent:1;
    unsigned                    finalized:1;
    unsigned                    waiting:1;
    unsigned                    counted:1;
} ngx_http_vlm_ctx_t;


extern ngx_module_t  ngx_http_vlm_module;


/* ngx_http_vlm_request.c */
ngx_int_t ngx_http_vlm_handler(ngx_http_request_t *r);
ngx_http_vlm_ctx_t *ngx_http_vlm_get_ctx(ngx_http_request_t *r);
ngx_int_t ngx_http_vlm_log_handler(ngx_http_request_t *r);

/* ngx_http_vlm_auth.c */
ngx_int_t ngx_http_vlm_authenticate(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx);
char *ngx_http_vlm_load_api_keys(ngx_conf_t *cf, ngx_str_t *file,
    ngx_array_t *keys);

/* ngx_http_vlm_jwt.c */
ngx_int_t ngx_http_vlm_jwt_verify(ngx_http_request_t *r,
    ngx_http_vlm_loc_conf_t *vlcf, ngx_str_t *token, ngx_str_t *subject,
    ngx_str_t *error);
char *ngx_http_vlm_jwt_load_key(ngx_conf_t *cf, ngx_http_vlm_jwt_key_t *key,
    ngx_str_t *file);

/* ngx_http_vlm_body.c */
ngx_int_t ngx_http_vlm_parse_body(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx);

/* ngx_http_vlm_json.c */
json_t *ngx_http_vlm_json_parse(u_char *data, size_t len,
    ngx_http_vlm_json_t *jp);

/* ngx_http_vlm_schema.c */
ngx_int_t ngx_http_vlm_schema_parse(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, json_t *in);

/* ngx_http_vlm_image.c */
ngx_int_t ngx_http_vlm_image_add_url(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, u_char *url, size_t len, const char *param,
    ngx_uint_t *index);
ngx_int_t ngx_http_vlm_image_add_bytes(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_str_t *data, const char *param,
    ngx_uint_t *index);

/* ngx_http_vlm_image_sniff.c */
ngx_int_t ngx_http_vlm_image_sniff(u_char *p, size_t len,
    ngx_uint_t *type, ngx_uint_t *width, ngx_uint_t *height);
const char *ngx_http_vlm_image_type_name(ngx_uint_t type);

/* ngx_http_vlm_cache.c */
ngx_int_t ngx_http_vlm_cache_key(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_str_t *revision);
ngx_http_vlm_cache_op_t *ngx_http_vlm_cache_get(ngx_http_request_t *r,
    ngx_str_t *key, ngx_http_vlm_cache_handler_pt handler, void *data);
void ngx_http_vlm_cache_store(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx);
ngx_int_t ngx_http_vlm_cache_read(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_str_t *value);
void ngx_http_vlm_cache_cancel(ngx_http_vlm_cache_op_t *op);
ngx_int_t ngx_http_vlm_redis_init(ngx_cycle_t *cycle);
void ngx_http_vlm_redis_exit(ngx_cycle_t *cycle);

/* ngx_http_vlm_ipc.c */
char *ngx_http_vlm_ipc_zone(ngx_conf_t *cf, ngx_http_vlm_main_conf_t *vmcf);
ngx_int_t ngx_http_vlm_ipc_init(ngx_cycle_t *cycle);
void ngx_http_vlm_ipc_exit(ngx_cycle_t *cycle);
ngx_int_t ngx_http_vlm_ipc_ready(void);
ngx_int_t ngx_http_vlm_ipc_ready_all(ngx_uint_t *ready, ngx_uint_t *total);
ngx_int_t ngx_http_vlm_ipc_submit(ngx_http_request_t *r,
    ngx_http_vlm_task_t *task, ngx_http_vlm_ipc_handler_pt handler,
    void *data, ngx_http_vlm_ipc_req_t **reqp);
void ngx_http_vlm_ipc_cancel(ngx_http_vlm_ipc_req_t *req);
ngx_int_t ngx_http_vlm_ipc_stats(ngx_http_request_t *r,
    ngx_http_vlm_ipc_handler_pt handler, void *data,
    ngx_http_vlm_ipc_req_t **reqp);

/* ngx_http_vlm_response.c */
ngx_int_t ngx_http_vlm_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, const char *param, const char *code,
    const char *fmt, ...);
ngx_int_t ngx_http_vlm_error_body(ngx_http_request_t *r, const char *message,
    const char *type, const char *param, const char *code, ngx_str_t *out);
ngx_int_t ngx_http_vlm_send_status_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *message);
ngx_int_t ngx_http_vlm_send_json(ngx_http_request_t *r, ngx_uint_t status,
    json_t *obj);
ngx_int_t ngx_http_vlm_stream_start(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx);
ngx_int_t ngx_http_vlm_stream_delta(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, u_char *text, size_t len);
ngx_int_t ngx_http_vlm_stream_end(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx);
ngx_int_t ngx_http_vlm_stream_error(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_uint_t status, ngx_str_t *message);
ngx_int_t ngx_http_vlm_send_answer(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx);
ngx_int_t ngx_http_vlm_answer_json(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_str_t *out);
ngx_int_t ngx_http_vlm_add_cors(ngx_http_request_t *r);
ngx_int_t ngx_http_vlm_set_header(ngx_http_request_t *r, char *key,
    ngx_str_t *value);

/* ngx_http_vlm_util.c */
void ngx_http_vlm_sha256(u_char *data, size_t len, u_char *out);
ngx_int_t ngx_http_vlm_set_error(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_uint_t status, const char *param,
    const char *code, const char *fmt, ...);
ngx_uint_t ngx_http_vlm_has_content_type(ngx_http_request_t *r,
    ngx_str_t *type);
ngx_str_t *ngx_http_vlm_finish_name(ngx_uint_t reason);
ngx_uint_t ngx_http_vlm_finish_code(u_char *name, size_t len);

/* ngx_http_vlm_filter.c */
ngx_int_t ngx_http_vlm_filter_init(ngx_conf_t *cf);

/* ngx_http_vlm_metrics.c */
char *ngx_http_vlm_metrics_zone(ngx_conf_t *cf,
    ngx_http_vlm_main_conf_t *vmcf);
void ngx_http_vlm_metrics_request(ngx_http_request_t *r, ngx_uint_t api,
    ngx_uint_t status, ngx_msec_t ms);
void ngx_http_vlm_metrics_cache(ngx_http_request_t *r, ngx_uint_t status);
ngx_int_t ngx_http_vlm_metrics_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_VLM_MODULE_H_INCLUDED_ */
