
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_body: the request body, from memory or the temp file, as one
 * buffer, then one JSON object: parsed within the location's limits
 * (ngx_http_vlm_json.c), or built from multipart/form-data (alt text),
 * whose files become images. The object is then checked against the
 * endpoint's schema (ngx_http_vlm_schema.c). Errors are left in ctx->error
 * in OpenAI's shape for the caller to send; they never quote the body.
 * Not here: sending anything; what each endpoint accepts.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_vlm_module.h"
#if (__GLIBC__)
#include <malloc.h>
#endif


/*
 * A tree this large, or a body this large (its strings: one long string or
 * an image's data URL), leaves enough free heap to be worth returning.
 */
#define NGX_HTTP_VLM_TRIM_VALUES       8192
#define NGX_HTTP_VLM_TRIM_BYTES        (4 * 1024 * 1024)

#define NGX_HTTP_VLM_MAX_PARTS         16
#define NGX_HTTP_VLM_MAX_BOUNDARY      70      /* RFC 2046 */
#define NGX_HTTP_VLM_MAX_PART_HEADERS  1024    /* bytes per part */


typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   value;
    unsigned                    file:1;     /* it had a filename */
} ngx_http_vlm_part_t;


static ngx_int_t ngx_http_vlm_json_cleanup_add(ngx_pool_t *pool,
    json_t *json);
static void ngx_http_vlm_json_cleanup(void *data);
static void ngx_http_vlm_trim_cleanup(void *data);
static ngx_int_t ngx_http_vlm_read_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_vlm_join_in_place(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_vlm_parse_json(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_str_t *body, json_t **in);
static void ngx_http_vlm_release_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_vlm_parse_multipart(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_str_t *body, json_t *in);
static ngx_int_t ngx_http_vlm_split_multipart(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_str_t *body, ngx_http_vlm_part_t *parts,
    ngx_uint_t *nparts);
static ngx_int_t ngx_http_vlm_form_field(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_part_t *part, json_t *in);


static ngx_str_t  ngx_http_vlm_multipart = ngx_string("multipart/form-data");
static ngx_str_t  ngx_http_vlm_boundary = ngx_string("boundary=");
static ngx_str_t  ngx_http_vlm_delimiter = ngx_string(CRLF "--");
static ngx_str_t  ngx_http_vlm_headers_end = ngx_string(CRLF CRLF);
static ngx_str_t  ngx_http_vlm_name = ngx_string("name=\"");
static ngx_str_t  ngx_http_vlm_space_name = ngx_string(" name=\"");
static ngx_str_t  ngx_http_vlm_semi_name = ngx_string(";name=\"");
static ngx_str_t  ngx_http_vlm_filename = ngx_string("filename=\"");

/* the alt-text form: its image, text fields, and one number */
static ngx_str_t  ngx_http_vlm_form_image = ngx_string("image");
static ngx_str_t  ngx_http_vlm_form_number = ngx_string("max_length");
static ngx_str_t  ngx_http_vlm_form_text[] = {
    ngx_string("language"),
    ngx_string("title"),
    ngx_string("context"),
    ngx_null_string
};


ngx_int_t
ngx_http_vlm_parse_body(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx)
{
    json_t                    *in;
    ngx_int_t                  rc;
    ngx_str_t                  body;
    ngx_uint_t                 multipart;
    ngx_pool_cleanup_t        *cln;
    ngx_http_vlm_task_t       *task;
    ngx_http_vlm_loc_conf_t   *vlcf;
    ngx_http_vlm_main_conf_t  *vmcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);
    vmcf = ngx_http_get_module_main_conf(r, ngx_http_vlm_module);

    task = ngx_pcalloc(r->pool, sizeof(ngx_http_vlm_task_t));
    if (task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* registered first, so it runs after every json_decref of the request */
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_vlm_trim_cleanup;
    cln->data = task;

    ctx->task = task;
    task->model = vmcf->model_name;
    ngx_str_set(&task->language, "auto");

    task->images = ngx_array_create(r->pool, 2, sizeof(ngx_http_vlm_image_t));
    if (task->images == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    task->body = json_object();
    if (task->body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_vlm_json_cleanup_add(r->pool, task->body) != NGX_OK) {
        json_decref(task->body);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_vlm_read_body(r, &body);
    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    task->body_bytes = body.len;

    if (body.len == 0) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                      "empty_body",
                                      "the request body is empty");
    }

    multipart = ngx_http_vlm_has_content_type(r, &ngx_http_vlm_multipart);

    if (multipart) {
        if (vlcf->api != NGX_HTTP_VLM_API_ALT_TEXT) {
            return ngx_http_vlm_set_error(r, ctx,
                                          NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                          NULL, "unsupported_content_type",
                                          "this endpoint takes "
                                          "application/json");
        }

        /* the form's fields go into an object like a JSON body's */
        in = json_object();
        if (in == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else {
        rc = ngx_http_vlm_parse_json(r, ctx, &body, &in);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    /* tie the input to the request so every path frees it */
    if (ngx_http_vlm_json_cleanup_add(r->pool, in) != NGX_OK) {
        json_decref(in);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (multipart) {
        rc = ngx_http_vlm_parse_multipart(r, ctx, &body, in);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return ngx_http_vlm_schema_parse(r, ctx, in);
}


static ngx_int_t
ngx_http_vlm_json_cleanup_add(ngx_pool_t *pool, json_t *json)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_vlm_json_cleanup;
    cln->data = json;

    return NGX_OK;
}


static void
ngx_http_vlm_json_cleanup(void *data)
{
    json_decref(data);
}


/*
 * After a large tree is freed, glibc keeps the pages in its heap unless
 * asked; a hostile body must not leave the worker bigger than it was.
 */
static void
ngx_http_vlm_trim_cleanup(void *data)
{
    ngx_http_vlm_task_t *task = data;

#if (__GLIBC__)
    if (task->json_values > NGX_HTTP_VLM_TRIM_VALUES
        || task->body_bytes > NGX_HTTP_VLM_TRIM_BYTES)
    {
        (void) malloc_trim(0);
    }
#endif
}


/*
 * The body as one writable buffer. Memory buffers that follow each other
 * are used where they lie, and so is the usual pair (see
 * ngx_http_vlm_join_in_place). Any other chain is copied once and nginx's
 * large buffer is freed right after; a body in a temp file is read.
 */
static ngx_int_t
ngx_http_vlm_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    off_t                     len;
    u_char                   *p;
    ssize_t                   n;
    ngx_int_t                 rc;
    ngx_buf_t                *b;
    ngx_chain_t              *cl;
    ngx_http_request_body_t  *rb;

    body->len = 0;
    body->data = NULL;

    rb = r->request_body;

    if (rb == NULL || rb->bufs == NULL) {
        return NGX_OK;
    }

    /* memory buffers one after the other, as reads into rb->buf leave them */
    p = rb->bufs->buf->pos;

    for (cl = rb->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file || b->pos != p) {
            break;
        }

        p = b->last;
    }

    if (cl == NULL) {
        body->data = rb->bufs->buf->pos;
        body->len = p - body->data;
        return NGX_OK;
    }

    rc = ngx_http_vlm_join_in_place(r, body);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    len = 0;

    for (cl = rb->bufs; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? b->file_last - b->file_pos : b->last - b->pos;
    }

    /* one contiguous copy, bounded by client_max_body_size */
    p = ngx_pnalloc(r->pool, (size_t) len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for (cl = rb->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                              b->file_pos);
            if (n != (ssize_t) (b->file_last - b->file_pos)) {
                return NGX_ERROR;
            }

            p += n;
            continue;
        }

        p = ngx_cpymem(p, b->pos, b->last - b->pos);
    }

    *p = '\0';
    body->len = p - body->data;

    /*
     * The chain points into rb->buf (or the header buffer, which is not
     * freed here); from now on it is the copy.
     */
    b = ngx_calloc_buf(r->pool);
    cl = ngx_alloc_chain_link(r->pool);
    if (b == NULL || cl == NULL) {
        return NGX_ERROR;
    }

    b->temporary = 1;
    b->start = body->data;
    b->pos = body->data;
    b->last = body->data + body->len;
    b->end = b->last;
    b->last_buf = 1;

    cl->buf = b;
    cl->next = NULL;

    if (rb->buf != NULL && rb->buf->start != NULL) {
        (void) ngx_pfree(r->pool, rb->buf->start);
    }

    rb->buf = b;
    rb->bufs = cl;

    return NGX_OK;
}


/*
 * The tree holds copies of the strings: the body's bytes go back to the
 * system now, before images are decoded, not when the request ends. A
 * 24 MB body then peaks at body + strings, not body + strings + images.
 */
static void
ngx_http_vlm_release_body(ngx_http_request_t *r, ngx_str_t *body)
{
    ngx_http_request_body_t  *rb;

    rb = r->request_body;

    /*
     * rb->buf is our copy, or nginx's buffer when the body was in one; a
     * body read with the headers is in no large block, and stays
     */
    if (rb->buf != NULL && rb->buf->start != NULL) {
        (void) ngx_pfree(r->pool, rb->buf->start);
    }

    /* $request_body, if anything asks, is empty rather than freed memory */
    rb->bufs = NULL;
    rb->buf = NULL;

    ngx_str_null(body);
}


/*
 * The usual chain of a body larger than what came with the headers: its
 * first bytes in the header buffer, the rest from the start of rb->buf,
 * which request_body_in_single_buf (set by the content handler) made
 * larger by those first bytes, and nginx leaves that room unused. The rest
 * moves up, the first bytes go in front: one buffer, without a second
 * allocation of the body's size and its page faults. NGX_DECLINED for any
 * other chain.
 */
static ngx_int_t
ngx_http_vlm_join_in_place(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char                   *next;
    size_t                    head, rest;
    ngx_buf_t                *first, *b;
    ngx_chain_t              *cl;
    ngx_http_request_body_t  *rb;

    rb = r->request_body;
    first = rb->bufs->buf;

    if (rb->buf == NULL || rb->buf->start == NULL || first->in_file
        || (first->pos >= rb->buf->start && first->pos <= rb->buf->end))
    {
        return NGX_DECLINED;
    }

    next = rb->buf->start;

    for (cl = rb->bufs->next; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file || b->pos != next || b->last < b->pos
            || b->last > rb->buf->end)
        {
            return NGX_DECLINED;
        }

        next = b->last;
    }

    head = first->last - first->pos;
    rest = next - rb->buf->start;

    if ((size_t) (rb->buf->end - next) < head) {
        return NGX_DECLINED;
    }

    ngx_memmove(rb->buf->start + head, rb->buf->start, rest);
    ngx_memcpy(rb->buf->start, first->pos, head);

    body->data = rb->buf->start;
    body->len = head + rest;

    cl = ngx_alloc_chain_link(r->pool);
    b = ngx_calloc_buf(r->pool);
    if (cl == NULL || b == NULL) {
        return NGX_ERROR;
    }

    b->temporary = 1;
    b->start = body->data;
    b->pos = body->data;
    b->last = body->data + body->len;
    b->end = rb->buf->end;
    b->last_buf = 1;

    cl->buf = b;
    cl->next = NULL;
    rb->bufs = cl;

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_parse_json(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_str_t *body, json_t **in)
{
    ngx_http_vlm_json_t       jp;
    ngx_http_vlm_loc_conf_t  *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);

    jp.max_depth = vlcf->max_json_depth;
    jp.max_values = vlcf->max_json_values;

    *in = ngx_http_vlm_json_parse(body->data, body->len, &jp);

    ctx->task->json_values = jp.values;

    ngx_http_vlm_release_body(r, body);

    if (*in != NULL) {
        return NGX_OK;
    }

    if (jp.code == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_strcmp(jp.code, "json_too_deep") == 0) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                      jp.code,
                                      "JSON nested deeper than %ui levels "
                                      "(at byte %uz)", vlcf->max_json_depth,
                                      jp.offset);
    }

    if (ngx_strcmp(jp.code, "json_too_complex") == 0) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                      jp.code,
                                      "JSON refused at byte %uz: %s (at "
                                      "most %ui values)", jp.offset,
                                      jp.reason, vlcf->max_json_values);
    }

    return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                  jp.code, "invalid JSON at byte %uz: %s",
                                  jp.offset, jp.reason);
}


/* the form's fields into "in", its image into task->images */
static ngx_int_t
ngx_http_vlm_parse_multipart(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_str_t *body, json_t *in)
{
    ngx_int_t             rc;
    ngx_uint_t            i, nparts;
    ngx_http_vlm_part_t   parts[NGX_HTTP_VLM_MAX_PARTS];

    nparts = 0;

    rc = ngx_http_vlm_split_multipart(r, ctx, body, parts, &nparts);
    if (rc != NGX_OK) {
        return rc;
    }

    for (i = 0; i < nparts; i++) {
        rc = ngx_http_vlm_form_field(r, ctx, &parts[i], in);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;
}


/*
 * One pass over the copied body: each part's name, value and whether it
 * was a file; the values point into the body.
 */
static ngx_int_t
ngx_http_vlm_split_multipart(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_str_t *body, ngx_http_vlm_part_t *parts, ngx_uint_t *nparts)
{
    u_char               *p, *last, *b, *hdr_end, *next, *q, *qe;
    size_t                blen;
    ngx_str_t            *ct, boundary;
    ngx_http_vlm_part_t  *part;

    ct = &r->headers_in.content_type->value;
    b = ngx_strlcasestrn(ct->data, ct->data + ct->len,
                         ngx_http_vlm_boundary.data,
                         ngx_http_vlm_boundary.len - 1);
    if (b == NULL) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                      "invalid_multipart",
                                      "multipart/form-data without a "
                                      "boundary");
    }

    b += ngx_http_vlm_boundary.len;
    last = ct->data + ct->len;

    if (b < last && *b == '"') {
        b++;
        q = ngx_strlchr(b, last, '"');
        last = q ? q : last;

    } else {
        for (q = b; q < last && *q != ';' && *q != ' '; q++) { /* void */ }
        last = q;
    }

    if (last - b < 1 || last - b > NGX_HTTP_VLM_MAX_BOUNDARY) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                      "invalid_multipart",
                                      "invalid multipart boundary");
    }

    /* the delimiter is CRLF "--" boundary; the first one has no CRLF */
    boundary.len = ngx_http_vlm_delimiter.len + (last - b);
    boundary.data = ngx_pnalloc(r->pool, boundary.len);
    if (boundary.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(ngx_cpymem(boundary.data, ngx_http_vlm_delimiter.data,
                          ngx_http_vlm_delimiter.len),
               b, last - b);

    p = body->data;
    last = body->data + body->len;
    blen = boundary.len;

    if ((size_t) (last - p) < blen - 2
        || ngx_memcmp(p, boundary.data + 2, blen - 2) != 0)
    {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                      "invalid_multipart",
                                      "multipart body does not start with "
                                      "its boundary");
    }

    p += blen - 2;

    for ( ;; ) {
        if (last - p >= 2 && p[0] == '-' && p[1] == '-') {
            return NGX_OK;
        }

        if (last - p < 2 || p[0] != CR || p[1] != LF) {
            goto invalid;
        }

        p += 2;

        /*
         * memmem() is linear; nginx's ngx_strlcasestrn() compares the
         * pattern at every candidate, and looking for the headers' end up
         * to the body's end let a hostile 24 MB form cost 100 ms each time.
         * Boundaries are matched exactly, as RFC 2046 has them.
         */
        hdr_end = memmem(p, ngx_min((size_t) (last - p),
                                    NGX_HTTP_VLM_MAX_PART_HEADERS
                                    + ngx_http_vlm_headers_end.len),
                         ngx_http_vlm_headers_end.data,
                         ngx_http_vlm_headers_end.len);
        if (hdr_end == NULL) {
            goto invalid;
        }

        q = hdr_end + ngx_http_vlm_headers_end.len;

        next = memmem(q, last - q, boundary.data, blen);
        if (next == NULL) {
            goto invalid;
        }

        if (*nparts == NGX_HTTP_VLM_MAX_PARTS) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                          "invalid_multipart",
                                          "more than %d multipart parts",
                                          NGX_HTTP_VLM_MAX_PARTS);
        }

        part = &parts[(*nparts)++];
        ngx_memzero(part, sizeof(ngx_http_vlm_part_t));

        q = ngx_strlcasestrn(p, hdr_end, ngx_http_vlm_name.data,
                             ngx_http_vlm_name.len - 1);
        if (q == NULL) {
            goto invalid;
        }

        /* "filename=" also contains name=", so look at the char before */
        if (q > p && (q[-1] == 'e' || q[-1] == 'E')) {
            qe = ngx_strlcasestrn(q + ngx_http_vlm_name.len, hdr_end,
                                  ngx_http_vlm_space_name.data,
                                  ngx_http_vlm_space_name.len - 1);
            if (qe == NULL) {
                qe = ngx_strlcasestrn(p, hdr_end,
                                      ngx_http_vlm_semi_name.data,
                                      ngx_http_vlm_semi_name.len - 1);
            }

            if (qe == NULL) {
                goto invalid;
            }

            q = qe + 1;
        }

        q += ngx_http_vlm_name.len;
        qe = ngx_strlchr(q, hdr_end, '"');
        if (qe == NULL) {
            goto invalid;
        }

        part->name.data = q;
        part->name.len = qe - q;

        part->file = ngx_strlcasestrn(p, hdr_end,
                                      ngx_http_vlm_filename.data,
                                      ngx_http_vlm_filename.len - 1)
                     != NULL;

        part->value.data = hdr_end + ngx_http_vlm_headers_end.len;
        part->value.len = next - part->value.data;

        p = next + blen;
    }

invalid:

    return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                  "invalid_multipart",
                                  "malformed multipart/form-data body");
}


static ngx_int_t
ngx_http_vlm_form_field(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_http_vlm_part_t *part, json_t *in)
{
    ngx_int_t    n;
    ngx_str_t   *name;
    ngx_uint_t   index;

    if (part->name.len == ngx_http_vlm_form_image.len
        && ngx_strncmp(part->name.data, ngx_http_vlm_form_image.data,
                       ngx_http_vlm_form_image.len)
           == 0)
    {
        if (part->file) {
            return ngx_http_vlm_image_add_bytes(r, ctx, &part->value,
                                                "image", &index);
        }

        /* a text field named image holds a data: URL */
        return ngx_http_vlm_image_add_url(r, ctx, part->value.data,
                                          part->value.len, "image", &index);
    }

    for (name = ngx_http_vlm_form_text; name->len; name++) {
        if (part->name.len != name->len
            || ngx_strncmp(part->name.data, name->data, name->len) != 0)
        {
            continue;
        }

        if (json_object_setn_new_nocheck(in, (char *) name->data, name->len,
                                         json_stringn((char *)
                                                      part->value.data,
                                                      part->value.len))
            != 0)
        {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                          NULL, "invalid_value",
                                          "form fields must be UTF-8 text");
        }

        return NGX_OK;
    }

    if (part->name.len == ngx_http_vlm_form_number.len
        && ngx_strncmp(part->name.data, ngx_http_vlm_form_number.data,
                       ngx_http_vlm_form_number.len)
           == 0)
    {
        n = ngx_atoi(part->value.data, part->value.len);
        if (n == NGX_ERROR) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                          "max_length", "invalid_value",
                                          "max_length must be a number");
        }

        if (json_object_set_new(in, "max_length", json_integer(n)) != 0) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_OK;
    }

    /* the field's name is client bytes: not repeated */
    return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                  "unsupported_parameter",
                                  "unknown form field (the fields are "
                                  "image, language, title, context and "
                                  "max_length)");
}
