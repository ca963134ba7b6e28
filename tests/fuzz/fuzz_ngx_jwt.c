/*
 * fuzz_ngx_jwt.c: libFuzzer target for the nginx module's JWT verifier
 * (ngx_http_vlm_jwt_verify: base64url segments, header JSON, alg / kid
 * selection, HS256 / RS256 / ES256 signatures, claims exp / nbf / iss /
 * aud / sub). Three keys are configured (HS256 with kid "k1", RS256, ES256;
 * the RSA and EC keys are generated once per process).
 *
 * Input byte 0, bit 0 clear: the rest is the token as sent. Bit 0 set: the
 * rest is header JSON '\n' claims JSON ['\n' signature bytes]; the harness
 * base64url-encodes both and signs them with the key chosen by bits 1-2
 * (HS256, RS256, ES256, or the given signature bytes), so the fuzzer reaches
 * the claims checks with arbitrary JSON. ES256 signatures are made low-S;
 * bit 3 set turns S into n - S, the high-S twin that verifies as well.
 *
 * Success must yield a subject of 1..256 readable bytes and, for an HS256
 * token, a signature that a separate HMAC over the first two segments
 * confirms, and a "kid" of exactly "k1" (the HS256 key is restricted to it);
 * an accepted ES256 token must have S <= n/2. A refusal must set an error
 * string, which names "none" only when the header's alg says so. Seeds:
 * build.sh writes them; tests/fuzz/regressions/ngx_jwt holds inputs that
 * were accepted before the kid, low-S and "alg" checks.
 */

#include "ngx_harness.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#define FUZZ_JWT_NOW  1700000000

static const u_char  hs_secret[] = "fuzz-hs256-secret-0123456789abcdef";

static EVP_PKEY  *rs_key, *es_key;
static ngx_http_vlm_jwt_key_t  keys[3];
static BIGNUM    *p256_n, *p256_half_n;


static void
init_keys(void)
{
    EVP_PKEY_CTX  *kc;

    kc = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
    if (kc == NULL || EVP_PKEY_keygen_init(kc) != 1
        || EVP_PKEY_CTX_set_rsa_keygen_bits(kc, 2048) != 1
        || EVP_PKEY_keygen(kc, &rs_key) != 1)
    {
        abort();
    }

    EVP_PKEY_CTX_free(kc);

    kc = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
    if (kc == NULL || EVP_PKEY_keygen_init(kc) != 1
        || EVP_PKEY_CTX_set_ec_paramgen_curve_nid(kc, NID_X9_62_prime256v1)
           != 1
        || EVP_PKEY_keygen(kc, &es_key) != 1)
    {
        abort();
    }

    EVP_PKEY_CTX_free(kc);

    keys[0].alg = NGX_HTTP_VLM_JWT_HS256;
    ngx_str_set(&keys[0].kid, "k1");
    keys[0].secret.data = (u_char *) hs_secret;
    keys[0].secret.len = sizeof(hs_secret) - 1;

    keys[1].alg = NGX_HTTP_VLM_JWT_RS256;
    keys[1].pkey = rs_key;

    keys[2].alg = NGX_HTTP_VLM_JWT_ES256;
    keys[2].pkey = es_key;

    /* the group order of P-256 and its half, written out independently */
    if (BN_hex2bn(&p256_n, "FFFFFFFF00000000FFFFFFFFFFFFFFFF"
                           "BCE6FAADA7179E84F3B9CAC2FC632551") == 0
        || (p256_half_n = BN_dup(p256_n)) == NULL
        || BN_rshift1(p256_half_n, p256_half_n) != 1)
    {
        abort();
    }
}


static u_char *
b64url(ngx_pool_t *pool, u_char *out, const u_char *in, size_t len)
{
    ngx_str_t  src, dst;

    src.data = (u_char *) in;
    src.len = len;
    dst.data = out;
    ngx_encode_base64url(&dst, &src);

    return out + dst.len;
}


/*
 * header '\n' claims ['\n' sig]: a compact JWS signed with keys[alg]; an
 * ES256 signature is low-S, or its high-S twin when high_s is set
 */
static ngx_int_t
make_token(ngx_pool_t *pool, ngx_uint_t alg, ngx_uint_t high_s,
    const u_char *data, size_t size, ngx_str_t *token)
{
    u_char         *nl, *p, *sig_bytes, sig[512];
    size_t          hlen, clen, slen, siglen;
    BIGNUM         *s2;
    ECDSA_SIG      *es;
    EVP_MD_CTX     *md;
    const BIGNUM   *er, *esv;
    unsigned int    maclen;
    const u_char   *der;

    nl = memchr(data, '\n', size);
    if (nl == NULL) {
        return NGX_DECLINED;
    }

    hlen = nl - data;
    p = nl + 1;
    nl = memchr(p, '\n', size - hlen - 1);
    clen = nl ? (size_t) (nl - p) : size - hlen - 1;
    sig_bytes = nl ? nl + 1 : NULL;
    slen = nl ? size - hlen - 1 - clen - 1 : 0;

    token->data = ngx_pnalloc(pool, ngx_base64_encoded_length(hlen)
                                    + ngx_base64_encoded_length(clen)
                                    + ngx_base64_encoded_length(
                                          ngx_max(slen, sizeof(sig)))
                                    + 2);
    p = b64url(pool, token->data, data, hlen);
    *p++ = '.';
    p = b64url(pool, p, data + hlen + 1, clen);

    siglen = 0;

    switch (alg) {

    case 0:
        maclen = 0;
        if (HMAC(EVP_sha256(), hs_secret, sizeof(hs_secret) - 1,
                 token->data, p - token->data, sig, &maclen) == NULL)
        {
            abort();
        }

        siglen = maclen;
        break;

    case 1:
    case 2:
        md = EVP_MD_CTX_new();
        siglen = sizeof(sig);

        if (md == NULL
            || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
                                  alg == 1 ? rs_key : es_key) != 1
            || EVP_DigestSign(md, sig, &siglen, token->data,
                              p - token->data) != 1)
        {
            abort();
        }

        EVP_MD_CTX_free(md);

        if (alg == 2) {
            /* DER to JWS's raw R||S */
            der = sig;
            es = d2i_ECDSA_SIG(NULL, &der, siglen);
            if (es == NULL) {
                abort();
            }

            ECDSA_SIG_get0(es, &er, &esv);

            /* s2 = the low S of the pair (S, n - S), or the high one */
            s2 = BN_new();
            if (s2 == NULL || BN_sub(s2, p256_n, esv) != 1) {
                abort();
            }

            if ((BN_cmp(esv, p256_half_n) > 0) != (high_s != 0)) {
                esv = s2;
            }

            if (BN_bn2binpad(er, sig, 32) != 32
                || BN_bn2binpad(esv, sig + 32, 32) != 32)
            {
                abort();
            }

            BN_free(s2);
            ECDSA_SIG_free(es);
            siglen = 64;
        }

        break;

    default:
        if (slen > sizeof(sig)) {
            slen = sizeof(sig);
        }

        if (slen) {
            memcpy(sig, sig_bytes, slen);
        }

        siglen = slen;
        break;
    }

    *p++ = '.';
    p = b64url(pool, p, sig, siglen);
    token->len = p - token->data;

    return NGX_OK;
}


/* an accepted HS256 token must carry the HMAC of its first two segments */
static void
check_hs256(ngx_pool_t *pool, ngx_str_t *token)
{
    u_char       *dot, mac[EVP_MAX_MD_SIZE];
    ngx_str_t     src, dst;
    unsigned int  maclen;

    dot = token->data + token->len;
    while (dot > token->data && dot[-1] != '.') {
        dot--;
    }

    if (dot == token->data) {
        __builtin_trap();
    }

    src.data = dot;
    src.len = token->data + token->len - dot;
    dst.data = ngx_pnalloc(pool, ngx_base64_decoded_length(src.len) + 1);

    if (ngx_decode_base64url(&dst, &src) != NGX_OK
        || HMAC(EVP_sha256(), hs_secret, sizeof(hs_secret) - 1,
                token->data, dot - 1 - token->data, mac, &maclen) == NULL
        || dst.len != maclen || CRYPTO_memcmp(mac, dst.data, maclen) != 0)
    {
        __builtin_trap();
    }
}


/* the token's header as JSON, or NULL when it does not decode to an object */
static json_t *
token_header(ngx_pool_t *pool, ngx_str_t *token)
{
    u_char     *dot;
    json_t     *hdr;
    ngx_str_t   h, src;

    dot = memchr(token->data, '.', token->len);
    if (dot == NULL) {
        return NULL;
    }

    src.data = token->data;
    src.len = dot - token->data;
    h.data = ngx_pnalloc(pool, ngx_base64_decoded_length(src.len) + 1);

    if (ngx_decode_base64url(&h, &src) != NGX_OK) {
        return NULL;
    }

    hdr = json_loadb((char *) h.data, h.len, 0, NULL);
    if (hdr != NULL && !json_is_object(hdr)) {
        json_decref(hdr);
        return NULL;
    }

    return hdr;
}


/* the JSON string v is exactly s (embedded NULs count) */
static int
json_str_is(json_t *v, const char *s)
{
    return json_is_string(v) && json_string_length(v) == strlen(s)
           && memcmp(json_string_value(v), s, strlen(s)) == 0;
}


/* an accepted ES256 token's S, the last 32 bytes of its signature */
static void
check_low_s(ngx_pool_t *pool, ngx_str_t *token)
{
    u_char     *dot;
    BIGNUM     *s;
    ngx_str_t   src, dst;

    dot = token->data + token->len;
    while (dot > token->data && dot[-1] != '.') {
        dot--;
    }

    src.data = dot;
    src.len = token->data + token->len - dot;
    dst.data = ngx_pnalloc(pool, ngx_base64_decoded_length(src.len) + 1);

    if (ngx_decode_base64url(&dst, &src) != NGX_OK || dst.len != 64) {
        __builtin_trap();
    }

    s = BN_bin2bn(dst.data + 32, 32, NULL);
    if (s == NULL || BN_cmp(s, p256_half_n) > 0) {
        __builtin_trap();           /* the malleable high-S twin got in */
    }

    BN_free(s);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t                   *hdr, *alg;
    ngx_int_t                 rc;
    ngx_str_t                 token, subject, error;
    ngx_uint_t                mode, i;
    ngx_array_t               key_array;
    ngx_pool_t               *pool;
    ngx_http_request_t       *r;
    volatile u_char           sink;
    ngx_http_vlm_loc_conf_t   vlcf;
    ngx_http_vlm_main_conf_t  vmcf;

    static int  inited;

    if (!inited) {
        init_keys();
        ngx_harness_set_time(FUZZ_JWT_NOW);
        inited = 1;
    }

    if (size < 1) {
        return 0;
    }

    mode = data[0];
    data++;
    size--;

    ngx_memzero(&vmcf, sizeof(vmcf));
    ngx_memzero(&vlcf, sizeof(vlcf));
    ngx_memzero(&key_array, sizeof(key_array));

    key_array.elts = keys;
    key_array.nelts = 3;
    key_array.size = sizeof(ngx_http_vlm_jwt_key_t);
    key_array.nalloc = 3;

    vlcf.jwt_keys = &key_array;
    ngx_str_set(&vlcf.jwt_issuer, "https://wp.example");
    ngx_str_set(&vlcf.jwt_audience, "vlm");
    vlcf.jwt_leeway = 30;

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, NULL);
    r = ngx_harness_request(pool, &vmcf, &vlcf);

    if (mode & 1) {
        if (make_token(pool, (mode >> 1) & 3, mode & 8, data, size, &token)
            != NGX_OK)
        {
            ngx_destroy_pool(pool);
            return 0;
        }

    } else {
        /* an exact-size copy, so ASan sees any read past the token */
        token.len = size;
        token.data = ngx_pnalloc(pool, size);
        ngx_memcpy(token.data, data, size);
    }

    ngx_str_null(&subject);
    ngx_str_null(&error);

    rc = ngx_http_vlm_jwt_verify(r, &vlcf, &token, &subject, &error);

    if (getenv("FUZZ_NGX_DEBUG")) {     /* to check what a seed reaches */
        fprintf(stderr, "rc=%d %.*s\n", (int) rc,
                (int) (rc == NGX_OK ? subject.len : error.len),
                rc == NGX_OK ? subject.data : error.data);
    }

    if (rc == NGX_OK) {
        if (subject.len == 0 || subject.len > 256 || error.len != 0) {
            __builtin_trap();
        }

        sink = 0;
        for (i = 0; i < subject.len; i++) {
            sink ^= subject.data[i];
        }
        (void) sink;

        /* the header says which key was used */
        hdr = token_header(pool, &token);
        if (hdr == NULL) {
            __builtin_trap();
        }

        alg = json_object_get(hdr, "alg");

        if (json_str_is(alg, "HS256")) {
            check_hs256(pool, &token);

            /* keys[0] has kid=k1: no kid, or another, must not get in */
            if (!json_str_is(json_object_get(hdr, "kid"), "k1")) {
                __builtin_trap();
            }

        } else if (json_str_is(alg, "ES256")) {
            check_low_s(pool, &token);

        } else if (!json_str_is(alg, "RS256")) {
            __builtin_trap();
        }

        json_decref(hdr);

    } else if (rc != NGX_ERROR || error.len == 0 || error.data == NULL) {
        __builtin_trap();

    } else if (ngx_strlcasestrn(error.data, error.data + error.len,
                                (u_char *) "none", 4 - 1) != NULL)
    {
        /* "none" in the refusal only for a header whose alg is "none" */
        hdr = token_header(pool, &token);
        alg = hdr ? json_object_get(hdr, "alg") : NULL;

        if (!json_is_string(alg) || json_string_length(alg) != 4
            || strncasecmp(json_string_value(alg), "none", 4) != 0)
        {
            __builtin_trap();
        }

        json_decref(hdr);
    }

    ngx_destroy_pool(pool);

    return 0;
}
