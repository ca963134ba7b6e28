"""vlm-bulk end-to-end tests (called by tests/bulk/run.sh, which provides a running stack).

Checks what a site owner would notice: a dry run changes nothing; a real run rewrites exactly the
missing/weak alts and keeps human alt text and every other byte; exit codes; --out; and a run
killed with SIGKILL then resumed finishes without repeating finished requests (counted in
nginx's access log).
"""
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib

import alt_request_log

HERE = os.path.dirname(os.path.abspath(__file__))
SITE = os.path.join(HERE, "site")
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


def main():
    for test in (test_dry_run, test_real_run, test_out_dir_and_codes, test_kill_and_resume):
        print("== " + test.__name__)
        test()
    print("%d failure(s)" % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
