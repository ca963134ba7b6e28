"""What reaches the client and the logs never repeats request content: no
prompt fragment, no credential.

Issue 12: invalid JSON quoted up to 20 bytes of the prompt (jansson's "near
'...'") in the error message and, at info, in nginx's error log; unknown
parameter names, model names and form field names were quoted too."""
import uuid

from conftest import chat_body, error_of


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
