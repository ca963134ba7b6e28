"""nginx's own errors where vlm serves are OpenAI-shaped JSON, with the
right status and, as for the module's errors, CORS and Retry-After.

Issue 12: the 413 of client_max_body_size, limit_req's 429, 400 for bad
chunked encoding or a duplicate Content-Length and 501 for an unknown
Transfer-Encoding came as nginx's HTML pages. They arise at different
places: header errors before a location is chosen, the 413 by
Content-Length when the location is found, chunked errors while the body
is read, limit_req in PREACCESS. Raw sockets, since http.client cannot send
bad framing."""
import json
import socket

import pytest

from conftest import API_KEY, parse_raw

ORIGIN = "https://blog.example.com"   # vlm_cors_origin of conf/nginx-vlm.conf


def head(path="/v1/chat/completions", method="POST", extra=b"", auth=True):
    lines = [("%s %s HTTP/1.1" % (method, path)).encode(), b"Host: vlm.example.com",
             b"Origin: " + ORIGIN.encode(), b"Content-Type: application/json"]
    if auth:
        lines.append(b"Authorization: Bearer " + API_KEY.encode())
    return b"\r\n".join(lines) + b"\r\n" + extra


def assert_json_error(answer, status, code=None, cors=True):
    got, headers, body = parse_raw(answer)
    assert got == status, answer[:600]
    assert headers.get("content-type") == "application/json", answer[:600]
    assert int(headers["content-length"]) == len(body), answer[:600]
    err = json.loads(body)["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert err["message"] and err["type"], err
    if code:
        assert err["code"] == code, err
    if cors:
        assert headers.get("access-control-allow-origin") == ORIGIN, headers
    return headers, err


def test_413_by_content_length(example):
    # decided when the location is found, before any body byte is read
    answer = example.raw(head(extra=b"Content-Length: 30000000\r\n\r\n"))
    assert_json_error(answer, 413, "request_too_large")


def test_413_by_chunked_body(stack):
    # the session stack: client_max_body_size 4m, found while reading chunks
    chunk = b"%x\r\n" % (1024 * 1024) + b"x" * (1024 * 1024) + b"\r\n"
    s = socket.create_connection(("127.0.0.1", stack.port), 10)
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nOrigin: "
                  b"https://blog.example.test\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + API_KEY.encode() + b"\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        answer = b""
        try:
            for _ in range(6):
                s.sendall(chunk)
        except OSError:
            pass        # nginx answered and closed while we were sending
        s.settimeout(10)
        while True:
            data = s.recv(65536)
            if not data:
                break
            answer += data
    finally:
        s.close()
    got, headers, body = parse_raw(answer)
    assert got == 413, answer[:600]
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "request_too_large"


def test_400_bad_chunked_encoding(example):
    answer = example.raw(head(extra=b"Transfer-Encoding: chunked\r\n\r\nzz\r\nnope\r\n0\r\n\r\n"))
    assert_json_error(answer, 400, "bad_request")


def test_400_duplicate_content_length(example):
    # a header error: no location has been chosen yet
    answer = example.raw(head(extra=b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}"))
    assert_json_error(answer, 400, "bad_request")


def test_400_content_length_and_chunked(example):
    answer = example.raw(head(extra=b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"))
    assert_json_error(answer, 400, "bad_request")


def test_501_unknown_transfer_encoding(example):
    answer = example.raw(head(extra=b"Transfer-Encoding: gzip\r\n\r\n"))
    assert_json_error(answer, 501, "not_implemented")


def test_400_header_too_large(example):
    # large_client_header_buffers 4 16k: nginx's 494, sent as 400
    answer = example.raw(head(extra=b"X-Big: " + b"b" * 20000 + b"\r\n\r\n"))
    assert_json_error(answer, 400, "bad_request")


def test_414_uri_too_long(example):
    # refused on the request line, before Origin is read: no CORS to add
    answer = example.raw(head(path="/v1/chat/completions?" + "q" * 20000,
                              extra=b"Content-Length: 0\r\n\r\n"))
    assert_json_error(answer, 414, "uri_too_long", cors=False)


def test_404_unknown_path(example):
    answer = example.raw(head(path="/v1/embeddings", extra=b"Content-Length: 0\r\n\r\n"))
    assert_json_error(answer, 404, "not_found")


def test_405_on_a_read_only_endpoint(example):
    # the module returns NGX_HTTP_NOT_ALLOWED there; nginx writes the page
    answer = example.raw(head(path="/v1/models", extra=b"Content-Length: 0\r\n\r\n"))
    assert_json_error(answer, 405, "method_not_allowed")


def test_429_of_limit_req_is_json_with_retry_after(example):
    # the example's per-subject zone: 2 r/s, burst 10; one subject, 15 at once
    token = example.jwt(sub="it-errors-429")
    answer = None
    for _ in range(15):
        answer = example.raw(head(path="/v1/alt-text", auth=False,
                                  extra=b"Authorization: Bearer " + token.encode()
                                  + b"\r\nContent-Length: 2\r\n\r\n{}"))
        if parse_raw(answer)[0] == 429:
            break
    headers, err = assert_json_error(answer, 429, "rate_limited")
    assert err["type"] == "rate_limit_error"
    assert headers["retry-after"] == "1"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/alt-text", "/v1/summary"])
def test_module_errors_keep_their_own_shape(example, path):
    # what the module answers itself is left alone (a 401 here)
    answer = example.raw(head(path=path, auth=False, extra=b"Content-Length: 2\r\n\r\n{}"))
    headers, err = assert_json_error(answer, 401, "invalid_api_key")
    assert headers["www-authenticate"].startswith("Bearer")
