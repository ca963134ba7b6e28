"""No request content in any log: prompts, titles, article text, image bytes,
API keys and JWTs sent through every endpoint (answered, refused by nginx,
refused by vlmd, failed in the engine) never appear in vlmd's log (written
at log_level debug, its most verbose) nor in nginx's error and access logs.
The logs are the whole suite's, so credentials every other test sent are
checked too."""
import base64
import json
import os
import secrets
import struct
import time
import zlib

from conftest import API_KEY, HS_SECRET, IMAGES, MODEL_ID, REVOKED_KEY, data_url, wait_for

# Distinctive per run, so a hit can only be this test's request leaking.
TAG = secrets.token_hex(6)
PROMPT = "zebra-prompt-" + TAG
SYSTEM = "zebra-system-" + TAG
TITLE = "zebra-title-" + TAG
CONTEXT = "zebra-context-" + TAG
ARTICLE = "zebra-article-" + TAG
STOP = "zebra-stop-" + TAG
IMAGE_MARK = "zebra-image-" + TAG
BAD_KEY = "vlm-leak-key-" + TAG
JWT_SUBJECT = "zebra-subject-" + TAG


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_text(mark):
    """tiny.png with a tEXt chunk carrying `mark`: a valid image whose bytes say it."""
    with open(os.path.join(IMAGES, "tiny.png"), "rb") as f:
        raw = f.read()
    ihdr_end = 8 + 4 + 4 + 13 + 4
    return raw[:ihdr_end] + png_chunk(b"tEXt", b"Comment\x00" + mark.encode()) + raw[ihdr_end:]


def broken_png(mark):
    """A PNG header nginx accepts, `mark` in a tEXt chunk and no pixel data:
    vlmd cannot decode it (the engine's error path)."""
    ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"tEXt", b"Comment\x00" + mark.encode()) + png_chunk(b"IEND", b""))


def data_url_of(raw):
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def chat(text, image_url, **kw):
    body = {"model": MODEL_ID, "max_tokens": 6, "temperature": 0,
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": [
                             {"type": "image_url", "image_url": {"url": image_url}},
                             {"type": "text", "text": text}]}]}
    body.update(kw)
    return body


def vlmd_log(stack):
    with open(os.path.join(stack.tmp, "vlmd.log"), errors="replace") as f:
        return f.read()


def test_no_request_content_in_any_log(stack):
    marked_image = data_url_of(png_with_text(IMAGE_MARK))
    jwt = stack.jwt("HS256", {"sub": JWT_SUBJECT, "name": PROMPT})
    bad_jwt = stack.jwt("HS256", {"sub": JWT_SUBJECT}, key=b"zebra-wrong-secret-" + TAG.encode())
    done_before = vlmd_log(stack).count("event=request_done")

    answered = [
        ("/v1/chat/completions", chat(PROMPT, marked_image, stop=[STOP]), API_KEY),
        ("/v1/chat/completions", chat(PROMPT + " stream", marked_image, stream=True), jwt),
        ("/v1/alt-text", {"image": marked_image, "title": TITLE, "context": CONTEXT,
                          "language": "en"}, API_KEY),
        ("/v1/summary", {"title": TITLE, "text": ARTICLE + " " + ARTICLE, "images": [marked_image],
                         "kind": "summary", "language": "auto"}, jwt),
        ("/v1/summary", {"title": TITLE, "text": ARTICLE, "kind": "seo_description",
                         "language": "zh"}, API_KEY),
    ]
    for path, body, token in answered:
        status, _, data = stack.post(path, body, auth=token)
        assert status == 200, (path, data[:300])

    refused = [
        # vlmd cannot decode the image: the engine's error path
        ("/v1/alt-text", {"image": data_url_of(broken_png(IMAGE_MARK)), "title": TITLE,
                          "context": CONTEXT}, API_KEY),
        # nginx refuses the body (unknown field, bad values) after reading it
        ("/v1/chat/completions", chat(PROMPT, marked_image, temperature="hot " + PROMPT), API_KEY),
        ("/v1/alt-text", {"image": marked_image, "title": TITLE, "context": CONTEXT,
                          "language": "fr-" + TAG}, API_KEY),
        ("/v1/summary", {"title": TITLE, "text": ARTICLE, "kind": "poem-" + TAG}, API_KEY),
        # credentials refused before the body is read
        ("/v1/chat/completions", chat(PROMPT, marked_image), BAD_KEY),
        ("/v1/chat/completions", chat(PROMPT, marked_image), bad_jwt),
    ]
    for path, body, token in refused:
        status, _, data = stack.post(path, body, auth=token)
        assert 400 <= status < 500, (path, status, data[:300])

    # vlmd writes request_done / request_error once the answer is sent
    wait_for(lambda: vlmd_log(stack).count("event=request_done") >= done_before + len(answered),
             10, "vlmd's request_done lines")
    time.sleep(0.2)

    vlmd = vlmd_log(stack)
    assert "level=debug event=request_start" in vlmd, "vlmd does not run at log_level debug"
    logs = {"vlmd.log": vlmd}
    for name in ("nginx-error.log", "access.log"):
        with open(os.path.join(stack.tmp, name), errors="replace") as f:
            logs[name] = f.read()
    secrets_sent = {
        "prompt": PROMPT, "system prompt": SYSTEM, "title": TITLE, "context": CONTEXT,
        "article text": ARTICLE, "stop string": STOP, "image bytes": IMAGE_MARK,
        "JWT subject": JWT_SUBJECT, "refused value": "hot zebra", "language value": "fr-" + TAG,
        "kind value": "poem-" + TAG,
        "API key": API_KEY, "revoked API key": REVOKED_KEY, "unknown API key": BAD_KEY,
        "JWT": jwt, "JWT signature": jwt.rsplit(".", 1)[1], "bad JWT": bad_jwt,
        "HS256 secret": HS_SECRET.decode(),
        "image base64": marked_image.split(",", 1)[1][:48],
    }
    leaks = [(what, name) for name, text in logs.items()
             for what, value in secrets_sent.items() if value in text]
    assert not leaks, "request content in the logs: %s (files kept with VLM_IT_KEEP=1 in %s)" % (
        leaks, stack.tmp)
    assert TAG not in "".join(logs.values()), "this run's tag is in a log"
