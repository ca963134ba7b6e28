
/*
 * Copyright (C) vlm authors
 *
 * ngx_http_vlm_jwt: JWS compact tokens verified with OpenSSL. One algorithm
 * per configured key (the header's "alg" must equal it, so an RSA public key
 * can never be used as an HMAC secret), "none" always refused, a key with
 * kid= only for tokens naming that kid, HMAC compared in constant time,
 * ES256's raw R||S turned into DER and accepted in its low-S form only.
 * Claims: exp required, nbf, iss and aud checked with a leeway; sub becomes
 * $vlm_subject.
 * Not here: JWE, key sets fetched over the network, token caching.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include "ngx_http_vlm_module.h"


static ngx_int_t ngx_http_vlm_b64url(ngx_pool_t *pool, u_char *p, size_t len,
    ngx_str_t *out);
static ngx_uint_t ngx_http_vlm_jwt_str_is(json_t *v, u_char *s, size_t len);
static ngx_int_t ngx_http_vlm_jwt_signature_ok(ngx_http_vlm_jwt_key_t *key,
    u_char *input, size_t input_len, ngx_str_t *sig);
static ngx_int_t ngx_http_vlm_jwt_claims(ngx_http_request_t *r,
    ngx_http_vlm_loc_conf_t *vlcf, json_t *claims, ngx_str_t *subject,
    ngx_str_t *error);
static void ngx_http_vlm_jwt_free_key(void *data);


/* the order n of P-256 halved (rounded down), big-endian: the largest low S */
static u_char  ngx_http_vlm_p256_half_n[32] = {
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00,
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42,
    0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8
};


static ngx_int_t
ngx_http_vlm_b64url(ngx_pool_t *pool, u_char *p, size_t len, ngx_str_t *out)
{
    size_t     i;
    u_char     c;
    ngx_str_t  src;

    /* canonical base64url only: no padding, no other characters */
    if (len % 4 == 1) {
        return NGX_ERROR;
    }

    for (i = 0; i < len; i++) {
        c = p[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_'))
        {
            return NGX_ERROR;
        }
    }

    src.data = p;
    src.len = len;

    out->data = ngx_pnalloc(pool, ngx_base64_decoded_length(len) + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_decode_base64url(out, &src) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_vlm_jwt_verify(ngx_http_request_t *r, ngx_http_vlm_loc_conf_t *vlcf,
    ngx_str_t *token, ngx_str_t *subject, ngx_str_t *error)
{
    u_char                  *dot1, *dot2, *last, *kid;
    json_t                  *header, *claims, *crit, *alg_v, *kid_v;
    size_t                   kid_len;
    ngx_int_t                rc;
    ngx_str_t                hdr, payload, sig;
    ngx_uint_t               i, alg, alg_keys;
    json_error_t             err;
    ngx_http_vlm_jwt_key_t  *keys, *key;

    last = token->data + token->len;
    dot1 = ngx_strlchr(token->data, last, '.');
    dot2 = dot1 ? ngx_strlchr(dot1 + 1, last, '.') : NULL;

    if (dot1 == NULL || dot2 == NULL
        || ngx_http_vlm_b64url(r->pool, token->data, dot1 - token->data,
                               &hdr) != NGX_OK
        || ngx_http_vlm_b64url(r->pool, dot1 + 1, dot2 - dot1 - 1,
                               &payload) != NGX_OK
        || ngx_http_vlm_b64url(r->pool, dot2 + 1, last - dot2 - 1, &sig)
           != NGX_OK)
    {
        ngx_str_set(error, "malformed JWT");
        return NGX_ERROR;
    }

    header = json_loadb((char *) hdr.data, hdr.len, JSON_REJECT_DUPLICATES,
                        &err);
    if (header == NULL || !json_is_object(header)) {
        json_decref(header);
        ngx_str_set(error, "malformed JWT header");
        return NGX_ERROR;
    }

    alg_v = json_object_get(header, "alg");
    kid_v = json_object_get(header, "kid");
    crit = json_object_get(header, "crit");

    if (crit != NULL) {
        ngx_str_set(error, "JWT header has unsupported \"crit\"");
        goto refused;
    }

    if (alg_v == NULL) {
        ngx_str_set(error, "JWT header has no \"alg\"");
        goto refused;
    }

    if (!json_is_string(alg_v)) {
        ngx_str_set(error, "JWT \"alg\" is not a string");
        goto refused;
    }

    if (kid_v != NULL && !json_is_string(kid_v)) {
        ngx_str_set(error, "JWT \"kid\" is not a string");
        goto refused;
    }

    if (ngx_http_vlm_jwt_str_is(alg_v, (u_char *) "HS256", 5)) {
        alg = NGX_HTTP_VLM_JWT_HS256;

    } else if (ngx_http_vlm_jwt_str_is(alg_v, (u_char *) "RS256", 5)) {
        alg = NGX_HTTP_VLM_JWT_RS256;

    } else if (ngx_http_vlm_jwt_str_is(alg_v, (u_char *) "ES256", 5)) {
        alg = NGX_HTTP_VLM_JWT_ES256;

    } else if (json_string_length(alg_v) == 4
               && ngx_strncasecmp((u_char *) json_string_value(alg_v),
                                  (u_char *) "none", 4) == 0)
    {
        ngx_str_set(error, "JWT algorithm \"none\" is not accepted");
        goto refused;

    } else {
        ngx_str_set(error, "unsupported JWT algorithm");
        goto refused;
    }

    /*
     * ECDSA signatures are malleable: when (R, S) verifies, so does
     * (R, n - S), a second token string for the same header and claims that
     * anyone can derive without the key. Accepting only S <= n/2 leaves one
     * valid form per signature, so a token string can serve as its identity
     * (revocation lists, replay checks, logs). Issuers must emit low S.
     */
    if (alg == NGX_HTTP_VLM_JWT_ES256 && sig.len == 64
        && ngx_memcmp(sig.data + 32, ngx_http_vlm_p256_half_n, 32) > 0)
    {
        ngx_str_set(error, "JWT ES256 signature has S > n/2: only the low-S "
                           "form is accepted");
        goto refused;
    }

    kid = kid_v ? (u_char *) json_string_value(kid_v) : NULL;
    kid_len = kid_v ? json_string_length(kid_v) : 0;

    keys = vlcf->jwt_keys->elts;
    rc = NGX_DECLINED;
    key = NULL;
    alg_keys = 0;

    for (i = 0; i < vlcf->jwt_keys->nelts; i++) {

        if (keys[i].alg != alg) {
            continue;
        }

        alg_keys++;

        /* a key with kid= takes only tokens that name that kid */
        if (keys[i].kid.len
            && (kid == NULL || keys[i].kid.len != kid_len
                || ngx_memcmp(keys[i].kid.data, kid, kid_len) != 0))
        {
            continue;
        }

        key = &keys[i];
        rc = ngx_http_vlm_jwt_signature_ok(key, token->data,
                                           dot2 - token->data, &sig);
        if (rc == NGX_OK) {
            break;
        }
    }

    json_decref(header);

    if (rc != NGX_OK) {
        if (alg_keys == 0) {
            /* e.g. an HS256 token where only RS256 keys are configured */
            ngx_str_set(error, "no key is configured for the JWT's "
                               "algorithm");

        } else if (key == NULL && kid == NULL) {
            ngx_str_set(error, "JWT has no \"kid\", and every key for its "
                               "algorithm is restricted to one");

        } else if (key == NULL) {
            ngx_str_set(error, "no key is configured for the JWT's \"kid\"");

        } else {
            ngx_str_set(error, "JWT signature is invalid");
        }

        return NGX_ERROR;
    }

    claims = json_loadb((char *) payload.data, payload.len,
                        JSON_REJECT_DUPLICATES, &err);
    if (claims == NULL || !json_is_object(claims)) {
        json_decref(claims);
        ngx_str_set(error, "malformed JWT claims");
        return NGX_ERROR;
    }

    rc = ngx_http_vlm_jwt_claims(r, vlcf, claims, subject, error);
    json_decref(claims);

    return rc;

refused:

    json_decref(header);

    return NGX_ERROR;
}


/* the JSON string v is exactly the len bytes of s */
static ngx_uint_t
ngx_http_vlm_jwt_str_is(json_t *v, u_char *s, size_t len)
{
    return json_string_length(v) == len
           && ngx_memcmp(json_string_value(v), s, len) == 0;
}


static ngx_int_t
ngx_http_vlm_jwt_signature_ok(ngx_http_vlm_jwt_key_t *key, u_char *input,
    size_t input_len, ngx_str_t *sig)
{
    int             ok, der_len;
    u_char         *der;
    BIGNUM         *br, *bs;
    ngx_int_t       rc;
    EVP_MD_CTX     *md;
    ECDSA_SIG      *es;
    unsigned int    mac_len;
    u_char          mac[EVP_MAX_MD_SIZE];

    if (key->alg == NGX_HTTP_VLM_JWT_HS256) {
        if (HMAC(EVP_sha256(), key->secret.data, (int) key->secret.len,
                 input, input_len, mac, &mac_len)
            == NULL)
        {
            return NGX_ERROR;
        }

        if (sig->len != mac_len
            || CRYPTO_memcmp(mac, sig->data, mac_len) != 0)
        {
            return NGX_DECLINED;
        }

        return NGX_OK;
    }

    der = NULL;
    der_len = 0;

    if (key->alg == NGX_HTTP_VLM_JWT_ES256) {
        /* JWS carries R||S, 32 bytes each; OpenSSL verifies DER */
        if (sig->len != 64) {
            return NGX_DECLINED;
        }

        es = ECDSA_SIG_new();
        br = BN_bin2bn(sig->data, 32, NULL);
        bs = BN_bin2bn(sig->data + 32, 32, NULL);

        if (es == NULL || br == NULL || bs == NULL
            || ECDSA_SIG_set0(es, br, bs) != 1)
        {
            ECDSA_SIG_free(es);
            BN_free(br);
            BN_free(bs);
            return NGX_ERROR;
        }

        der_len = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);

        if (der_len <= 0) {
            return NGX_ERROR;
        }
    }

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        OPENSSL_free(der);
        return NGX_ERROR;
    }

    rc = NGX_DECLINED;

    if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key->pkey) == 1) {
        ok = EVP_DigestVerify(md, der ? der : sig->data,
                              der ? (size_t) der_len : sig->len,
                              input, input_len);
        if (ok == 1) {
            rc = NGX_OK;
        }

    } else {
        rc = NGX_ERROR;
    }

    EVP_MD_CTX_free(md);
    OPENSSL_free(der);

    return rc;
}


static ngx_int_t
ngx_http_vlm_jwt_claims(ngx_http_request_t *r, ngx_http_vlm_loc_conf_t *vlcf,
    json_t *claims, ngx_str_t *subject, ngx_str_t *error)
{
    json_t      *v, *a;
    size_t       i;
    time_t       now;
    ngx_int_t    found;
    const char  *s;

    now = ngx_time();

    v = json_object_get(claims, "exp");
    if (!json_is_number(v)) {
        ngx_str_set(error, "JWT has no \"exp\" claim");
        return NGX_ERROR;
    }

    if (json_number_value(v) + vlcf->jwt_leeway < (double) now) {
        ngx_str_set(error, "JWT has expired");
        return NGX_ERROR;
    }

    v = json_object_get(claims, "nbf");
    if (v != NULL) {
        if (!json_is_number(v)) {
            ngx_str_set(error, "JWT \"nbf\" is not a number");
            return NGX_ERROR;
        }

        if (json_number_value(v) - vlcf->jwt_leeway > (double) now) {
            ngx_str_set(error, "JWT is not valid yet (nbf)");
            return NGX_ERROR;
        }
    }

    if (vlcf->jwt_issuer.len) {
        s = json_string_value(json_object_get(claims, "iss"));

        if (s == NULL || ngx_strlen(s) != vlcf->jwt_issuer.len
            || ngx_strncmp(s, vlcf->jwt_issuer.data, vlcf->jwt_issuer.len)
               != 0)
        {
            ngx_str_set(error, "JWT issuer is not accepted");
            return NGX_ERROR;
        }
    }

    if (vlcf->jwt_audience.len) {
        a = json_object_get(claims, "aud");
        found = 0;

        if (json_is_string(a)) {
            s = json_string_value(a);
            found = (ngx_strlen(s) == vlcf->jwt_audience.len
                     && ngx_strncmp(s, vlcf->jwt_audience.data,
                                    vlcf->jwt_audience.len) == 0);

        } else if (json_is_array(a)) {
            for (i = 0; i < json_array_size(a); i++) {
                s = json_string_value(json_array_get(a, i));

                if (s != NULL && ngx_strlen(s) == vlcf->jwt_audience.len
                    && ngx_strncmp(s, vlcf->jwt_audience.data,
                                   vlcf->jwt_audience.len) == 0)
                {
                    found = 1;
                }
            }
        }

        if (!found) {
            ngx_str_set(error, "JWT audience is not accepted");
            return NGX_ERROR;
        }
    }

    s = json_string_value(json_object_get(claims, "sub"));
    if (s == NULL || *s == '\0') {
        ngx_str_set(error, "JWT has no \"sub\" claim");
        return NGX_ERROR;
    }

    subject->len = ngx_min(ngx_strlen(s), 256);
    subject->data = ngx_pnalloc(r->pool, subject->len);
    if (subject->data == NULL) {
        ngx_str_set(error, "out of memory");
        return NGX_ERROR;
    }

    ngx_memcpy(subject->data, s, subject->len);

    return NGX_OK;
}


static void
ngx_http_vlm_jwt_free_key(void *data)
{
    EVP_PKEY_free(data);
}


char *
ngx_http_vlm_jwt_load_key(ngx_conf_t *cf, ngx_http_vlm_jwt_key_t *key,
    ngx_str_t *file)
{
    BIO                 *bio;
    EVP_PKEY            *pkey;
    ngx_str_t            name;
    ngx_pool_cleanup_t  *cln;

    name = *file;
    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    bio = BIO_new_file((char *) name.data, "r");
    if (bio == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "vlm_jwt_key: cannot open \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    if (key->alg == NGX_HTTP_VLM_JWT_HS256) {
        key->secret.data = ngx_pnalloc(cf->pool, 4096);
        if (key->secret.data == NULL) {
            BIO_free(bio);
            return NGX_CONF_ERROR;
        }

        key->secret.len = 0;
        if (BIO_read_ex(bio, key->secret.data, 4096, &key->secret.len) != 1)
        {
            key->secret.len = 0;
        }

        BIO_free(bio);

        /* a trailing newline from an editor is not part of the secret */
        while (key->secret.len
               && (key->secret.data[key->secret.len - 1] == '\n'
                   || key->secret.data[key->secret.len - 1] == '\r'))
        {
            key->secret.len--;
        }

        if (key->secret.len < 32) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "vlm_jwt_key: HS256 secret in \"%V\" is "
                               "shorter than 32 bytes", &name);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);

    if (pkey == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "vlm_jwt_key: \"%V\" is not a PEM public key",
                           &name);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        EVP_PKEY_free(pkey);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_vlm_jwt_free_key;
    cln->data = pkey;

    if ((key->alg == NGX_HTTP_VLM_JWT_RS256
         && EVP_PKEY_base_id(pkey) != EVP_PKEY_RSA)
        || (key->alg == NGX_HTTP_VLM_JWT_ES256
            && EVP_PKEY_base_id(pkey) != EVP_PKEY_EC))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "vlm_jwt_key: \"%V\" does not hold a key of the "
                           "algorithm given", &name);
        return NGX_CONF_ERROR;
    }

    key->pkey = pkey;

    return NGX_CONF_OK;
}
