"""The vlm WordPress plugin in a real WordPress (tests/browser/wp-env.sh) driven by headless Chromium:
alt text proposed for an inserted image, applied, saved and found in the post after a reload; the
smart summary and SEO description inserted; the Media Library bulk action with progress and its
final count honouring the overwrite policy; the token route and the settings page keeping the
secret on the server; the classic editor's button. The model is a random test model, so the tests
check that text arrives, is applied and persists, never its wording. Run via tests/browser/run.sh."""

import base64
import html
import html.parser
import json
import os
import pathlib
import time
import urllib.error
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from conftest import FIXTURE_IMAGES, wait_until

GEN_TIMEOUT = 120  # the CPU test model can be slow when other engineers load the machine


# ---- REST helpers (application password, as an admin script would) ----

def rest(env, method, path, data=None, raw=None, headers=None, auth=True):
    """JSON REST call; returns (status, body). raw sends bytes (media upload)."""
    hdrs = dict(headers or {})
    if auth:
        token = base64.b64encode(f"{env.admin_user}:{env.app_password}".encode()).decode()
        hdrs["Authorization"] = "Basic " + token
    body = raw
    if data is not None:
        body = json.dumps(data).encode()
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(env.url + "/wp-json" + path, data=body, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def upload_image(env, name, alt=None, title=None):
    path = FIXTURE_IMAGES / name
    mime = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}[path.suffix[1:]]
    # A unique file name per upload so WordPress never serves a stale rendition.
    fname = f"{path.stem}-{time.time_ns()}{path.suffix}"
    status, media = rest(env, "POST", "/wp/v2/media", raw=path.read_bytes(), headers={
        "Content-Type": mime, "Content-Disposition": f'attachment; filename="{fname}"'})
    assert status == 201, media
    patch = {}
    if alt is not None:
        patch["alt_text"] = alt
    if title is not None:
        patch["title"] = title
    if patch:
        status, media = rest(env, "POST", f"/wp/v2/media/{media['id']}", data=patch)
        assert status == 200, media
    return media


def create_post(env, title, content, status="draft"):
    code, post = rest(env, "POST", "/wp/v2/posts", data={"title": title, "content": content, "status": status})
    assert code == 201, post
    return post


def get_post(env, post_id):
    code, post = rest(env, "GET", f"/wp/v2/posts/{post_id}?context=edit")
    assert code == 200, post
    return post


def img_alts(content):
    """alt of every <img> in post HTML, decoded as a browser would."""
    alts = []

    class P(html.parser.HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "img":
                alts.append(dict(attrs).get("alt"))

    P().feed(content)
    return alts


# Test-only switches for the throwaway site, driven by cookies this test sets: the classic editor
# (WordPress 6.1 has no other way without the Classic Editor plugin) and the zh_CN locale (core's
# zh_CN language pack is not installed, so the user profile cannot select it).
TEST_MU_PLUGIN = """<?php
// Written by tests/browser/test_wordpress.py for the throwaway test site; not part of the plugin.
add_filter('use_block_editor_for_post', function ($use) {
    return empty($_COOKIE['vlm_test_classic']) ? $use : false;
});
// Yoast itself cannot be installed here (no network); its version constant makes the plugin
// offer the Yoast target and register the meta, which is the part under test.
if (($_COOKIE['vlm_test_seo'] ?? '') === 'yoast' && !defined('WPSEO_VERSION')) {
    define('WPSEO_VERSION', 'test');
}
add_filter('determine_locale', function ($locale) {
    return (($_COOKIE['vlm_test_locale'] ?? '') === 'zh_CN') ? 'zh_CN' : $locale;
});
// The site's own language (Settings > General), as opposed to the user's UI language above.
add_filter('locale', function ($locale) {
    return (($_COOKIE['vlm_test_site_locale'] ?? '') === 'zh_CN') ? 'zh_CN' : $locale;
});
"""


PRESET_SETTINGS = r"""
$_SERVER['HTTP_HOST'] = 'localhost';
require getenv('WP_PATH') . '/wp-load.php';
update_option('vlm_settings', [
    'endpoint' => getenv('VLM_URL'), 'jwt_secret' => trim(file_get_contents(getenv('VLM_JWT_SECRET_FILE'))),
    'language' => 'auto', 'auto_alt' => true, 'overwrite' => 'weak',
]);
"""


@pytest.fixture(autouse=True)
def preset_settings(wp_env):
    """Every test starts from the settings wp-env.sh presets, whatever an earlier (perhaps
    failed) test left behind, so the suite can run again and again on the same site."""
    import subprocess
    subprocess.run(["php", "-r", PRESET_SETTINGS], check=True, timeout=60)


@pytest.fixture(scope="session")
def test_switches(wp_env):
    mu = wp_env.path / "wp-content" / "mu-plugins"
    mu.mkdir(exist_ok=True)
    path = mu / "vlm-test-switches.php"
    if not path.exists() or path.read_text() != TEST_MU_PLUGIN:
        path.write_text(TEST_MU_PLUGIN)
        time.sleep(3)  # php-fpm's opcache looks at file times at most every 2 s
    return path


def set_cookie(browser, env, name, value):
    browser.get(env.url + "/wp-login.php?vlm_cookie")
    browser.add_cookie({"name": name, "value": value, "path": "/"})


# ---- browser helpers ----

def login(browser, env):
    browser.get(env.url + "/wp-login.php")
    wait_until(lambda: browser.find_element(By.ID, "user_login"), message="login form")
    # wp-login.php moves focus to the user field 200 ms after load; type only after that.
    time.sleep(0.5)
    user = browser.find_element(By.ID, "user_login")
    password = browser.find_element(By.ID, "user_pass")
    user.clear()
    user.send_keys(env.admin_user)
    password.send_keys(env.admin_password)
    assert user.get_attribute("value") == env.admin_user
    assert password.get_attribute("value") == env.admin_password
    browser.find_element(By.ID, "wp-submit").click()
    wait_until(lambda: "/wp-admin" in browser.current_url and browser.find_elements(By.ID, "wpadminbar"),
               message="the dashboard after login")


def open_block_editor(browser, env, post_id):
    browser.get(f"{env.url}/wp-admin/post.php?post={post_id}&action=edit")
    wait_until(lambda: browser.execute_script(
        "return !!(window.wp && wp.data && wp.data.select('core/editor')"
        " && wp.data.select('core/editor').__unstableIsEditorReady()"
        " && window.vlmWp && window.VlmClient)"), timeout=60, message="the block editor with vlm loaded")
    # The install script turns the welcome guide off; make sure, whatever the WordPress version.
    browser.execute_script(
        "var s = wp.data.select('core/edit-post');"
        "if (s.isFeatureActive('welcomeGuide')) wp.data.dispatch('core/edit-post').toggleFeature('welcomeGuide');")
    for close in browser.find_elements(By.CSS_SELECTOR, ".edit-post-welcome-guide .components-modal__header button"):
        close.click()


def js_blocks(browser):
    return browser.execute_script(
        "function walk(bs){return bs.map(function(b){return {name:b.name, clientId:b.clientId,"
        " attributes:b.attributes, inner:walk(b.innerBlocks)};});}"
        "return walk(wp.data.select('core/block-editor').getBlocks());")


def save_post(browser):
    browser.execute_script("wp.data.dispatch('core/editor').savePost();")
    wait_until(lambda: browser.execute_script(
        "var e = wp.data.select('core/editor');"
        "return !e.isSavingPost() && !e.isEditedPostDirty() && e.didPostSaveRequestSucceed();"),
        timeout=60, message="the post to save")


def visible(browser, css):
    els = [e for e in browser.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
    return els[0] if els else None


def into_view(browser, css):
    el = visible(browser, css)
    if el is not None:
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    return el


def textarea_value(browser, css):
    el = visible(browser, css + " textarea")
    return el.get_attribute("value").strip() if el else ""


def no_vlm_error(browser):
    err = visible(browser, ".vlm-error")
    assert err is None, "vlm showed an error: " + err.text


def open_document_sidebar(browser):
    """The Post (document) tab of the settings sidebar, opened whatever state it was in."""
    browser.execute_script(
        "var d = wp.data.dispatch('core/edit-post');"
        "d.openGeneralSidebar('edit-post/document');")
    wait_until(lambda: visible(browser, ".vlm-summary-panel"), message="the Smart summary panel")
    panel = visible(browser, ".vlm-summary-panel")
    if "is-opened" not in panel.get_attribute("class"):
        panel.find_element(By.CSS_SELECTOR, ".components-panel__body-toggle").click()
        wait_until(lambda: visible(browser, ".vlm-generate-summary"), message="the panel to open")


# ---- tests ----

def test_token_route_and_settings_keep_the_secret(wp_env, browser, shot):
    secret = pathlib.Path(os.environ["VLM_JWT_SECRET_FILE"]).read_text().strip()
    # Anonymous callers get 403, not a token.
    status, body = rest(wp_env, "POST", "/vlm/v1/token", auth=False)
    assert status == 403 and "token" not in (body or {})

    status, body = rest(wp_env, "POST", "/vlm/v1/token")
    assert status == 200, body
    assert body["endpoint"] == wp_env.vlm_url
    head, payload, _sig = body["token"].split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    assert json.loads(base64.urlsafe_b64decode(pad(head))) == {"alg": "HS256", "typ": "JWT"}
    claims = json.loads(base64.urlsafe_b64decode(pad(payload)))
    assert claims["iss"] == wp_env.url.rstrip("/") and claims["aud"] == "vlm"
    assert claims["sub"].startswith("wp:") and claims["exp"] - claims["iat"] == 300
    assert body["expires_at"] == claims["exp"]
    # The vlm service itself accepts it (nginx checks signature, iss and aud).
    req = urllib.request.Request(wp_env.vlm_url + "/v1/models",
                                 headers={"Authorization": "Bearer " + body["token"]})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
    # A tampered token is refused.
    bad = body["token"][:-2] + ("AA" if not body["token"].endswith("AA") else "BB")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(
            wp_env.vlm_url + "/v1/models", headers={"Authorization": "Bearer " + bad}), timeout=30)
    assert e.value.code == 401

    login(browser, wp_env)
    browser.get(wp_env.url + "/wp-admin/options-general.php?page=vlm")
    wait_until(lambda: browser.find_element(By.ID, "vlm-endpoint"), message="the settings page")
    assert browser.find_element(By.ID, "vlm-endpoint").get_attribute("value") == wp_env.vlm_url
    assert browser.find_element(By.CSS_SELECTOR, ".vlm-secret-set").is_displayed()
    assert browser.find_element(By.ID, "vlm-secret").get_attribute("value") == ""
    assert secret not in browser.page_source
    shot("settings")

    # An endpoint that is not http(s) is refused with a message and the old one kept.
    field = browser.find_element(By.ID, "vlm-endpoint")
    field.clear()
    browser.execute_script("arguments[0].type='text'; arguments[0].value='javascript:alert(1)';", field)
    browser.find_element(By.ID, "submit").click()
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, ".notice-error, .error"), message="settings error")
    shot("bad-endpoint-refused")
    assert browser.find_element(By.ID, "vlm-endpoint").get_attribute("value") == wp_env.vlm_url
    assert browser.find_element(By.CSS_SELECTOR, ".vlm-secret-set").is_displayed()

    # Saving the form with a blank secret field keeps the secret; the other choices are stored.
    Select(browser.find_element(By.ID, "vlm-language")).select_by_value("zh")
    browser.find_element(By.CSS_SELECTOR, 'input[name="vlm_settings[overwrite]"][value="never"]').click()
    auto = browser.find_element(By.CSS_SELECTOR, 'input[name="vlm_settings[auto_alt]"]')
    assert auto.is_selected()
    auto.click()
    browser.find_element(By.ID, "submit").click()
    # (WordPress strips settings-updated=true from the address bar: wait for its notice instead)
    wait_until(lambda: visible(browser, "#setting-error-settings_updated"), message="the settings to save")
    shot("saved-settings")
    assert Select(browser.find_element(By.ID, "vlm-language")).first_selected_option.get_attribute("value") == "zh"
    assert browser.find_element(By.CSS_SELECTOR, 'input[name="vlm_settings[overwrite]"][value="never"]').is_selected()
    assert not browser.find_element(By.CSS_SELECTOR, 'input[name="vlm_settings[auto_alt]"]').is_selected()
    assert browser.find_element(By.CSS_SELECTOR, ".vlm-secret-set").is_displayed()
    assert rest(wp_env, "POST", "/vlm/v1/token")[0] == 200
    # Back to the preset values for the other tests.
    Select(browser.find_element(By.ID, "vlm-language")).select_by_value("auto")
    browser.find_element(By.CSS_SELECTOR, 'input[name="vlm_settings[overwrite]"][value="weak"]').click()
    browser.find_element(By.CSS_SELECTOR, 'input[name="vlm_settings[auto_alt]"]').click()
    browser.find_element(By.ID, "submit").click()
    wait_until(lambda: browser.find_element(By.CSS_SELECTOR, 'input[name="vlm_settings[auto_alt]"]').is_selected(),
               message="the settings to be restored")

    # The editor page carries no secret either, only the endpoint.
    post = create_post(wp_env, "Secret check", "<!-- wp:paragraph --><p>x</p><!-- /wp:paragraph -->")
    open_block_editor(browser, wp_env, post["id"])
    assert secret not in browser.page_source
    assert browser.execute_script("return JSON.stringify(window.vlmWpData)").find(secret) == -1


def test_image_alt_proposed_applied_and_persisted(wp_env, browser, shot):
    media = upload_image(wp_env, "photo.jpg", title="Harbour photo")
    assert media["alt_text"] == ""
    post = create_post(wp_env, "A walk by the harbour",
                       "<!-- wp:paragraph --><p>We walked along the harbour at dusk and watched the boats"
                       " come in.</p><!-- /wp:paragraph -->")
    login(browser, wp_env)
    open_block_editor(browser, wp_env, post["id"])
    shot("editor-open")

    # Insert an empty image block, then pick the image from the Media Library like an author would.
    browser.execute_script(
        "var b = wp.blocks.createBlock('core/image');"
        "wp.data.dispatch('core/block-editor').insertBlocks(b);")
    wait_until(lambda: visible(browser, ".wp-block-image .components-placeholder"), message="image placeholder")
    media_button = wait_until(lambda: next((b for b in browser.find_elements(
        By.CSS_SELECTOR, ".wp-block-image .components-placeholder button") if b.is_displayed()
        and b.text.strip() == "Media Library"), None), message="the Media Library button")
    media_button.click()
    tile = wait_until(lambda: visible(browser, f'.media-modal .attachment[data-id="{media["id"]}"]'),
                      timeout=30, message="the uploaded image in the media modal")
    tile.click()
    shot("media-modal")
    visible(browser, ".media-modal .media-button-select").click()
    wait_until(lambda: not visible(browser, ".media-modal"), message="the modal to close")

    # auto_alt is on and the image has no alt: a proposal appears in the inspector, not applied.
    wait_until(lambda: visible(browser, ".vlm-alt-panel"), message="the vlm alt panel")
    proposal = wait_until(lambda: (no_vlm_error(browser), textarea_value(browser, ".vlm-alt-proposal"))[1],
                          timeout=GEN_TIMEOUT, message="an automatic alt proposal")
    image = next(b for b in js_blocks(browser) if b["name"] == "core/image")
    assert image["attributes"]["id"] == media["id"]
    assert not image["attributes"].get("alt"), "the proposal was applied without review"
    assert visible(browser, ".vlm-auto-note") is not None
    shot("auto-proposal")

    # Edit the proposal a little (review before apply), then Apply.
    box = visible(browser, ".vlm-alt-proposal textarea")
    box.send_keys(" (reviewed)")
    proposal = box.get_attribute("value").strip()
    visible(browser, ".vlm-apply-alt").click()
    wait_until(lambda: next(b for b in js_blocks(browser) if b["name"] == "core/image")["attributes"].get("alt")
               == proposal, message="the alt attribute to be applied")
    shot("applied")

    # Generate again by hand, then Dismiss: the applied alt stays.
    visible(browser, ".vlm-generate-alt").click()
    wait_until(lambda: (no_vlm_error(browser), textarea_value(browser, ".vlm-alt-proposal"))[1],
               timeout=GEN_TIMEOUT, message="a manual alt proposal")
    shot("manual-proposal")
    # Two generations, one token: the browser reuses it until shortly before it expires.
    assert browser.execute_script(
        "return performance.getEntriesByType('resource').filter(function (e) {"
        " return e.name.indexOf('/vlm/v1/token') >= 0; }).length") == 1
    visible(browser, ".vlm-dismiss-alt").click()
    wait_until(lambda: visible(browser, ".vlm-generate-alt"), message="the proposal to go away")
    assert next(b for b in js_blocks(browser) if b["name"] == "core/image")["attributes"]["alt"] == proposal

    save_post(browser)
    shot("saved")
    saved = get_post(wp_env, post["id"])["content"]["raw"]
    assert img_alts(saved) == [proposal], saved
    # The Media Library copy was empty, so the default "also save it" updated it too.
    wait_until(lambda: rest(wp_env, "GET", f"/wp/v2/media/{media['id']}?context=edit")[1]["alt_text"] == proposal,
               message="the attachment alt")

    # After a reload the editor parses the alt back from the saved post.
    open_block_editor(browser, wp_env, post["id"])
    image = next(b for b in js_blocks(browser) if b["name"] == "core/image")
    assert image["attributes"]["alt"] == proposal
    # Loading a post is not inserting: no automatic proposal for images already there.
    time.sleep(2)
    assert browser.execute_script("return wp.data.select('vlm/alt').get(arguments[0])", image["clientId"]) is None
    assert visible(browser, ".vlm-alt-proposal") is None
    shot("reloaded")


def test_smart_summary_and_seo_description(wp_env, browser, shot, test_switches):
    media = upload_image(wp_env, "photo.jpg")
    content = (
        "<!-- wp:paragraph --><p>The city library reopened this week after a two-year renovation. The"
        " reading room now has daylight from a glass roof, and the children's section doubled in size."
        "</p><!-- /wp:paragraph -->"
        f'<!-- wp:image {{"id":{media["id"]},"sizeSlug":"large"}} --><figure class="wp-block-image size-large">'
        f'<img src="{media["source_url"]}" alt="" class="wp-image-{media["id"]}"/></figure><!-- /wp:image -->'
        "<!-- wp:paragraph --><p>Opening hours are longer on weekends, and a café on the ground floor"
        " serves visitors until eight.</p><!-- /wp:paragraph -->")
    post = create_post(wp_env, "The library reopens", content)
    set_cookie(browser, wp_env, "vlm_test_seo", "yoast")
    login(browser, wp_env)
    open_block_editor(browser, wp_env, post["id"])
    open_document_sidebar(browser)
    shot("summary-panel")

    visible(browser, ".vlm-generate-summary").click()
    summary = wait_until(lambda: (no_vlm_error(browser), textarea_value(browser, ".vlm-summary-preview"))[1],
                         timeout=GEN_TIMEOUT, message="a summary")
    into_view(browser, ".vlm-summary-preview")
    shot("summary-preview")
    first_before = js_blocks(browser)[0]
    visible(browser, ".vlm-insert-top").click()
    wait_until(lambda: js_blocks(browser)[0]["clientId"] != first_before["clientId"], message="the inserted block")
    top = js_blocks(browser)[0]
    assert top["name"] == "core/paragraph" and "vlm-summary" in top["attributes"].get("className", "")
    assert html.unescape(top["attributes"]["content"]).strip() == summary
    assert into_view(browser, ".vlm-done") is not None
    shot("summary-inserted")

    visible(browser, ".vlm-generate-seo").click()
    seo = wait_until(lambda: (no_vlm_error(browser), textarea_value(browser, ".vlm-summary-preview"))[1],
                     timeout=GEN_TIMEOUT, message="an SEO description")
    into_view(browser, ".vlm-summary-preview")
    shot("seo-preview")
    assert visible(browser, ".vlm-insert-top") is None  # a meta description is not article text
    visible(browser, ".vlm-save-yoast").click()
    wait_until(lambda: browser.execute_script(
        "return wp.data.select('core/editor').getEditedPostAttribute('meta')._yoast_wpseo_metadesc") == seo,
        message="the Yoast description")

    # A second SEO description, this time into the excerpt.
    visible(browser, ".vlm-generate-seo").click()
    wait_until(lambda: (no_vlm_error(browser), textarea_value(browser, ".vlm-summary-preview"))[1],
               timeout=GEN_TIMEOUT, message="an SEO description")
    box = visible(browser, ".vlm-summary-preview textarea")
    box.send_keys(" Edited.")
    excerpt = box.get_attribute("value").strip()
    visible(browser, ".vlm-insert-excerpt").click()
    wait_until(lambda: browser.execute_script(
        "return wp.data.select('core/editor').getEditedPostAttribute('excerpt')") == excerpt, message="the excerpt")
    save_post(browser)
    shot("saved")

    code, saved = rest(wp_env, "GET", f"/wp/v2/posts/{post['id']}?context=edit",
                       headers={"Cookie": "vlm_test_seo=yoast"})
    assert code == 200
    assert saved["excerpt"]["raw"] == excerpt
    assert saved["meta"]["_yoast_wpseo_metadesc"] == seo
    assert saved["content"]["raw"].lstrip().startswith("<!-- wp:paragraph")
    assert "vlm-summary" in saved["content"]["raw"].split("<!-- /wp:paragraph -->")[0]


def test_media_library_bulk_alt(wp_env, browser, shot):
    human = "Two children reading on the library steps"
    items = {
        "empty": upload_image(wp_env, "photo.jpg", title="vlm bulk empty"),
        "camera": upload_image(wp_env, "exif6.jpg", alt="IMG_1234", title="vlm bulk camera"),
        "filename": upload_image(wp_env, "gray.png", title="vlm bulk filename"),
        "human": upload_image(wp_env, "palette.png", alt=human, title="vlm bulk human"),
    }
    # Alt that merely repeats the file name counts as weak too.
    fname = pathlib.PurePosixPath(items["filename"]["source_url"]).name
    rest(wp_env, "POST", f"/wp/v2/media/{items['filename']['id']}", data={"alt_text": fname})

    login(browser, wp_env)
    browser.get(wp_env.url + "/wp-admin/upload.php?mode=list")
    wait_until(lambda: browser.find_element(By.ID, "posts-filter"), message="the media list")
    for item in items.values():
        browser.find_element(By.ID, f"cb-select-{item['id']}").click()
    Select(browser.find_element(By.ID, "bulk-action-selector-top")).select_by_value("vlm_generate_alt")
    shot("selected")
    browser.find_element(By.ID, "doaction").click()

    wait_until(lambda: visible(browser, ".vlm-bulk .vlm-bulk-progress"), message="the progress bar")
    shot("progress")
    assert "upload.php" in browser.current_url  # handled in the page, no form submission
    wait_until(lambda: visible(browser, ".vlm-bulk-finished"), timeout=GEN_TIMEOUT * 2, message="the bulk run to finish")
    shot("finished")
    box = visible(browser, ".vlm-bulk")
    progress = box.find_element(By.CSS_SELECTOR, ".vlm-bulk-progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == "4"
    assert "4 of 4" in box.find_element(By.CSS_SELECTOR, ".vlm-bulk-count").text
    assert "3 updated, 1 skipped, 0 failed" in box.find_element(By.CSS_SELECTOR, ".vlm-bulk-summary").text, box.text

    alts = {k: rest(wp_env, "GET", f"/wp/v2/media/{v['id']}?context=edit")[1]["alt_text"] for k, v in items.items()}
    assert alts["human"] == human
    assert alts["empty"].strip()
    assert alts["camera"].strip() and alts["camera"] != "IMG_1234"
    assert alts["filename"].strip() and alts["filename"] != fname


def test_media_library_bulk_reports_service_errors(wp_env, browser, shot):
    """An unreachable service gives plain words and a stop, and nothing is changed."""
    media = [upload_image(wp_env, "photo.jpg", title=f"vlm down {i}") for i in range(4)]
    login(browser, wp_env)
    browser.get(wp_env.url + "/wp-admin/upload.php?mode=list")
    wait_until(lambda: browser.find_element(By.ID, "posts-filter"), message="the media list")
    # Point this page's client at a port nobody listens on (the real settings stay untouched).
    browser.execute_script(
        "var orig = wp.apiFetch; wp.apiFetch = function (o) {"
        " if (o.path === '/vlm/v1/token') return orig(o).then(function (r) { r.endpoint = 'http://127.0.0.1:9'; return r; });"
        " return orig(o); };")
    for m in media:
        browser.find_element(By.ID, f"cb-select-{m['id']}").click()
    Select(browser.find_element(By.ID, "bulk-action-selector-top")).select_by_value("vlm_generate_alt")
    browser.find_element(By.ID, "doaction").click()
    wait_until(lambda: visible(browser, ".vlm-bulk-finished"), timeout=GEN_TIMEOUT, message="the run to stop")
    shot("service-down")
    text = visible(browser, ".vlm-bulk").text
    # Three network failures in a row stop the run: the fourth image is not attempted.
    assert "0 updated, 0 skipped, 3 failed" in text and "Stopped" in text, text
    errors = [li.text for li in browser.find_elements(By.CSS_SELECTOR, ".vlm-bulk-errors li")]
    assert len(errors) == 3 and all("unreachable" in e for e in errors), errors
    for m in media:
        assert rest(wp_env, "GET", f"/wp/v2/media/{m['id']}?context=edit")[1]["alt_text"] == ""


def test_classic_editor_buttons(wp_env, browser, shot, test_switches):
    media = upload_image(wp_env, "photo.jpg")
    post = create_post(wp_env, "Classic harbour notes",
                       "<p>Fishing boats came back to the harbour before the storm.</p>\n"
                       f'<p><img class="alignnone size-full wp-image-{media["id"]}" src="{media["source_url"]}"'
                       ' alt="" width="300" height="180" /></p>\n<p>The market opened late that day.</p>')
    set_cookie(browser, wp_env, "vlm_test_classic", "1")
    login(browser, wp_env)
    browser.get(f"{wp_env.url}/wp-admin/post.php?post={post['id']}&action=edit")
    wait_until(lambda: browser.execute_script(
        "return !!(window.tinymce && tinymce.get('content') && tinymce.get('content').initialized"
        " && window.vlmWp && window.VlmClient)"), timeout=60, message="the classic editor with vlm")
    alt_button = wait_until(lambda: visible(browser, '.mce-btn[aria-label="Alt text for the selected image (vlm)"]'),
                            message="the vlm alt button in the toolbar")
    shot("classic-editor")

    browser.execute_script("var ed = tinymce.get('content'); ed.focus(); ed.selection.select(ed.dom.select('img')[0]);")
    alt_button.click()
    box = wait_until(lambda: visible(browser, ".mce-window textarea"), timeout=GEN_TIMEOUT, message="the alt dialog")
    proposal = wait_until(lambda: box.get_attribute("value").strip(), message="proposal text")
    assert browser.execute_script("return tinymce.get('content').dom.select('img')[0].getAttribute('alt')") == ""
    shot("alt-dialog")
    visible(browser, ".mce-window .mce-primary button").click()
    wait_until(lambda: browser.execute_script(
        "return tinymce.get('content').dom.select('img')[0].getAttribute('alt')") == proposal, message="alt applied")

    visible(browser, '.mce-btn[aria-label="Smart summary (vlm)"]').click()
    box = wait_until(lambda: visible(browser, ".mce-window textarea"), timeout=GEN_TIMEOUT, message="the summary dialog")
    summary = wait_until(lambda: box.get_attribute("value").strip(), message="summary text")
    shot("summary-dialog")
    buttons = [b for b in browser.find_elements(By.CSS_SELECTOR, ".mce-window .mce-foot button") if b.is_displayed()]
    next(b for b in buttons if b.text.strip() == "Insert at the top").click()
    wait_until(lambda: not visible(browser, ".mce-window"), message="the dialog to close")
    shot("summary-inserted")

    browser.find_element(By.ID, "save-post").click()
    # (WordPress strips message= from the address bar: wait for the "saved" notice instead)
    wait_until(lambda: visible(browser, "#message.updated, #message.notice-success"), timeout=60,
               message="the draft to save")
    shot("saved")
    saved = get_post(wp_env, post["id"])["content"]["raw"]
    assert img_alts(saved) == [proposal], saved
    first = saved.lstrip().split("</p>")[0]
    # In one HTML paragraph a line break in the summary is just white space.
    assert 'class="vlm-summary"' in first
    assert html.unescape(first.split(">", 1)[1]).split() == summary.split()


def test_chinese_ui(wp_env, browser, shot, test_switches):
    media = upload_image(wp_env, "photo.jpg")
    post = create_post(wp_env, "港口的傍晚",
                       "<!-- wp:paragraph --><p>傍晚的港口，渔船陆续归来。</p><!-- /wp:paragraph -->"
                       f'<!-- wp:image {{"id":{media["id"]}}} --><figure class="wp-block-image"><img src="{media["source_url"]}"'
                       f' alt="" class="wp-image-{media["id"]}"/></figure><!-- /wp:image -->')
    set_cookie(browser, wp_env, "vlm_test_locale", "zh_CN")
    login(browser, wp_env)
    browser.get(wp_env.url + "/wp-admin/options-general.php?page=vlm")
    wait_until(lambda: browser.find_element(By.ID, "vlm-endpoint"), message="the settings page")
    assert browser.find_element(By.CSS_SELECTOR, ".vlm-settings h1").text == "vlm 设置"
    assert browser.find_element(By.CSS_SELECTOR, ".vlm-secret-set").text == "已设置密钥。"
    shot("settings-zh")

    open_block_editor(browser, wp_env, post["id"])
    image = next(b for b in js_blocks(browser) if b["name"] == "core/image")
    browser.execute_script("wp.data.dispatch('core/block-editor').selectBlock(arguments[0]);", image["clientId"])
    panel = wait_until(lambda: visible(browser, ".vlm-alt-panel"), message="the alt panel")
    assert "替代文本（vlm）" in panel.text
    # An image already in the post when it opens is not an insert: no automatic proposal.
    time.sleep(1.5)
    assert browser.execute_script("return wp.data.select('vlm/alt').get(arguments[0])", image["clientId"]) is None
    button = visible(browser, ".vlm-generate-alt")
    assert button.text == "生成替代文本"
    button.click()
    wait_until(lambda: (no_vlm_error(browser), textarea_value(browser, ".vlm-alt-proposal"))[1],
               timeout=GEN_TIMEOUT, message="a proposal")
    assert visible(browser, ".vlm-apply-alt").text == "应用"
    into_view(browser, ".vlm-alt-proposal")
    shot("alt-zh")

    browser.get(wp_env.url + "/wp-admin/upload.php?mode=list")
    options = [o.text for o in Select(browser.find_element(By.ID, "bulk-action-selector-top")).options]
    assert "生成替代文本" in options


RECORD_VLM_REQUESTS = """
window.vlmSent = [];
var orig = window.fetch;
window.fetch = function (url, opts) {
    if (String(url).indexOf('/v1/') >= 0 && opts && typeof opts.body === 'string') {
        window.vlmSent.push({url: String(url), body: JSON.parse(opts.body)});
    }
    return orig.apply(this, arguments);
};
"""


def test_site_language_used_when_there_is_no_text_to_read(wp_env, browser, test_switches):
    """With language "auto", a bare Media Library image has no article to read: a Chinese
    site must get Chinese alt text, not the service's English default."""
    item = upload_image(wp_env, "photo.jpg", title="vlm site language")
    set_cookie(browser, wp_env, "vlm_test_site_locale", "zh_CN")
    login(browser, wp_env)
    browser.get(wp_env.url + "/wp-admin/upload.php?mode=list")
    wait_until(lambda: browser.find_element(By.ID, "posts-filter"), message="the media list")
    browser.execute_script(RECORD_VLM_REQUESTS)
    browser.find_element(By.ID, f"cb-select-{item['id']}").click()
    Select(browser.find_element(By.ID, "bulk-action-selector-top")).select_by_value("vlm_generate_alt")
    browser.find_element(By.ID, "doaction").click()
    wait_until(lambda: visible(browser, ".vlm-bulk-finished"), timeout=GEN_TIMEOUT, message="the bulk run")
    sent = [r["body"] for r in browser.execute_script("return window.vlmSent") if "/v1/alt-text" in r["url"]]
    assert [b["language"] for b in sent] == ["zh"], sent
    # (the site's language is also the UI's here: the summary line is in Chinese)
    assert "已更新 1 张" in visible(browser, ".vlm-bulk").text
    assert rest(wp_env, "GET", f"/wp/v2/media/{item['id']}?context=edit")[1]["alt_text"].strip()


def test_block_editor_shows_service_errors(wp_env, browser, shot):
    """The service unreachable: the inspector says so in plain words, keeps the alt, offers a retry."""
    media = upload_image(wp_env, "photo.jpg")
    post = create_post(wp_env, "Offline check",
                       f'<!-- wp:image {{"id":{media["id"]}}} --><figure class="wp-block-image"><img src="{media["source_url"]}"'
                       f' alt="Old alt" class="wp-image-{media["id"]}"/></figure><!-- /wp:image -->')
    login(browser, wp_env)
    open_block_editor(browser, wp_env, post["id"])
    browser.execute_script(
        "var orig = wp.apiFetch; wp.apiFetch = function (o) {"
        " if (o.path === '/vlm/v1/token') return orig(o).then(function (r) { r.endpoint = 'http://127.0.0.1:9'; return r; });"
        " return orig(o); };")
    image = next(b for b in js_blocks(browser) if b["name"] == "core/image")
    browser.execute_script("wp.data.dispatch('core/block-editor').selectBlock(arguments[0]);", image["clientId"])
    wait_until(lambda: visible(browser, ".vlm-generate-alt"), message="the generate button").click()
    err = wait_until(lambda: visible(browser, ".vlm-error"), timeout=GEN_TIMEOUT, message="an error")
    assert "unreachable" in err.text
    assert visible(browser, ".vlm-generate-alt").text == "Try again"
    assert next(b for b in js_blocks(browser) if b["name"] == "core/image")["attributes"]["alt"] == "Old alt"
    into_view(browser, ".vlm-error")
    shot("service-unreachable")


def test_cover_and_media_text_images_get_alt(wp_env, browser, shot):
    """Images shown by a cover and a media-text block get proposals on insert like image blocks;
    applied alt lands in each block's own attribute and survives save and reload with the blocks
    still valid. A media-text showing a video gets no alt panel."""
    cover_media = upload_image(wp_env, "photo.jpg")
    side_media = upload_image(wp_env, "palette.png")
    post = create_post(wp_env, "Harbour notes", "")
    login(browser, wp_env)
    open_block_editor(browser, wp_env, post["id"])
    browser.execute_script(
        "var B = wp.blocks, a = arguments;"
        "var cover = B.createBlock('core/cover', {url: a[0], id: a[1], backgroundType: 'image', dimRatio: 30},"
        "  [B.createBlock('core/paragraph', {content: 'Evening at the harbour'})]);"
        "var side = B.createBlock('core/media-text', {mediaUrl: a[2], mediaId: a[3], mediaType: 'image'},"
        "  [B.createBlock('core/paragraph', {content: 'Boats return before dark.'})]);"
        "var video = B.createBlock('core/media-text', {mediaUrl: a[0].replace(/\\.jpg$/, '.mp4'), mediaType: 'video'});"
        "wp.data.dispatch('core/block-editor').insertBlocks([cover, side, video]);",
        cover_media["source_url"], cover_media["id"], side_media["source_url"], side_media["id"])
    browser.execute_script("wp.data.dispatch('core/edit-post').openGeneralSidebar('edit-post/block');")
    blocks = js_blocks(browser)
    cover, side, video = blocks[0], blocks[1], blocks[2]
    assert (cover["name"], side["name"], video["name"]) == ("core/cover", "core/media-text", "core/media-text")

    applied = {}
    for block, alt_key in ((cover, "alt"), (side, "mediaAlt")):
        browser.execute_script("wp.data.dispatch('core/block-editor').selectBlock(arguments[0]);", block["clientId"])
        wait_until(lambda: visible(browser, ".vlm-alt-panel"), message=f"the alt panel for {block['name']}")
        # Inserted without alt, with auto_alt on: a proposal arrives by itself.
        text = wait_until(lambda: (no_vlm_error(browser), textarea_value(browser, ".vlm-alt-proposal"))[1],
                          timeout=GEN_TIMEOUT, message=f"an automatic proposal for {block['name']}")
        shot(block["name"].replace("core/", "") + "-proposal")
        visible(browser, ".vlm-apply-alt").click()
        wait_until(lambda: next(b for b in js_blocks(browser) if b["clientId"] == block["clientId"])
                   ["attributes"].get(alt_key) == text, message=f"{alt_key} applied on {block['name']}")
        applied[block["name"]] = text

    browser.execute_script("wp.data.dispatch('core/block-editor').selectBlock(arguments[0]);", video["clientId"])
    time.sleep(1)
    assert visible(browser, ".vlm-alt-panel") is None, "a video got an alt-text panel"
    assert browser.execute_script("return wp.data.select('vlm/alt').get(arguments[0])", video["clientId"]) is None

    save_post(browser)
    saved = get_post(wp_env, post["id"])["content"]["raw"]
    assert sorted(a for a in img_alts(saved) if a) == sorted(applied.values()), saved

    open_block_editor(browser, wp_env, post["id"])
    blocks = js_blocks(browser)
    assert browser.execute_script(
        "return wp.data.select('core/block-editor').getBlocks().every(function (b) { return b.isValid; })"), \
        "a block no longer validates after the alt was applied"
    assert blocks[0]["attributes"]["alt"] == applied["core/cover"]
    assert blocks[1]["attributes"]["mediaAlt"] == applied["core/media-text"]
    shot("cover-media-text-reloaded")


def media_alt(env, media_id):
    return rest(env, "GET", f"/wp/v2/media/{media_id}?context=edit")[1]["alt_text"]


def test_media_modal_and_attachment_screen_alt(wp_env, browser, shot):
    """The alt field of the media modal (picking an image for an image block, and the Media
    Library grid) and of the attachment edit screen gets "Generate alt text": review, Apply, and
    WordPress saves it the usual way; the block then starts with that alt."""
    picked = upload_image(wp_env, "photo.jpg")
    other = upload_image(wp_env, "palette.png", alt="A palette of eight colours")
    post = create_post(wp_env, "Boats", "<!-- wp:paragraph --><p>Boats in the harbour.</p><!-- /wp:paragraph -->")
    login(browser, wp_env)

    # 1. Block editor: choose the image in the modal, generate its alt there, then insert it.
    open_block_editor(browser, wp_env, post["id"])
    browser.execute_script("wp.data.dispatch('core/block-editor').insertBlocks(wp.blocks.createBlock('core/image'));")
    wait_until(lambda: next((b for b in browser.find_elements(
        By.CSS_SELECTOR, ".wp-block-image .components-placeholder button") if b.is_displayed()
        and b.text.strip() == "Media Library"), None), message="the Media Library button").click()
    wait_until(lambda: visible(browser, f'.media-modal .attachment[data-id="{picked["id"]}"]'),
               timeout=30, message="the image in the modal").click()
    wait_until(lambda: visible(browser, ".media-modal .vlm-modal-generate"), message="the modal's generate button").click()
    proposal = wait_until(lambda: (no_vlm_error(browser), (visible(browser, ".vlm-modal-proposal") or None)
                                   and visible(browser, ".vlm-modal-proposal").get_attribute("value").strip())[1],
                          timeout=GEN_TIMEOUT, message="a proposal in the media modal")
    shot("media-modal-proposal")
    assert media_alt(wp_env, picked["id"]) == "", "saved before Apply"
    visible(browser, ".vlm-modal-apply").click()
    wait_until(lambda: media_alt(wp_env, picked["id"]) == proposal, message="the modal to save the alt")
    assert visible(browser, ".media-modal .attachment-details textarea#attachment-details-alt-text"
                   ).get_attribute("value") == proposal
    shot("media-modal-applied")
    visible(browser, ".media-modal .media-button-select").click()
    wait_until(lambda: not visible(browser, ".media-modal"), message="the modal to close")
    wait_until(lambda: next(b for b in js_blocks(browser) if b["name"] == "core/image")["attributes"].get("alt")
               == proposal, message="the inserted block to carry the generated alt")

    # An image with human alt is not touched unless asked; Dismiss leaves it as it was.
    # ?item= opens the Edit Media modal in grid mode, which WordPress remembers per user: switch first.
    browser.get(f"{wp_env.url}/wp-admin/upload.php?mode=grid")
    browser.get(f"{wp_env.url}/wp-admin/upload.php?item={other['id']}")
    wait_until(lambda: visible(browser, ".media-modal .vlm-modal-generate"),
               timeout=30, message="the generate button in the Media Library grid").click()
    wait_until(lambda: visible(browser, ".vlm-modal-proposal"), timeout=GEN_TIMEOUT, message="a grid proposal")
    shot("media-grid-proposal")
    visible(browser, ".vlm-modal-dismiss").click()
    wait_until(lambda: visible(browser, ".vlm-modal-generate"), message="the proposal to go away")
    assert media_alt(wp_env, other["id"]) == "A palette of eight colours"

    # 2. The attachment edit screen: Apply fills the field; Update saves it.
    browser.get(f"{wp_env.url}/wp-admin/post.php?post={other['id']}&action=edit")
    wait_until(lambda: visible(browser, ".vlm-modal-generate"), timeout=30,
               message="the generate button on the attachment screen").click()
    proposal = wait_until(lambda: (no_vlm_error(browser), (visible(browser, ".vlm-modal-proposal") or None)
                                   and visible(browser, ".vlm-modal-proposal").get_attribute("value").strip())[1],
                          timeout=GEN_TIMEOUT, message="a proposal on the attachment screen")
    visible(browser, ".vlm-modal-apply").click()
    assert browser.find_element(By.ID, "attachment_alt").get_attribute("value") == proposal
    assert media_alt(wp_env, other["id"]) == "A palette of eight colours", "saved before Update"
    shot("attachment-screen-applied")
    into_view(browser, "#publish").click()
    wait_until(lambda: media_alt(wp_env, other["id"]) == proposal, message="Update to save the alt")
