/*
 * ngx_harness.c: the few nginx core pieces the module's parsers need, so
 * libFuzzer targets can link the module sources without an nginx binary.
 * Compiled against the real nginx headers from Debian's nginx-dev (which
 * ships headers and no core sources), so every struct has nginx's layout.
 *
 * Stand-ins written here: the pool (one malloc per allocation so ASan sees
 * every overrun; cleanups run on destroy, so LeakSanitizer catches a missed
 * json_decref) and its chain links, ngx_read_file (fails; bodies are always
 * in memory here), the configuration-time helpers only
 * ngx_http_vlm_jwt_load_key calls (never reached), ngx_log_error_core
 * (silent) and the module object.
 * SHA-256 is the module's own (ngx_http_vlm_util.c, linked in).
 *
 * Also ours, at the end of the file: the string, base64, array and
 * ngx_vslprintf calls the parsers make, written from nginx's documented
 * behaviour (no nginx source is copied here; nginx-dev ships none anyway).
 */

#include "ngx_harness.h"

#include <stdlib.h>


static ngx_time_t  ngx_harness_time;

volatile ngx_time_t  *ngx_cached_time = &ngx_harness_time;
volatile ngx_msec_t   ngx_current_msec;
ngx_uint_t            ngx_pagesize = 4096;
ngx_module_t          ngx_http_vlm_module;      /* ctx_index 0 */


/* the pool: every allocation is its own heap block, listed in p->large */

ngx_pool_t *
ngx_create_pool(size_t size, ngx_log_t *log)
{
    ngx_pool_t  *p;

    p = calloc(1, sizeof(ngx_pool_t));
    if (p == NULL) {
        abort();
    }

    p->max = size;
    p->current = p;
    p->log = log;

    return p;
}


void
ngx_destroy_pool(ngx_pool_t *pool)
{
    ngx_pool_large_t    *l, *next;
    ngx_pool_cleanup_t  *c;

    for (c = pool->cleanup; c; c = c->next) {
        if (c->handler) {
            c->handler(c->data);
        }
    }

    for (l = pool->large; l; l = next) {
        next = l->next;
        free(l->alloc);
        free(l);
    }

    free(pool);
}


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    ngx_pool_large_t  *l;

    l = malloc(sizeof(ngx_pool_large_t));
    if (l == NULL) {
        abort();
    }

    /* malloc(0) may return NULL, which the caller would read as failure */
    l->alloc = malloc(size ? size : 1);
    if (l->alloc == NULL) {
        abort();
    }

    l->next = pool->large;
    pool->large = l;

    return l->alloc;
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    return ngx_palloc(pool, size);
}


void *
ngx_pcalloc(ngx_pool_t *pool, size_t size)
{
    void  *p;

    p = ngx_palloc(pool, size);
    ngx_memzero(p, size);

    return p;
}


void *
ngx_pmemalign(ngx_pool_t *pool, size_t size, size_t alignment)
{
    return ngx_palloc(pool, size);      /* malloc aligns to 16 */
}


ngx_int_t
ngx_pfree(ngx_pool_t *pool, void *p)
{
    ngx_pool_large_t  **l, *f;

    for (l = &pool->large; *l; l = &(*l)->next) {
        if ((*l)->alloc == p) {
            f = *l;
            *l = f->next;
            free(f->alloc);
            free(f);
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


ngx_chain_t *
ngx_alloc_chain_link(ngx_pool_t *pool)
{
    return ngx_palloc(pool, sizeof(ngx_chain_t));
}


ngx_pool_cleanup_t *
ngx_pool_cleanup_add(ngx_pool_t *p, size_t size)
{
    ngx_pool_cleanup_t  *c;

    c = ngx_palloc(p, sizeof(ngx_pool_cleanup_t));
    c->data = size ? ngx_palloc(p, size) : NULL;
    c->handler = NULL;
    c->next = p->cleanup;
    p->cleanup = c;

    return c;
}


void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
}


ssize_t
ngx_read_file(ngx_file_t *file, u_char *buf, size_t size, off_t offset)
{
    return NGX_ERROR;
}


ngx_int_t
ngx_conf_full_name(ngx_cycle_t *cycle, ngx_str_t *name, ngx_uint_t conf_prefix)
{
    return NGX_ERROR;
}


void ngx_cdecl
ngx_conf_log_error(ngx_uint_t level, ngx_conf_t *cf, ngx_err_t err,
    const char *fmt, ...)
{
}


/* a request as ngx_http_vlm_parse_body and ngx_http_vlm_jwt_verify see it */

ngx_http_request_t *
ngx_harness_request(ngx_pool_t *pool, ngx_http_vlm_main_conf_t *vmcf,
    ngx_http_vlm_loc_conf_t *vlcf)
{
    void               **main_conf, **loc_conf;
    ngx_http_request_t  *r;

    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));
    main_conf = ngx_pcalloc(pool, sizeof(void *));
    loc_conf = ngx_pcalloc(pool, sizeof(void *));

    main_conf[0] = vmcf;
    loc_conf[0] = vlcf;

    r->pool = pool;
    r->main_conf = main_conf;
    r->loc_conf = loc_conf;

    return r;
}


void
ngx_harness_set_body(ngx_http_request_t *r, const u_char *data, size_t len,
    size_t split)
{
    size_t         part[2], room;
    ngx_uint_t     i;
    ngx_buf_t     *b;
    ngx_chain_t  **ll, *cl;

    r->request_body = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    ll = &r->request_body->bufs;

    part[0] = split < len ? split : len;
    part[1] = len - part[0];

    /*
     * each buffer is its own block: ASan sees reads past it. With an even
     * split the last one has room for the first part after its data, as
     * nginx makes it for request_body_in_single_buf.
     */
    room = (split % 2 == 0) ? part[0] : 0;

    for (i = 0; i < 2; i++) {
        if (part[i] == 0 && !(i == 0 && len == 0)) {
            continue;
        }

        b = ngx_pcalloc(r->pool, sizeof(ngx_buf_t));
        b->pos = ngx_pnalloc(r->pool, part[i] + (i == 1 ? room : 0));
        ngx_memcpy(b->pos, data, part[i]);
        b->last = b->pos + part[i];
        b->temporary = 1;
        data += part[i];

        cl = ngx_pcalloc(r->pool, sizeof(ngx_chain_t));
        cl->buf = b;
        *ll = cl;
        ll = &cl->next;

        /* as nginx: the last part is rb->buf, a large pool block */
        b->start = b->pos;
        b->end = b->last + (i == 1 ? room : 0);
        r->request_body->buf = b;
    }
}


void
ngx_harness_set_content_type(ngx_http_request_t *r, const u_char *data,
    size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_pcalloc(r->pool, sizeof(ngx_table_elt_t));
    ngx_str_set(&h->key, "Content-Type");
    h->value.len = len;
    h->value.data = ngx_pnalloc(r->pool, len);
    ngx_memcpy(h->value.data, data, len);
    h->hash = 1;

    r->headers_in.content_type = h;
}


void
ngx_harness_set_time(time_t now)
{
    ngx_harness_time.sec = now;
}


/*
 * ---- our own versions of the nginx core string, base64 and array calls ----
 *
 * Written from nginx's documented behaviour (development guide, ngx_string.h
 * and ngx_array.h), not from its sources, keeping the details the parsers
 * rely on: case folding is ASCII only and stops at NUL; ngx_strlcasestrn's
 * pattern is lowercase and n is its length minus one; base64 decoding stops
 * at the first '=', refuses any other character outside the alphabet and a
 * length of 4k+1, and accepts missing padding.
 */


static u_char
ngx_harness_lower(u_char c)
{
    return (c >= 'A' && c <= 'Z') ? (u_char) (c | 0x20) : c;
}


ngx_int_t
ngx_strcasecmp(u_char *s1, u_char *s2)
{
    return ngx_strncasecmp(s1, s2, (size_t) -1);
}


ngx_int_t
ngx_strncasecmp(u_char *s1, u_char *s2, size_t n)
{
    u_char  c1, c2;

    for ( /* void */ ; n; n--, s1++, s2++) {
        c1 = ngx_harness_lower(*s1);
        c2 = ngx_harness_lower(*s2);

        if (c1 != c2) {
            return c1 - c2;
        }

        if (c1 == '\0') {
            return 0;
        }
    }

    return 0;
}


u_char *
ngx_strlcasestrn(u_char *s1, u_char *last, u_char *s2, size_t n)
{
    /* s2 is n + 1 bytes long and already lowercase */

    if ((size_t) (last - s1) <= n) {
        return NULL;
    }

    for (last -= n; s1 < last; s1++) {
        if (ngx_harness_lower(*s1) == s2[0]
            && ngx_strncasecmp(s1 + 1, s2 + 1, n) == 0)
        {
            return s1;
        }
    }

    return NULL;
}


ngx_int_t
ngx_atoi(u_char *line, size_t n)
{
    ngx_int_t  value, digit;

    if (n == 0) {
        return NGX_ERROR;
    }

    for (value = 0; n; n--, line++) {
        if (*line < '0' || *line > '9') {
            return NGX_ERROR;
        }

        digit = *line - '0';

        if (value > (NGX_MAX_INT_T_VALUE - digit) / 10) {
            return NGX_ERROR;
        }

        value = value * 10 + digit;
    }

    return value;
}


/* 0..63 for the alphabet's characters, -1 for anything else */
static int
ngx_harness_b64_value(u_char c, ngx_uint_t url)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == (url ? '-' : '+')) {
        return 62;
    }

    if (c == (url ? '_' : '/')) {
        return 63;
    }

    return -1;
}


static ngx_int_t
ngx_harness_decode_base64(ngx_str_t *dst, ngx_str_t *src, ngx_uint_t url)
{
    size_t      len, i;
    u_char     *d;
    uint32_t    acc;
    ngx_uint_t  bits;
    int         v;

    for (len = 0; len < src->len && src->data[len] != '='; len++) {
        if (ngx_harness_b64_value(src->data[len], url) < 0) {
            return NGX_ERROR;
        }
    }

    if (len % 4 == 1) {
        return NGX_ERROR;
    }

    d = dst->data;
    acc = 0;
    bits = 0;

    for (i = 0; i < len; i++) {
        v = ngx_harness_b64_value(src->data[i], url);
        acc = (acc << 6) | (uint32_t) v;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            *d++ = (u_char) (acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }

    dst->len = d - dst->data;

    return NGX_OK;
}


ngx_int_t
ngx_decode_base64(ngx_str_t *dst, ngx_str_t *src)
{
    return ngx_harness_decode_base64(dst, src, 0);
}


ngx_int_t
ngx_decode_base64url(ngx_str_t *dst, ngx_str_t *src)
{
    return ngx_harness_decode_base64(dst, src, 1);
}


void
ngx_encode_base64url(ngx_str_t *dst, ngx_str_t *src)
{
    static const char  alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    size_t     i;
    u_char    *d;
    uint32_t   acc;
    ngx_uint_t bits;

    d = dst->data;
    acc = 0;
    bits = 0;

    for (i = 0; i < src->len; i++) {
        acc = (acc << 8) | src->data[i];
        bits += 8;

        while (bits >= 6) {
            bits -= 6;
            *d++ = alphabet[(acc >> bits) & 0x3f];
        }

        acc &= (1u << bits) - 1;
    }

    if (bits) {
        *d++ = alphabet[(acc << (6 - bits)) & 0x3f];
    }

    /* no padding in the url form */
    dst->len = d - dst->data;
}


ngx_array_t *
ngx_array_create(ngx_pool_t *p, ngx_uint_t n, size_t size)
{
    ngx_array_t  *a;

    a = ngx_palloc(p, sizeof(ngx_array_t));
    if (a == NULL) {
        return NULL;
    }

    a->elts = ngx_palloc(p, n * size);
    if (a->elts == NULL) {
        return NULL;
    }

    a->nelts = 0;
    a->size = size;
    a->nalloc = n;
    a->pool = p;

    return a;
}


void *
ngx_array_push(ngx_array_t *a)
{
    void        *elts;
    ngx_uint_t   nalloc;

    if (a->nelts == a->nalloc) {
        /* a fresh block each time, so ASan sees any use of the old one */
        nalloc = a->nalloc ? 2 * a->nalloc : 1;

        elts = ngx_palloc(a->pool, nalloc * a->size);
        if (elts == NULL) {
            return NULL;
        }

        ngx_memcpy(elts, a->elts, a->nelts * a->size);
        a->elts = elts;
        a->nalloc = nalloc;
    }

    return (u_char *) a->elts + a->size * a->nelts++;
}


/* formatting: the conversions of the development guide that nginx modules use */

static u_char *
ngx_harness_put(u_char *buf, u_char *last, const u_char *src, size_t len,
    ngx_uint_t hex)
{
    static const u_char  digits[2][17] = { "0123456789abcdef",
                                           "0123456789ABCDEF" };
    size_t  i;

    for (i = 0; i < len && buf < last; i++) {
        if (hex) {
            *buf++ = digits[hex - 1][src[i] >> 4];
            if (buf < last) {
                *buf++ = digits[hex - 1][src[i] & 0xf];
            }

        } else {
            *buf++ = src[i];
        }
    }

    return buf;
}


static u_char *
ngx_harness_number(u_char *buf, u_char *last, uint64_t value, ngx_uint_t neg,
    u_char pad, ngx_uint_t hex, size_t width)
{
    static const char  lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";

    u_char   tmp[24], *t;
    size_t   len;

    t = tmp + sizeof(tmp);

    do {
        *--t = hex ? (hex == 1 ? lower : upper)[value & 0xf]
                   : (u_char) ('0' + value % 10);
        value = hex ? value >> 4 : value / 10;
    } while (value);

    len = tmp + sizeof(tmp) - t + (neg ? 1 : 0);

    if (neg && pad == '0' && buf < last) {
        *buf++ = '-';
        neg = 0;
    }

    for ( /* void */ ; len < width && buf < last; width--) {
        *buf++ = pad;
    }

    if (neg && buf < last) {
        *buf++ = '-';
    }

    return ngx_harness_put(buf, last, t, tmp + sizeof(tmp) - t, 0);
}


u_char *
ngx_vslprintf(u_char *buf, u_char *last, const char *fmt, va_list args)
{
    u_char                    pad, *s, c;
    size_t                    width, slen;
    int64_t                   i64;
    uint64_t                  u64;
    ngx_uint_t                is_unsigned, hex, have_slen;
    ngx_str_t                *v;
    ngx_variable_value_t     *vv;

    while (*fmt && buf < last) {

        if (*fmt != '%') {
            *buf++ = (u_char) *fmt++;
            continue;
        }

        fmt++;
        pad = ' ';
        width = 0;
        slen = 0;
        have_slen = 0;
        is_unsigned = 0;
        hex = 0;

        if (*fmt == '0') {
            pad = '0';
        }

        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + (*fmt++ - '0');
        }

        for ( ;; ) {
            if (*fmt == 'u') {
                is_unsigned = 1;

            } else if (*fmt == 'x') {
                hex = 1;
                is_unsigned = 1;

            } else if (*fmt == 'X') {
                hex = 2;
                is_unsigned = 1;

            } else if (*fmt == '*') {
                slen = va_arg(args, size_t);
                have_slen = 1;

            } else if (*fmt == '.') {
                if (fmt[1] == '*') {
                    fmt++;
                    slen = va_arg(args, size_t);
                    have_slen = 1;

                } else {
                    /* a fraction width: only %f uses it, and we format no floats */
                    while (fmt[1] >= '0' && fmt[1] <= '9') {
                        fmt++;
                    }
                }

            } else {
                break;
            }

            fmt++;
        }

        c = (u_char) *fmt;
        if (c == '\0') {
            break;
        }

        fmt++;

        switch (c) {

        case 'V':
            v = va_arg(args, ngx_str_t *);
            buf = ngx_harness_put(buf, last, v->data, v->len, hex);
            continue;

        case 'v':
            vv = va_arg(args, ngx_variable_value_t *);
            buf = ngx_harness_put(buf, last, vv->data, vv->len, hex);
            continue;

        case 's':
            s = va_arg(args, u_char *);
            buf = ngx_harness_put(buf, last, s,
                                  have_slen ? slen : ngx_strlen(s), hex);
            continue;

        case 'c':
            *buf++ = (u_char) va_arg(args, int);
            continue;

        case 'Z':
            *buf++ = '\0';
            continue;

        case 'N':
            *buf++ = LF;
            continue;

        case '%':
            *buf++ = '%';
            continue;

        case 'p':
            u64 = (uintptr_t) va_arg(args, void *);
            buf = ngx_harness_number(buf, last, u64, 0, '0', 1,
                                     2 * sizeof(void *));
            continue;

        case 'O':
            i64 = va_arg(args, off_t);
            break;

        case 'T':
            i64 = va_arg(args, time_t);
            break;

        case 'M':
            i64 = (int64_t) va_arg(args, ngx_msec_t);
            is_unsigned = 1;
            break;

        case 'z':
            if (is_unsigned) {
                u64 = va_arg(args, size_t);
            } else {
                i64 = va_arg(args, ssize_t);
            }
            goto number;

        case 'i':
            if (is_unsigned) {
                u64 = va_arg(args, ngx_uint_t);
            } else {
                i64 = va_arg(args, ngx_int_t);
            }
            goto number;

        case 'd':
            if (is_unsigned) {
                u64 = va_arg(args, unsigned int);
            } else {
                i64 = va_arg(args, int);
            }
            goto number;

        case 'l':
            if (is_unsigned) {
                u64 = va_arg(args, unsigned long);
            } else {
                i64 = va_arg(args, long);
            }
            goto number;

        case 'D':
            if (is_unsigned) {
                u64 = va_arg(args, uint32_t);
            } else {
                i64 = va_arg(args, int32_t);
            }
            goto number;

        case 'L':
            if (is_unsigned) {
                u64 = va_arg(args, uint64_t);
            } else {
                i64 = va_arg(args, int64_t);
            }
            goto number;

        default:
            /* an unknown conversion letter is written alone */
            *buf++ = c;
            continue;
        }

        /* O, T and M arrive here with i64 set */
        u64 = (uint64_t) i64;
        if (!is_unsigned && i64 < 0) {
            buf = ngx_harness_number(buf, last, 0 - u64, 1, pad, hex, width);
        } else {
            buf = ngx_harness_number(buf, last, u64, 0, pad, hex, width);
        }

        continue;

    number:

        if (!is_unsigned && i64 < 0) {
            buf = ngx_harness_number(buf, last, 0 - (uint64_t) i64, 1, pad,
                                     hex, width);
        } else {
            buf = ngx_harness_number(buf, last,
                                     is_unsigned ? u64 : (uint64_t) i64, 0,
                                     pad, hex, width);
        }
    }

    return buf;
}


u_char * ngx_cdecl
ngx_slprintf(u_char *buf, u_char *last, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, last, fmt, args);
    va_end(args);

    return p;
}
