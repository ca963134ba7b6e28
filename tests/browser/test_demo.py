"""The demo page that `make run` serves (editor_plugin/demo + editor_plugin/js/vlm-client.js), driven
by headless Chromium against the real stack: the key arrives in the URL fragment and leaves the
address bar; an image's alt text is proposed, applied, and equals what the service answers for the
same request; a summary is inserted; the Try-the-API answer streams in growing pieces and can be
stopped; a wrong key and an oversized image give plain-language results (401 message, shrunk not
refused). The model is a random test model: the tests check that text arrives and where it goes,
never its wording. Run via tests/browser/run.sh (or set VLM_DEMO_URL / VLM_DEMO_KEY_FILE)."""

import base64
import json
import os
import urllib.error
import urllib.request

from selenium.webdriver.common.by import By

from conftest import FIXTURE_IMAGES, wait_until

GEN_TIMEOUT = 120  # the CPU test model can be slow when the machine is shared


def open_demo(browser, stack, key=None):
    browser.get(stack.url + "/#key=" + (stack.api_key if key is None else key))
    wait_until(lambda: browser.execute_script("return document.body.dataset.ready === 'true'"),
               message="the demo page to start")


def by_css(browser, css):
    return browser.find_element(By.CSS_SELECTOR, css)


def add_editor_image(browser, path):
    count = len(browser.find_elements(By.CSS_SELECTOR, "#images .image-card"))
    by_css(browser, "#image-input").send_keys(str(path))
    cards = wait_until(lambda: (lambda c: c if len(c) > count else None)(
        browser.find_elements(By.CSS_SELECTOR, "#images .image-card")), message="the image card")
    card = cards[-1]
    wait_until(lambda: card.get_attribute("data-prepared"), timeout=60,
               message="the image to be prepared")
    return card


def into_view(browser, element):
    """Scrolls element to the middle of the window so the next screenshot shows it."""
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    return element


def click(browser, element):
    """Clicks like a user would: scrolled into view first (the sticky top bar would take it)."""
    into_view(browser, element).click()


def access_log_lines(stack, needle):
    if not stack.access_log.is_file():
        return []
    return [l for l in stack.access_log.read_text(errors="replace").splitlines() if needle in l]


def post_json(stack, path, body, key=None):
    req = urllib.request.Request(stack.url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Bearer " + (key or stack.api_key)})
    try:
        with urllib.request.urlopen(req, timeout=GEN_TIMEOUT) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"null")
        except ValueError:  # nginx's own HTML error pages (e.g. body over client_max_body_size)
            return e.code, raw[:200]


def test_alt_text_and_summary_from_the_service(browser, shot, vlm_stack):
    open_demo(browser, vlm_stack)
    # The key was taken from the fragment, kept for the tab, and removed from the address bar.
    assert "#" not in browser.current_url and vlm_stack.api_key not in browser.current_url
    assert by_css(browser, "#api-key").get_attribute("value") == vlm_stack.api_key
    assert browser.execute_script(
        "return sessionStorage.getItem('vlm-demo-api-key')") == vlm_stack.api_key
    wait_until(lambda: by_css(browser, "#key-state").get_attribute("data-state") == "ok",
               message="the key to be accepted")
    assert by_css(browser, "#service-status").get_attribute("data-state") == "ready"
    shot("opened")

    title = "A day by the river"
    text = "We walked along the river at dawn and watched the herons fishing in the shallows."
    by_css(browser, "#title").send_keys(title)
    by_css(browser, "#text").send_keys(text)
    card = add_editor_image(browser, FIXTURE_IMAGES / "photo.jpg")
    assert card.get_attribute("data-prepared") == "original"  # within limits: sent as is
    into_view(browser, card)
    shot("image-added")

    before = len(access_log_lines(vlm_stack, "POST /v1/alt-text"))
    click(browser, card.find_element(By.CSS_SELECTOR, ".btn-alt"))
    wait_until(lambda: card.get_attribute("data-state") in ("proposed", "error"),
               timeout=GEN_TIMEOUT, message="the alt-text proposal")
    assert card.get_attribute("data-state") == "proposed", \
        card.find_element(By.CSS_SELECTOR, ".image-error").text
    proposal = card.find_element(By.CSS_SELECTOR, ".alt-proposal-text").get_attribute("textContent")
    assert proposal.strip(), "the proposal is empty"
    # Not applied before the author says so.
    assert card.find_element(By.CSS_SELECTOR, ".thumb").get_attribute("alt") == ""
    into_view(browser, card)
    shot("alt-proposed")
    assert len(access_log_lines(vlm_stack, "POST /v1/alt-text")) > before, \
        "the proposal did not come from the service"

    click(browser, card.find_element(By.CSS_SELECTOR, ".btn-apply"))
    assert card.get_attribute("data-state") == "applied"
    assert card.find_element(By.CSS_SELECTOR, ".thumb").get_attribute("alt") == proposal
    assert card.find_element(By.CSS_SELECTOR, ".applied-alt").text.strip() == proposal.strip()
    into_view(browser, card)
    shot("alt-applied")

    # The same request made directly gives the same text (the service caches it).
    image = FIXTURE_IMAGES / "photo.jpg"
    status, direct = post_json(vlm_stack, "/v1/alt-text", {
        "image": "data:image/jpeg;base64," + base64.b64encode(image.read_bytes()).decode(),
        "language": "auto", "title": title, "context": text, "max_length": 125})
    assert status == 200, direct
    assert direct["alt_text"] == proposal

    click(browser, by_css(browser, "#btn-summary"))
    wait_until(lambda: by_css(browser, "#proposal").is_displayed()
               or by_css(browser, "#meta-error").is_displayed(),
               timeout=GEN_TIMEOUT, message="the summary proposal")
    assert not by_css(browser, "#meta-error").is_displayed(), by_css(browser, "#meta-error").text
    summary = by_css(browser, "#proposal-text").get_attribute("textContent")
    assert summary.strip()
    assert by_css(browser, "#summary").get_attribute("value") == ""
    into_view(browser, by_css(browser, "#proposal"))
    shot("summary-proposed")
    click(browser, by_css(browser, "#proposal-insert"))
    assert by_css(browser, "#summary").get_attribute("value") == summary
    assert not by_css(browser, "#proposal").is_displayed()
    into_view(browser, by_css(browser, "#summary"))
    shot("summary-inserted")

    click(browser, by_css(browser, "#btn-seo"))
    wait_until(lambda: by_css(browser, "#proposal").is_displayed()
               or by_css(browser, "#meta-error").is_displayed(),
               timeout=GEN_TIMEOUT, message="the SEO proposal")
    assert not by_css(browser, "#meta-error").is_displayed(), by_css(browser, "#meta-error").text
    seo = by_css(browser, "#proposal-text").get_attribute("textContent")
    assert seo.strip()
    click(browser, by_css(browser, "#proposal-insert"))
    assert by_css(browser, "#seo").get_attribute("value") == seo
    # The summary written before is untouched.
    assert by_css(browser, "#summary").get_attribute("value") == summary
    into_view(browser, by_css(browser, "#seo"))
    shot("seo-inserted")


# Records every change of the answer's text with a timestamp, from inside the page, so even a fast
# stream is seen piece by piece. With stopAfter, clicks Stop once that much text has arrived.
RECORDER = """
const answer = document.getElementById('play-answer');
window.__seen = [];
window.__stopAfter = arguments[0];
new MutationObserver(() => {
  const n = answer.textContent.length;
  window.__seen.push([performance.now(), n, answer.dataset.state,
                     !document.getElementById('play-stop').disabled]);
  if (window.__stopAfter && n >= window.__stopAfter && answer.dataset.state === 'streaming') {
    window.__stopAfter = 0;
    document.getElementById('play-stop').click();
  }
}).observe(answer, {childList: true, characterData: true, subtree: true, attributes: true});
"""


def test_try_the_api_streams_and_stops(browser, shot, vlm_stack):
    open_demo(browser, vlm_stack)
    by_css(browser, "#play-input").send_keys(str(FIXTURE_IMAGES / "photo.jpg"))
    wait_until(lambda: "×" in by_css(browser, "#play-image-info").text, message="the image info")
    shot("image-chosen")

    browser.execute_script(RECORDER, 0)
    click(browser, by_css(browser, "#play-ask"))
    answer = by_css(browser, "#play-answer")
    wait_until(lambda: answer.get_attribute("data-state") in ("done", "error"),
               timeout=GEN_TIMEOUT, message="the streamed answer")
    assert answer.get_attribute("data-state") == "done", by_css(browser, "#play-error").text
    final = answer.get_attribute("textContent")
    assert final.strip()
    seen = browser.execute_script("return window.__seen")
    streaming = [(ts, n) for ts, n, state, _ in seen if state == "streaming"]
    # Stop could be pressed all the while the answer streamed (recorded as it
    # happened: a short answer may be over before a check from here runs)
    assert all(stop for _, _, state, stop in seen if state == "streaming"), seen[:20]
    lengths = [n for _, n in streaming]
    assert streaming[-1][0] > streaming[0][0], "all the text arrived at once"
    assert len(set(lengths)) >= 3, f"the answer did not grow in pieces: {seen[:20]}"
    assert lengths == sorted(lengths), "the streamed text shrank"
    assert seen[-1][1] == len(final)
    assert int(answer.get_attribute("data-pieces")) >= 3
    assert not by_css(browser, "#play-stop").is_enabled()
    into_view(browser, answer)
    shot("answer-streamed")

    # Stop as soon as some text has arrived: the partial answer stays, the panel is usable again.
    browser.execute_script(RECORDER, 1)
    click(browser, by_css(browser, "#play-ask"))
    wait_until(lambda: answer.get_attribute("data-state") in ("stopped", "done", "error"),
               timeout=GEN_TIMEOUT, message="the stopped answer")
    assert answer.get_attribute("data-state") == "stopped", by_css(browser, "#play-error").text
    assert answer.get_attribute("textContent").strip(), "the partial answer was lost"
    assert by_css(browser, "#play-ask").is_enabled()
    assert not by_css(browser, "#play-error").is_displayed()
    into_view(browser, answer)
    shot("answer-stopped")


def test_wrong_key_is_explained(browser, shot, vlm_stack):
    open_demo(browser, vlm_stack, key="vlm-not-a-real-key")
    wait_until(lambda: by_css(browser, "#key-state").get_attribute("data-state") == "bad",
               message="the key to be rejected")
    card = add_editor_image(browser, FIXTURE_IMAGES / "tiny.png")
    click(browser, card.find_element(By.CSS_SELECTOR, ".btn-alt"))
    wait_until(lambda: card.get_attribute("data-state") == "error", timeout=GEN_TIMEOUT,
               message="the error")
    error = card.find_element(By.CSS_SELECTOR, ".image-error")
    assert error.is_displayed()
    assert "API key" in error.text and "Not signed in" in error.text, error.text
    assert not card.find_element(By.CSS_SELECTOR, ".alt-proposal").is_displayed()
    into_view(browser, card)
    shot("wrong-key-en")
    # The service really answered 401 (the message is not a guess of the page's).
    status, body = post_json(vlm_stack, "/v1/alt-text", {"image": "data:,"}, key="vlm-not-a-real-key")
    assert status == 401, body

    click(browser, by_css(browser, "#lang-toggle"))
    assert browser.execute_script("return document.documentElement.lang") == "zh-CN"
    click(browser, card.find_element(By.CSS_SELECTOR, ".btn-alt"))
    wait_until(lambda: "未登录" in error.text, timeout=GEN_TIMEOUT, message="the Chinese error")
    assert by_css(browser, "#key-state").text == "密钥无效"
    into_view(browser, card)
    shot("wrong-key-zh")

    # Fixing the key in the field is enough: the next attempt succeeds.
    key_input = by_css(browser, "#api-key")
    key_input.clear()
    key_input.send_keys(vlm_stack.api_key)
    click(browser, card.find_element(By.CSS_SELECTOR, ".btn-alt"))
    wait_until(lambda: card.get_attribute("data-state") in ("proposed", "error")
               and not card.find_element(By.CSS_SELECTOR, ".btn-alt").get_attribute("disabled"),
               timeout=GEN_TIMEOUT, message="the proposal after fixing the key")
    assert card.get_attribute("data-state") == "proposed", error.text
    assert not error.is_displayed()
    into_view(browser, card)
    shot("key-fixed")


def test_oversized_image_is_shrunk_not_refused(browser, shot, vlm_stack, tmp_path):
    from PIL import Image

    # 5000x4000 = 20 Mpx (over the 16.7 Mpx limit), and noisy enough that the PNG is over 10 MB.
    width, height = 5000, 4000
    noise = Image.effect_noise((width, height), 60)
    gx = Image.linear_gradient("L").resize((width, height))
    gy = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize((width, height))
    big = tmp_path / "huge-photo.png"
    Image.merge("RGB", (noise, gx, gy)).save(big, compress_level=1)
    assert big.stat().st_size > 10 * 1024 * 1024, big.stat().st_size

    # The service itself refuses it as is, so the page has to shrink it.
    status, body = post_json(vlm_stack, "/v1/alt-text", {
        "image": "data:image/png;base64," + base64.b64encode(big.read_bytes()).decode()})
    assert status == 413, body

    open_demo(browser, vlm_stack)
    card = add_editor_image(browser, big)
    assert card.get_attribute("data-prepared") == "shrunk"
    info = card.find_element(By.CSS_SELECTOR, ".image-info").text
    assert "5000 × 4000" in info and "shrunk" in info, info
    sent = browser.execute_script(
        "const t = document.querySelector('#images .image-info').textContent;"
        "return t.match(/(\\d+) × (\\d+)/g);")
    sw, sh = (int(v) for v in sent[-1].split(" × "))
    assert sw * sh <= 16777216 and abs(sw / sh - 1.25) < 0.01, sent
    into_view(browser, card)
    shot("large-image-added")

    click(browser, card.find_element(By.CSS_SELECTOR, ".btn-alt"))
    wait_until(lambda: card.get_attribute("data-state") in ("proposed", "error"),
               timeout=GEN_TIMEOUT, message="the proposal for the large image")
    assert card.get_attribute("data-state") == "proposed", \
        card.find_element(By.CSS_SELECTOR, ".image-error").text
    assert card.find_element(By.CSS_SELECTOR, ".alt-proposal-text").get_attribute("textContent").strip()
    click(browser, card.find_element(By.CSS_SELECTOR, ".btn-apply"))
    assert card.find_element(By.CSS_SELECTOR, ".thumb").get_attribute("alt").strip()
    into_view(browser, card)
    shot("large-image-alt-applied")
