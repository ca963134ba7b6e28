
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_json: a request body's JSON into a jansson tree, in one pass
 * with its limits checked as it goes. jansson's own parser reads a byte at
 * a time through a callback and keeps ~200 bytes per value: 23 MB of
 * "{},{}," took seconds and pinned 1.3 GB in a worker (issue 12). Here the
 * nesting depth, the number of values and the length of keys and numbers
 * are bounded before anything is allocated for them, so the tree costs at
 * most the body's string bytes plus ~200 bytes per allowed value, and the
 * time is linear in the body. Strings are checked as UTF-8 and unescaped in
 * place (the body buffer is the caller's and never shorter than the
 * result), then copied once into jansson. As jansson with
 * JSON_REJECT_DUPLICATES, duplicate keys and "\u0000" are refused.
 * Errors name the reason and the byte offset; they never quote the body,
 * which may hold a prompt or a secret.
 * Not here: what the object must contain (ngx_http_vlm_schema.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <math.h>
#include "ngx_http_vlm_module.h"


#define NGX_HTTP_VLM_JSON_MAX_KEY     1024    /* bytes */
#define NGX_HTTP_VLM_JSON_MAX_NUMBER  64      /* characters */

/* eight bytes at once: 0x01 and 0x80 in each byte */
#define NGX_HTTP_VLM_JSON_ONES        0x0101010101010101ULL
#define NGX_HTTP_VLM_JSON_HIGHS       0x8080808080808080ULL


typedef struct {
    u_char                     *start;
    u_char                     *pos;
    u_char                     *last;
    ngx_uint_t                  depth;
    ngx_uint_t                  values;
    ngx_http_vlm_json_t        *jp;
} ngx_http_vlm_json_parser_t;


static ngx_int_t ngx_http_vlm_json_value(ngx_http_vlm_json_parser_t *p,
    json_t **out);
static ngx_int_t ngx_http_vlm_json_object(ngx_http_vlm_json_parser_t *p,
    json_t **out);
static ngx_int_t ngx_http_vlm_json_array(ngx_http_vlm_json_parser_t *p,
    json_t **out);
static ngx_int_t ngx_http_vlm_json_string(ngx_http_vlm_json_parser_t *p,
    u_char **str, size_t *len);
static ngx_inline ngx_uint_t ngx_http_vlm_json_plain8(uint64_t x);
static ngx_inline ngx_uint_t ngx_http_vlm_json_blank8(uint64_t x);
static ngx_inline ngx_int_t ngx_http_vlm_json_escape(
    ngx_http_vlm_json_parser_t *p, u_char **w);
static ngx_inline ngx_int_t ngx_http_vlm_json_hex4(
    ngx_http_vlm_json_parser_t *p, uint32_t *ch);
static ngx_inline ngx_uint_t ngx_http_vlm_json_utf8(u_char *p,
    u_char *last);
static ngx_int_t ngx_http_vlm_json_number(ngx_http_vlm_json_parser_t *p,
    json_t **out);
static ngx_int_t ngx_http_vlm_json_literal(ngx_http_vlm_json_parser_t *p,
    json_t **out);
static void ngx_http_vlm_json_space(ngx_http_vlm_json_parser_t *p);
static ngx_int_t ngx_http_vlm_json_count(ngx_http_vlm_json_parser_t *p);
static ngx_int_t ngx_http_vlm_json_fail(ngx_http_vlm_json_parser_t *p,
    const char *code, const char *reason);


/* bytes a string keeps as they are: 0x20-0x7f but '"' and '\\' */
static uint32_t  ngx_http_vlm_json_plain[] = {
    0x00000000, /* 0x00-0x1f: control characters */

                /* ?>=< ;:98 7654 3210  /.-, +*)( '&%$ #"!  */
    0xfffffffb, /* 1111 1111 1111 1111  1111 1111 1111 1011 */

                /* _^]\ [ZYX WVUT SRQP  ONML KJIH GFED CBA@ */
    0xefffffff, /* 1110 1111 1111 1111  1111 1111 1111 1111 */

                /*  ~}| {zyx wvut srqp  onml kjih gfed cba` */
    0xffffffff, /* 1111 1111 1111 1111  1111 1111 1111 1111 */

    /* 0x80-0xff: checked as UTF-8 sequences */
    0x00000000,
    0x00000000,
    0x00000000,
    0x00000000
};

/* a hex digit's value + 1; 0: not a hex digit */
static u_char  ngx_http_vlm_json_hex[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6,
    ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
    ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16
};

/* what a backslash and this byte stand for; \u is handled apart */
static u_char  ngx_http_vlm_json_escapes[256] = {
    ['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b', ['f'] = '\f',
    ['n'] = '\n', ['r'] = '\r', ['t'] = '\t'
};


/*
 * The body's top-level object, or NULL with jp->code and jp->reason set
 * (jp->code NULL: out of memory). The bytes of data are rewritten.
 */
json_t *
ngx_http_vlm_json_parse(u_char *data, size_t len, ngx_http_vlm_json_t *jp)
{
    json_t                      *obj;
    ngx_http_vlm_json_parser_t   p;

    p.start = data;
    p.pos = data;
    p.last = data + len;
    p.depth = 0;
    p.values = 0;
    p.jp = jp;

    jp->code = NULL;
    jp->reason = NULL;
    jp->offset = 0;
    jp->values = 0;

    ngx_http_vlm_json_space(&p);

    if (p.pos == p.last || *p.pos != '{') {
        (void) ngx_http_vlm_json_fail(&p, "invalid_json",
                                      "the body must be a JSON object");
        return NULL;
    }

    if (ngx_http_vlm_json_value(&p, &obj) != NGX_OK) {
        return NULL;
    }

    ngx_http_vlm_json_space(&p);

    if (p.pos != p.last) {
        json_decref(obj);
        (void) ngx_http_vlm_json_fail(&p, "invalid_json",
                                      "data after the object");
        return NULL;
    }

    jp->values = p.values;

    return obj;
}


static ngx_int_t
ngx_http_vlm_json_value(ngx_http_vlm_json_parser_t *p, json_t **out)
{
    u_char     *s;
    size_t      len;
    ngx_int_t   rc;

    if (p->pos == p->last) {
        return ngx_http_vlm_json_fail(p, "invalid_json",
                                      "unexpected end of the body");
    }

    if (ngx_http_vlm_json_count(p) != NGX_OK) {
        return NGX_ERROR;
    }

    switch (*p->pos) {

    case '{':
    case '[':
        if (p->depth == p->jp->max_depth) {
            return ngx_http_vlm_json_fail(p, "json_too_deep",
                                          "nested too deeply");
        }

        p->depth++;
        rc = (*p->pos == '{') ? ngx_http_vlm_json_object(p, out)
                              : ngx_http_vlm_json_array(p, out);
        p->depth--;

        return rc;

    case '"':
        if (ngx_http_vlm_json_string(p, &s, &len) != NGX_OK) {
            return NGX_ERROR;
        }

        /* UTF-8 was checked while unescaping */
        *out = json_stringn_nocheck((char *) s, len);
        break;

    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return ngx_http_vlm_json_number(p, out);

    default:
        return ngx_http_vlm_json_literal(p, out);
    }

    if (*out == NULL) {
        return ngx_http_vlm_json_fail(p, NULL, "out of memory");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_json_object(ngx_http_vlm_json_parser_t *p, json_t **out)
{
    u_char  *key;
    size_t   len, n;
    json_t  *obj, *v;

    obj = json_object();
    if (obj == NULL) {
        return ngx_http_vlm_json_fail(p, NULL, "out of memory");
    }

    p->pos++;
    ngx_http_vlm_json_space(p);

    if (p->pos < p->last && *p->pos == '}') {
        p->pos++;
        *out = obj;
        return NGX_OK;
    }

    for ( ;; ) {
        if (p->pos == p->last || *p->pos != '"') {
            (void) ngx_http_vlm_json_fail(p, "invalid_json",
                                          "expected a string key");
            goto failed;
        }

        if (ngx_http_vlm_json_string(p, &key, &len) != NGX_OK) {
            goto failed;
        }

        if (len > NGX_HTTP_VLM_JSON_MAX_KEY) {
            (void) ngx_http_vlm_json_fail(p, "json_too_complex",
                                          "a key is longer than 1024 bytes");
            goto failed;
        }

        ngx_http_vlm_json_space(p);

        if (p->pos == p->last || *p->pos != ':') {
            (void) ngx_http_vlm_json_fail(p, "invalid_json",
                                          "expected ':' after a key");
            goto failed;
        }

        p->pos++;
        ngx_http_vlm_json_space(p);

        if (ngx_http_vlm_json_value(p, &v) != NGX_OK) {
            goto failed;
        }

        /*
         * The key is unescaped in the body and checked as UTF-8. A key
         * seen before replaces its value and leaves the size as it was:
         * one hash lookup instead of two.
         */
        n = json_object_size(obj);

        if (json_object_setn_new_nocheck(obj, (char *) key, len, v) != 0) {
            (void) ngx_http_vlm_json_fail(p, NULL, "out of memory");
            goto failed;
        }

        if (json_object_size(obj) == n) {
            (void) ngx_http_vlm_json_fail(p, "invalid_json",
                                          "duplicate key");
            goto failed;
        }

        ngx_http_vlm_json_space(p);

        if (p->pos < p->last && *p->pos == ',') {
            p->pos++;
            ngx_http_vlm_json_space(p);
            continue;
        }

        if (p->pos < p->last && *p->pos == '}') {
            p->pos++;
            *out = obj;
            return NGX_OK;
        }

        (void) ngx_http_vlm_json_fail(p, "invalid_json",
                                      "expected ',' or '}' in an object");
        goto failed;
    }

failed:

    json_decref(obj);
    return NGX_ERROR;
}


static ngx_int_t
ngx_http_vlm_json_array(ngx_http_vlm_json_parser_t *p, json_t **out)
{
    json_t  *arr, *v;

    arr = json_array();
    if (arr == NULL) {
        return ngx_http_vlm_json_fail(p, NULL, "out of memory");
    }

    p->pos++;
    ngx_http_vlm_json_space(p);

    if (p->pos < p->last && *p->pos == ']') {
        p->pos++;
        *out = arr;
        return NGX_OK;
    }

    for ( ;; ) {
        if (ngx_http_vlm_json_value(p, &v) != NGX_OK) {
            goto failed;
        }

        if (json_array_append_new(arr, v) != 0) {
            (void) ngx_http_vlm_json_fail(p, NULL, "out of memory");
            goto failed;
        }

        ngx_http_vlm_json_space(p);

        if (p->pos < p->last && *p->pos == ',') {
            p->pos++;
            ngx_http_vlm_json_space(p);
            continue;
        }

        if (p->pos < p->last && *p->pos == ']') {
            p->pos++;
            *out = arr;
            return NGX_OK;
        }

        (void) ngx_http_vlm_json_fail(p, "invalid_json",
                                      "expected ',' or ']' in an array");
        goto failed;
    }

failed:

    json_decref(arr);
    return NGX_ERROR;
}


/*
 * p->pos is at the opening quote. The unescaped bytes are written over
 * the escaped ones from the string's start: an escape is never shorter
 * than what it stands for, so the write position w never passes the read
 * position q, and eight bytes loaded at q may be stored at w.
 */
static ngx_int_t
ngx_http_vlm_json_string(ngx_http_vlm_json_parser_t *p, u_char **str,
    size_t *len)
{
    u_char      *w, *q, *last, c, e;
    uint64_t     x;
    ngx_uint_t   i;

    q = p->pos + 1;
    last = p->last;
    w = q;
    *str = w;

    for ( ;; ) {
        while (last - q >= 8) {
            ngx_memcpy(&x, q, 8);

            if (!ngx_http_vlm_json_plain8(x)) {
                break;
            }

            ngx_memcpy(w, &x, 8);
            q += 8;
            w += 8;
        }

        /* then byte by byte: a few plain ones, up to a special one */
        for (i = 0; i < 8 && q < last; i++) {
            c = *q;

            if (!(ngx_http_vlm_json_plain[c >> 5] & (1U << (c & 0x1f)))) {
                break;
            }

            *w++ = c;
            q++;
        }

        if (i == 8) {
            continue;
        }

        if (q == last) {
            p->pos = q;
            return ngx_http_vlm_json_fail(p, "invalid_json",
                                          "unterminated string");
        }

        c = *q;

        if (c == '"') {
            p->pos = q + 1;
            *len = w - *str;
            return NGX_OK;
        }

        p->pos = q;

        if (c == '\\') {
            e = (last - q >= 2) ? ngx_http_vlm_json_escapes[q[1]] : 0;

            if (e) {
                /* and the one-letter escapes right after it */
                do {
                    *w++ = e;
                    q += 2;
                    e = (last - q >= 2 && q[0] == '\\')
                        ? ngx_http_vlm_json_escapes[q[1]] : 0;
                } while (e);

                continue;
            }

            /* a \u escape, and those right after it */
            do {
                p->pos = q;

                if (ngx_http_vlm_json_escape(p, &w) != NGX_OK) {
                    return NGX_ERROR;
                }

                q = p->pos;

            } while (last - q >= 2 && q[0] == '\\' && q[1] == 'u');

            continue;
        }

        if (c < 0x20) {
            return ngx_http_vlm_json_fail(p, "invalid_json",
                                          "control character in a string");
        }

        /* whole UTF-8 sequences, as long as they come */
        do {
            e = ngx_http_vlm_json_utf8(q, last);

            if (e == 0) {
                p->pos = q;
                return ngx_http_vlm_json_fail(p, "invalid_json",
                                              "invalid UTF-8");
            }

            do {
                *w++ = *q++;
            } while (--e);

        } while (q < last && *q >= 0x80);
    }
}


/*
 * Eight bytes none of which is a control character, '"', '\\' or above
 * 0x7f. The "has a byte below n" tests set a byte's top bit only when
 * some byte matches, so the whole test is exact.
 */
static ngx_inline ngx_uint_t
ngx_http_vlm_json_plain8(uint64_t x)
{
    uint64_t  q, b;

    q = x ^ (NGX_HTTP_VLM_JSON_ONES * '"');
    b = x ^ (NGX_HTTP_VLM_JSON_ONES * '\\');

    return ((((x - NGX_HTTP_VLM_JSON_ONES * 0x20) & ~x)
             | ((q - NGX_HTTP_VLM_JSON_ONES) & ~q)
             | ((b - NGX_HTTP_VLM_JSON_ONES) & ~b)
             | x)
            & NGX_HTTP_VLM_JSON_HIGHS)
           == 0;
}


/* p->pos is at a backslash not followed by a one-letter escape */
static ngx_inline ngx_int_t
ngx_http_vlm_json_escape(ngx_http_vlm_json_parser_t *p, u_char **w)
{
    u_char    *o;
    uint32_t   ch, lo;

    p->pos++;

    if (p->pos == p->last || *p->pos != 'u') {
        return ngx_http_vlm_json_fail(p, "invalid_json",
                                      "invalid escape in a string");
    }

    p->pos++;

    if (ngx_http_vlm_json_hex4(p, &ch) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ch == 0) {
        return ngx_http_vlm_json_fail(p, "invalid_json",
                                      "\\u0000 in a string");
    }

    if (ch >= 0xdc00 && ch <= 0xdfff) {
        return ngx_http_vlm_json_fail(p, "invalid_json",
                                      "a lone low surrogate");
    }

    if (ch >= 0xd800 && ch <= 0xdbff) {
        /* a high surrogate needs "\uDC00".."\uDFFF" after it */
        if (p->last - p->pos < 2 || p->pos[0] != '\\' || p->pos[1] != 'u') {
            return ngx_http_vlm_json_fail(p, "invalid_json",
                                          "a lone high surrogate");
        }

        p->pos += 2;

        if (ngx_http_vlm_json_hex4(p, &lo) != NGX_OK) {
            return NGX_ERROR;
        }

        if (lo < 0xdc00 || lo > 0xdfff) {
            return ngx_http_vlm_json_fail(p, "invalid_json",
                                          "a lone high surrogate");
        }

        ch = 0x10000 + ((ch - 0xd800) << 10) + (lo - 0xdc00);
    }

    o = *w;

    if (ch < 0x80) {
        *o++ = (u_char) ch;

    } else if (ch < 0x800) {
        *o++ = (u_char) (0xc0 | (ch >> 6));
        *o++ = (u_char) (0x80 | (ch & 0x3f));

    } else if (ch < 0x10000) {
        *o++ = (u_char) (0xe0 | (ch >> 12));
        *o++ = (u_char) (0x80 | ((ch >> 6) & 0x3f));
        *o++ = (u_char) (0x80 | (ch & 0x3f));

    } else {
        *o++ = (u_char) (0xf0 | (ch >> 18));
        *o++ = (u_char) (0x80 | ((ch >> 12) & 0x3f));
        *o++ = (u_char) (0x80 | ((ch >> 6) & 0x3f));
        *o++ = (u_char) (0x80 | (ch & 0x3f));
    }

    *w = o;

    return NGX_OK;
}


static ngx_inline ngx_int_t
ngx_http_vlm_json_hex4(ngx_http_vlm_json_parser_t *p, uint32_t *ch)
{
    u_char  *h;

    h = p->pos;

    /* a digit's value + 1, so that 0 means "not a hex digit" */
    if (p->last - h < 4
        || !ngx_http_vlm_json_hex[h[0]] || !ngx_http_vlm_json_hex[h[1]]
        || !ngx_http_vlm_json_hex[h[2]] || !ngx_http_vlm_json_hex[h[3]])
    {
        return ngx_http_vlm_json_fail(p, "invalid_json",
                                      "invalid \\u escape");
    }

    *ch = (uint32_t) (ngx_http_vlm_json_hex[h[0]] - 1) << 12
          | (uint32_t) (ngx_http_vlm_json_hex[h[1]] - 1) << 8
          | (uint32_t) (ngx_http_vlm_json_hex[h[2]] - 1) << 4
          | (uint32_t) (ngx_http_vlm_json_hex[h[3]] - 1);

    p->pos += 4;

    return NGX_OK;
}


/*
 * The length of the UTF-8 sequence at p, or 0 if it is not one jansson
 * accepts: no overlong forms, no surrogates, nothing above U+10FFFF.
 */
static ngx_inline ngx_uint_t
ngx_http_vlm_json_utf8(u_char *p, u_char *last)
{
    u_char      c, lo, hi;
    ngx_uint_t  n, i;

    c = *p;
    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 1;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 2;

        if (c == 0xe0) {
            lo = 0xa0;

        } else if (c == 0xed) {
            hi = 0x9f;
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 3;

        if (c == 0xf0) {
            lo = 0x90;

        } else if (c == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return 0;
    }

    if ((size_t) (last - p) <= n) {
        return 0;
    }

    /* only the first continuation byte has narrower bounds */
    for (i = 1; i <= n; i++) {
        if (p[i] < lo || p[i] > hi) {
            return 0;
        }

        lo = 0x80;
        hi = 0xbf;
    }

    return n + 1;
}


static ngx_int_t
ngx_http_vlm_json_number(ngx_http_vlm_json_parser_t *p, json_t **out)
{
    u_char      *s, *q;
    double       d;
    uint64_t     n, limit;
    ngx_uint_t   negative, real;
    u_char       text[NGX_HTTP_VLM_JSON_MAX_NUMBER + 1];

    s = p->pos;
    q = s;
    negative = (*q == '-');
    real = 0;

    if (negative) {
        q++;
    }

    /* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
    if (q < p->last && *q == '0') {
        q++;

    } else if (q < p->last && *q >= '1' && *q <= '9') {
        while (q < p->last && *q >= '0' && *q <= '9') {
            q++;
        }

    } else {
        goto invalid;
    }

    if (q < p->last && *q == '.') {
        real = 1;
        q++;

        if (q == p->last || *q < '0' || *q > '9') {
            goto invalid;
        }

        while (q < p->last && *q >= '0' && *q <= '9') {
            q++;
        }
    }

    if (q < p->last && (*q == 'e' || *q == 'E')) {
        real = 1;
        q++;

        if (q < p->last && (*q == '+' || *q == '-')) {
            q++;
        }

        if (q == p->last || *q < '0' || *q > '9') {
            goto invalid;
        }

        while (q < p->last && *q >= '0' && *q <= '9') {
            q++;
        }
    }

    if (q - s > NGX_HTTP_VLM_JSON_MAX_NUMBER) {
        return ngx_http_vlm_json_fail(p, "json_too_complex",
                                      "a number is longer than 64 "
                                      "characters");
    }

    p->pos = q;

    if (!real) {
        /* json_int_t is 64-bit; jansson refuses what does not fit too */
        limit = negative ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
        n = 0;

        for (q = s + negative; q < p->pos; q++) {
            if (n > (limit - (*q - '0')) / 10) {
                p->pos = s;
                return ngx_http_vlm_json_fail(p, "invalid_json",
                                              "integer out of range");
            }

            n = n * 10 + (*q - '0');
        }

        *out = json_integer(negative ? (json_int_t) (0 - n) : (json_int_t) n);

    } else {
        ngx_memcpy(text, s, p->pos - s);
        text[p->pos - s] = '\0';

        d = strtod((char *) text, NULL);

        if (d == HUGE_VAL || d == -HUGE_VAL) {
            p->pos = s;
            return ngx_http_vlm_json_fail(p, "invalid_json",
                                          "number out of range");
        }

        *out = json_real(d);
    }

    if (*out == NULL) {
        return ngx_http_vlm_json_fail(p, NULL, "out of memory");
    }

    return NGX_OK;

invalid:

    p->pos = q;
    return ngx_http_vlm_json_fail(p, "invalid_json", "invalid number");
}


static ngx_int_t
ngx_http_vlm_json_literal(ngx_http_vlm_json_parser_t *p, json_t **out)
{
    size_t  left;

    left = p->last - p->pos;

    if (left >= 4 && ngx_strncmp(p->pos, "true", 4) == 0) {
        p->pos += 4;
        *out = json_true();

    } else if (left >= 5 && ngx_strncmp(p->pos, "false", 5) == 0) {
        p->pos += 5;
        *out = json_false();

    } else if (left >= 4 && ngx_strncmp(p->pos, "null", 4) == 0) {
        p->pos += 4;
        *out = json_null();

    } else {
        return ngx_http_vlm_json_fail(p, "invalid_json",
                                      "unexpected character");
    }

    return NGX_OK;
}


static void
ngx_http_vlm_json_space(ngx_http_vlm_json_parser_t *p)
{
    u_char    c;
    uint64_t  x;

    for ( ;; ) {
        while (p->last - p->pos >= 8) {
            ngx_memcpy(&x, p->pos, 8);

            if (!ngx_http_vlm_json_blank8(x)) {
                break;
            }

            p->pos += 8;
        }

        if (p->pos == p->last) {
            return;
        }

        c = *p->pos;

        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            return;
        }

        p->pos++;
    }
}


/*
 * Eight bytes of ' ', '\t', '\n' or '\r'. zero(v) has 0x80 exactly in
 * the bytes of v that are zero (no borrow crosses bytes).
 */
static ngx_inline ngx_uint_t
ngx_http_vlm_json_blank8(uint64_t x)
{
    uint64_t  m;

#define ngx_http_vlm_json_zero(v)                                             \
    (~((((v) & ~NGX_HTTP_VLM_JSON_HIGHS) + ~NGX_HTTP_VLM_JSON_HIGHS) | (v))  \
     & NGX_HTTP_VLM_JSON_HIGHS)

    m = ngx_http_vlm_json_zero(x ^ (NGX_HTTP_VLM_JSON_ONES * ' '))
        | ngx_http_vlm_json_zero(x ^ (NGX_HTTP_VLM_JSON_ONES * '\t'))
        | ngx_http_vlm_json_zero(x ^ (NGX_HTTP_VLM_JSON_ONES * '\n'))
        | ngx_http_vlm_json_zero(x ^ (NGX_HTTP_VLM_JSON_ONES * '\r'));

#undef ngx_http_vlm_json_zero

    return m == NGX_HTTP_VLM_JSON_HIGHS;
}


static ngx_int_t
ngx_http_vlm_json_count(ngx_http_vlm_json_parser_t *p)
{
    if (p->values == p->jp->max_values) {
        return ngx_http_vlm_json_fail(p, "json_too_complex",
                                      "more values than allowed");
    }

    p->values++;

    return NGX_OK;
}


static ngx_int_t
ngx_http_vlm_json_fail(ngx_http_vlm_json_parser_t *p, const char *code,
    const char *reason)
{
    p->jp->code = code;
    p->jp->reason = reason;
    p->jp->offset = p->pos - p->start;
    p->jp->values = p->values;

    return NGX_ERROR;
}
