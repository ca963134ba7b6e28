"""The JavaScript client (editor_plugin/js/vlm-client.js) in a real browser, from the WordPress
origin to the vlm API's origin, against nginx's own rate limit (limit_req under /limited/ in
wp-env.sh, one request per 3 s per subject): a 429 is waited out using Retry-After and retried,
and with retries off the caller gets a plain-words "rate limited" error carrying retryAfter.
Leaves out: 503 retries (vlmd would have to be made busy on purpose)."""

import base64
import re

from conftest import FIXTURE_IMAGES

CLIENT_PATH = "/wp-content/plugins/vlm/assets/js/vlm-client.js"

LOAD_CLIENT = """
const [src, done] = arguments;
const s = document.createElement('script');
s.src = src;
s.onload = () => done(typeof VlmClient.create);
s.onerror = () => done('failed to load ' + src);
document.head.appendChild(s);
"""

TWO_AT_ONCE = """
const [endpoint, key, images, maxRetries, done] = arguments;
const client = VlmClient.create({endpoint: endpoint, token: key, maxRetries: maxRetries, lang: 'en'});
const t0 = performance.now();
Promise.allSettled(images.map(img => client.altText({image: img, language: 'en'}))).then(rs => done({
    ms: performance.now() - t0,
    results: rs.map(r => r.status === 'fulfilled'
        ? {ok: true, alt: r.value.alt_text}
        : {ok: false, status: r.reason.status, code: r.reason.code,
           message: r.reason.message, retryAfter: r.reason.retryAfter}),
}));
"""


def data_url(name, mime):
    raw = (FIXTURE_IMAGES / name).read_bytes()
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def limited_statuses(wp_env, since):
    """Statuses of POST /limited/v1/alt-text in the vlm access log after byte offset since."""
    with open(wp_env.vlm_access_log, "rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", "replace")
    return [int(m.group(1)) for m in re.finditer(r'"POST /limited/v1/alt-text HTTP/1\.1" (\d{3})', text)]


def open_client(browser, wp_env):
    browser.get(wp_env.url + "/wp-login.php")
    assert browser.execute_async_script(LOAD_CLIENT, wp_env.url + CLIENT_PATH) == "function"


def test_rate_limited_requests_wait_for_retry_after_then_succeed(browser, wp_env):
    open_client(browser, wp_env)
    images = [data_url("photo.jpg", "image/jpeg"), data_url("tiny.png", "image/png")]
    since = wp_env.vlm_access_log.stat().st_size
    out = browser.execute_async_script(TWO_AT_ONCE, wp_env.vlm_url + "/limited", wp_env.api_key,
                                       images, 3)
    assert all(r["ok"] and r["alt"] for r in out["results"]), out
    statuses = limited_statuses(wp_env, since)
    # The slot frees after 3 s and Retry-After says 1 s: the second image was refused at least
    # once by nginx, then retried until it got through; nothing was given up.
    assert statuses.count(200) == 2 and 429 in statuses, statuses
    assert out["ms"] >= 900, out  # it really waited (Retry-After: 1) before trying again


def test_rate_limit_without_retries_is_explained(browser, wp_env):
    open_client(browser, wp_env)
    images = [data_url("photo.jpg", "image/jpeg"), data_url("tiny.png", "image/png")]
    out = browser.execute_async_script(TWO_AT_ONCE, wp_env.vlm_url + "/limited", wp_env.api_key,
                                       images, 0)
    refused = [r for r in out["results"] if not r["ok"]]
    # Whichever request lost the race gets nginx's 429, readable across origins thanks to the
    # module's CORS headers on it, in plain words with the wait.
    assert refused, out
    for r in refused:
        assert r["status"] == 429 and r["retryAfter"] == 1, r
        assert "try again" in r["message"].lower(), r
