"""What reaches the client and the logs never repeats request content: no
prompt fragment, no credential, no key sent in a query string.

Issue 12: invalid JSON quoted up to 20 bytes of the prompt (jansson's "near
'...'") in the error message and, at info, in nginx's error log; unknown
parameter names, model names and form field names were quoted too; a key
sent as ?api_key= was written to the access log ($request) and to the error
log's request: "..." (e.g. with the 413 of client_max_body_size); nginx
core logs a duplicated Authorization header with its value at info, which
conf/nginx-vlm.conf keeps out with "error_log ... notice"."""
import os
import uuid

from conftest import API_KEY, chat_body, error_of, parse_raw


def secret():
    return "SeCrEt" + uuid.uuid4().hex


def assert_nowhere(secret_text, *texts):
    for t in texts:
        if isinstance(t, bytes):
            t = t.decode("utf-8", "replace")
        assert secret_text not in t, "leaked: ..." + t[max(0, t.find(secret_text) - 200):][:400]


def test_invalid_json_does_not_quote_the_prompt(stack):
    s = secret()
    for body in ('{"messages": [{"role": "user", "content": "%s' % s,      # unterminated
                 '{"messages": %s}' % s,                                    # a bare word
                 '{"model": "glm", "messages": [], "%s": tru}' % s):
        status, _, data = stack.post("/v1/chat/completions", body,
                                     headers={"Content-Type": "application/json"})
        assert status == 400, data
        assert error_of(data)["code"] == "invalid_json"
        assert "byte" in error_of(data)["message"]
        assert_nowhere(s, data)
    # the session stack logs at info: the module's own lines are there too
    assert_nowhere(s, stack.error_log())


def test_refusals_do_not_repeat_names_the_client_chose(stack):
    s = secret()
    status, _, data = stack.post("/v1/chat/completions", chat_body() | {s: 1})
    assert status == 400 and error_of(data)["code"] == "unsupported_parameter", data
    assert error_of(data)["param"] is None
    # a parameter of OpenAI's that vlm does not support is still named
    status, _, data = stack.post("/v1/chat/completions", chat_body(tools=[]))
    assert error_of(data)["param"] == "tools", data
    status, _, model = stack.post("/v1/chat/completions", chat_body(model=s))
    assert status == 404 and error_of(model)["code"] == "model_not_found", model
    body = ("--b\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\nx\r\n--b--\r\n" % s).encode()
    status, _, form = stack.post("/v1/alt-text", body,
                                 headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert status == 400, form
    assert_nowhere(s, data, model, form, stack.error_log())


def test_keys_in_the_query_string_are_not_logged(example):
    s = secret()
    status, _, _ = example.get("/v1/models?api_key=" + s)
    assert status == 200
    # a 413 by Content-Length is logged at error with the request line
    answer = example.raw(("POST /v1/chat/completions?key=%s HTTP/1.1\r\nHost: x\r\n"
                          "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                          "Content-Length: 30000000\r\n\r\n" % (s, API_KEY)).encode())
    assert parse_raw(answer)[0] == 413
    log = example.error_log()
    assert "client intended to send too large body" in log
    assert_nowhere(s, log, example.access_log())
    assert "?..." in example.access_log()


def test_duplicate_authorization_header_is_not_logged(example):
    # nginx core quotes both values at info; conf/nginx-vlm.conf logs from notice
    answer = example.raw(("GET /v1/models HTTP/1.1\r\nHost: x\r\n"
                          "Authorization: Bearer %s\r\nAuthorization: Bearer %s\r\n\r\n"
                          % (API_KEY, API_KEY)).encode())
    status, headers, body = parse_raw(answer)
    assert status == 400 and headers["content-type"] == "application/json", answer[:400]
    assert_nowhere(API_KEY, example.error_log(), example.access_log(), body)


def test_the_example_log_format_holds_no_credential(example):
    # what a request leaves in the access log of conf/nginx-vlm.conf
    token = example.jwt()
    status, _, data = example.request("POST", "/v1/chat/completions",
                                      chat_body(image=None, max_tokens=1), auth=token)
    assert status in (200, 429), data
    log = example.access_log()
    assert log.strip()
    assert_nowhere(token.split(".")[2], log)
    assert_nowhere(API_KEY, log)
    assert os.path.exists(os.path.join(example.tmp, "error.log"))
