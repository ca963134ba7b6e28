
/*
 * Copyright (C) vlm authors
 *
 * A header filter for answers nginx itself gives in a vlm_api location
 * before our handler runs: limit_req's 429, limit_conn's 503, the 413 of
 * client_max_body_size and other core errors.  They carry no CORS headers,
 * so a page on another origin saw "network error" instead of the reason,
 * and 429 / 503 no Retry-After, so it could not wait and retry.  Both are
 * added when missing; our own answers already have them.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_vlm_module.h"


static ngx_uint_t ngx_http_vlm_has_header_out(ngx_http_request_t *r,
    const char *key);
static ngx_int_t ngx_http_vlm_header_filter(ngx_http_request_t *r);


static ngx_http_output_header_filter_pt  ngx_http_vlm_next_header_filter;


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


static ngx_int_t
ngx_http_vlm_header_filter(ngx_http_request_t *r)
{
    u_char                   *p;
    ngx_str_t                 value;
    ngx_http_vlm_loc_conf_t  *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

    if (r != r->main
        || vlcf->api == NGX_HTTP_VLM_API_NONE
        || r->headers_out.status < NGX_HTTP_BAD_REQUEST)
    {
        return ngx_http_vlm_next_header_filter(r);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "vlm header filter, status %ui", r->headers_out.status);

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


ngx_int_t
ngx_http_vlm_filter_init(ngx_conf_t *cf)
{
    ngx_http_vlm_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_vlm_header_filter;

    return NGX_OK;
}
