"""The official openai Python client (pinned in requirements.txt) works
unchanged against /v1, streaming and not, and gets the same text as
vlm-run for the same image, prompt and greedy decoding."""
import json
import os
import subprocess

import openai

from conftest import API_KEY, BIN, IMAGES, MODEL, MODEL_ID, data_url

PROMPT = "What is in this picture?"
MAX_TOKENS = 12


def client(stack):
    return openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % stack.port, api_key=API_KEY,
                         max_retries=0, timeout=60)


def messages(image):
    return [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(image)}},
        {"type": "text", "text": PROMPT}]}]


def vlm_run_text(image):
    out = subprocess.run(
        [os.path.join(BIN, "vlm-run"), "--model", MODEL, "--image", os.path.join(IMAGES, image),
         "--prompt", PROMPT, "--max-tokens", str(MAX_TOKENS), "--temperature", "0",
         "--threads", "2", "--json"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["text"]


def test_models_through_client(stack):
    ids = [m.id for m in client(stack).models.list()]
    assert ids == [MODEL_ID]


def test_chat_completion_matches_vlm_run(stack):
    expected = vlm_run_text("photo.jpg")
    resp = client(stack).chat.completions.create(
        model=MODEL_ID, messages=messages("photo.jpg"), max_tokens=MAX_TOKENS, temperature=0)
    print("vlm-run: %r  nginx: %r" % (expected, resp.choices[0].message.content))
    assert resp.choices[0].message.content == expected
    assert resp.usage.completion_tokens > 0


def test_streaming_matches_vlm_run(stack):
    expected = vlm_run_text("tiny.png")
    stream = client(stack).chat.completions.create(
        model=MODEL_ID, messages=messages("tiny.png"), max_tokens=MAX_TOKENS, temperature=0,
        stream=True, stream_options={"include_usage": True})
    text, usage, chunks = "", None, 0
    for chunk in stream:
        chunks += 1
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    print("chunks: %d  vlm-run: %r  stream: %r" % (chunks, expected, text))
    assert text == expected
    assert usage is not None and usage.completion_tokens > 0


def test_client_sees_api_errors(stack):
    try:
        client(stack).chat.completions.create(model=MODEL_ID, messages=messages("tiny.png"),
                                              max_tokens=100000)
    except openai.BadRequestError as e:
        assert e.body["code"] == "max_tokens_too_large"
    else:
        raise AssertionError("max_tokens over the limit was accepted")


def test_client_auth_error(stack):
    c = openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % stack.port, api_key="wrong",
                      max_retries=0)
    try:
        c.models.list()
    except openai.AuthenticationError:
        pass
    else:
        raise AssertionError("a wrong key was accepted")
