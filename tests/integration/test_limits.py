"""Bad input is refused with OpenAI-shaped errors and the status codes of
DESIGN.md, before anything reaches vlmd."""
import base64
import json
import struct
import zlib

from conftest import chat_body, data_url, error_of


def post_chat(stack, body, **kw):
    return stack.post("/v1/chat/completions", body, **kw)


def png_header(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\x00" * 64)


def image_chat(raw, mime="image/png"):
    url = "data:%s;base64,%s" % (mime, base64.b64encode(raw).decode())
    return chat_body(image=None) | {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}},
        {"type": "text", "text": "hi"}]}]}


def test_body_over_client_max_body_size_is_413(stack):
    status, _, _ = post_chat(stack, "x" * (5 * 1024 * 1024),
                             headers={"Content-Type": "application/json"})
    assert status == 413


def test_invalid_json(stack):
    status, _, body = post_chat(stack, '{"messages": [', headers={"Content-Type": "application/json"})
    assert status == 400
    assert error_of(body)["code"] == "invalid_json"


def test_deep_nesting_refused_before_parsing(stack):
    deep = '{"messages": ' + "[" * 5000 + "]" * 5000 + "}"
    status, _, body = post_chat(stack, deep, headers={"Content-Type": "application/json"})
    assert status == 400
    assert error_of(body)["code"] == "json_too_deep"


def test_bad_base64(stack):
    body = chat_body(image=None)
    body["messages"][0]["content"].insert(0, {"type": "image_url", "image_url": {
        "url": "data:image/png;base64,iVBORw0KGgo*not-base64*"}})
    status, _, data = post_chat(stack, body)
    assert status == 400
    err = error_of(data)
    assert err["code"] == "invalid_base64"
    assert err["param"] == "messages.content.image_url"


def test_unsupported_image_type_is_415(stack):
    status, _, body = post_chat(stack, image_chat(b"BM" + b"\x00" * 100, "image/bmp"))
    assert status == 415
    assert error_of(body)["code"] == "unsupported_image_type"


def test_non_image_data_url_is_415(stack):
    status, _, body = post_chat(stack, image_chat(b"hello", "text/plain"))
    assert status == 415


def test_pixel_bomb_refused_from_header(stack):
    # 100000 x 100000 would be 30 GB decoded; only the header is sent
    status, _, body = post_chat(stack, image_chat(png_header(100000, 100000)))
    assert status == 413
    err = error_of(body)
    assert err["code"] == "image_too_many_pixels"
    assert "100000x100000" in err["message"]


def test_truncated_image_header(stack):
    status, _, body = post_chat(stack, image_chat(b"\x89PNG\r\n\x1a\n\x00\x00"))
    assert status == 400
    assert error_of(body)["code"] == "invalid_image"


def test_too_many_images(stack):
    body = chat_body(image=None)
    body["messages"][0]["content"] = [
        {"type": "image_url", "image_url": {"url": data_url("tiny.png")}} for _ in range(4)]
    status, _, data = post_chat(stack, body)
    assert status == 400
    assert error_of(data)["code"] == "too_many_images"


def test_max_tokens_over_limit(stack):
    status, _, body = post_chat(stack, chat_body(max_tokens=100000))
    assert status == 400
    err = error_of(body)
    assert err["param"] == "max_tokens"
    assert err["code"] == "max_tokens_too_large"


def test_default_max_tokens_when_the_request_names_none(stack):
    # The default used to be min(vlm_max_tokens, 512) hidden in the parser; it is the
    # directive vlm_default_max_tokens now, and a location that lowers vlm_max_tokens
    # below the inherited default lowers the default with it.
    body = chat_body()
    del body["max_tokens"]
    for path, limit in (("/short/v1/chat/completions", 3), ("/low/v1/chat/completions", 2)):
        status, _, data = stack.post(path, body)
        assert status == 200, data
        assert 0 < json.loads(data)["usage"]["completion_tokens"] <= limit, data


def test_prompt_over_limit_is_413(stack):
    status, _, body = post_chat(stack, chat_body(text="x" * 9000, image=None))
    assert status == 413
    assert error_of(body)["code"] == "prompt_too_large"


def test_unsupported_parameter_is_400(stack):
    status, _, body = post_chat(stack, chat_body(tools=[{"type": "function"}]))
    assert status == 400
    err = error_of(body)
    assert err["code"] == "unsupported_parameter" and err["param"] == "tools"


def test_temperature_out_of_range(stack):
    status, _, body = post_chat(stack, chat_body(temperature=5))
    assert status == 400
    assert error_of(body)["param"] == "temperature"


def test_wrong_content_type_is_415(stack):
    status, _, body = post_chat(stack, "hello", headers={"Content-Type": "text/plain"})
    assert status == 415


def test_remote_images_off_by_default(stack):
    body = chat_body(image=None)
    body["messages"][0]["content"].insert(0, {"type": "image_url", "image_url": {
        "url": "http://169.254.169.254/latest/meta-data"}})
    status, _, data = post_chat(stack, body)
    assert status == 400
    assert error_of(data)["code"] == "remote_images_disabled"


def test_duplicate_keys_rejected(stack):
    status, _, body = post_chat(stack, '{"max_tokens": 1, "max_tokens": 2, "messages": []}',
                                headers={"Content-Type": "application/json"})
    assert status == 400


def test_image_in_temp_file_body_is_read(stack):
    # a body larger than client_body_buffer_size (64k) goes to a temp file;
    # the pixel bomb must still be found in it
    body = image_chat(png_header(100000, 100000))
    body["messages"][0]["content"][1]["text"] = "y" * 7000
    body["messages"].insert(0, {"role": "system", "content": "z" * 100})
    body["user"] = "u" * 100000
    status, _, data = post_chat(stack, body)
    assert status == 413
    assert error_of(data)["code"] == "image_too_many_pixels"


def test_error_quoting_non_utf8_client_bytes_still_answers(stack):
    # A message that quotes client bytes which are not UTF-8 (found by fuzz_ngx_body) used to
    # make the JSON encoder refuse it, and the client got no answer at all.
    boundary = b"XyZ"
    body = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="\xff\xfe"\r\n\r\nx\r\n'
            b"--" + boundary + b"--\r\n")
    status, _, data = stack.post("/v1/alt-text", body, headers={
        "Content-Type": "multipart/form-data; boundary=XyZ"})
    assert status == 400, data
    assert error_of(data)["message"]
    status, _, data = post_chat(stack, json.dumps(chat_body() | {"model": "a" + "é" * 150}),
                                headers={"Content-Type": "application/json"})
    assert status == 404, data
    assert "model" in error_of(data)["message"]
