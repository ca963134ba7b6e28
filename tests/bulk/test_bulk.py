"""vlm-bulk end-to-end tests (called by tests/bulk/run.sh, which provides a running stack).

Checks what a site owner would notice: a dry run changes nothing; a real run rewrites exactly the
missing/weak alts and keeps human alt text and every other byte; exit codes; --out; and a run
killed with SIGKILL then resumed finishes without repeating finished requests (counted in
nginx's access log). Markup from other generators (lazy-loaded <img>, srcset, reference-style
Markdown, site-root paths under static/ or --static-dir), --fetch-remote against a real
local HTTP server, and an image over the service's pixel cap (shrunk before upload).

Arguments name the tests to run (default: all), e.g. `sh tests/bulk/run.sh test_fetch_remote`.
"""
import base64
import glob
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib

import alt_request_log

HERE = os.path.dirname(os.path.abspath(__file__))
SITE = os.path.join(HERE, "site")
FIXTURE_IMAGES = os.path.join(HERE, "..", "fixtures", "images")
BIN = os.environ["VLM_BULK"]
ENDPOINT = os.environ["VLM_ENDPOINT"]
KEYFILE = os.environ["VLM_API_KEY_FILE"]
ACCESS_LOG = os.environ["VLM_ACCESS_LOG"]
WORK = os.environ["VLM_BULK_WORK"]

HUMAN_ALTS = {
    "index.md": ["![A red bicycle leaning against a stone wall](images/tiny.png)",
                 "![Cover \\[draft\\] of the guide](images/palette.png)"],
    "blog/post.html": ['alt="Sunset over the harbour, with two fishing boats &amp; a gull"',
                       'alt="一只猫在窗台上晒太阳"'],
    "docs/guide.md": ["![The packed bag: tent, stove and two water bottles](../images/photo.jpg)"],
}
WEAK = 11          # missing or weak alts in the fixture site with a local image that exists
FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILURES.append(what)


def tree_sums(root):
    out = {}
    for path in sorted(glob.glob(os.path.join(root, "**"), recursive=True)):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def alt_requests():
    return alt_request_log.alt_requests(ACCESS_LOG)


def settled_alt_requests():
    return alt_request_log.settled_alt_requests(ACCESS_LOG)


def bulk(*args, **kw):
    cmd = [BIN] + list(args) + ["--endpoint", kw.pop("endpoint", ENDPOINT)]
    if kw.pop("key", True):
        cmd += ["--api-key-file", KEYFILE]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


def strip_alts(text):
    """The document with every alt value removed, so the rest can be compared byte for byte."""
    text = re.sub(r"!\[(?:\\.|[^\]\\])*\]\(", "![](", text)
    return re.sub(r"""\s*\balt=("[^"]*"|'[^']*'|[^\s>]+)""", "", text, flags=re.I)


def fresh_site(name):
    dst = os.path.join(WORK, name)
    shutil.copytree(SITE, dst)
    return dst


def test_dry_run():
    site = fresh_site("dry")
    state = os.path.join(WORK, "dry-state.json")
    before = tree_sums(site)
    n0 = alt_requests()
    r = bulk("files", site, "--dry-run", "--state", state)
    check(r.returncode == 1, "dry run exits 1 (one image file is missing): rc=%d" % r.returncode)
    check(tree_sums(site) == before, "dry run leaves every file byte-identical (%d files)" % len(before))
    check(not os.path.exists(state), "dry run writes no state file")
    check("--- a/index.md" in r.stdout and "-The trail map was posted at the gate: ![IMG_1234.jpg]" in r.stdout
          and "+<img alt=" in r.stdout,
          "dry run prints a diff-like preview")
    check(alt_requests() - n0 == WEAK, "dry run asked for %d alts (expected %d)" % (alt_requests() - n0, WEAK))


def test_real_run():
    site = fresh_site("real")
    state = os.path.join(WORK, "real-state.json")
    report = os.path.join(WORK, "real-report.json")
    originals = {}
    for rel in HUMAN_ALTS:
        with open(os.path.join(site, rel), encoding="utf-8") as f:
            originals[rel] = f.read()
    images_before = {k: v for k, v in tree_sums(site).items() if k.startswith("images/")}
    r = bulk("files", site, "--state", state, "--report", report, "--concurrency", "2")
    check(r.returncode == 1, "real run exits 1 (missing image reported as failed): rc=%d %s" % (r.returncode, r.stderr[-300:]))
    with open(report, encoding="utf-8") as f:
        rows = json.load(f)
    by_status = {}
    for row in rows:
        by_status.setdefault(row["status"], []).append(row)
    check(len(by_status.get("updated", [])) == WEAK, "updated %d alts (expected %d)" % (len(by_status.get("updated", [])), WEAK))
    check(len(by_status.get("kept_human", [])) == 5, "kept 5 human alts")
    check([r_["src"] for r_ in by_status.get("failed", [])] == ["../images/missing.png"], "only the missing image failed")
    check(len(by_status.get("skipped", [])) == 2, "remote and data: images skipped")
    for rel, before in originals.items():
        with open(os.path.join(site, rel), encoding="utf-8") as f:
            after = f.read()
        with open(os.path.join(site, rel + ".orig"), encoding="utf-8") as f:
            check(f.read() == before, rel + ": .orig backup holds the original")
        for human in HUMAN_ALTS[rel]:
            check(human in after, rel + ": human alt survives: " + human[:40])
        check(strip_alts(after) == strip_alts(before), rel + ": byte-identical outside alt text")
        b_lines, a_lines = before.split("\n"), after.split("\n")
        check(len(b_lines) == len(a_lines), rel + ": same number of lines")
        unchanged = all(a == b for a, b in zip(a_lines, b_lines)
                        if not re.search(r"!\[|<img", b, re.I) or "`" in b or "<!--" in b)
        check(unchanged, rel + ": lines without images (and code/comments) unchanged")
        for row in rows:
            if row["document"] == rel and row["status"] == "updated":
                check(row["new_alt"] and row["new_alt"] != row["old_alt"], "%s:%d new alt differs" % (rel, row["line"]))
    check({k: v for k, v in tree_sums(site).items() if k.startswith("images/")} == images_before, "images untouched")
    # A second pass over the result finds nothing left to do.
    n0 = alt_requests()
    r = bulk("files", site, "--state", state, "--resume", "--report", report)
    with open(report, encoding="utf-8") as f:
        rows2 = json.load(f)
    check(alt_requests() == n0, "second pass sends no requests")
    check(sum(1 for x in rows2 if x["status"] == "updated_earlier") == WEAK, "second pass recognises its own alts")


def test_out_dir_and_codes():
    site = fresh_site("outsrc")
    out = os.path.join(WORK, "outdir")
    before = tree_sums(site)
    r = bulk("files", site, "--out", out, "--state", os.path.join(WORK, "out-state.json"))
    check(r.returncode == 1 and tree_sums(site) == before, "--out leaves the source untouched")
    check(os.path.isfile(os.path.join(out, "blog", "post.html")) and not glob.glob(out + "/**/*.orig", recursive=True),
          "--out writes documents there, without backups")
    r = bulk("files", site, "--api-key", "wrong-key", "--state", os.path.join(WORK, "x.json"), key=False)
    check(r.returncode == 3 and "authentication" in r.stderr, "bad API key exits 3: rc=%d" % r.returncode)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = "http://127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    r = bulk("files", site, "--state", os.path.join(WORK, "x.json"), endpoint=dead)
    check(r.returncode == 3 and "unreachable" in r.stderr, "unreachable service exits 3: rc=%d" % r.returncode)
    r = bulk("files", site, "--concurrency", "0")
    check(r.returncode == 2, "bad usage exits 2: rc=%d" % r.returncode)
    check(tree_sums(site) == before, "failed runs change nothing")


def png(seed, size=96):
    """A distinct noise PNG per seed (distinct bytes: no cache hits, every request reaches vlmd)."""
    raw = bytearray()
    x = seed * 2654435761 & 0xFFFFFFFF
    for _ in range(size):
        raw.append(0)
        for _ in range(size * 3):
            x = (x * 1103515245 + 12345) & 0xFFFFFFFF
            raw.append(x >> 24)

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))


def test_kill_and_resume():
    site = os.path.join(WORK, "big")
    os.makedirs(os.path.join(site, "img"))
    n = 120
    seed_base = int(time.time())  # fresh bytes each test run: no Redis cache hits
    for i in range(n):
        with open(os.path.join(site, "img", "p%03d.png" % i), "wb") as f:
            f.write(png(seed_base * 1000 + i))
    for page in range(4):
        with open(os.path.join(site, "page%d.md" % page), "w") as f:
            f.write("# Page %d\n\n" % page)
            for i in range(page * 30, page * 30 + 30):
                f.write("Photo %d:\n\n![IMG_%04d.png](img/p%03d.png)\n\n" % (i, i, i))
    state = os.path.join(WORK, "big-state.json")
    n0 = alt_requests()
    proc = subprocess.Popen([BIN, "files", site, "--state", state, "--concurrency", "1", "--endpoint", ENDPOINT,
                             "--api-key-file", KEYFILE], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done_at_kill = 0
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            with open(state) as f:
                done_at_kill = len(json.load(f)["done"])
        except (OSError, ValueError):
            pass
        if done_at_kill >= n // 3:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open(state) as f:
        done_at_kill = len(json.load(f)["done"])
    n1 = settled_alt_requests()
    killed_run = n1 - n0
    check(0 < done_at_kill < n, "killed midway with %d/%d images recorded in the state file" % (done_at_kill, n))
    check(killed_run - done_at_kill in (0, 1), "killed run: %d requests for %d finished (at most 1 in flight)"
          % (killed_run, done_at_kill))
    check(not glob.glob(site + "/*.orig"), "no document written before the run finished")
    r = bulk("files", site, "--state", state, "--resume", "--concurrency", "1")
    resumed = alt_requests() - n1
    check(r.returncode == 0, "resumed run exits 0: rc=%d %s" % (r.returncode, r.stderr[-300:]))
    check(resumed == n - done_at_kill, "resumed run sent %d requests (expected %d: no repeats)"
          % (resumed, n - done_at_kill))
    body = "".join(open(p).read() for p in sorted(glob.glob(site + "/page*.md")))
    check(len(re.findall(r"!\[IMG_\d+\.png\]", body)) == 0 and body.count("](img/p") == n,
          "all %d images got alt text" % n)
    check(not os.path.exists(state), "state file removed after a complete run")
    r = bulk("files", site, "--state", state)
    check(r.returncode == 0 and alt_requests() - n1 == resumed, "a later run has nothing to do")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def copy_fixture(name, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(os.path.join(FIXTURE_IMAGES, name), dst)


def report_rows(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_generator_markup():
    """A Hugo/Hexo-like site: lazy-loaded <img>, srcset only, reference-style Markdown and
    site-root paths kept under static/ and (with --static-dir) source/."""
    site = os.path.join(WORK, "gen")
    copy_fixture("photo.jpg", os.path.join(site, "static", "images", "lazy.jpg"))
    copy_fixture("tiny.png", os.path.join(site, "static", "images", "set-1x.png"))
    copy_fixture("palette.png", os.path.join(site, "source", "images", "hexo.png"))
    copy_fixture("gray.png", os.path.join(site, "content", "post", "ref.png"))
    copy_fixture("exif3.jpg", os.path.join(site, "content", "post", "shortcut.jpg"))
    copy_fixture("alpha.png", os.path.join(WORK, "gen-outside", "secret.png"))
    os.symlink(os.path.join(WORK, "gen-outside"), os.path.join(site, "static", "out"))
    gif = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
    html = ('<html><head><title>Lazy page</title></head><body>\n'
            '<img src="%s" data-src="/images/lazy.jpg" class="lazyload" width="10">\n'
            '<img srcset="/images/set-1x.png 1x, /images/set-2x.png 2x" alt="">\n'
            '<img src="/images/hexo.png" alt="IMG_7.png">\n'
            '<img src="/out/secret.png">\n'
            '</body></html>\n') % gif
    md = ("# Reference images\n\n"
          "Full: ![DSC_0001][Ref  Image]\n\n"
          "Shortcut: ![shortcut]\n\n"
          "Kept: ![A gray square on white][ref image]\n\n"
          "[ref image]: <ref.png> \"Title\"\n"
          "[Shortcut]: shortcut.jpg\n")
    write(os.path.join(site, "public", "lazy.html"), html)
    write(os.path.join(site, "content", "post", "index.md"), md)
    report = os.path.join(WORK, "gen-report.json")
    state = os.path.join(WORK, "gen-state.json")
    n0 = alt_requests()
    r = bulk("files", site, "--state", state, "--report", report)
    rows = report_rows(report)
    by_src = {row["src"]: row for row in rows}
    check(r.returncode == 1, "generator site: exit 1 (one site-root image is in no static dir): rc=%d %s"
          % (r.returncode, r.stderr[-300:]))
    check(by_src.get("/images/lazy.jpg", {}).get("status") == "updated",
          "lazy <img>: data-src image described instead of the data: placeholder")
    check(by_src.get("/images/set-1x.png", {}).get("status") == "updated", "srcset-only <img>: first candidate described")
    hexo = by_src.get("/images/hexo.png", {})
    check(hexo.get("status") == "failed" and "not found" in hexo.get("message", ""),
          "without --static-dir source, /images/hexo.png is reported missing: %s" % hexo)
    out = by_src.get("/out/secret.png", {})
    check(out.get("status") == "skipped" and out.get("message") == "image outside DIR",
          "a symlink out of DIR under static/ is not followed: %s" % out)
    md_rows = sorted((row["line"], row["src"], row["status"]) for row in rows if row["document"].endswith(".md"))
    check(md_rows == [(3, "ref.png", "updated"), (5, "shortcut.jpg", "updated"), (7, "ref.png", "kept_human")],
          "reference-style Markdown images described, the human alt kept: %s" % md_rows)
    check(alt_requests() - n0 == 4, "4 alt requests (expected 4): %d" % (alt_requests() - n0))

    after_html = read(os.path.join(site, "public", "lazy.html"))
    check(strip_alts(after_html) == strip_alts(html), "lazy.html: byte-identical outside alt attributes")
    check(('data-src="/images/lazy.jpg"' in after_html and 'src="%s"' % gif in after_html
           and re.search(r'<img alt="[^"]+" src="data:image/gif', after_html) is not None),
          "lazy.html: placeholder and data-src kept, alt added")
    after_md = read(os.path.join(site, "content", "post", "index.md"))
    full = re.search(r"Full: !\[([^\]]+)\]\[Ref  Image\]\n", after_md)
    short = re.search(r"Shortcut: !\[([^\]]+)\]\[shortcut\]\n", after_md)
    check(full is not None and full.group(1) != "DSC_0001", "full reference: alt rewritten, label kept")
    check(short is not None and short.group(1) != "shortcut", "shortcut reference: alt rewritten, label made explicit")
    check(after_md.endswith(md[md.index("Kept:"):]), "index.md: human alt and definitions unchanged")

    # With --static-dir source the Hexo-style path resolves; nothing else is asked again.
    n1 = alt_requests()
    r = bulk("files", site, "--state", state, "--report", report, "--resume", "--static-dir", "source")
    rows = report_rows(report)
    hexo = [row for row in rows if row["src"] == "/images/hexo.png"]
    check(r.returncode == 0 and hexo and hexo[0]["status"] == "updated",
          "--static-dir source: /images/hexo.png found and described: rc=%d %s" % (r.returncode, hexo))
    check(alt_requests() - n1 == 1, "second run sent 1 request (expected 1): %d" % (alt_requests() - n1))
    r = bulk("files", site, "--static-dir", "../gen-outside", "--state", state)
    check(r.returncode == 2 and "--static-dir" in r.stderr, "--static-dir outside DIR is bad usage: rc=%d" % r.returncode)


class ImageServer:
    """Python's http.server on 127.0.0.1 serving a temp dir, plus /redirect (302 to an image)
    and /loop (endless redirects); records every path it was asked for."""

    def __init__(self, root):
        paths = self.paths = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=root, **kw)

            def do_GET(self):
                paths.append(self.path)
                if self.path in ("/redirect", "/loop"):
                    self.send_response(302)
                    self.send_header("Location", "/img/photo.jpg" if self.path == "/redirect" else "/loop")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_fetch_remote():
    served = os.path.join(WORK, "served")
    copy_fixture("photo.jpg", os.path.join(served, "img", "photo.jpg"))
    copy_fixture("tiny.png", os.path.join(served, "img", "tiny.bin"))  # image bytes, no image type
    write(os.path.join(served, "page.html"), "<html>not an image</html>\n")
    server = ImageServer(served)
    try:
        b = server.base
        site = os.path.join(WORK, "remote")
        md = ("# Remote images\n\n"
              "![](%s/img/photo.jpg)\n\n"
              "![IMG_2.png](%s/img/tiny.bin)\n\n"
              "![](%s/redirect)\n\n"
              "![](%s/missing.png)\n\n"
              "![](%s/page.html)\n\n"
              "![](%s/loop)\n") % (b, b, b, b, b, b)
        write(os.path.join(site, "index.md"), md)
        report = os.path.join(WORK, "remote-report.json")
        state = os.path.join(WORK, "remote-state.json")

        n0 = alt_requests()
        r = bulk("files", site, "--state", state, "--report", report)
        rows = report_rows(report)
        check(r.returncode == 0 and all(row["status"] == "skipped" for row in rows) and len(rows) == 6,
              "without --fetch-remote: every remote image skipped, exit 0: rc=%d" % r.returncode)
        check(all(row["message"] == "remote image not fetched; --fetch-remote downloads it" for row in rows),
              "the skip message says how to enable downloads")
        check(server.paths == [] and alt_requests() == n0, "without --fetch-remote nothing is downloaded or asked")

        r = bulk("files", site, "--fetch-remote", "--dry-run", "--state", state, "--report", report)
        check(server.paths == [], "--fetch-remote --dry-run downloads nothing: %s" % server.paths)
        check(r.returncode == 0 and read(os.path.join(site, "index.md")) == md, "dry run changes nothing")

        r = bulk("files", site, "--fetch-remote", "--state", state, "--report", report)
        rows = report_rows(report)
        by_src = {row["src"].replace(b, ""): row for row in rows}
        status = {k: v["status"] for k, v in by_src.items()}
        check(r.returncode == 1, "--fetch-remote with failed downloads exits 1: rc=%d %s" % (r.returncode, r.stderr[-300:]))
        check(status == {"/img/photo.jpg": "updated", "/img/tiny.bin": "updated", "/redirect": "updated",
                         "/missing.png": "failed", "/page.html": "failed", "/loop": "failed"},
              "downloaded images described, bad ones failed: %s" % status)
        check("HTTP 404" in by_src["/missing.png"]["message"], "404 reported: " + by_src["/missing.png"]["message"])
        check("not an image" in by_src["/page.html"]["message"] and "text/html" in by_src["/page.html"]["message"],
              "HTML page refused: " + by_src["/page.html"]["message"])
        check(by_src["/loop"]["message"] != "", "endless redirect refused: " + by_src["/loop"]["message"])
        check(server.paths.count("/loop") == 6, "at most 5 redirects followed: %d requests" % server.paths.count("/loop"))
        check("/img/photo.jpg" in server.paths and server.paths.count("/redirect") == 1,
              "the redirect target was downloaded")
        check(alt_requests() - n0 == 3, "3 alt requests (expected 3): %d" % (alt_requests() - n0))
        after = read(os.path.join(site, "index.md"))
        check(strip_alts(after) == strip_alts(md), "index.md: byte-identical outside alt text")
        check(after.count("![](") == 3 and "![IMG_2.png]" not in after, "the three described images got alt text")
    finally:
        server.stop()


def big_png(width, height, seed):
    """An RGB PNG over the service's 16777216-pixel cap: smooth bands plus a seeded row, so it stays a few MB."""
    band = bytes((x * 255 // width) for x in range(width)) * 3
    rows = []
    for y in range(height):
        shade = y * 255 // height
        row = bytearray(band)
        row[0::97] = bytes([shade]) * len(row[0::97])
        rows.append(b"\x00" + bytes(row))
    rows[0] = b"\x00" + bytes((seed >> (8 * (i % 4))) & 0xFF for i in range(width * 3))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 6)) + chunk(b"IEND", b""))


def test_oversized_image():
    """A camera-sized image over the service's pixel cap is shrunk to a JPEG before upload and gets its alt."""
    site = os.path.join(WORK, "oversized")
    os.makedirs(os.path.join(site, "img"))
    w, h = 5200, 3600  # 18.7 MP > 16777216
    data = big_png(w, h, int(time.time() * 1000) & 0xFFFFFFFF)
    path = os.path.join(site, "img", "camera.png")
    with open(path, "wb") as f:
        f.write(data)
    write(os.path.join(site, "index.md"), "# Holiday\n\n![IMG_0042.png](img/camera.png)\n")
    # The service itself refuses the original: this is what vlm-bulk has to work around.
    with open(KEYFILE) as f:
        key = f.read().strip()
    body = json.dumps({"image": "data:image/png;base64," + base64.b64encode(data).decode()}).encode()
    req = urllib.request.Request(ENDPOINT + "/v1/alt-text", data=body, method="POST",
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    try:
        status = urllib.request.urlopen(req, timeout=120).status
    except urllib.error.HTTPError as e:
        status = e.code
    check(status in (400, 413), "service refuses the %dx%d original: HTTP %d" % (w, h, status))
    before = tree_sums(site)
    report = os.path.join(WORK, "oversized-report.json")
    n0 = settled_alt_requests()  # the refused request above is logged once nginx has discarded its body
    r = bulk("files", site, "--state", os.path.join(WORK, "oversized-state.json"), "--report", report)
    rows = report_rows(report)
    check(r.returncode == 0, "oversized image: exit 0: rc=%d %s" % (r.returncode, r.stderr[-300:]))
    check(len(rows) == 1 and rows[0]["status"] == "updated" and rows[0]["new_alt"],
          "oversized image: alt generated, not failed: %s" % rows)
    check(alt_requests() - n0 == 1, "oversized image: one request (%d)" % (alt_requests() - n0))
    with open(os.path.join(site, "index.md"), encoding="utf-8") as f:
        md = f.read()
    check(rows and rows[0]["new_alt"] and rows[0]["new_alt"] in md.replace("\\", ""), "index.md carries the new alt")
    check(tree_sums(site)["img/camera.png"] == before["img/camera.png"], "the image file itself is untouched")


def main():
    tests = (test_dry_run, test_real_run, test_out_dir_and_codes, test_kill_and_resume, test_generator_markup,
             test_fetch_remote, test_oversized_image)
    wanted = sys.argv[1:]
    unknown = [w for w in wanted if w not in {t.__name__ for t in tests}]
    if unknown:
        print("unknown test(s): " + " ".join(unknown))
        return 2
    for test in tests:
        if wanted and test.__name__ not in wanted:
            continue
        print("== " + test.__name__)
        test()
    print("%d failure(s)" % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
