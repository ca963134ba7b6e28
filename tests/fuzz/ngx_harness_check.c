/*
 * ngx_harness_check.c: checks our stand-ins for nginx's core string calls
 * (ngx_harness.c) against hand-written expectations, so the fuzz targets
 * exercise the module with the semantics real nginx gives it. Built and run
 * by build.sh; exits non-zero on the first mismatch.
 */

#include "ngx_harness.h"

#include <stdio.h>
#include <string.h>


static int  failures;


static void
expect_fmt(const char *want, const char *fmt, ...)
{
    u_char   buf[128], *p;
    va_list  args;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf) - 1, fmt, args);
    va_end(args);
    *p = '\0';

    if (strcmp((char *) buf, want) != 0) {
        fprintf(stderr, "format \"%s\": got \"%s\", want \"%s\"\n", fmt, buf, want);
        failures++;
    }
}


static void
expect_b64(const char *in, ngx_uint_t url, ngx_int_t rc_want, const char *want)
{
    u_char      out[64];
    ngx_int_t   rc;
    ngx_str_t   src, dst;

    src.data = (u_char *) in;
    src.len = strlen(in);
    dst.data = out;
    rc = url ? ngx_decode_base64url(&dst, &src) : ngx_decode_base64(&dst, &src);

    if (rc != rc_want
        || (rc == NGX_OK && (dst.len != strlen(want) || memcmp(out, want, dst.len) != 0)))
    {
        fprintf(stderr, "base64%s \"%s\": rc %d\n", url ? "url" : "", in, (int) rc);
        failures++;
    }
}


int
main(void)
{
    ngx_str_t  v = ngx_string("name");
    u_char     enc[16], hay[] = "Content-Disposition: form-data; NAME=\"x\"";
    ngx_str_t  e, raw = ngx_string("\xfb\xff");

    expect_fmt("a name b", "a %V b", &v);
    expect_fmt("s=abc", "s=%s", "abc");
    expect_fmt("ab", "%*s", (size_t) 2, "abcdef");
    expect_fmt("abc", "%.*s", (size_t) 3, "abcdef");
    expect_fmt("-42 7", "%d %ui", -42, (ngx_uint_t) 7);
    expect_fmt("640x480", "%uix%ui", (ngx_uint_t) 640, (ngx_uint_t) 480);
    expect_fmt("18446744073709551615", "%uL", (uint64_t) -1);
    expect_fmt("-9223372036854775808", "%L", (int64_t) INT64_MIN);
    expect_fmt("12 -3", "%uz %z", (size_t) 12, (ssize_t) -3);
    expect_fmt("0042|  42", "%04d|%4d", 42, 42);
    expect_fmt("ff 1A", "%xi %Xd", (ngx_int_t) 255, 26);
    expect_fmt("6e616d65", "%xV", &v);
    expect_fmt("100%", "100%%");
    expect_fmt("q", "%q");                       /* unknown: the letter alone */

    /* a buffer that is too small is filled up to last, never past it */
    {
        u_char  small[5] = "zzzz";

        if (ngx_slprintf(small, small + 3, "%s", "abcdef") != small + 3
            || memcmp(small, "abcz", 4) != 0)
        {
            fprintf(stderr, "slprintf overran its buffer\n");
            failures++;
        }
    }

    expect_b64("aGVsbG8=", 0, NGX_OK, "hello");
    expect_b64("aGVsbG8", 0, NGX_OK, "hello");          /* padding optional */
    expect_b64("aGVsbG8=garbage!", 0, NGX_OK, "hello"); /* stops at '=' */
    expect_b64("aGVs!G8", 0, NGX_ERROR, "");
    expect_b64("aGVsb", 0, NGX_ERROR, "");              /* 4k+1 characters */
    expect_b64("-_8", 1, NGX_OK, "\xfb\xff");
    expect_b64("+/8", 1, NGX_ERROR, "");
    expect_b64("", 0, NGX_OK, "");

    e.data = enc;
    ngx_encode_base64url(&e, &raw);
    if (e.len != 3 || memcmp(enc, "-_8", 3) != 0) {
        fprintf(stderr, "encode_base64url\n");
        failures++;
    }

    if (ngx_strlcasestrn(hay, hay + sizeof(hay) - 1, (u_char *) "name=\"", 5)
        != hay + 32
        || ngx_strlcasestrn(hay, hay + 5, (u_char *) "content", 6) != NULL
        || ngx_strncasecmp((u_char *) "HTTP://x", (u_char *) "http://", 7) != 0
        || ngx_strcasecmp((u_char *) "HS256", (u_char *) "hs256") != 0
        || ngx_atoi((u_char *) "123", 3) != 123
        || ngx_atoi((u_char *) "12a", 3) != NGX_ERROR
        || ngx_atoi((u_char *) "", 0) != NGX_ERROR
        || ngx_atoi((u_char *) "99999999999999999999", 20) != NGX_ERROR)
    {
        fprintf(stderr, "string helpers\n");
        failures++;
    }

    printf("ngx_harness_check: %d failure(s)\n", failures);
    return failures != 0;
}
