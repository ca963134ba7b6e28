
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_module: directives, configuration and variables only.
 * The request flow is in ngx_http_vlm_request.c; each concern (auth, body,
 * cache, vlmd, response, metrics) has its own file.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_vlm_module.h"
#if (__GLIBC__)
#include <malloc.h>
#endif


/*
 * Allocations this large get their own mapping, returned to the system on
 * free. glibc would otherwise raise the threshold to the largest block
 * freed (up to 32 MB), and the next request bodies of that size would stay
 * in the heap after the request.
 */
#define NGX_HTTP_VLM_MMAP_THRESHOLD  (256 * 1024)


static ngx_int_t ngx_http_vlm_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_vlm_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_vlm_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static void *ngx_http_vlm_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_vlm_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_vlm_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_vlm_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_vlm_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_vlm_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_vlm_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_vlm_api_keys(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_vlm_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_vlm_init_process(ngx_cycle_t *cycle);
static void ngx_http_vlm_exit_process(ngx_cycle_t *cycle);


#define NGX_HTTP_VLM_VAR_SUBJECT            0
#define NGX_HTTP_VLM_VAR_CACHE_STATUS       1
#define NGX_HTTP_VLM_VAR_MODEL              2
#define NGX_HTTP_VLM_VAR_PROMPT_TOKENS      3
#define NGX_HTTP_VLM_VAR_COMPLETION_TOKENS  4


static ngx_conf_enum_t  ngx_http_vlm_auth_values[] = {
    { ngx_string("off"), 0 },
    { ngx_string("on"), 1 },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_vlm_cache_scopes[] = {
    { ngx_string("shared"), NGX_HTTP_VLM_CACHE_SCOPE_SHARED },
    { ngx_string("subject"), NGX_HTTP_VLM_CACHE_SCOPE_SUBJECT },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_vlm_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_http_vlm_positive_bounds = {
    ngx_conf_check_num_bounds, 1, 1000000000
};


/* the JSON parser recurses once per level */
static ngx_conf_num_bounds_t  ngx_http_vlm_depth_bounds = {
    ngx_conf_check_num_bounds, 1, 1024
};


static ngx_command_t  ngx_http_vlm_commands[] = {

    { ngx_string("vlm_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_vlm_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("vlm_daemon"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_vlm_main_conf_t, vlmd_socket),
      NULL },

    { ngx_string("vlm_model"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_vlm_main_conf_t, model_name),
      NULL },

    { ngx_string("vlm_model_revision"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_vlm_main_conf_t, model_revision),
      NULL },

    { ngx_string("vlm_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_vlm_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("vlm_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_vlm_main_conf_t, cache_ttl),
      NULL },

    { ngx_string("vlm_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, cache),
      NULL },

    { ngx_string("vlm_cache_scope"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, cache_scope),
      &ngx_http_vlm_cache_scopes },

    { ngx_string("vlm_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, auth),
      &ngx_http_vlm_auth_values },

    { ngx_string("vlm_auth_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, auth_log_level),
      &ngx_http_vlm_log_levels },

    { ngx_string("vlm_jwt_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_vlm_jwt_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("vlm_jwt_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, jwt_issuer),
      NULL },

    { ngx_string("vlm_jwt_audience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, jwt_audience),
      NULL },

    { ngx_string("vlm_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, jwt_leeway),
      NULL },

    { ngx_string("vlm_api_keys"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_vlm_api_keys,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("vlm_max_images"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, max_images),
      &ngx_http_vlm_positive_bounds },

    { ngx_string("vlm_max_image_bytes"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, max_image_bytes),
      NULL },

    { ngx_string("vlm_max_pixels"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, max_pixels),
      &ngx_http_vlm_positive_bounds },

    { ngx_string("vlm_max_prompt_bytes"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, max_prompt_bytes),
      NULL },

    { ngx_string("vlm_max_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, max_tokens),
      &ngx_http_vlm_positive_bounds },

    { ngx_string("vlm_default_max_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, default_max_tokens),
      &ngx_http_vlm_positive_bounds },

    { ngx_string("vlm_max_json_depth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, max_json_depth),
      &ngx_http_vlm_depth_bounds },

    { ngx_string("vlm_max_json_values"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, max_json_values),
      &ngx_http_vlm_positive_bounds },

    { ngx_string("vlm_cors_origin"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_array_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, cors_origins),
      NULL },

    { ngx_string("vlm_remote_images"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, remote_images),
      NULL },

    { ngx_string("vlm_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, request_timeout),
      NULL },

    { ngx_string("vlm_retry_after"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_vlm_loc_conf_t, retry_after),
      &ngx_http_vlm_positive_bounds },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_vlm_module_ctx = {
    ngx_http_vlm_add_variables,            /* preconfiguration */
    ngx_http_vlm_init,                     /* postconfiguration */

    ngx_http_vlm_create_main_conf,         /* create main configuration */
    ngx_http_vlm_init_main_conf,           /* init main configuration */

    ngx_http_vlm_create_srv_conf,          /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_vlm_create_loc_conf,          /* create location configuration */
    ngx_http_vlm_merge_loc_conf            /* merge location configuration */
};


ngx_module_t  ngx_http_vlm_module = {
    NGX_MODULE_V1,
    &ngx_http_vlm_module_ctx,              /* module context */
    ngx_http_vlm_commands,                 /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_vlm_init_process,             /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_vlm_exit_process,             /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_vlm_vars[] = {

    { ngx_string("vlm_subject"), NULL, ngx_http_vlm_variable,
      NGX_HTTP_VLM_VAR_SUBJECT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("vlm_cache_status"), NULL, ngx_http_vlm_variable,
      NGX_HTTP_VLM_VAR_CACHE_STATUS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("vlm_model"), NULL, ngx_http_vlm_variable,
      NGX_HTTP_VLM_VAR_MODEL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("vlm_prompt_tokens"), NULL, ngx_http_vlm_variable,
      NGX_HTTP_VLM_VAR_PROMPT_TOKENS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("vlm_completion_tokens"), NULL, ngx_http_vlm_variable,
      NGX_HTTP_VLM_VAR_COMPLETION_TOKENS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_vlm_cache_status_names[] = {
    ngx_null_string,
    ngx_string("HIT"),
    ngx_string("MISS"),
    ngx_string("BYPASS")
};


static ngx_int_t
ngx_http_vlm_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_vlm_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                  *p;
    ngx_str_t               *s;
    ngx_http_vlm_ctx_t      *ctx;
    ngx_http_vlm_loc_conf_t *vlcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_vlm_module);
    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

    if (data == NGX_HTTP_VLM_VAR_SUBJECT && ctx == NULL
        && vlcf->api != NGX_HTTP_VLM_API_NONE)
    {
        /*
         * limit_req runs in PREACCESS, before our content handler: verify
         * the credentials lazily here so the subject is already known.
         */
        ctx = ngx_http_vlm_get_ctx(r);
        if (ctx == NULL) {
            return NGX_ERROR;
        }
    }

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = NULL;
    p = NULL;

    switch (data) {

    case NGX_HTTP_VLM_VAR_SUBJECT:
        if (!ctx->auth_done && vlcf->auth
            && vlcf->api != NGX_HTTP_VLM_API_NONE)
        {
            (void) ngx_http_vlm_authenticate(r, ctx);
        }
        s = &ctx->subject;
        break;

    case NGX_HTTP_VLM_VAR_CACHE_STATUS:
        s = &ngx_http_vlm_cache_status_names[ctx->cache_status];
        break;

    case NGX_HTTP_VLM_VAR_MODEL:
        s = ctx->task ? &ctx->task->model : NULL;
        break;

    case NGX_HTTP_VLM_VAR_PROMPT_TOKENS:
    case NGX_HTTP_VLM_VAR_COMPLETION_TOKENS:
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->len = ngx_sprintf(p, "%ui",
                             data == NGX_HTTP_VLM_VAR_PROMPT_TOKENS
                             ? ctx->prompt_tokens : ctx->completion_tokens)
                 - p;
        v->data = p;
        v->valid = 1;
        v->no_cacheable = 1;
        v->not_found = 0;
        return NGX_OK;
    }

    if (s == NULL || s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->data = s->data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /* metrics are counted once per request, whatever ended it */
    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_vlm_log_handler;

    return ngx_http_vlm_filter_init(cf);
}


static void *
ngx_http_vlm_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_vlm_main_conf_t  *vmcf;

    vmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_vlm_main_conf_t));
    if (vmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     vmcf->vlmd_socket = { 0, NULL };
     *     vmcf->redis_addr = { 0, NULL };
     *     vmcf->model_name = { 0, NULL };
     *     vmcf->model_revision = { 0, NULL };
     *     vmcf->metrics_zone = NULL;
     */

    vmcf->redis_timeout = NGX_CONF_UNSET_MSEC;
    vmcf->cache_ttl = NGX_CONF_UNSET;

    return vmcf;
}


static char *
ngx_http_vlm_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_vlm_main_conf_t *vmcf = conf;

    ngx_conf_init_msec_value(vmcf->redis_timeout, 100);
    ngx_conf_init_value(vmcf->cache_ttl, 86400);

    if (vmcf->model_name.len == 0) {
        ngx_str_set(&vmcf->model_name, "glm-4.6v-flash");
    }

    if (vmcf->model_revision.len == 0) {
        ngx_str_set(&vmcf->model_revision, "unversioned");
    }

    if (vmcf->vlmd_socket.len == 0) {
        ngx_str_set(&vmcf->vlmd_socket, "/run/vlmd/vlmd.sock");
    }

    if (ngx_http_vlm_ipc_zone(cf, vmcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_vlm_metrics_zone(cf, vmcf);
}


static void *
ngx_http_vlm_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_vlm_srv_conf_t  *vscf;

    vscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_vlm_srv_conf_t));
    if (vscf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     vscf->api = 0;    set by vlm_api in one of the server's locations
     */

    return vscf;
}


static void *
ngx_http_vlm_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_vlm_loc_conf_t  *vlcf;

    vlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_vlm_loc_conf_t));
    if (vlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     vlcf->api = NGX_HTTP_VLM_API_NONE;
     *     vlcf->jwt_issuer = { 0, NULL };
     *     vlcf->jwt_audience = { 0, NULL };
     */

    vlcf->auth = NGX_CONF_UNSET;
    vlcf->auth_log_level = NGX_CONF_UNSET_UINT;
    vlcf->jwt_keys = NGX_CONF_UNSET_PTR;
    vlcf->jwt_leeway = NGX_CONF_UNSET;
    vlcf->api_keys = NGX_CONF_UNSET_PTR;
    vlcf->cache = NGX_CONF_UNSET;
    vlcf->cache_scope = NGX_CONF_UNSET_UINT;
    vlcf->max_images = NGX_CONF_UNSET_UINT;
    vlcf->max_image_bytes = NGX_CONF_UNSET_SIZE;
    vlcf->max_pixels = NGX_CONF_UNSET_UINT;
    vlcf->max_prompt_bytes = NGX_CONF_UNSET_SIZE;
    vlcf->max_tokens = NGX_CONF_UNSET_UINT;
    vlcf->default_max_tokens = NGX_CONF_UNSET_UINT;
    vlcf->max_json_depth = NGX_CONF_UNSET_UINT;
    vlcf->max_json_values = NGX_CONF_UNSET_UINT;
    vlcf->cors_origins = NGX_CONF_UNSET_PTR;
    vlcf->remote_images = NGX_CONF_UNSET;
    vlcf->request_timeout = NGX_CONF_UNSET_MSEC;
    vlcf->retry_after = NGX_CONF_UNSET_UINT;

    return vlcf;
}


static char *
ngx_http_vlm_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_vlm_loc_conf_t *prev = parent;
    ngx_http_vlm_loc_conf_t *conf = child;

    ngx_flag_t  needs_auth;

    needs_auth = (conf->api == NGX_HTTP_VLM_API_CHAT
                  || conf->api == NGX_HTTP_VLM_API_ALT_TEXT
                  || conf->api == NGX_HTTP_VLM_API_SUMMARY
                  || conf->api == NGX_HTTP_VLM_API_MODELS);

    ngx_conf_merge_value(conf->auth, prev->auth, 1);
    ngx_conf_merge_uint_value(conf->auth_log_level, prev->auth_log_level,
                              NGX_LOG_ERR);

    ngx_conf_merge_ptr_value(conf->jwt_keys, prev->jwt_keys, NULL);
    ngx_conf_merge_str_value(conf->jwt_issuer, prev->jwt_issuer, "");
    ngx_conf_merge_str_value(conf->jwt_audience, prev->jwt_audience, "");
    ngx_conf_merge_value(conf->jwt_leeway, prev->jwt_leeway, 30);
    ngx_conf_merge_ptr_value(conf->api_keys, prev->api_keys, NULL);
    ngx_conf_merge_value(conf->cache, prev->cache, 1);
    ngx_conf_merge_uint_value(conf->cache_scope, prev->cache_scope,
                              NGX_HTTP_VLM_CACHE_SCOPE_SHARED);
    ngx_conf_merge_uint_value(conf->max_images, prev->max_images, 8);
    ngx_conf_merge_size_value(conf->max_image_bytes, prev->max_image_bytes,
                              10 * 1024 * 1024);
    ngx_conf_merge_uint_value(conf->max_pixels, prev->max_pixels,
                              4096 * 4096);
    ngx_conf_merge_size_value(conf->max_prompt_bytes, prev->max_prompt_bytes,
                              64 * 1024);
    ngx_conf_merge_uint_value(conf->max_tokens, prev->max_tokens, 2048);
    ngx_conf_merge_uint_value(conf->default_max_tokens,
                              prev->default_max_tokens, 512);
    ngx_conf_merge_uint_value(conf->max_json_depth, prev->max_json_depth, 16);
    ngx_conf_merge_uint_value(conf->max_json_values, prev->max_json_values,
                              65536);
    ngx_conf_merge_ptr_value(conf->cors_origins, prev->cors_origins, NULL);
    ngx_conf_merge_value(conf->remote_images, prev->remote_images, 0);
    ngx_conf_merge_msec_value(conf->request_timeout, prev->request_timeout,
                              300000);
    ngx_conf_merge_uint_value(conf->retry_after, prev->retry_after, 1);

    /* a location may lower vlm_max_tokens below the inherited default */
    if (conf->default_max_tokens > conf->max_tokens) {
        conf->default_max_tokens = conf->max_tokens;
    }

    /* health, ready and metrics are protected with allow/deny instead */
    if (!needs_auth) {
        return NGX_CONF_OK;
    }

    if (conf->auth && conf->jwt_keys == NULL && conf->api_keys == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "vlm_api needs credentials: add \"vlm_jwt_key\" "
                           "or \"vlm_api_keys\", or say \"vlm_auth off\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_vlm_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_vlm_loc_conf_t *vlcf = conf;

    ngx_str_t                 *value;
    ngx_uint_t                 i;
    ngx_http_vlm_srv_conf_t   *vscf;
    ngx_http_core_loc_conf_t  *clcf;

    static ngx_str_t  names[] = {
        ngx_null_string,
        ngx_string("chat_completions"),
        ngx_string("alt_text"),
        ngx_string("summary"),
        ngx_string("models"),
        ngx_string("health"),
        ngx_string("ready"),
        ngx_string("metrics")
    };

    if (vlcf->api != NGX_HTTP_VLM_API_NONE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < NGX_HTTP_VLM_API_COUNT; i++) {
        if (value[1].len == names[i].len
            && ngx_strncmp(value[1].data, names[i].data, names[i].len) == 0)
        {
            vlcf->api = i;
            break;
        }
    }

    if (vlcf->api == NGX_HTTP_VLM_API_NONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid vlm_api \"%V\", expected chat_completions, "
                           "alt_text, summary, models, health, ready or "
                           "metrics", &value[1]);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_vlm_handler;

    /* nginx's own errors in this server are answered as the API's */
    vscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_vlm_module);
    vscf->api = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_vlm_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_vlm_loc_conf_t *vlcf = conf;

    ngx_str_t               *value, file;
    ngx_uint_t               i;
    ngx_http_vlm_jwt_key_t  *key;

    if (vlcf->jwt_keys == NGX_CONF_UNSET_PTR) {
        vlcf->jwt_keys = ngx_array_create(cf->pool, 2,
                                          sizeof(ngx_http_vlm_jwt_key_t));
        if (vlcf->jwt_keys == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    key = ngx_array_push(vlcf->jwt_keys);
    if (key == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(key, sizeof(ngx_http_vlm_jwt_key_t));
    ngx_str_null(&file);

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "alg=HS256") == 0) {
            key->alg = NGX_HTTP_VLM_JWT_HS256;
            continue;
        }

        if (ngx_strcmp(value[i].data, "alg=RS256") == 0) {
            key->alg = NGX_HTTP_VLM_JWT_RS256;
            continue;
        }

        if (ngx_strcmp(value[i].data, "alg=ES256") == 0) {
            key->alg = NGX_HTTP_VLM_JWT_ES256;
            continue;
        }

        if (ngx_strncmp(value[i].data, "file=", sizeof("file=") - 1) == 0) {
            file.data = value[i].data + sizeof("file=") - 1;
            file.len = value[i].len - (sizeof("file=") - 1);
            continue;
        }

        if (ngx_strncmp(value[i].data, "kid=", sizeof("kid=") - 1) == 0) {
            key->kid.data = value[i].data + sizeof("kid=") - 1;
            key->kid.len = value[i].len - (sizeof("kid=") - 1);
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (key->alg == 0 || file.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "vlm_jwt_key needs alg=HS256|RS256|ES256 "
                           "and file=");
        return NGX_CONF_ERROR;
    }

    return ngx_http_vlm_jwt_load_key(cf, key, &file);
}


static char *
ngx_http_vlm_api_keys(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_vlm_loc_conf_t *vlcf = conf;

    ngx_str_t  *value;

    if (vlcf->api_keys != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    vlcf->api_keys = ngx_array_create(cf->pool, 8,
                                      sizeof(ngx_http_vlm_api_key_t));
    if (vlcf->api_keys == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    return ngx_http_vlm_load_api_keys(cf, &value[1], vlcf->api_keys);
}


static char *
ngx_http_vlm_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_vlm_main_conf_t *vmcf = conf;

    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (vmcf->redis_addr.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    vmcf->redis_addr = value[1];

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "timeout=", sizeof("timeout=") - 1)
            == 0)
        {
            s.data = value[i].data + sizeof("timeout=") - 1;
            s.len = value[i].len - (sizeof("timeout=") - 1);

            vmcf->redis_timeout = ngx_parse_time(&s, 0);
            if (vmcf->redis_timeout == (ngx_msec_t) NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid timeout \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_vlm_init_process(ngx_cycle_t *cycle)
{
    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (ngx_http_cycle_get_module_main_conf(cycle, ngx_http_vlm_module)
        == NULL)
    {
        return NGX_OK;
    }

#if (__GLIBC__)
    (void) mallopt(M_MMAP_THRESHOLD, NGX_HTTP_VLM_MMAP_THRESHOLD);
#endif

    /* neither is fatal: a missing Redis or vlmd is retried on a timer */
    (void) ngx_http_vlm_redis_init(cycle);
    (void) ngx_http_vlm_ipc_init(cycle);

    return NGX_OK;
}


static void
ngx_http_vlm_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_vlm_redis_exit(cycle);
    ngx_http_vlm_ipc_exit(cycle);
}
