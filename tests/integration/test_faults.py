"""Faults: Redis down (still served, BYPASS), vlmd killed (503 at once with
Retry-After, then served again after vlmd restarts, without restarting
nginx)."""
import time
import uuid

from conftest import chat_body, error_of, wait_for


def test_redis_stopped_still_serves_with_bypass(stack):
    body = chat_body(text="redis " + uuid.uuid4().hex, max_tokens=4)
    stack.stop_redis()
    try:
        t = time.time()
        status, headers, data = stack.post("/v1/chat/completions", body)
        assert status == 200, data
        assert headers["x-vlm-cache"] == "BYPASS"
        print("served without Redis in %.3fs" % (time.time() - t))
    finally:
        stack.start_redis()
    # nginx reconnects by itself (backoff <= 5s): MISS then HIT again
    wait_for(lambda: stack.post("/v1/chat/completions", body)[1]["x-vlm-cache"] == "HIT",
             15, "cache HIT after Redis restart")


def test_vlmd_killed_gives_503_then_recovers(stack):
    stack.kill_vlmd()
    try:
        t = time.time()
        status, headers, data = stack.post("/v1/chat/completions",
                                           chat_body(temperature=0.5, max_tokens=4))
        elapsed = time.time() - t
        assert status == 503, data
        assert headers["retry-after"] == "2"
        assert error_of(data)["code"] == "daemon_unavailable"
        assert elapsed < 1.0, "503 took %.3fs" % elapsed
        assert stack.get("/readyz", auth=None)[0] == 503
    finally:
        stack.start_vlmd()
    stack.wait_ready(30)
    status, _, data = stack.post("/v1/chat/completions", chat_body(temperature=0.5, max_tokens=4))
    assert status == 200, data


def test_vlmd_killed_mid_request_fails_the_request(stack):
    import threading
    result = {}

    def call():
        result["r"] = stack.post("/v1/chat/completions",
                                 chat_body(temperature=0.7, max_tokens=64, stream=False))
    th = threading.Thread(target=call)
    th.start()
    time.sleep(0.05)
    stack.kill_vlmd()
    th.join(30)
    try:
        status = result["r"][0]
        assert status in (200, 503), result["r"]
    finally:
        stack.start_vlmd()
        stack.wait_ready(30)
