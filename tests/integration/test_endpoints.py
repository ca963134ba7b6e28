"""Every endpoint answers in the documented shape."""
import json

from conftest import API_KEY, MODEL_ID, chat_body, error_of


def test_healthz_needs_no_credentials(stack):
    status, headers, body = stack.get("/healthz", auth=None)
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"status": "ok"}


def test_readyz_reports_attached_vlmd(stack):
    status, _, body = stack.get("/readyz", auth=None)
    assert status == 200, body
    assert json.loads(body)["status"] == "ready"


def test_models_lists_the_configured_model(stack):
    status, _, body = stack.get("/v1/models")
    assert status == 200
    obj = json.loads(body)
    assert obj["object"] == "list"
    assert [m["id"] for m in obj["data"]] == [MODEL_ID]


def test_models_needs_credentials(stack):
    status, headers, body = stack.get("/v1/models", auth=None)
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    assert error_of(body)["type"] == "authentication_error"


def test_metrics_is_prometheus_text(stack):
    stack.get("/healthz", auth=None)
    status, headers, body = stack.get("/metrics", auth=None)
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4"
    text = body.decode()
    assert "# TYPE vlm_http_requests_total counter" in text
    assert 'vlm_http_requests_total{endpoint="health",status="200"}' in text
    assert 'vlm_http_request_duration_seconds_bucket{endpoint="health",le="+Inf"}' in text
    assert 'vlm_cache_lookups_total{result="hit"}' in text


def test_metrics_include_vlmd_stats(stack):
    text = stack.get("/metrics", auth=None)[2].decode()
    assert "vlm_vlmd_up 1" in text
    assert any(line.startswith("vlmd_") for line in text.splitlines()), text[-2000:]


def test_chat_completion_shape(stack):
    status, headers, body = stack.post("/v1/chat/completions", chat_body())
    assert status == 200, body
    obj = json.loads(body)
    assert obj["object"] == "chat.completion"
    assert obj["id"].startswith("chatcmpl-")
    assert obj["model"] == MODEL_ID
    choice = obj["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = obj["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert headers["x-vlm-cache"] in ("HIT", "MISS")


def test_chat_stream_is_sse_with_done(stack):
    status, headers, body = stack.post("/v1/chat/completions",
                                       chat_body(stream=True, temperature=0.7, seed=None,
                                                 stream_options={"include_usage": True}))
    assert status == 200, body
    assert headers["content-type"] == "text/event-stream"
    events = [e for e in body.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: "):]) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] in ("stop", "length")


def test_alt_text_json(stack):
    from conftest import data_url
    status, _, body = stack.post("/v1/alt-text", {"image": data_url("photo.jpg"),
                                                  "language": "en", "max_length": 120})
    assert status == 200, body
    obj = json.loads(body)
    assert isinstance(obj["alt_text"], str)
    assert obj["model"] == MODEL_ID
    assert obj["usage"]["completion_tokens"] > 0
    assert obj["cached"] in (True, False)


def test_alt_text_multipart(stack):
    import os
    from conftest import IMAGES
    boundary = "vlmboundary42"
    with open(os.path.join(IMAGES, "photo.jpg"), "rb") as f:
        img = f.read()
    body = (b"--" + boundary.encode() + b"\r\n"
            b'Content-Disposition: form-data; name="language"\r\n\r\nen\r\n'
            b"--" + boundary.encode() + b"\r\n"
            b'Content-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + img + b"\r\n"
            b"--" + boundary.encode() + b"--\r\n")
    status, _, data = stack.post("/v1/alt-text", body, headers={
        "Content-Type": "multipart/form-data; boundary=" + boundary})
    assert status == 200, data
    assert isinstance(json.loads(data)["alt_text"], str)


def test_summary(stack):
    from conftest import data_url
    status, _, body = stack.post("/v1/summary", {
        "title": "A walk", "text": "We walked along the river and saw birds.",
        "images": [data_url("tiny.png")], "kind": "seo_description", "language": "en"})
    assert status == 200, body
    obj = json.loads(body)
    assert isinstance(obj["summary"], str)
    assert obj["kind"] == "seo_description"


def test_unknown_model_is_404(stack):
    status, _, body = stack.post("/v1/chat/completions", chat_body(model="gpt-4o"))
    assert status == 404
    assert error_of(body)["code"] == "model_not_found"


def test_get_on_chat_is_405(stack):
    status, _, body = stack.get("/v1/chat/completions")
    assert status == 405


def test_cors_only_for_configured_origin(stack):
    status, headers, _ = stack.request("OPTIONS", "/v1/chat/completions", auth=None,
                                       headers={"Origin": "https://blog.example.test"})
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://blog.example.test"
    status, headers, _ = stack.request("OPTIONS", "/v1/chat/completions", auth=None,
                                       headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in headers


def test_chat_logprobs(stack):
    status, _, body = stack.post("/v1/chat/completions",
                                 chat_body(logprobs=True, top_logprobs=2, max_tokens=4))
    assert status == 200, body
    content = json.loads(body)["choices"][0]["logprobs"]["content"]
    assert len(content) == json.loads(body)["usage"]["completion_tokens"]
    for entry in content:
        assert entry["logprob"] <= 0
        assert len(entry["top_logprobs"]) == 2
        assert isinstance(entry["bytes"], list)


def test_top_logprobs_without_logprobs_is_400(stack):
    status, _, body = stack.post("/v1/chat/completions", chat_body(top_logprobs=2))
    assert status == 400
    assert error_of(body)["param"] == "top_logprobs"


def test_nginx_rate_limit_answer_carries_retry_after_and_cors(stack):
    # limit_req answers before our handler runs; without Retry-After and CORS a browser page
    # on the blog's origin saw a network error instead of "try again in N s".
    origin = {"Origin": "https://blog.example.test"}
    statuses = []
    for _ in range(3):
        status, headers, _ = stack.get("/limited/v1/models", headers=origin)
        statuses.append(status)
        if status == 429:
            break
    assert statuses[0] == 200 and statuses[-1] == 429, statuses
    assert headers.get("retry-after") == "2"          # vlm_retry_after in the test config
    assert headers.get("access-control-allow-origin") == "https://blog.example.test"
    assert "Retry-After" in headers.get("access-control-expose-headers", "")
    status, headers, _ = stack.get("/limited/v1/models", headers={"Origin": "https://evil.example"})
    assert status == 429 and "access-control-allow-origin" not in headers
