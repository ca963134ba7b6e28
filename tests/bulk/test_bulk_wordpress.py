"""vlm-bulk wordpress against a REAL WordPress (tests/browser/wp-env.sh: Debian's WordPress, MariaDB,
php-fpm, nginx with our module, vlmd with the tiny fixture model). No mocks.

Each test seeds its own media and posts through the REST API with the application password, under a
unique token that the tool is pointed at with --search, so runs repeat safely on the same site and
never touch other tests' content. Checks what a site owner would notice: a dry run changes nothing;
a real run rewrites exactly the weak alts (media library and in-post, <img> and block comment alike,
consistently) and leaves human alt text byte-for-byte; a run killed with SIGKILL and resumed sends
no second request for finished images (counted in the vlm nginx access log); an author's edit made
while the tool is working is merged, never overwritten; WordPress answering 429/503 with
Retry-After (a test mu-plugin plays the host's overload protection) is waited out, and a run that
outlasts its retries fails with a clear message and changes nothing.
"""
import base64
import json
import os
import random
import re
import signal
import struct
import subprocess
import time
import urllib.error
import urllib.request
import zlib

import pytest

import alt_request_log

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "images")


def _env():
    """env.sh written by wp-env.sh start, unless the caller already sourced it."""
    env = dict(os.environ)
    path = os.path.join(ROOT, "build", "wp-env", "env.sh")
    if "WP_URL" not in env and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"export (\w+)=(.*)$", line.strip())
                if m:
                    env[m.group(1)] = m.group(2).strip("'\"")
    return env


ENV = _env()
if "WP_URL" not in ENV:
    # A missing environment is a failure, never a silent skip.
    raise RuntimeError("no WordPress environment: run tests/browser/run.sh (or tests/browser/wp-env.sh start)")
WP_URL = ENV["WP_URL"].rstrip("/")
VLM_URL = ENV["VLM_URL"]
USER = ENV["WP_ADMIN_USER"]
APP_PASSWORD = ENV["WP_APP_PASSWORD"]
KEYFILE = ENV["VLM_API_KEY_FILE"]
ACCESS_LOG = ENV["NGINX_ACCESS_LOG"]
BIN = ENV.get("VLM_BULK") or os.path.join(ROOT, "build", "bin", "vlm-bulk")
AUTH = "Basic " + base64.b64encode(("%s:%s" % (USER, APP_PASSWORD)).encode()).decode()


# ---- WordPress REST ------------------------------------------------------------------------

def wp(method, path, body=None, raw=None, headers=None):
    url = WP_URL + "/wp-json/wp/v2/" + path
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"Authorization": AUTH, "Accept": "application/json"}
    if body is not None:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise AssertionError("%s %s: HTTP %d %s" % (method, path, e.code, e.read()[:300])) from None


def upload(name, data, mime, alt, title):
    m = wp("POST", "media", raw=data, headers={"Content-Type": mime,
                                               "Content-Disposition": 'attachment; filename="%s"' % name})
    return wp("POST", "media/%d" % m["id"], {"alt_text": alt, "title": title})


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def new_post(title, content):
    return wp("POST", "posts", {"title": title, "content": content, "status": "publish"})


def snapshot(media_ids, post_ids):
    """Everything WordPress returns for our items (context=edit), to compare whole states."""
    return ({i: wp("GET", "media/%d?context=edit" % i) for i in media_ids},
            {i: wp("GET", "posts/%d?context=edit" % i) for i in post_ids})


def png(seed, size=64):
    """A distinct noise PNG per seed: distinct bytes, so no cache hit and every request reaches vlmd."""
    rnd = random.Random(seed)
    raw = b"".join(b"\0" + rnd.randbytes(size * 3) for _ in range(size))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ---- the tool ------------------------------------------------------------------------------

def alt_requests():
    return alt_request_log.alt_requests(ACCESS_LOG)


def settled_alt_requests():
    return alt_request_log.settled_alt_requests(ACCESS_LOG)


def wp_writes():
    """Media updates WordPress has received (its nginx access log sits next to the vlm one)."""
    path = ENV.get("WP_ACCESS_LOG") or os.path.join(os.path.dirname(ACCESS_LOG), "wp-access.log")
    with open(path, "rb") as f:
        return sum(1 for line in f if b'"POST /wp-json/wp/v2/media/' in line)


def bulk_cmd(token, tmp_path, *extra):
    return [BIN, "wordpress", "--site", WP_URL, "--user", USER, "--app-password", APP_PASSWORD,
            "--endpoint", VLM_URL, "--api-key-file", KEYFILE, "--search", token,
            "--state", str(tmp_path / "state.json")] + list(extra)


def bulk(token, tmp_path, *extra):
    return subprocess.run(bulk_cmd(token, tmp_path, *extra), capture_output=True, text=True, timeout=600)


def weak(alt):
    return alt.strip() == "" or alt.strip().lower() in ("image", "img_1234", "img_1234.jpg")


def img_alts(content):
    """alt of each <img> in document order (None when missing), entities as written."""
    out = []
    for tag in re.findall(r"<img\b[^>]*>", content):
        m = re.search(r'\balt="([^"]*)"', tag)
        out.append(m.group(1) if m else None)
    return out


def html_unescape(s):
    return (s.replace("&quot;", '"').replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">")
            .replace("&amp;", "&"))


def without_alts(content):
    """The content with every <img> alt attribute and block-comment "alt" value removed."""
    content = re.sub(r'\s*\balt="[^"]*"', "", content)
    return re.sub(r',?"alt":"(?:\\.|[^"\\])*"', "", content)


def token():
    return "vbt%08x" % random.getrandbits(32)


# ---- tests ---------------------------------------------------------------------------------

HUMAN_MEDIA = "A grey test card, slightly taller than wide"
HUMAN_MEDIA2 = "Transparent corners around a soft circle"
HUMAN_POST = "Sunset over the harbour, two boats &amp; a gull"   # as written in the HTML
HUMAN_CJK = "一只猫在窗台上晒太阳"


def seed_site(tok):
    m = {
        "empty": upload(tok + "-a.png", fixture("tiny.png"), "image/png", "", tok + " empty"),
        "file": upload(tok + "-b.jpg", fixture("photo.jpg"), "image/jpeg", "IMG_1234.jpg", tok + " file"),
        "generic": upload(tok + "-c.png", fixture("palette.png"), "image/png", "image", tok + " generic"),
        "human": upload(tok + "-d.png", fixture("gray.png"), "image/png", HUMAN_MEDIA, tok + " human"),
        "human2": upload(tok + "-e.png", fixture("alpha.png"), "image/png", HUMAN_MEDIA2, tok + " human2"),
    }
    src = {k: v["source_url"] for k, v in m.items()}
    mid = {k: v["id"] for k, v in m.items()}
    block = (
        '<!-- wp:paragraph -->\n<p>Block post %(tok)s: the harbour walk.</p>\n<!-- /wp:paragraph -->\n\n'
        '<!-- wp:image {"id":%(empty)d,"sizeSlug":"full"} -->\n<figure class="wp-block-image size-full">'
        '<img src="%(s_empty)s" alt="" class="wp-image-%(empty)d"/></figure>\n<!-- /wp:image -->\n\n'
        '<!-- wp:image {"id":%(human)d} -->\n<figure class="wp-block-image">'
        '<img src="%(s_human)s" alt="%(hm)s" class="wp-image-%(human)d"/></figure>\n<!-- /wp:image -->\n\n'
        '<!-- wp:image {"id":%(human2)d} -->\n<figure class="wp-block-image">'
        '<img src="%(s_human2)s" alt="" class="wp-image-%(human2)d"/></figure>\n<!-- /wp:image -->\n\n'
        '<!-- wp:image {"id":%(generic)d,"alt":"image","linkDestination":"none"} -->\n<figure class="wp-block-image">'
        '<img src="%(s_generic)s" alt="image" class="wp-image-%(generic)d"/></figure>\n<!-- /wp:image -->\n\n'
        '<!-- wp:image {"alt":"%(cjk)s"} -->\n<figure class="wp-block-image">'
        '<img src="%(s_file)s" alt="%(cjk)s"/></figure>\n<!-- /wp:image -->\n'
    ) % dict(tok=tok, s_empty=src["empty"], s_human=src["human"], s_human2=src["human2"], s_generic=src["generic"],
             s_file=src["file"], hm=HUMAN_MEDIA, cjk=HUMAN_CJK, **mid)
    classic = (
        '<p>Classic post %(tok)s.</p>\n'
        '<p><img src="%(s_file)s" alt="IMG_1234" width="300" height="180"></p>\n'
        '<p><img class="alignleft wp-image-%(empty)d" src="%(s_empty)s" width="20"></p>\n'
        "<p><img src='%(s_human)s' alt=\"%(hp)s\"></p>\n"
        '<p><img src="https://example.invalid/elsewhere.png" alt=""></p>\n'
        '<pre>&lt;img src="x.png"&gt; is how you write an image</pre>\n'
    ) % dict(tok=tok, s_file=src["file"], s_empty=src["empty"], s_human=src["human"], hp=HUMAN_POST, **mid)
    posts = {"block": new_post(tok + " block post", block), "classic": new_post(tok + " classic post", classic)}
    return m, posts


def test_dry_run_then_real_run(tmp_path):
    tok = token()
    media, posts = seed_site(tok)
    media_ids = [v["id"] for v in media.values()]
    post_ids = [v["id"] for v in posts.values()]
    # Requests expected: the three weak media (each shared with its in-post copies) plus the classic
    # post's unlinked IMG_1234 image. human2's empty in-post alt is filled from the library.
    expected_requests = 4

    before = snapshot(media_ids, post_ids)
    n0 = alt_requests()
    r = bulk(tok, tmp_path, "--dry-run", "--concurrency", "2", "--report", str(tmp_path / "dry.json"))
    assert r.returncode == 0, r.stderr
    assert snapshot(media_ids, post_ids) == before, "dry run changed WordPress"
    assert not (tmp_path / "state.json").exists(), "dry run wrote a state file"
    assert alt_requests() - n0 == expected_requests
    assert "-IMG_1234.jpg" in r.stdout and "--- a/posts %d" % posts["classic"]["id"] in r.stdout
    dry = json.load(open(tmp_path / "dry.json"))
    assert sum(1 for x in dry if x["status"] == "would_update") == 3 + 2 + 3  # media + classic + block

    n0 = alt_requests()
    report = tmp_path / "report.json"
    r = bulk(tok, tmp_path, "--concurrency", "2", "--report", str(report))
    assert r.returncode == 0, r.stderr
    assert alt_requests() - n0 == expected_requests
    assert not (tmp_path / "state.json").exists(), "state file left after a complete run"
    rows = json.load(open(report))
    status = {}
    for x in rows:
        status[x["status"]] = status.get(x["status"], 0) + 1
    assert status == {"updated": 8, "kept_human": 5, "skipped": 1}, status

    after_media, after_posts = snapshot(media_ids, post_ids)
    new_alt = {}
    for k, m in media.items():
        alt = after_media[m["id"]]["alt_text"]
        if k.startswith("human"):
            assert alt == m["alt_text"], "human media alt changed"
        else:
            assert alt and not weak(alt) and alt != m["alt_text"], (k, alt)
        new_alt[k] = alt
        # nothing but the alt (and the modified time) changed on the attachment
        # (description.rendered embeds the <img alt>, so only its raw text is compared)
        strip = lambda d: {x: (y["raw"] if x == "description" else y) for x, y in d.items()
                           if x not in ("alt_text", "modified", "modified_gmt")}
        assert strip(after_media[m["id"]]) == strip(before[0][m["id"]])

    esc = lambda s: s.replace("&", "&amp;").replace('"', "&quot;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
    block_before = before[1][posts["block"]["id"]]["content"]["raw"]
    block_after = after_posts[posts["block"]["id"]]["content"]["raw"]
    assert img_alts(block_after) == [esc(new_alt["empty"]), HUMAN_MEDIA, esc(HUMAN_MEDIA2), esc(new_alt["generic"]),
                                     HUMAN_CJK]
    # The block comment's own "alt" follows the <img>, so the editor and the front end agree.
    raw_comments = re.findall(r"<!-- wp:image (\{.*?\}) -->", block_after)
    assert len(raw_comments) == 5 and not any("--" in c or "<" in c or ">" in c for c in raw_comments)
    comments = [json.loads(c) for c in raw_comments]
    assert comments[3]["alt"] == new_alt["generic"] and comments[4]["alt"] == HUMAN_CJK
    assert without_alts(block_after) == without_alts(block_before)

    classic_before = before[1][posts["classic"]["id"]]["content"]["raw"]
    classic_after = after_posts[posts["classic"]["id"]]["content"]["raw"]
    alts = img_alts(classic_after)
    assert alts[0] and not weak(html_unescape(alts[0]))
    assert alts[1] == esc(new_alt["empty"])          # linked by class wp-image-N: same text as the library
    assert HUMAN_POST in classic_after and alts[3] == ""
    assert without_alts(classic_after) == without_alts(classic_before)
    assert '<pre>&lt;img src="x.png"&gt; is how you write an image</pre>' in classic_after

    # A second run finds nothing left to do and changes nothing.
    state = snapshot(media_ids, post_ids)
    n0 = alt_requests()
    r = bulk(tok, tmp_path)
    assert r.returncode == 0, r.stderr
    assert alt_requests() == n0
    assert snapshot(media_ids, post_ids) == state


def test_kill_and_resume(tmp_path):
    tok = token()
    count = 40
    seed = random.getrandbits(32)
    ids = [upload("%s-%02d.png" % (tok, i), png(seed + i), "image/png", "" if i % 2 else "IMG_%04d" % i,
                  "%s resume %02d" % (tok, i))["id"] for i in range(count)]
    state = tmp_path / "state.json"
    n0 = alt_requests()
    proc = subprocess.Popen(bulk_cmd(tok, tmp_path, "--concurrency", "1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    done = {}
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            done = json.load(open(state))["done"]
        except (OSError, ValueError):
            done = {}
        if len(done) >= count // 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "finished before it could be killed: " + proc.stderr.read()[-500:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.load(open(state))["done"]   # replaced atomically, so always whole
    first = settled_alt_requests() - n0
    assert count // 3 <= len(done) < count
    assert first <= len(done) + 1           # at most the one request in flight when killed
    assert all(wp("GET", "media/%d?context=edit" % i)["alt_text"] in ("", "IMG_%04d" % n)
               for n, i in enumerate(ids)), "killed run wrote half-finished results"

    # Resume, and crash again, this time in the middle of writing to WordPress.
    n1 = settled_alt_requests()
    w0 = wp_writes()
    proc = subprocess.Popen(bulk_cmd(tok, tmp_path, "--resume", "--concurrency", "2"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and wp_writes() - w0 < 3:
        time.sleep(0.002)
    proc.send_signal(signal.SIGSTOP)
    written = wp_writes() - w0
    assert proc.poll() is None and 3 <= written < count, "could not catch the run while writing: %d" % written
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "%d images already done" % len(done) in proc.stderr.read()
    assert settled_alt_requests() - n1 == count - len(done), "finished images were requested again"

    n2 = alt_requests()
    r = bulk(tok, tmp_path, "--resume", "--concurrency", "2", "--report", str(tmp_path / "r.csv"))
    assert r.returncode == 0, r.stderr
    assert alt_requests() == n2, "the second resume asked for alt text again"
    for n, i in enumerate(ids):
        m = wp("GET", "media/%d?context=edit" % i)
        assert m["alt_text"] and not weak(m["alt_text"]) and m["alt_text"] != "IMG_%04d" % n
        key = "media:%d" % i
        if key in done:
            assert m["alt_text"] == done[key], "resumed image did not get the alt from the first run"
    assert not state.exists()
    report = open(tmp_path / "r.csv").read()
    # written before the second crash: recognised as ours; the rest written now
    assert report.count(",updated_earlier,") >= written - 1 and report.count(",updated,") >= 1
    assert report.count(",updated_earlier,") + report.count(",updated,") == count


@pytest.mark.parametrize("overwrite", [False, True], ids=["default", "overwrite"])
def test_author_edit_during_run_is_kept(tmp_path, overwrite):
    """A real race made deterministic: the tool is frozen (SIGSTOP) after it has read everything and
    while it is still describing images; the author edits a post and a media item; the tool goes on.
    Even --overwrite must not replace what the author typed during the run."""
    tok = token()
    seed = random.getrandbits(32)
    n = 12
    media = [upload("%s-%02d.png" % (tok, i), png(seed + i), "image/png", "", "%s race %02d" % (tok, i))
             for i in range(n)]
    # Classic <img> tags without wp-image-N: the post's images are planned apart from the library.
    content = "<p>Race post %s.</p>\n" % tok + "".join('<p><img src="%s" alt=""></p>\n' % m["source_url"] for m in media)
    post = new_post(tok + " race post", content)
    n0 = alt_requests()
    extra = ["--overwrite"] if overwrite else []
    proc = subprocess.Popen(bulk_cmd(tok, tmp_path, "--concurrency", "1", "--report", str(tmp_path / "race.json"), *extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and alt_requests() == n0:
        time.sleep(0.005)
    # The tool has read everything (it lists before describing) and is describing images: freeze it.
    proc.send_signal(signal.SIGSTOP)
    author_alt = "The author wrote this while the tool ran"
    try:
        assert proc.poll() is None
        state = tmp_path / "state.json"
        done = json.load(open(state))["done"] if state.exists() else {}
        assert len(done) < 2 * n, "the tool got past describing before the edit could be made"
        now = wp("GET", "posts/%d?context=edit" % post["id"])
        assert now["content"]["raw"] == content, "the tool wrote before the author's edit"
        assert wp("GET", "media/%d?context=edit" % media[0]["id"])["alt_text"] == ""
        # The author, meanwhile, names the first image in the post and in the library, and adds a paragraph.
        time.sleep(1.1)  # modified_gmt has one-second resolution: make the change visible there too
        edited = content.replace('alt=""', 'alt="%s"' % author_alt, 1) + "<p>Added by the author during the run.</p>\n"
        wp("POST", "posts/%d" % post["id"], {"content": edited})
        wp("POST", "media/%d" % media[0]["id"], {"alt_text": "Library alt by the author"})
    finally:
        proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, "a conflict must show in the exit code: " + err
    assert "changed during the run" in err
    final = wp("GET", "posts/%d?context=edit" % post["id"])["content"]["raw"]
    assert "<p>Added by the author during the run.</p>" in final
    alts = img_alts(final)
    assert alts[0] == author_alt
    assert all(a and not weak(a) for a in alts[1:]), alts
    assert without_alts(final) == without_alts(edited)
    assert wp("GET", "media/%d?context=edit" % media[0]["id"])["alt_text"] == "Library alt by the author"
    assert all(not weak(wp("GET", "media/%d?context=edit" % m["id"])["alt_text"]) for m in media[1:])
    rows = json.load(open(tmp_path / "race.json"))
    post_rows = [x for x in rows if x["document"] == "posts %d" % post["id"]]
    assert sum(1 for x in post_rows if x["status"] == "updated" and "merged" in x["message"]) == n - 1
    assert [x["old_alt"] for x in post_rows if x["status"] == "kept_human"] == [author_alt]
    conflicts = [x for x in rows if x["status"] == "conflict"]
    assert [x["document"] for x in conflicts] == ["media %d" % media[0]["id"]], conflicts


def test_bad_credentials_exit_3(tmp_path):
    r = subprocess.run([BIN, "wordpress", "--site", WP_URL, "--user", USER, "--app-password", "wrong wrong wrong",
                        "--endpoint", VLM_URL, "--api-key-file", KEYFILE, "--search", token(),
                        "--state", str(tmp_path / "s.json")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and "authentication failed" in r.stderr, r.stderr


BUSY_MU_PLUGIN = """<?php
// Written by tests/bulk/test_bulk_wordpress.py for the throwaway test site; not part of the plugin.
// While the option vlm_test_busy counts down, REST calls get 429 / 503 with Retry-After, as a
// host's overload protection would answer.
$vlm_test_busy = (int) get_option('vlm_test_busy', 0);
if ($vlm_test_busy > 0 && strpos($_SERVER['REQUEST_URI'] ?? '', 'wp/v2/') !== false) {
    update_option('vlm_test_busy', $vlm_test_busy - 1);
    status_header($vlm_test_busy % 2 ? 429 : 503);
    header('Retry-After: 1');
    header('Content-Type: application/json');
    echo '{"code":"busy","message":"Busy, try again shortly"}';
    exit;
}
"""


def set_busy(n=None):
    """Sets the count of refusals to come (None: only reads it); returns the count."""
    code = ("$_SERVER['HTTP_HOST'] = 'localhost'; require getenv('WP_PATH') . '/wp-load.php';"
            + ("" if n is None else "update_option('vlm_test_busy', %d);" % n)
            + "echo (int) get_option('vlm_test_busy');")
    out = subprocess.run(["php", "-r", code], env=ENV, capture_output=True, text=True, timeout=60, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def busy_wordpress():
    path = os.path.join(ENV["WP_PATH"], "wp-content", "mu-plugins", "vlm-test-busy.php")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(BUSY_MU_PLUGIN)
    try:
        yield set_busy
    finally:
        set_busy(0)


def test_busy_wordpress_is_waited_out(tmp_path, busy_wordpress):
    tok = token()
    seed = random.getrandbits(32)
    m = upload(tok + "-busy.png", png(seed), "image/png", "", tok + " busy")
    post = new_post(tok + " busy post", '<p>Busy %s.</p>\n<p><img src="%s" alt=""></p>\n' % (tok, m["source_url"]))

    # More refusals in a row than it may retry: it gives up, says why, and writes nothing.
    busy_wordpress(8)
    r = bulk(tok, tmp_path, "--max-retries", "2")
    assert r.returncode not in (0, 2), r.stderr
    assert "HTTP 429" in r.stderr or "HTTP 503" in r.stderr, r.stderr
    assert busy_wordpress(0) == 0   # the site recovers (and our own checks below get through)
    assert wp("GET", "media/%d?context=edit" % m["id"])["alt_text"] == ""
    assert img_alts(wp("GET", "posts/%d?context=edit" % post["id"])["content"]["raw"]) == [""]

    # Three refusals (429, 503, 429): waited out, honouring Retry-After, and the run completes.
    assert busy_wordpress(3) == 3
    t0 = time.time()
    r = bulk(tok, tmp_path, "--concurrency", "1")
    elapsed = time.time() - t0
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("retrying in") == 3, r.stderr
    assert "WordPress HTTP 429" in r.stderr and "WordPress HTTP 503" in r.stderr, r.stderr
    assert elapsed >= 3.0, "Retry-After: 1 was not honoured (%.1fs)" % elapsed
    assert busy_wordpress() == 0, "the refusals were not all met"
    assert not weak(wp("GET", "media/%d?context=edit" % m["id"])["alt_text"])
    alts = img_alts(wp("GET", "posts/%d?context=edit" % post["id"])["content"]["raw"])
    assert len(alts) == 1 and alts[0] and not weak(alts[0]), alts
