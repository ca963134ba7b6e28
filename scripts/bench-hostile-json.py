#!/usr/bin/env python3
"""bench-hostile-json: the hostile-json stage of scripts/bench-nginx.sh.

Sends JSON bodies of SIZE bytes shaped to hurt a parser (23 MB of "{},",
"[[[[", keys, small strings, numbers, escapes, one long string, white
space), and two multipart forms (part headers that never end, a field full
of near-boundaries), to POST PATH of an nginx with ONE worker (its pid is
read from /proc), and for each reports:
  answer ms   from the last byte sent to the whole answer (parsing + refusal)
  cpu ms      CPU time the worker used meanwhile (/proc/PID/schedstat): what
              the request cost, whatever else runs on the machine
  peak MB     the worker's VmHWM during the request (reset before it through
              /proc/PID/clear_refs)
  kept MB     the worker's VmRSS one second after the answer, minus before
  probe ms    the slowest of the small GET PROBE requests sent meanwhile on a
              keep-alive connection to the same worker (the event loop's
              blocking), and how many were answered
Then a "BENCH key=value" line with the worst of each.

Usage: bench-hostile-json.py HOST PORT PATH PROBE KEY NGINX_MASTER_PID [SIZE]
Standard library only.
"""
import os
import socket
import sys
import threading
import time

MIB = 1024 * 1024


def shapes(size):
    # a small valid image, so alt text's "image" is never what is refused
    tiny = ("data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
    head = '{"image": "%s", "x": ' % tiny

    def fill(prefix, unit, suffix):
        return prefix + unit * ((size - len(prefix) - len(suffix)) // len(unit)) + suffix

    keys, n = [], 0
    while n < size - len(head) - 64:
        k = '"k%d":0' % len(keys)
        keys.append(k)
        n += len(k) + 1
    boundary = "b" * 69 + "x"
    form = "--%s\r\n" % boundary
    return [
        ("empty objects", fill(head + "[", "{},", "{}]}")),
        ("nesting [[[[", fill(head, "[", "")),
        ("small strings", fill(head + "[", '"a",', '"a"]}')),
        ("numbers", fill(head + "[", "1,", "1]}")),
        ("many keys", head + "{" + ",".join(keys) + "}}"),
        ("one long key", fill(head + '{"', "k", '":1}}')),
        ("one long string", fill(head + '"', "s", '"}')),
        ("escapes \\/", fill(head + '"', "\\/", '"}')),
        ("escapes \\u", fill(head + '"', "\\u4f60", '"}')),
        ("white space", fill(head + "1", " ", "}")),
        ("form: no header end", fill(form, "x: y\r\n", ""), boundary),
        ("form: near-boundaries",
         fill(form + 'Content-Disposition: form-data; name="context"\r\n\r\n',
              "\r\n--" + "b" * 69 + "y", ""), boundary),
    ]


def proc_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_ms(pid):
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0]) / 1e6


def read_answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class Probe(threading.Thread):
    """Small GETs on one keep-alive connection, back to back, timed."""

    def __init__(self, host, port, path):
        super().__init__(daemon=True)
        self.addr, self.path = (host, port), path
        self.stop = threading.Event()
        self.latencies = []

    def run(self):
        s = socket.create_connection(self.addr, 10)
        s.settimeout(600)
        req = ("GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % self.path).encode()
        while not self.stop.is_set():
            t = time.monotonic()
            s.sendall(req)
            if not read_answer(s):
                break
            self.latencies.append((time.monotonic() - t) * 1000)
            time.sleep(0.005)
        s.close()


def main():
    host, port, path, probe_path, key, master = sys.argv[1:7]
    port, master = int(port), int(master)
    size = int(sys.argv[7]) if len(sys.argv) > 7 else 23 * MIB
    with open("/proc/%d/task/%d/children" % (master, master)) as f:
        workers = [int(p) for p in f.read().split()]
    if len(workers) != 1:
        sys.exit("bench-hostile-json: nginx must have one worker, it has %d" % len(workers))
    worker = workers[0]

    print("hostile JSON, %d MB bodies to POST %s, 1 worker; probe: GET %s every 5 ms"
          % (size // MIB, path, probe_path))
    print("%-22s %6s %-18s %10s %8s %8s %8s %10s %7s" % (
        "shape", "status", "code", "answer ms", "cpu ms", "peak MB", "kept MB", "probe ms",
        "probes"))
    worst = {"answer": 0.0, "cpu": 0.0, "peak": 0.0, "kept": 0.0, "probe": 0.0}
    for shape in shapes(size):
        name, body = shape[:2]
        ctype = ("multipart/form-data; boundary=" + shape[2]) if len(shape) > 2 \
            else "application/json"
        data = body.encode()
        with open("/proc/%d/clear_refs" % worker, "w") as f:
            f.write("5")
        rss0 = proc_kb(worker, "VmRSS")
        probe = Probe(host, port, probe_path)
        probe.start()
        time.sleep(0.05)
        cpu0 = cpu_ms(worker)
        s = socket.create_connection((host, port), 10)
        s.settimeout(600)
        s.sendall(("POST %s HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: %s\r\nContent-Length: %d\r\n"
                   "Connection: close\r\n\r\n" % (path, key, ctype, len(data))).encode())
        s.sendall(data)
        t = time.monotonic()
        answer = read_answer(s)
        answer_ms = (time.monotonic() - t) * 1000
        cpu = cpu_ms(worker) - cpu0
        s.close()
        time.sleep(0.05)
        probe.stop.set()
        probe.join(600)
        peak = proc_kb(worker, "VmHWM") / 1024
        time.sleep(1)
        kept = (proc_kb(worker, "VmRSS") - rss0) / 1024
        status = answer.split(b" ", 2)[1].decode() if answer else "-"
        code = "-"
        if b'"code":"' in answer:
            code = answer.split(b'"code":"', 1)[1].split(b'"', 1)[0].decode()
        slowest = max(probe.latencies) if probe.latencies else float("nan")
        print("%-22s %6s %-18s %10.1f %8.1f %8.1f %8.1f %10.1f %7d" % (
            name, status, code, answer_ms, cpu, peak, kept, slowest, len(probe.latencies)))
        worst["answer"] = max(worst["answer"], answer_ms)
        worst["cpu"] = max(worst["cpu"], cpu)
        worst["peak"] = max(worst["peak"], peak)
        worst["kept"] = max(worst["kept"], kept)
        worst["probe"] = max(worst["probe"], slowest)
    print("BENCH hostile_json_answer_ms_max=%.1f hostile_json_cpu_ms_max=%.1f "
          "hostile_json_peak_mb_max=%.1f hostile_json_kept_mb_max=%.1f "
          "hostile_json_probe_ms_max=%.1f"
          % (worst["answer"], worst["cpu"], worst["peak"], worst["kept"], worst["probe"]))


if __name__ == "__main__":
    main()
