
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_image: one image of a request into task->images, from a
 * data: URL (strict base64: the alphabet only, a length that is a multiple
 * of 4, '=' only at the end) or from the bytes of a multipart file. The
 * type and the decoded size come from the headers
 * (ngx_http_vlm_image_sniff.c); the count, the bytes and the pixels are
 * bounded; the SHA-256 of the bytes is kept for the cache key. Refusals are
 * left in ctx->error.
 * Not here: decoding pixels (vlmd does), fetching remote URLs.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_vlm_module.h"


static ngx_uint_t ngx_http_vlm_image_base64_ok(ngx_str_t *src, size_t *pad);
static ngx_uint_t ngx_http_vlm_image_prefix(u_char *p, u_char *last,
    ngx_str_t *prefix);


static ngx_str_t  ngx_http_vlm_http = ngx_string("http://");
static ngx_str_t  ngx_http_vlm_https = ngx_string("https://");
static ngx_str_t  ngx_http_vlm_data = ngx_string("data:");
static ngx_str_t  ngx_http_vlm_base64 = ngx_string(";base64");
static ngx_str_t  ngx_http_vlm_image_mime = ngx_string("image/");


ngx_int_t
ngx_http_vlm_image_add_url(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    u_char *url, size_t len, const char *param, ngx_uint_t *index)
{
    u_char                   *comma, *last;
    size_t                    pad;
    ngx_str_t                 src, data;
    ngx_http_vlm_loc_conf_t  *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);
    last = url + len;

    if (ngx_http_vlm_image_prefix(url, last, &ngx_http_vlm_http)
        || ngx_http_vlm_image_prefix(url, last, &ngx_http_vlm_https))
    {
        if (!vlcf->remote_images) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, param,
                                          "remote_images_disabled",
                                          "remote image URLs are disabled "
                                          "here; send the image as a data: "
                                          "URL");
        }

        /* vlm_ipc.h has no URL field yet: vlmd cannot fetch for us */
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, param,
                                      "remote_images_unsupported",
                                      "remote image URLs are not supported "
                                      "by this vlmd; send a data: URL");
    }

    if (len < ngx_http_vlm_data.len
        || ngx_strncasecmp(url, ngx_http_vlm_data.data, ngx_http_vlm_data.len)
           != 0)
    {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, param,
                                      "invalid_image_url",
                                      "an image must be a data: URL");
    }

    /* "data:" and ";base64" at least, then the comma */
    comma = ngx_strlchr(url, last, ',');

    if (comma == NULL
        || (size_t) (comma - url)
           < ngx_http_vlm_data.len + ngx_http_vlm_base64.len
        || ngx_strncasecmp(comma - ngx_http_vlm_base64.len,
                           ngx_http_vlm_base64.data, ngx_http_vlm_base64.len)
           != 0)
    {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, param,
                                      "invalid_image_url",
                                      "an image must be a base64 data: URL "
                                      "(data:image/png;base64,...)");
    }

    if (ngx_strncasecmp(url + ngx_http_vlm_data.len,
                        ngx_http_vlm_image_mime.data,
                        ngx_http_vlm_image_mime.len)
        != 0)
    {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                      param, "unsupported_image_type",
                                      "only image/* data URLs are accepted");
    }

    src.data = comma + 1;
    src.len = last - src.data;

    if (!ngx_http_vlm_image_base64_ok(&src, &pad)) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, param,
                                      "invalid_base64",
                                      "the image's base64 data is invalid");
    }

    if (ngx_base64_decoded_length(src.len) - pad > vlcf->max_image_bytes) {
        return ngx_http_vlm_set_error(r, ctx,
                                      NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                      param, "image_too_large",
                                      "an image is larger than %uz bytes",
                                      vlcf->max_image_bytes);
    }

    data.data = ngx_pnalloc(r->pool, ngx_base64_decoded_length(src.len));
    if (data.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_decode_base64(&data, &src) != NGX_OK) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, param,
                                      "invalid_base64",
                                      "the image's base64 data is invalid");
    }

    return ngx_http_vlm_image_add_bytes(r, ctx, &data, param, index);
}


ngx_int_t
ngx_http_vlm_image_add_bytes(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_str_t *data, const char *param, ngx_uint_t *index)
{
    ngx_int_t                 rc;
    ngx_uint_t                type, width, height;
    ngx_http_vlm_image_t     *img;
    ngx_http_vlm_loc_conf_t  *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

    if (ctx->task->images->nelts >= vlcf->max_images) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, param,
                                      "too_many_images",
                                      "more than %ui images in one request",
                                      vlcf->max_images);
    }

    if (data->len > vlcf->max_image_bytes) {
        return ngx_http_vlm_set_error(r, ctx,
                                      NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                      param, "image_too_large",
                                      "an image is larger than %uz bytes",
                                      vlcf->max_image_bytes);
    }

    rc = ngx_http_vlm_image_sniff(data->data, data->len, &type, &width,
                                  &height);

    if (rc == NGX_DECLINED) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                      param, "unsupported_image_type",
                                      "unsupported image type: send JPEG, "
                                      "PNG, WebP or GIF");
    }

    /*
     * Before validity: a size read from a header with nothing valid behind
     * it is still a pixel bomb. Divide instead of multiplying so that a
     * 100000x100000 header cannot wrap.
     */
    if (width && height && width > vlcf->max_pixels / height) {
        return ngx_http_vlm_set_error(r, ctx,
                                      NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                      param, "image_too_many_pixels",
                                      "the image is %uix%ui, more than %ui "
                                      "pixels", width, height,
                                      vlcf->max_pixels);
    }

    if (rc != NGX_OK) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, param,
                                      "invalid_image",
                                      "the image is truncated, invalid, or "
                                      "its headers disagree on its size");
    }

    img = ngx_array_push(ctx->task->images);
    if (img == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    img->data = *data;
    ngx_http_vlm_sha256(data->data, data->len, img->sha256);

    *index = ctx->task->images->nelts - 1;

    return NGX_OK;
}


/* strict base64: the alphabet, a multiple of 4, at most two '=' at the end */
static ngx_uint_t
ngx_http_vlm_image_base64_ok(ngx_str_t *src, size_t *pad)
{
    u_char  c;
    size_t  i, n;

    n = 0;

    for (i = 0; i < src->len; i++) {
        c = src->data[i];

        if (c == '=') {
            n++;
            continue;
        }

        if (n || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                   || (c >= '0' && c <= '9') || c == '+' || c == '/'))
        {
            return 0;
        }
    }

    if (src->len == 0 || src->len % 4 != 0 || n > 2) {
        return 0;
    }

    *pad = n;

    return 1;
}


/* the URL starts with the prefix (any case) and has more after it */
static ngx_uint_t
ngx_http_vlm_image_prefix(u_char *p, u_char *last, ngx_str_t *prefix)
{
    return (size_t) (last - p) > prefix->len
           && ngx_strncasecmp(p, prefix->data, prefix->len) == 0;
}
