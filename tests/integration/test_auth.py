"""Authentication: JWT (HS256, RS256, ES256) and API keys. Every failure is a
401 in OpenAI's error shape with a message that says what was wrong, and is
decided before the request body is read."""
import base64
import hmac
import hashlib
import json
import socket
import time

import pytest

from conftest import API_KEY, KID, P256_N, REVOKED_KEY, b64url, error_of


def models(stack, token):
    return stack.get("/v1/models", auth=token)


def assert_401(stack, token, words, path="/v1/models"):
    status, headers, body = stack.get(path, auth=token)
    assert status == 401, body
    assert headers["www-authenticate"].startswith("Bearer")
    err = error_of(body)
    assert err["type"] == "authentication_error"
    assert words in err["message"], err["message"]
    return err["message"]


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256"])
def test_valid_jwt_is_accepted(stack, alg):
    status, _, body = models(stack, stack.jwt(alg))
    assert status == 200, body


def test_api_key_is_accepted(stack):
    assert models(stack, API_KEY)[0] == 200


def test_missing_token(stack):
    assert_401(stack, None, "missing credentials")


def test_bad_signature(stack):
    token = stack.jwt("HS256", key=b"another-secret-that-is-long-enough-0123")
    assert_401(stack, token, "signature is invalid")


def test_tampered_claims_break_the_signature(stack):
    h, p, s = stack.jwt("RS256").split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=="))
    claims["sub"] = "admin"
    assert_401(stack, ".".join([h, b64url(json.dumps(claims).encode()), s]),
               "signature is invalid")


def test_expired(stack):
    assert_401(stack, stack.jwt("HS256", {"exp": int(time.time()) - 60}), "expired")


def test_expired_within_leeway_is_accepted(stack):
    assert models(stack, stack.jwt("HS256", {"exp": int(time.time()) - 2}))[0] == 200


def test_missing_exp(stack):
    token = stack.jwt("HS256", {"exp": None})
    assert_401(stack, token, "exp")


def test_nbf_in_future(stack):
    assert_401(stack, stack.jwt("ES256", {"nbf": int(time.time()) + 600}), "not valid yet")


def test_alg_none(stack):
    h = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    p = b64url(json.dumps({"sub": "x", "aud": "vlm", "exp": int(time.time()) + 60}).encode())
    assert_401(stack, h + "." + p + ".", "none")


def test_alg_missing_is_named_as_missing(stack):
    # A header without "alg" (or with a non-string one) used to be refused as
    # 'JWT algorithm "none" is not accepted', which sent people looking for a
    # "none" that was never there.
    claims = b64url(json.dumps({"sub": "x", "aud": "vlm", "exp": int(time.time()) + 60}).encode())
    for hdr, words in (({"typ": "JWT"}, 'no "alg"'), ({"alg": 256}, '"alg" is not a string')):
        token = b64url(json.dumps(hdr).encode()) + "." + claims + ".c2ln"
        message = assert_401(stack, token, words)
        assert "none" not in message, message


KID_PATH = "/kid/v1/models"


@pytest.mark.parametrize("alg", ["HS256", "ES256"])
def test_kid_restricted_key_needs_that_kid(stack, alg):
    # A key configured with kid= used to accept a token with no "kid" at all
    # (or a non-string one), although the configuration says kid= restricts
    # the key to tokens with that kid.
    assert stack.get(KID_PATH, auth=stack.jwt(alg, header={"kid": KID}))[0] == 200
    assert_401(stack, stack.jwt(alg), 'no "kid"', KID_PATH)
    assert_401(stack, stack.jwt(alg, header={"kid": "other"}), "kid", KID_PATH)
    assert_401(stack, stack.jwt(alg, header={"kid": 7}), '"kid" is not a string', KID_PATH)
    # keys without kid= still take tokens with or without one
    assert models(stack, stack.jwt(alg))[0] == 200
    assert models(stack, stack.jwt(alg, header={"kid": "any"}))[0] == 200


def test_es256_high_s_is_refused(stack):
    # ECDSA signatures are malleable: if (r, s) verifies, so does (r, n - s),
    # a different token string for the same claims. Only the low-S form
    # (s <= n/2) is accepted now; the high-S twin used to verify too.
    token = stack.jwt("ES256")
    h, p, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    assert s <= P256_N // 2
    assert models(stack, token)[0] == 200
    twin = r.to_bytes(32, "big") + (P256_N - s).to_bytes(32, "big")
    assert_401(stack, h + "." + p + "." + b64url(twin), "low-S")


def test_hs_rs_confusion(stack):
    # the classic attack: HS256 "signed" with the RSA public key as secret
    token = stack.jwt("HS256", key=stack.rsa_pub_pem)
    assert_401(stack, token, "signature is invalid")


def test_rs_token_with_hs_header_alg_mismatch(stack):
    h, p, s = stack.jwt("RS256").split(".")
    hdr = b64url(json.dumps({"alg": "ES256"}).encode())
    assert_401(stack, ".".join([hdr, p, s]), "signature is invalid")


def test_wrong_audience(stack):
    assert_401(stack, stack.jwt("RS256", {"aud": "someone-else"}), "audience")


def test_wrong_issuer(stack):
    assert_401(stack, stack.jwt("HS256", {"iss": "https://evil.example"}), "issuer")


def test_malformed_token(stack):
    assert_401(stack, "abc.def.g!h", "malformed")


def test_unknown_api_key(stack):
    assert_401(stack, "not-a-key", "unknown or revoked API key")


def test_revoked_api_key(stack):
    assert models(stack, REVOKED_KEY)[0] == 200
    stack.write_api_keys([(API_KEY, "it-user")])
    stack.reload_nginx()
    try:
        assert_401(stack, REVOKED_KEY, "unknown or revoked API key")
        assert models(stack, API_KEY)[0] == 200
    finally:
        stack.write_api_keys([(API_KEY, "it-user"), (REVOKED_KEY, "it-revoked")])
        stack.reload_nginx()


def test_auth_happens_before_the_body_is_read(stack):
    # Expect: 100-continue with bad credentials: nginx must answer 401
    # without asking for the (large) body.
    s = socket.create_connection(("127.0.0.1", stack.port), 5)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: 3000000\r\n"
              b"Expect: 100-continue\r\nAuthorization: Bearer nope\r\n\r\n")
    s.settimeout(5)
    head = s.recv(4096).decode()
    s.close()
    assert head.startswith("HTTP/1.1 401"), head
    assert "100 Continue" not in head


def test_refusals_are_logged_with_the_reason_never_the_credential(stack):
    # A 401 used to leave nothing in the error log. The reason is logged at
    # vlm_auth_log_level (default error); the key or token itself never is, and a
    # request that sends no credentials at all is not worth more than debug.
    wrong_key = "vlm-it-wrong-key-0123456789abcdef"
    forged = stack.jwt("HS256", key=b"another-secret-that-is-long-enough-0123")
    assert_401(stack, wrong_key, "unknown or revoked")
    assert_401(stack, forged, "signature is invalid")
    log = stack.error_log()
    refused = [line for line in log.splitlines() if "vlm: credentials refused" in line]
    assert any("[error]" in line and "unknown or revoked API key" in line for line in refused), log
    assert any("JWT signature is invalid" in line for line in refused), log
    assert wrong_key not in log and forged.split(".")[2] not in log
    assert_401(stack, None, "missing credentials")
    assert len([line for line in stack.error_log().splitlines()
                if "vlm: credentials refused" in line]) == len(refused)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/alt-text", "/v1/summary"])
def test_wrong_key_floods_are_rate_limited_in_the_example(example, path):
    # Issue 12: on /v1/alt-text and /v1/summary conf/nginx-vlm.conf limited
    # by subject only, which is empty for refused credentials: a flood of
    # wrong keys was never limited. Its per-IP zone (listed first) is on
    # every model endpoint now.
    statuses = []
    for _ in range(40):
        status, headers, body = example.request("POST", path, body={}, auth="wrong-key-0123456789")
        statuses.append(status)
        if status == 429:
            assert headers["content-type"] == "application/json"
            assert json.loads(body)["error"]["type"] == "rate_limit_error"
    assert 401 in statuses and 429 in statuses, statuses
    time.sleep(2.5)     # the zone's burst refills for the tests after this one


def test_stalled_headers_are_closed_in_the_example(example):
    # slowloris: a connection that never finishes its headers needs no key;
    # conf/nginx-vlm.conf closes it after client_header_timeout (10s; nginx's
    # default is 60s)
    s = socket.create_connection(("127.0.0.1", example.port), 5)
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        s.settimeout(20)
        t = time.time()
        try:
            assert s.recv(4096) == b""
        except ConnectionResetError:
            pass        # reset_timedout_connection on
        assert time.time() - t < 15
    finally:
        s.close()
