
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_schema: what each endpoint accepts, as tables. A schema is
 * the defaults of the body sent to vlmd (vlm_ipc.h) and a list of field
 * tables: the endpoint's own parameters, the sampling ones all endpoints
 * share, then the content (messages, text, images), last so that images
 * are decoded only for a request whose parameters are valid. A field says
 * its type, bounds or allowed values, the key it is copied to in
 * task->body and the refusal to answer with; what a table cannot say (the
 * model's name, the max_tokens limit, stop strings, chat messages) is a
 * handler. Refusals are left in ctx->error.
 * Not here: reading the body (ngx_http_vlm_body.c), images
 * (ngx_http_vlm_image.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_vlm_module.h"


#define NGX_HTTP_VLM_MAX_MESSAGES     256
#define NGX_HTTP_VLM_MAX_CONTENT      64      /* parts of one message */
#define NGX_HTTP_VLM_MAX_STOP         4
#define NGX_HTTP_VLM_MAX_STOP_LEN     64      /* bytes */
#define NGX_HTTP_VLM_MAX_TOP          20      /* top_logprobs */
#define NGX_HTTP_VLM_MAX_CHARS        10000   /* max_length of a task */

/* an upper bound above any integer, length or count of a request */
#define NGX_HTTP_VLM_NO_MAX           1e19

/* what a field's value must be */
#define NGX_HTTP_VLM_FIELD_ANY        0       /* a handler decides */
#define NGX_HTTP_VLM_FIELD_BOOL       1
#define NGX_HTTP_VLM_FIELD_INT        2       /* min..max */
#define NGX_HTTP_VLM_FIELD_REAL       3       /* a number in min..max */
#define NGX_HTTP_VLM_FIELD_STRING     4       /* min..max bytes, or values */
#define NGX_HTTP_VLM_FIELD_TEXT       5       /* a STRING that is prompt */
#define NGX_HTTP_VLM_FIELD_OBJECT     6
#define NGX_HTTP_VLM_FIELD_ARRAY      7       /* min..max elements */
#define NGX_HTTP_VLM_FIELD_IMAGE      8       /* data: URL or {"url": ...} */
#define NGX_HTTP_VLM_FIELD_TYPE       0xff

/* or-ed into the type */
#define NGX_HTTP_VLM_FIELD_REQUIRED   0x100   /* absent or null: refused */
#define NGX_HTTP_VLM_FIELD_OPEN_MIN   0x200   /* min itself: refused */


typedef struct ngx_http_vlm_field_s  ngx_http_vlm_field_t;

/* after the table's checks; returns NGX_OK or the refusal's status */
typedef ngx_int_t (*ngx_http_vlm_field_pt)(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f, json_t *v);

struct ngx_http_vlm_field_s {
    const char                 *name;       /* the key, and the param */
    const char                 *alias;      /* looked up first, or NULL */
    ngx_uint_t                  type;       /* NGX_HTTP_VLM_FIELD_* */
    double                      min;
    double                      max;
    const char                **values;     /* STRING: the allowed ones */
    const char                 *as;         /* key in task->body, or NULL */
    const char                 *code;       /* NULL: "invalid_value" */
    const char                 *message;    /* why a value is refused */
    ngx_http_vlm_field_pt       handler;    /* or NULL */
};


typedef struct {
    ngx_uint_t                  api;        /* NGX_HTTP_VLM_API_* */
    ngx_uint_t                  kind;       /* NGX_HTTP_VLM_TASK_* */
    ngx_uint_t                  strict;     /* unknown keys are refused */
    const char                 *defaults;   /* task->body before fields */
    ngx_http_vlm_field_t       *fields[5];  /* in order, NULL-ended */
} ngx_http_vlm_schema_t;


static ngx_int_t ngx_http_vlm_schema_fields(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, json_t *in, ngx_http_vlm_field_t *f);
static ngx_uint_t ngx_http_vlm_field_valid(ngx_http_vlm_field_t *f,
    json_t *v);
static ngx_int_t ngx_http_vlm_field_copy(json_t *body,
    ngx_http_vlm_field_t *f, json_t *v);
static ngx_int_t ngx_http_vlm_field_refuse(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f);
static ngx_http_vlm_field_t *ngx_http_vlm_schema_field(
    ngx_http_vlm_schema_t *schema, const char *key);
static json_t *ngx_http_vlm_image_url(json_t *v);

static ngx_int_t ngx_http_vlm_field_model(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f, json_t *v);
static ngx_int_t ngx_http_vlm_field_max_tokens(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f, json_t *v);
static ngx_int_t ngx_http_vlm_field_stop(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f, json_t *v);
static ngx_int_t ngx_http_vlm_field_stream(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f, json_t *v);
static ngx_int_t ngx_http_vlm_field_stream_options(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f, json_t *v);
static ngx_int_t ngx_http_vlm_field_logprobs(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f, json_t *v);
static ngx_int_t ngx_http_vlm_field_top_logprobs(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f, json_t *v);
static ngx_int_t ngx_http_vlm_field_language(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f, json_t *v);
static ngx_int_t ngx_http_vlm_field_kind(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f, json_t *v);
static ngx_int_t ngx_http_vlm_field_messages(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f, json_t *v);
static ngx_int_t ngx_http_vlm_message(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, json_t *msg, json_t *out);
static ngx_int_t ngx_http_vlm_field_images(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f, json_t *v);


static const char  *ngx_http_vlm_languages[] = { "auto", "en", "zh", NULL };
static const char  *ngx_http_vlm_kinds[] = {
    "summary", "seo_description", NULL
};
static const char  *ngx_http_vlm_roles[] = {
    "system", "user", "assistant", NULL
};

/* chat parameters of OpenAI's API that vlm does not support */
static const char  *ngx_http_vlm_openai_only[] = {
    "tools", "tool_choice", "functions", "function_call", "response_format",
    "presence_penalty", "frequency_penalty", "logit_bias",
    "parallel_tool_calls", "service_tier", "store", "metadata",
    "modalities", "audio", "prediction", "reasoning_effort",
    "web_search_options", NULL
};


/* every endpoint's generation parameters */
static ngx_http_vlm_field_t  ngx_http_vlm_sampling_fields[] = {

    { "max_tokens", "max_completion_tokens", NGX_HTTP_VLM_FIELD_INT,
      1, NGX_HTTP_VLM_NO_MAX, NULL, "max_tokens", NULL,
      "max_tokens must be a positive integer",
      ngx_http_vlm_field_max_tokens },

    { "temperature", NULL, NGX_HTTP_VLM_FIELD_REAL,
      0, 2, NULL, "temperature", NULL,
      "temperature must be between 0 and 2", NULL },

    { "top_p", NULL, NGX_HTTP_VLM_FIELD_REAL|NGX_HTTP_VLM_FIELD_OPEN_MIN,
      0, 1, NULL, "top_p", NULL,
      "top_p must be in (0, 1]", NULL },

    { "seed", NULL, NGX_HTTP_VLM_FIELD_INT,
      0, NGX_HTTP_VLM_NO_MAX, NULL, "seed", NULL,
      "seed must be a non-negative integer", NULL },

    { "stop", NULL, NGX_HTTP_VLM_FIELD_ANY,
      0, 0, NULL, NULL, NULL,
      "stop must be a string or up to 4 strings", ngx_http_vlm_field_stop },

    { NULL, NULL, 0, 0, 0, NULL, NULL, NULL, NULL, NULL }
};


/* POST /v1/chat/completions, OpenAI's parameters that vlm supports */
static ngx_http_vlm_field_t  ngx_http_vlm_chat_fields[] = {

    { "model", NULL, NGX_HTTP_VLM_FIELD_STRING,
      0, NGX_HTTP_VLM_NO_MAX, NULL, NULL, NULL,
      "model must be a string", ngx_http_vlm_field_model },

    { "n", NULL, NGX_HTTP_VLM_FIELD_INT,
      1, 1, NULL, NULL, "unsupported_value",
      "only n=1 is supported", NULL },

    { "stream", NULL, NGX_HTTP_VLM_FIELD_BOOL,
      0, 0, NULL, NULL, NULL,
      "stream must be a boolean", ngx_http_vlm_field_stream },

    { "stream_options", NULL, NGX_HTTP_VLM_FIELD_OBJECT,
      0, 0, NULL, NULL, NULL,
      "stream_options must be an object",
      ngx_http_vlm_field_stream_options },

    { "logprobs", NULL, NGX_HTTP_VLM_FIELD_BOOL,
      0, 0, NULL, NULL, NULL,
      "logprobs must be a boolean", ngx_http_vlm_field_logprobs },

    { "top_logprobs", NULL, NGX_HTTP_VLM_FIELD_INT,
      0, NGX_HTTP_VLM_MAX_TOP, NULL, "logprobs", NULL,
      "top_logprobs must be 0..20 and needs logprobs: true",
      ngx_http_vlm_field_top_logprobs },

    /* accepted and not used: vlm identifies callers by their credential */
    { "user", NULL, NGX_HTTP_VLM_FIELD_ANY,
      0, 0, NULL, NULL, NULL, NULL, NULL },

    { NULL, NULL, 0, 0, 0, NULL, NULL, NULL, NULL, NULL }
};


static ngx_http_vlm_field_t  ngx_http_vlm_chat_content[] = {

    { "messages", NULL, NGX_HTTP_VLM_FIELD_ARRAY|NGX_HTTP_VLM_FIELD_REQUIRED,
      1, NGX_HTTP_VLM_MAX_MESSAGES, NULL, NULL, NULL,
      "messages must be an array of 1 to 256 messages",
      ngx_http_vlm_field_messages },

    { NULL, NULL, 0, 0, 0, NULL, NULL, NULL, NULL, NULL }
};


/* the alt-text and summary tasks */
static ngx_http_vlm_field_t  ngx_http_vlm_task_fields[] = {

    { "model", NULL, NGX_HTTP_VLM_FIELD_STRING,
      0, NGX_HTTP_VLM_NO_MAX, NULL, NULL, NULL,
      "model must be a string", ngx_http_vlm_field_model },

    { "language", NULL, NGX_HTTP_VLM_FIELD_STRING,
      0, 0, ngx_http_vlm_languages, "language", NULL,
      "language must be auto, en or zh", ngx_http_vlm_field_language },

    { "max_length", NULL, NGX_HTTP_VLM_FIELD_INT,
      1, NGX_HTTP_VLM_MAX_CHARS, NULL, "max_chars", NULL,
      "max_length must be 1..10000 characters", NULL },

    { "title", NULL, NGX_HTTP_VLM_FIELD_TEXT,
      0, NGX_HTTP_VLM_NO_MAX, NULL, "title", NULL,
      "title must be a string", NULL },

    { NULL, NULL, 0, 0, 0, NULL, NULL, NULL, NULL, NULL }
};


/* POST /v1/alt-text: JSON, or a multipart form whose file is the image */
static ngx_http_vlm_field_t  ngx_http_vlm_alt_text_content[] = {

    { "context", NULL, NGX_HTTP_VLM_FIELD_TEXT,
      0, NGX_HTTP_VLM_NO_MAX, NULL, "text", NULL,
      "context must be a string", NULL },

    /* required, unless the form brought the image as a file */
    { "image", NULL, NGX_HTTP_VLM_FIELD_IMAGE|NGX_HTTP_VLM_FIELD_REQUIRED,
      0, 0, NULL, NULL, "missing_image",
      "send the image as \"image\": a data: URL, or as a multipart file",
      NULL },

    { NULL, NULL, 0, 0, 0, NULL, NULL, NULL, NULL, NULL }
};


/* POST /v1/summary */
static ngx_http_vlm_field_t  ngx_http_vlm_summary_fields[] = {

    { "kind", NULL, NGX_HTTP_VLM_FIELD_STRING,
      0, 0, ngx_http_vlm_kinds, "task", NULL,
      "kind must be summary or seo_description", ngx_http_vlm_field_kind },

    { NULL, NULL, 0, 0, 0, NULL, NULL, NULL, NULL, NULL }
};


static ngx_http_vlm_field_t  ngx_http_vlm_summary_content[] = {

    { "text", NULL, NGX_HTTP_VLM_FIELD_TEXT|NGX_HTTP_VLM_FIELD_REQUIRED,
      1, NGX_HTTP_VLM_NO_MAX, NULL, "text", "missing_text",
      "\"text\" (the article) is required", NULL },

    { "images", NULL, NGX_HTTP_VLM_FIELD_ARRAY,
      0, NGX_HTTP_VLM_NO_MAX, NULL, NULL, NULL,
      "images must be an array of data: URLs", ngx_http_vlm_field_images },

    { NULL, NULL, 0, 0, 0, NULL, NULL, NULL, NULL, NULL }
};


/*
 * The defaults are vlmd's body before the request's fields replace them;
 * max_tokens comes from vlm_default_max_tokens. Tasks are greedy unless
 * asked otherwise, so they cache. Chat sampling settings a client leaves
 * out are left out here too: vlmd takes them from the model's
 * generation_config.json, as vLLM and transformers do.
 */
static ngx_http_vlm_schema_t  ngx_http_vlm_schemas[] = {

    { NGX_HTTP_VLM_API_CHAT, NGX_HTTP_VLM_TASK_CHAT, 1,
      "{\"task\": \"chat\", \"logprobs\": -1, \"enable_thinking\": false}",
      { ngx_http_vlm_chat_fields, ngx_http_vlm_sampling_fields,
        ngx_http_vlm_chat_content, NULL, NULL } },

    { NGX_HTTP_VLM_API_ALT_TEXT, NGX_HTTP_VLM_TASK_ALT_TEXT, 0,
      "{\"task\": \"alt_text\", \"language\": \"auto\","
      " \"temperature\": 0.0, \"enable_thinking\": false}",
      { ngx_http_vlm_task_fields, ngx_http_vlm_sampling_fields,
        ngx_http_vlm_alt_text_content, NULL, NULL } },

    { NGX_HTTP_VLM_API_SUMMARY, NGX_HTTP_VLM_TASK_SUMMARY, 0,
      "{\"task\": \"summary\", \"language\": \"auto\","
      " \"temperature\": 0.0, \"enable_thinking\": false}",
      { ngx_http_vlm_summary_fields, ngx_http_vlm_task_fields,
        ngx_http_vlm_sampling_fields, ngx_http_vlm_summary_content,
        NULL } },

    { NGX_HTTP_VLM_API_NONE, 0, 0, NULL, { NULL, NULL, NULL, NULL, NULL } }
};


/* "in" (the body's JSON object) into ctx->task for the location's API */
ngx_int_t
ngx_http_vlm_schema_parse(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    json_t *in)
{
    json_t                   *v, *defaults;
    ngx_int_t                 rc;
    ngx_uint_t                i;
    const char               *key, **s;
    json_error_t              err;
    ngx_http_vlm_task_t      *task;
    ngx_http_vlm_schema_t    *schema;
    ngx_http_vlm_loc_conf_t  *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);
    task = ctx->task;

    for (schema = ngx_http_vlm_schemas; schema->api != vlcf->api; schema++) {
        if (schema->api == NGX_HTTP_VLM_API_NONE) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    task->kind = schema->kind;

    defaults = json_loads(schema->defaults, 0, &err);
    if (defaults == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = json_object_update(task->body, defaults);
    json_decref(defaults);

    if (rc != 0
        || json_object_set_new(task->body, "max_tokens",
                               json_integer(vlcf->default_max_tokens))
           != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (schema->strict) {
        json_object_foreach(in, key, v) {
            if (ngx_http_vlm_schema_field(schema, key) != NULL) {
                continue;
            }

            /*
             * Named only when it is a parameter of OpenAI's, from our own
             * list: a key is client bytes, and may be anything.
             */
            for (s = ngx_http_vlm_openai_only; *s; s++) {
                if (ngx_strcmp(key, *s) == 0) {
                    return ngx_http_vlm_set_error(r, ctx,
                                                  NGX_HTTP_BAD_REQUEST, *s,
                                                  "unsupported_parameter",
                                                  "parameter \"%s\" is not "
                                                  "supported", *s);
                }
            }

            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, NULL,
                                          "unsupported_parameter",
                                          "the body has a parameter that "
                                          "this endpoint does not know");
        }
    }

    for (i = 0; schema->fields[i]; i++) {
        rc = ngx_http_vlm_schema_fields(r, ctx, in, schema->fields[i]);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    /*
     * greedy or seeded sampling gives the same answer again: cacheable;
     * a temperature left to the model's defaults may sample, so is not
     */
    v = json_object_get(task->body, "temperature");
    task->deterministic = ((v != NULL && json_number_value(v) == 0)
                           || json_object_get(task->body, "seed") != NULL);

    if (task->prompt_bytes > vlcf->max_prompt_bytes) {
        return ngx_http_vlm_set_error(r, ctx,
                                      NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                      "messages", "prompt_too_large",
                                      "the prompt text is %uz bytes, more "
                                      "than the limit of %uz",
                                      task->prompt_bytes,
                                      vlcf->max_prompt_bytes);
    }

    return NGX_OK;
}


/* one table: look each field up, check it, run its handler, copy it */
static ngx_int_t
ngx_http_vlm_schema_fields(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    json_t *in, ngx_http_vlm_field_t *f)
{
    json_t      *v, *url;
    ngx_int_t    rc;
    ngx_uint_t   index;

    for ( /* void */ ; f->name; f++) {

        v = (f->alias != NULL) ? json_object_get(in, f->alias) : NULL;

        if (v == NULL) {
            v = json_object_get(in, f->name);
        }

        if (v == NULL || json_is_null(v)) {
            if (!(f->type & NGX_HTTP_VLM_FIELD_REQUIRED)
                || ((f->type & NGX_HTTP_VLM_FIELD_TYPE)
                    == NGX_HTTP_VLM_FIELD_IMAGE
                    && ctx->task->images->nelts))
            {
                continue;
            }

            return ngx_http_vlm_field_refuse(r, ctx, f);
        }

        if (!ngx_http_vlm_field_valid(f, v)) {
            return ngx_http_vlm_field_refuse(r, ctx, f);
        }

        switch (f->type & NGX_HTTP_VLM_FIELD_TYPE) {

        case NGX_HTTP_VLM_FIELD_TEXT:
            ctx->task->prompt_bytes += json_string_length(v);
            break;

        case NGX_HTTP_VLM_FIELD_IMAGE:
            url = ngx_http_vlm_image_url(v);

            rc = ngx_http_vlm_image_add_url(r, ctx,
                                            (u_char *) json_string_value(url),
                                            json_string_length(url), f->name,
                                            &index);
            if (rc != NGX_OK) {
                return rc;
            }

            break;
        }

        if (f->handler != NULL) {
            rc = f->handler(r, ctx, f, v);
            if (rc != NGX_OK) {
                return rc;
            }
        }

        if (f->as != NULL
            && ngx_http_vlm_field_copy(ctx->task->body, f, v) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_vlm_field_valid(ngx_http_vlm_field_t *f, json_t *v)
{
    double        d;
    const char  **s;

    switch (f->type & NGX_HTTP_VLM_FIELD_TYPE) {

    case NGX_HTTP_VLM_FIELD_BOOL:
        return json_is_boolean(v);

    case NGX_HTTP_VLM_FIELD_INT:
        if (!json_is_integer(v)) {
            return 0;
        }

        d = (double) json_integer_value(v);
        break;

    case NGX_HTTP_VLM_FIELD_REAL:
        if (!json_is_number(v)) {
            return 0;
        }

        d = json_number_value(v);
        break;

    case NGX_HTTP_VLM_FIELD_STRING:
    case NGX_HTTP_VLM_FIELD_TEXT:
        if (!json_is_string(v)) {
            return 0;
        }

        if (f->values != NULL) {
            for (s = f->values; *s; s++) {
                if (ngx_strcmp(json_string_value(v), *s) == 0) {
                    return 1;
                }
            }

            return 0;
        }

        d = (double) json_string_length(v);
        break;

    case NGX_HTTP_VLM_FIELD_OBJECT:
        return json_is_object(v);

    case NGX_HTTP_VLM_FIELD_ARRAY:
        if (!json_is_array(v)) {
            return 0;
        }

        d = (double) json_array_size(v);
        break;

    case NGX_HTTP_VLM_FIELD_IMAGE:
        return ngx_http_vlm_image_url(v) != NULL;

    default: /* NGX_HTTP_VLM_FIELD_ANY */
        return 1;
    }

    if (f->type & NGX_HTTP_VLM_FIELD_OPEN_MIN) {
        return d > f->min && d <= f->max;
    }

    return d >= f->min && d <= f->max;
}


/* numbers are written as the type says: "temperature": 1 becomes 1.0 */
static ngx_int_t
ngx_http_vlm_field_copy(json_t *body, ngx_http_vlm_field_t *f, json_t *v)
{
    json_t  *copy;

    switch (f->type & NGX_HTTP_VLM_FIELD_TYPE) {

    case NGX_HTTP_VLM_FIELD_INT:
        copy = json_integer(json_integer_value(v));
        break;

    case NGX_HTTP_VLM_FIELD_REAL:
        copy = json_real(json_number_value(v));
        break;

    default:
        copy = json_incref(v);
        break;
    }

    if (json_object_set_new(body, f->as, copy) != 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_field_refuse(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_http_vlm_field_t *f)
{
    return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, f->name,
                                  f->code ? f->code : "invalid_value", "%s",
                                  f->message);
}


static ngx_http_vlm_field_t *
ngx_http_vlm_schema_field(ngx_http_vlm_schema_t *schema, const char *key)
{
    ngx_uint_t             i;
    ngx_http_vlm_field_t  *f;

    for (i = 0; schema->fields[i]; i++) {
        for (f = schema->fields[i]; f->name; f++) {
            if (ngx_strcmp(key, f->name) == 0
                || (f->alias != NULL && ngx_strcmp(key, f->alias) == 0))
            {
                return f;
            }
        }
    }

    return NULL;
}


/* an image is a data: URL, or OpenAI's {"url": "data:..."} */
static json_t *
ngx_http_vlm_image_url(json_t *v)
{
    json_t  *url;

    url = json_is_object(v) ? json_object_get(v, "url") : v;

    return json_is_string(url) ? url : NULL;
}


static ngx_int_t
ngx_http_vlm_field_model(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_http_vlm_field_t *f, json_t *v)
{
    ngx_str_t  *model;

    model = &ctx->task->model;

    if (json_string_length(v) == model->len
        && ngx_strncmp(json_string_value(v), model->data, model->len) == 0)
    {
        return NGX_OK;
    }

    /* the name asked for is not repeated: it is client bytes */
    return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_NOT_FOUND, f->name,
                                  "model_not_found",
                                  "the requested model does not exist; this "
                                  "server has \"%V\"", model);
}


static ngx_int_t
ngx_http_vlm_field_max_tokens(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_http_vlm_field_t *f, json_t *v)
{
    json_int_t                n;
    ngx_http_vlm_loc_conf_t  *vlcf;

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_vlm_module);
    n = json_integer_value(v);

    if (n > (json_int_t) vlcf->max_tokens) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST, f->name,
                                      "max_tokens_too_large",
                                      "max_tokens is %L, more than the limit "
                                      "of %ui", (int64_t) n,
                                      vlcf->max_tokens);
    }

    return NGX_OK;
}


/* one string, or up to four of 1 to 64 bytes: always an array for vlmd */
static ngx_int_t
ngx_http_vlm_field_stop(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_http_vlm_field_t *f, json_t *v)
{
    json_t  *stop, *s;
    size_t   i;

    if (!json_is_string(v)
        && !(json_is_array(v) && json_array_size(v) <= NGX_HTTP_VLM_MAX_STOP))
    {
        return ngx_http_vlm_field_refuse(r, ctx, f);
    }

    stop = json_array();
    if (stop == NULL
        || json_object_set_new(ctx->task->body, "stop", stop) != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (json_is_string(v)) {
        if (json_array_append(stop, v) != 0) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_OK;
    }

    json_array_foreach(v, i, s) {
        if (!json_is_string(s) || json_string_length(s) == 0
            || json_string_length(s) > NGX_HTTP_VLM_MAX_STOP_LEN
            || json_array_append(stop, s) != 0)
        {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                          f->name, "invalid_value",
                                          "stop must be up to 4 strings of 1 "
                                          "to 64 bytes");
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_field_stream(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_http_vlm_field_t *f, json_t *v)
{
    ctx->task->stream = json_is_true(v);

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_field_stream_options(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f, json_t *v)
{
    ctx->task->include_usage = json_is_true(json_object_get(v,
                                                            "include_usage"));

    return NGX_OK;
}


/* logprobs alone: the chosen tokens' (vlmd's "logprobs": 0) */
static ngx_int_t
ngx_http_vlm_field_logprobs(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_http_vlm_field_t *f, json_t *v)
{
    if (!json_is_true(v)) {
        return NGX_OK;
    }

    ctx->task->logprobs = 1;

    if (json_object_set_new(ctx->task->body, "logprobs", json_integer(0))
        != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_field_top_logprobs(ngx_http_request_t *r,
    ngx_http_vlm_ctx_t *ctx, ngx_http_vlm_field_t *f, json_t *v)
{
    if (!ctx->task->logprobs) {
        return ngx_http_vlm_field_refuse(r, ctx, f);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_field_language(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_http_vlm_field_t *f, json_t *v)
{
    ngx_str_t  *lang;

    lang = &ctx->task->language;
    lang->len = json_string_length(v);

    lang->data = ngx_pnalloc(r->pool, lang->len);
    if (lang->data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(lang->data, json_string_value(v), lang->len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_field_kind(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_http_vlm_field_t *f, json_t *v)
{
    if (ngx_strcmp(json_string_value(v), "seo_description") == 0) {
        ctx->task->kind = NGX_HTTP_VLM_TASK_SEO;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_field_messages(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_http_vlm_field_t *f, json_t *v)
{
    json_t     *out, *msg;
    size_t      i;
    ngx_int_t   rc;

    out = json_array();
    if (out == NULL
        || json_object_set_new(ctx->task->body, "messages", out) != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_array_foreach(v, i, msg) {
        rc = ngx_http_vlm_message(r, ctx, msg, out);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;
}


/* one chat message; an image part becomes {"type": "image", "image": i} */
static ngx_int_t
ngx_http_vlm_message(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    json_t *msg, json_t *out)
{
    json_t        *role, *content, *parts, *part, *v, *url, *m;
    size_t         i;
    ngx_int_t      rc;
    ngx_uint_t     index;
    const char    *type, *name, **s;

    role = json_object_get(msg, "role");
    content = json_object_get(msg, "content");
    name = json_string_value(role);

    for (s = ngx_http_vlm_roles; name != NULL && *s; s++) {
        if (ngx_strcmp(name, *s) == 0) {
            break;
        }
    }

    if (!json_is_object(msg) || name == NULL || *s == NULL) {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                      "messages", "invalid_value",
                                      "each message needs a role of "
                                      "system, user or assistant");
    }

    if (json_is_string(content)) {
        ctx->task->prompt_bytes += json_string_length(content);

        m = json_pack("{s:O, s:O}", "role", role, "content", content);
        if (m == NULL || json_array_append_new(out, m) != 0) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_OK;
    }

    if (!json_is_array(content)
        || json_array_size(content) > NGX_HTTP_VLM_MAX_CONTENT)
    {
        return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                      "messages.content", "invalid_value",
                                      "content must be a string or an array "
                                      "of up to 64 parts");
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
            if (ngx_strcmp(name, "user") != 0) {
                return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                              "messages.content",
                                              "invalid_value",
                                              "images are only accepted in "
                                              "user messages");
            }

            url = ngx_http_vlm_image_url(json_object_get(part, "image_url"));
            if (url == NULL) {
                return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                              "messages.content.image_url",
                                              "invalid_value",
                                              "an image_url part needs "
                                              "\"image_url\": {\"url\": "
                                              "...}");
            }

            rc = ngx_http_vlm_image_add_url(r, ctx,
                                            (u_char *) json_string_value(url),
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
                                      "messages.content.type",
                                      "invalid_value",
                                      "content parts must be \"text\" or "
                                      "\"image_url\"");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_field_images(ngx_http_request_t *r, ngx_http_vlm_ctx_t *ctx,
    ngx_http_vlm_field_t *f, json_t *v)
{
    json_t      *img, *url;
    size_t       i;
    ngx_int_t    rc;
    ngx_uint_t   index;

    json_array_foreach(v, i, img) {
        url = ngx_http_vlm_image_url(img);
        if (url == NULL) {
            return ngx_http_vlm_set_error(r, ctx, NGX_HTTP_BAD_REQUEST,
                                          f->name, "invalid_value",
                                          "images must be data: URLs");
        }

        rc = ngx_http_vlm_image_add_url(r, ctx,
                                        (u_char *) json_string_value(url),
                                        json_string_length(url), f->name,
                                        &index);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;
}
