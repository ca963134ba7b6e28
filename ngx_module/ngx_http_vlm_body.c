
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_body: the request body (from memory or the temp file) turned
 * into a validated task: JSON with a nesting cap checked before jansson
 * sees it, or multipart/form-data for alt text; data: URLs decoded with
 * strict base64; every image sniffed and bounded; prompt bytes, max_tokens
 * and sampling parameters bounded. Errors are left in ctx->error in
 * OpenAI's shape for the caller to send. Not here: sending anything.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_vlm_module.h"


#define NGX_HTTP_VLM_MAX_PARTS      16
#define NGX_HTTP_VLM_MAX_MESSAGES   256
#define NGX_HTTP_VLM_MAX_STOP       4


typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   filename;
    ngx_str_t                   value;
} ngx_http_vlm_part_t;


static ngx_int_t ngx_http_vlm_read_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_vlm_json_depth_ok(ngx_str_t *body,
    ngx_uint_t max);
static void ngx_http_vlm_json_cleanup(void *data);
static ngx_int_t ngx_http_vlm_parse_chat(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, json_t *in);
static ngx_int_t ngx_http_vlm_parse_message(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, json_t *msg, json_t *out);
static ngx_int_t ngx_http_vlm_parse_alt_text(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, json_t *in);
static ngx_int_t ngx_http_vlm_parse_summary(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, json_t *in);
static ngx_int_t ngx_http_vlm_parse_multipart(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_str_t *body, json_t **in);
static ngx_int_t ngx_http_vlm_task_common(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, json_t *in, const char *task);
static ngx_int_t ngx_http_vlm_add_image(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, const char *url, size_t len, const char *param,
    ngx_uint_t *index);
static ngx_int_t ngx_http_vlm_add_image_bytes(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_str_t *data, const char *param,
    ngx_uint_t *index);
static ngx_int_t ngx_http_vlm_sampling(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, json_t *in, double default_temperature);
static ngx_int_t ngx_http_vlm_text_field(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, json_t *in, const char *key, const char *as);


ngx_int_t
ngx_http_vlm_parse_body(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx)
{
    json_t                   *in;
    ngx_int_t                 rc;
    ngx_str_t                 body, *ct;
    json_error_t              err;
    ngx_pool_cleanup_t       *cln;
    ngx_http_vlm_task_t      *task;
    ngx_http_vlm_loc_conf_t  *vlcf;
    ngx_http_vlm_main_conf_t *vmcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);
    vmcf = ngx_http_get_module_main_conf(r, ngx_http_vlm_module);

    task = ngx_pcalloc(r->pool, sizeof(ngx_http_vlm_task_t));
    if (task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->task = task;
    task->model = vmcf->model_name;
    ngx_str_set(&task->language, "auto");

    task->images = ngx_array_create(r->pool, 2, sizeof(ngx_http_vlm_image_t));
    task->body = json_object();
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (task->images == NULL || task->body == NULL || cln == NULL) {
        json_decref(task->body);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_vlm_json_cleanup;
    cln->data = task->body;

    rc = ngx_http_vlm_read_body(r, &body);
    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (body.len == 0) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                      "empty_body",
                                      "the request body is empty");
    }

    ct = r->headers_in.content_type ? &r->headers_in.content_type->value
                                    : NULL;

    if (ct != NULL && ct->len >= 19
        && ngx_strncasecmp(ct->data, (u_char *) "multipart/form-data", 19)
           == 0)
    {
        if (vlcf->api != NGX_HTTP_VLM_API_ALT_TEXT) {
            return ngx_http_vlm_set_error(r, ctx,
                                          NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL,
                                          "unsupported_content_type",
                                          "this endpoint takes "
                                          "application/json");
        }

        /* the form becomes a JSON object freed with the request pool */
        in = NULL;
        rc = ngx_http_vlm_parse_multipart(r, ctx, &body, &in);
        if (rc != NGX_OK) {
            return rc;
        }

        json_incref(in);

    } else {
        if (!ngx_http_vlm_json_depth_ok(&body, vlcf->max_json_depth)) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                          "json_too_deep",
                                          "JSON nesting deeper than %ui",
                                          vlcf->max_json_depth);
        }

        in = json_loadb((char *) body.data, body.len,
                        JSON_REJECT_DUPLICATES, &err);
        if (in == NULL) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                          "invalid_json",
                                          "invalid JSON at line %d column %d: "
                                          "%s", err.line, err.column, err.text);
        }

        if (!json_is_object(in)) {
            json_decref(in);
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                          "invalid_json",
                                          "the body must be a JSON object");
        }
    }

    /* tie the parsed input to the request so every path frees it */
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        json_decref(in);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_vlm_json_cleanup;
    cln->data = in;

    switch (vlcf->api) {

    case NGX_HTTP_VLM_API_CHAT:
        rc = ngx_http_vlm_parse_chat(r, ctx, in);
        break;

    case NGX_HTTP_VLM_API_ALT_TEXT:
        rc = ngx_http_vlm_parse_alt_text(r, ctx, in);
        break;

    default: /* NGX_HTTP_VLM_API_SUMMARY */
        rc = ngx_http_vlm_parse_summary(r, ctx, in);
        break;
    }

    if (rc != NGX_OK) {
        return rc;
    }

    if (task->prompt_bytes > vlcf->max_prompt_bytes) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                      "messages", "prompt_too_large",
                                      "the prompt text is %uz bytes, more than "
                                      "the limit of %uz", task->prompt_bytes,
                                      vlcf->max_prompt_bytes);
    }

    return NGX_OK;
}


static void
ngx_http_vlm_json_cleanup(void *data)
{
    json_decref(data);
}


static ngx_int_t
ngx_http_vlm_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    off_t         len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    body->len = 0;
    body->data = NULL;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? b->file_last - b->file_pos : b->last - b->pos;
    }

    /* one contiguous copy, bounded by client_max_body_size */
    p = ngx_pnalloc(r->pool, (size_t) len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
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

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_json_depth_ok(ngx_str_t *body, ngx_uint_t max)
{
    u_char      *p, *last;
    ngx_uint_t   depth, in_string;

    depth = 0;
    in_string = 0;
    last = body->data + body->len;

    /* jansson recurses up to 2048 levels; refuse deep input before it */
    for (p = body->data; p < last; p++) {

        if (in_string) {
            if (*p == '\\') {
                p++;

            } else if (*p == '"') {
                in_string = 0;
            }

            continue;
        }

        switch (*p) {
        case '"':
            in_string = 1;
            break;

        case '[':
        case '{':
            if (++depth > max) {
                return 0;
            }
            break;

        case ']':
        case '}':
            if (depth) {
                depth--;
            }
            break;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_vlm_sampling(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    json_t *in, double default_temperature)
{
    json_t                   *v, *body, *stop;
    size_t                    i;
    double                    d;
    json_int_t                n;
    ngx_http_vlm_task_t      *task;
    ngx_http_vlm_loc_conf_t  *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);
    task = ctx->task;
    body = task->body;

    v = json_object_get(in, "max_completion_tokens");
    if (v == NULL) {
        v = json_object_get(in, "max_tokens");
    }

    n = (json_int_t) ngx_min(vlcf->max_tokens, 512);

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                          "max_tokens", "invalid_value",
                                          "max_tokens must be a positive "
                                          "integer");
        }

        n = json_integer_value(v);

        if (n > (json_int_t) vlcf->max_tokens) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                          "max_tokens", "max_tokens_too_large",
                                          "max_tokens is %L, more than the "
                                          "limit " "of %ui", (int64_t) n,
                                          vlcf->max_tokens);
        }
    }

    task->max_tokens = (ngx_uint_t) n;

    d = default_temperature;
    v = json_object_get(in, "temperature");

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0
            || json_number_value(v) > 2)
        {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                          "temperature", "invalid_value",
                                          "temperature must be between 0 and "
                                          "2");
        }

        d = json_number_value(v);
    }

    task->temperature = d;

    if (json_object_set_new(body, "max_tokens", json_integer(n)) != 0
        || json_object_set_new(body, "temperature", json_real(d)) != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v = json_object_get(in, "top_p");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) <= 0
            || json_number_value(v) > 1)
        {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, "top_p",
                                          "invalid_value",
                                          "top_p must be in (0, 1]");
        }

        if (json_object_set_new(body, "top_p",
                                json_real(json_number_value(v)))
            != 0)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    v = json_object_get(in, "seed");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, "seed",
                                          "invalid_value",
                                          "seed must be a non-negative "
                                          "integer");
        }

        task->has_seed = 1;

        if (json_object_set_new(body, "seed",
                                json_integer(json_integer_value(v)))
            != 0)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* greedy or seeded sampling gives the same answer again: cacheable */
    task->deterministic = (d == 0 || task->has_seed);

    v = json_object_get(in, "stop");
    if (v != NULL && !json_is_null(v)) {
        stop = json_array();
        if (stop == NULL || json_object_set_new(body, "stop", stop) != 0) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (json_is_string(v)) {
            if (json_array_append(stop, v) != 0) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

        } else if (json_is_array(v)
                   && json_array_size(v) <= NGX_HTTP_VLM_MAX_STOP)
        {
            for (i = 0; i < json_array_size(v); i++) {
                if (!json_is_string(json_array_get(v, i))
                    || json_string_length(json_array_get(v, i)) == 0
                    || json_string_length(json_array_get(v, i)) > 64
                    || json_array_append(stop, json_array_get(v, i)) != 0)
                {
                    return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                                  "stop", "invalid_value",
                                                  "stop must be up to 4 "
                                                  "strings "
                                                  "of 1 to 64 bytes");
                }
            }

        } else {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, "stop",
                                          "invalid_value",
                                          "stop must be a string or up to 4 "
                                          "strings");
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_parse_chat(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    json_t *in)
{
    json_t                   *v, *messages, *out, *msg;
    size_t                    i;
    ngx_int_t                 rc;
    json_int_t                top;
    const char               *key;
    ngx_http_vlm_task_t      *task;

    static const char  *supported[] = {
        "model", "messages", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "seed", "stop", "stream", "stream_options",
        "logprobs", "top_logprobs", "n", "user", NULL
    };

    task = ctx->task;
    task->kind = NGX_HTTP_VLM_TASK_CHAT;

    json_object_foreach(in, key, v) {
        for (i = 0; supported[i]; i++) {
            if (ngx_strcmp(key, supported[i]) == 0) {
                break;
            }
        }

        if (supported[i] == NULL) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, key,
                                          "unsupported_parameter",
                                          "parameter \"%s\" is not supported",
                                          key);
        }
    }

    v = json_object_get(in, "model");
    if (v != NULL) {
        if (!json_is_string(v)) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, "model",
                                          "invalid_value",
                                          "model must be a string");
        }

        if (json_string_length(v) != task->model.len
            || ngx_strncmp(json_string_value(v), task->model.data,
                           task->model.len) != 0)
        {
            ctx->error.type = "invalid_request_error";
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_NOT_FOUND, "model",
                                          "model_not_found",
                                          "the model \"%s\" does not exist; "
                                          "this server has \"%V\"",
                                          json_string_value(v), &task->model);
        }
    }

    v = json_object_get(in, "n");
    if (v != NULL && !json_is_null(v)
        && (!json_is_integer(v) || json_integer_value(v) != 1))
    {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, "n",
                                      "unsupported_value",
                                      "only n=1 is supported");
    }

    v = json_object_get(in, "stream");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                          "stream", "invalid_value",
                                          "stream must be a boolean");
        }

        task->stream = json_is_true(v);
    }

    v = json_object_get(in, "stream_options");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_object(v)) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                          "stream_options", "invalid_value",
                                          "stream_options must be an object");
        }

        task->include_usage = json_is_true(json_object_get(v,
                                                           "include_usage"));
    }

    top = -1;
    v = json_object_get(in, "logprobs");

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                          "logprobs", "invalid_value",
                                          "logprobs must be a boolean");
        }

        if (json_is_true(v)) {
            task->logprobs = 1;
            top = 0;
        }
    }

    v = json_object_get(in, "top_logprobs");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0
            || json_integer_value(v) > 20 || !task->logprobs)
        {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                          "top_logprobs", "invalid_value",
                                          "top_logprobs must be 0..20 and "
                                          "needs " "logprobs: true");
        }

        top = json_integer_value(v);
    }

    rc = ngx_http_vlm_sampling(r, ctx, in, 1.0);
    if (rc != NGX_OK) {
        return rc;
    }

    messages = json_object_get(in, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0
        || json_array_size(messages) > NGX_HTTP_VLM_MAX_MESSAGES)
    {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, "messages",
                                      "invalid_value",
                                      "messages must be an array of 1 to 256 "
                                      "messages");
    }

    out = json_array();
    if (out == NULL
        || json_object_set_new(task->body, "messages", out) != 0
        || json_object_set_new(task->body, "task", json_string("chat")) != 0
        || json_object_set_new(task->body, "logprobs", json_integer(top))
           != 0
        || json_object_set_new(task->body, "enable_thinking", json_false())
           != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_array_foreach(messages, i, msg) {
        rc = ngx_http_vlm_parse_message(r, ctx, msg, out);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_parse_message(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    json_t *msg, json_t *out)
{
    json_t       *role, *content, *parts, *part, *v, *url, *m;
    size_t        i;
    ngx_int_t     rc;
    ngx_uint_t    index;
    const char   *type, *r_name;

    role = json_object_get(msg, "role");
    content = json_object_get(msg, "content");
    r_name = json_string_value(role);

    if (!json_is_object(msg) || r_name == NULL
        || (ngx_strcmp(r_name, "system") != 0
            && ngx_strcmp(r_name, "user") != 0
            && ngx_strcmp(r_name, "assistant") != 0))
    {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, "messages",
                                      "invalid_value",
                                      "each message needs a role of system, "
                                      "user or assistant");
    }

    if (json_is_string(content)) {
        ctx->task->prompt_bytes += json_string_length(content);

        m = json_pack("{s:O, s:O}", "role", role, "content", content);
        if (m == NULL || json_array_append_new(out, m) != 0) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_OK;
    }

    if (!json_is_array(content) || json_array_size(content) > 64) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                      "messages.content", "invalid_value",
                                      "content must be a string or an array of "
                                      "up to 64 parts");
    }

    parts = json_array();
    m = json_pack("{s:O, s:o}", "role", role, "content", parts);
    if (parts == NULL || m == NULL || json_array_append_new(out, m) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_array_foreach(content, i, part) {
        type = json_string_value(json_object_get(part, "type"));

        if (type != NULL && ngx_strcmp(type, "text") == 0) {
            v = json_object_get(part, "text");
            if (!json_is_string(v)) {
                return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                              "messages.content.text",
                                              "invalid_value",
                                              "a text part needs \"text\"");
            }

            ctx->task->prompt_bytes += json_string_length(v);

            if (json_array_append_new(parts,
                                      json_pack("{s:s, s:O}", "type", "text",
                                                "text", v))
                != 0)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            continue;
        }

        if (type != NULL && ngx_strcmp(type, "image_url") == 0) {
            if (ngx_strcmp(r_name, "user") != 0) {
                return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                              "messages.content",
                                              "invalid_value",
                                              "images are only accepted in "
                                              "user " "messages");
            }

            v = json_object_get(part, "image_url");
            url = json_is_object(v) ? json_object_get(v, "url") : v;

            if (!json_is_string(url)) {
                return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                              "messages.content.image_url",
                                              "invalid_value",
                                              "an image_url part needs "
                                              "\"image_url\": {\"url\": ...}");
            }

            rc = ngx_http_vlm_add_image(r, ctx, json_string_value(url),
                                        json_string_length(url),
                                        "messages.content.image_url",
                                        &index);
            if (rc != NGX_OK) {
                return rc;
            }

            if (json_array_append_new(parts,
                                      json_pack("{s:s, s:I}", "type", "image",
                                                "image", (json_int_t) index))
                != 0)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            continue;
        }

        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                      "messages.content.type", "invalid_value",
                                      "content parts must be \"text\" or "
                                      "\"image_url\"");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_text_field(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    json_t *in, const char *key, const char *as)
{
    json_t  *v;

    v = json_object_get(in, key);
    if (v == NULL || json_is_null(v)) {
        return NGX_OK;
    }

    if (!json_is_string(v)) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, key,
                                      "invalid_value", "%s must be a string",
                                      key);
    }

    ctx->task->prompt_bytes += json_string_length(v);

    if (json_object_set(ctx->task->body, as, v) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_task_common(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    json_t *in, const char *task_name)
{
    json_t               *v;
    ngx_int_t             rc;
    const char           *s;
    ngx_http_vlm_task_t  *task;

    task = ctx->task;

    v = json_object_get(in, "model");
    if (v != NULL && (!json_is_string(v)
                      || json_string_length(v) != task->model.len
                      || ngx_strncmp(json_string_value(v), task->model.data,
                                     task->model.len) != 0))
    {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_NOT_FOUND, "model",
                                      "model_not_found",
                                      "unknown model; this server has \"%V\"",
                                      &task->model);
    }

    v = json_object_get(in, "language");
    if (v != NULL && !json_is_null(v)) {
        s = json_string_value(v);

        if (s == NULL || (ngx_strcmp(s, "auto") != 0
                          && ngx_strcmp(s, "en") != 0
                          && ngx_strcmp(s, "zh") != 0))
        {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                          "language", "invalid_value",
                                          "language must be auto, en or zh");
        }

        task->language.len = ngx_strlen(s);
        task->language.data = ngx_pnalloc(r->pool, task->language.len);
        if (task->language.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(task->language.data, s, task->language.len);
    }

    v = json_object_get(in, "max_length");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1
            || json_integer_value(v) > 10000)
        {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                          "max_length", "invalid_value",
                                          "max_length must be 1..10000 "
                                          "characters");
        }

        if (json_object_set(task->body, "max_chars", v) != 0) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (json_object_set_new(task->body, "task", json_string(task_name)) != 0
        || json_object_set_new(task->body, "language",
                               json_stringn((char *) task->language.data,
                                            task->language.len))
           != 0
        || json_object_set_new(task->body, "enable_thinking", json_false())
           != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_vlm_text_field(r, ctx, in, "title", "title");
    if (rc != NGX_OK) {
        return rc;
    }

    /* tasks are greedy unless asked otherwise, so they cache */
    return ngx_http_vlm_sampling(r, ctx, in, 0.0);
}


static ngx_int_t
ngx_http_vlm_parse_alt_text(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    json_t *in)
{
    json_t      *v;
    ngx_int_t    rc;
    ngx_uint_t   index;

    ctx->task->kind = NGX_HTTP_VLM_TASK_ALT_TEXT;

    rc = ngx_http_vlm_task_common(r, ctx, in, "alt_text");
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_vlm_text_field(r, ctx, in, "context", "text");
    if (rc != NGX_OK) {
        return rc;
    }

    if (ctx->task->images->nelts == 0) {
        v = json_object_get(in, "image");
        if (json_is_object(v)) {
            v = json_object_get(v, "url");
        }

        if (!json_is_string(v)) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, "image",
                                          "missing_image",
                                          "send the image as \"image\": a "
                                          "data: "
                                          "URL, or as a multipart file");
        }

        rc = ngx_http_vlm_add_image(r, ctx, json_string_value(v),
                                    json_string_length(v), "image", &index);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_parse_summary(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    json_t *in)
{
    json_t      *v, *img;
    size_t       i;
    ngx_int_t    rc;
    ngx_uint_t   index;
    const char  *kind, *name;

    kind = json_string_value(json_object_get(in, "kind"));
    name = "summary";
    ctx->task->kind = NGX_HTTP_VLM_TASK_SUMMARY;

    if (kind != NULL && ngx_strcmp(kind, "seo_description") == 0) {
        name = "seo_description";
        ctx->task->kind = NGX_HTTP_VLM_TASK_SEO;

    } else if (kind != NULL && ngx_strcmp(kind, "summary") != 0) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, "kind",
                                      "invalid_value",
                                      "kind must be summary or "
                                      "seo_description");
    }

    rc = ngx_http_vlm_task_common(r, ctx, in, name);
    if (rc != NGX_OK) {
        return rc;
    }

    v = json_object_get(in, "text");
    if (!json_is_string(v) || json_string_length(v) == 0) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, "text",
                                      "missing_text",
                                      "\"text\" (the article) is required");
    }

    rc = ngx_http_vlm_text_field(r, ctx, in, "text", "text");
    if (rc != NGX_OK) {
        return rc;
    }

    v = json_object_get(in, "images");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_array(v)) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                          "images", "invalid_value",
                                          "images must be an array of data: "
                                          "URLs");
        }

        json_array_foreach(v, i, img) {
            if (json_is_object(img)) {
                img = json_object_get(img, "url");
            }

            if (!json_is_string(img)) {
                return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                              "images", "invalid_value",
                                              "images must be data: URLs");
            }

            rc = ngx_http_vlm_add_image(r, ctx, json_string_value(img),
                                        json_string_length(img), "images",
                                        &index);
            if (rc != NGX_OK) {
                return rc;
            }
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_add_image(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    const char *url, size_t len, const char *param, ngx_uint_t *index)
{
    u_char                   *p, *comma, *last;
    size_t                    i, pad;
    ngx_str_t                 src, data;
    ngx_http_vlm_loc_conf_t  *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);
    p = (u_char *) url;
    last = p + len;

    if ((len > 7 && ngx_strncasecmp(p, (u_char *) "http://", 7) == 0)
        || (len > 8 && ngx_strncasecmp(p, (u_char *) "https://", 8) == 0))
    {
        if (!vlcf->remote_images) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, param,
                                          "remote_images_disabled",
                                          "remote image URLs are disabled "
                                          "here; "
                                          "send the image as a data: URL");
        }

        /* vlm_ipc.h has no URL field yet: vlmd cannot fetch for us */
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, param,
                                      "remote_images_unsupported",
                                      "remote image URLs are not supported by "
                                      "this vlmd; send a data: URL");
    }

    if (len < 5 || ngx_strncasecmp(p, (u_char *) "data:", 5) != 0) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, param,
                                      "invalid_image_url",
                                      "an image must be a data: URL");
    }

    comma = ngx_strlchr(p, last, ',');
    if (comma == NULL || comma - p < 12
        || ngx_strncasecmp(comma - 7, (u_char *) ";base64", 7) != 0)
    {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, param,
                                      "invalid_image_url",
                                      "an image must be a base64 data: URL "
                                      "(data:image/png;base64,...)");
    }

    if (ngx_strncasecmp(p + 5, (u_char *) "image/", 6) != 0) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                      param, "unsupported_image_type",
                                      "only image/* data URLs are accepted");
    }

    src.data = comma + 1;
    src.len = last - src.data;

    /* strict base64: alphabet, length a multiple of 4, '=' only at the end */
    pad = 0;

    for (i = 0; i < src.len; i++) {
        u_char  c = src.data[i];

        if (c == '=') {
            pad++;
            continue;
        }

        if (pad || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                     || (c >= '0' && c <= '9') || c == '+' || c == '/'))
        {
            pad = 3;
            break;
        }
    }

    if (src.len == 0 || src.len % 4 != 0 || pad > 2) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, param,
                                      "invalid_base64",
                                      "the image's base64 data is invalid");
    }

    if (ngx_base64_decoded_length(src.len) - pad > vlcf->max_image_bytes) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
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

    return ngx_http_vlm_add_image_bytes(r, ctx, &data, param, index);
}


static ngx_int_t
ngx_http_vlm_add_image_bytes(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
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
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                      param, "image_too_large",
                                      "an image is larger than %uz bytes",
                                      vlcf->max_image_bytes);
    }

    rc = ngx_http_vlm_image_sniff(data->data, data->len, &type, &width,
                                  &height);

    if (rc == NGX_DECLINED) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                      param, "unsupported_image_type",
                                      "unsupported image type: send JPEG, PNG, "
                                      "WebP or GIF");
    }

    if (rc != NGX_OK) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, param,
                                      "invalid_image",
                                      "the image's header is truncated or "
                                      "invalid");
    }

    /* divide instead of multiplying so a 100000x100000 header cannot wrap */
    if (width > vlcf->max_pixels / height) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                      param, "image_too_many_pixels",
                                      "the image is %uix%ui, more than %ui "
                                      "pixels", width, height,
                                      vlcf->max_pixels);
    }

    img = ngx_array_push(ctx->task->images);
    if (img == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(img, sizeof(ngx_http_vlm_image_t));
    img->data = *data;
    img->type = type;
    img->width = width;
    img->height = height;
    ngx_http_vlm_sha256(data->data, data->len, img->sha256);

    *index = ctx->task->images->nelts - 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_parse_multipart(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_str_t *body, json_t **in)
{
    u_char               *p, *last, *b, *hdr_end, *next, *q, *qe;
    size_t                blen;
    json_t               *obj;
    ngx_int_t             rc;
    ngx_str_t            *ct, boundary, name;
    ngx_uint_t            i, nparts, index;
    ngx_pool_cleanup_t   *cln;
    ngx_http_vlm_part_t   parts[NGX_HTTP_VLM_MAX_PARTS];

    ct = &r->headers_in.content_type->value;
    b = ngx_strlcasestrn(ct->data, ct->data + ct->len,
                         (u_char *) "boundary=", 9 - 1);
    if (b == NULL) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                      "invalid_multipart",
                                      "multipart/form-data without a boundary");
    }

    b += 9;
    last = ct->data + ct->len;

    if (b < last && *b == '"') {
        b++;
        q = ngx_strlchr(b, last, '"');
        last = q ? q : last;

    } else {
        for (q = b; q < last && *q != ';' && *q != ' '; q++) { /* void */ }
        last = q;
    }

    if (last - b < 1 || last - b > 70) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                      "invalid_multipart",
                                      "invalid multipart boundary");
    }

    /* the delimiter is CRLF "--" boundary; the first one has no CRLF */
    boundary.len = 4 + (last - b);
    boundary.data = ngx_pnalloc(r->pool, boundary.len);
    if (boundary.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(boundary.data, "\r\n--", 4);
    ngx_memcpy(boundary.data + 4, b, last - b);

    p = body->data;
    last = body->data + body->len;
    blen = boundary.len;

    if ((size_t) (last - p) < blen - 2
        || ngx_memcmp(p, boundary.data + 2, blen - 2) != 0)
    {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                      "invalid_multipart",
                                      "multipart body does not start with its "
                                      "boundary");
    }

    p += blen - 2;
    nparts = 0;

    for ( ;; ) {
        if (last - p >= 2 && p[0] == '-' && p[1] == '-') {
            break;
        }

        if (last - p < 2 || p[0] != '\r' || p[1] != '\n') {
            goto invalid;
        }

        p += 2;

        hdr_end = ngx_strlcasestrn(p, last, (u_char *) "\r\n\r\n", 4 - 1);
        if (hdr_end == NULL || hdr_end - p > 1024) {
            goto invalid;
        }

        next = ngx_strlcasestrn(hdr_end + 4, last, boundary.data, blen - 1);
        if (next == NULL) {
            goto invalid;
        }

        if (nparts == NGX_HTTP_VLM_MAX_PARTS) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                          "invalid_multipart",
                                          "more than %d multipart parts",
                                          NGX_HTTP_VLM_MAX_PARTS);
        }

        ngx_memzero(&parts[nparts], sizeof(ngx_http_vlm_part_t));

        q = ngx_strlcasestrn(p, hdr_end, (u_char *) "name=\"", 6 - 1);
        if (q == NULL) {
            goto invalid;
        }

        /* "filename=" also contains name=", so look at the char before */
        if (q > p && (q[-1] == 'e' || q[-1] == 'E')) {
            qe = ngx_strlcasestrn(q + 6, hdr_end, (u_char *) " name=\"",
                                  7 - 1);
            if (qe == NULL) {
                qe = ngx_strlcasestrn(p, hdr_end, (u_char *) ";name=\"",
                                      7 - 1);
            }

            if (qe == NULL) {
                goto invalid;
            }

            q = qe + 1;
        }

        q += 6;
        qe = ngx_strlchr(q, hdr_end, '"');
        if (qe == NULL) {
            goto invalid;
        }

        parts[nparts].name.data = q;
        parts[nparts].name.len = qe - q;

        q = ngx_strlcasestrn(p, hdr_end, (u_char *) "filename=\"", 10 - 1);
        if (q != NULL) {
            parts[nparts].filename.data = q + 10;
            parts[nparts].filename.len = 1;
        }

        parts[nparts].value.data = hdr_end + 4;
        parts[nparts].value.len = next - (hdr_end + 4);
        nparts++;

        p = next + blen;
    }

    obj = json_object();
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (obj == NULL || cln == NULL) {
        json_decref(obj);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_vlm_json_cleanup;
    cln->data = obj;
    *in = obj;

    for (i = 0; i < nparts; i++) {
        name = parts[i].name;

        if (name.len == 5 && ngx_strncmp(name.data, "image", 5) == 0) {
            if (parts[i].filename.len == 0) {
                /* a text field named image holds a data: URL */
                rc = ngx_http_vlm_add_image(r, ctx,
                                            (char *) parts[i].value.data,
                                            parts[i].value.len, "image",
                                            &index);
            } else {
                rc = ngx_http_vlm_add_image_bytes(r, ctx, &parts[i].value,
                                                  "image", &index);
            }

            if (rc != NGX_OK) {
                return rc;
            }

            continue;
        }

        if ((name.len == 8 && ngx_strncmp(name.data, "language", 8) == 0)
            || (name.len == 5 && ngx_strncmp(name.data, "title", 5) == 0)
            || (name.len == 7 && ngx_strncmp(name.data, "context", 7) == 0))
        {
            if (json_object_setn_new_nocheck(obj, (char *) name.data,
                    name.len, json_stringn((char *) parts[i].value.data,
                                           parts[i].value.len))
                != 0)
            {
                return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                              NULL, "invalid_value",
                                              "form fields must be UTF-8 text");
            }

            continue;
        }

        if (name.len == 10 && ngx_strncmp(name.data, "max_length", 10) == 0) {
            rc = ngx_atoi(parts[i].value.data, parts[i].value.len);
            if (rc == NGX_ERROR) {
                return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                              "max_length", "invalid_value",
                                              "max_length must be a number");
            }

            if (json_object_set_new(obj, "max_length", json_integer(rc))
                != 0)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            continue;
        }

        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                      "unsupported_parameter",
                                      "unknown form field \"%V\"", &name);
    }

    return NGX_OK;

invalid:

    return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                  "invalid_multipart",
                                  "malformed multipart/form-data body");
}
