/*
 * ngx_harness.h: a request, a pool and the configuration the module's
 * parsers read, for the fuzz_ngx_* libFuzzer targets (ngx_harness.c has
 * our own stand-ins for the nginx core calls they make).
 */

#ifndef _NGX_HARNESS_H_INCLUDED_
#define _NGX_HARNESS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_vlm_module.h"


/* r->pool = pool; main and loc conf of ngx_http_vlm_module point at these */
ngx_http_request_t *ngx_harness_request(ngx_pool_t *pool,
    ngx_http_vlm_main_conf_t *vmcf, ngx_http_vlm_loc_conf_t *vlcf);

/*
 * r->request_body->bufs: the body in two in-memory buffers cut at split;
 * with an even split the second has room for the first part after its
 * data, as nginx leaves it for request_body_in_single_buf
 */
void ngx_harness_set_body(ngx_http_request_t *r, const u_char *data,
    size_t len, size_t split);

void ngx_harness_set_content_type(ngx_http_request_t *r, const u_char *data,
    size_t len);

/* what ngx_time() returns */
void ngx_harness_set_time(time_t now);


#endif /* _NGX_HARNESS_H_INCLUDED_ */
