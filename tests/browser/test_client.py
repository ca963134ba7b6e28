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


BIG_SUMMARY = """
const [endpoint, key, budget, done] = arguments;
// Noise PNGs (random colour and alpha: nothing compresses), each under the per-image limit.
async function noise(side, seed) {
    const c = new OffscreenCanvas(side, side);
    const ctx = c.getContext('2d');
    const im = ctx.createImageData(side, side);
    let x = seed >>> 0;
    for (let i = 0; i < im.data.length; i++) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
        im.data[i] = (i & 3) === 3 ? 128 + (x >>> 25) : x >>> 24;
    }
    ctx.putImageData(im, 0, 0);
    return c.convertToBlob({type: 'image/png'});
}
(async () => {
    const images = [await noise(1500, 1), await noise(1500, 2), await noise(1500, 3)];
    const opts = {endpoint: endpoint, token: key, maxRetries: 0, lang: 'en'};
    if (budget) opts.maxRequestImageBytes = budget;
    const client = VlmClient.create(opts);
    try {
        const r = await client.summary({title: 'Three large photos', text: 'A walk along the coast in three pictures.',
                                        images: images, language: 'en'});
        done({sizes: images.map(b => b.size), ok: true, summary: r.summary});
    } catch (e) {
        done({sizes: images.map(b => b.size), ok: false, status: e.status, code: e.code, message: e.message});
    }
})();
"""


def test_summary_with_several_large_images_fits_the_body_limit(browser, wp_env):
    """Three images each within the per-image limit but together, as base64, over the service's
    body limit: the client shares a byte budget between them, so the request still goes through."""
    open_client(browser, wp_env)
    out = browser.execute_async_script(BIG_SUMMARY, wp_env.vlm_url, wp_env.api_key, 0)
    sizes = out["sizes"]
    # The premise: every image alone is sendable as is, all three together are not (32 MiB body limit).
    assert max(sizes) <= 10 * 1024 * 1024 and sum(sizes) * 4 / 3 > 32 * 1024 * 1024, sizes
    assert out["ok"] and out["summary"], out
    # The same request without the shared budget is refused for its size: the budget is what helped.
    lifted = browser.execute_async_script(BIG_SUMMARY, wp_env.vlm_url, wp_env.api_key, 10 ** 12)
    assert not lifted["ok"] and lifted["status"] == 413, lifted
