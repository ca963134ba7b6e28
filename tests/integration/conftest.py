"""Integration harness: real Debian nginx with ngx_http_vlm_module, real
redis-server and real vlmd (tiny fixture model) on loopback, all in one
temporary directory. No mocks. One `stack` per test session; tests that
break a component (Redis stopped, vlmd killed) restore it before returning.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("VLM_BIN_DIR", os.path.join(ROOT, "build", "bin"))
MODULE = os.environ.get(
    "VLM_NGX_MODULE", os.path.join(ROOT, "build", "modules", "ngx_http_vlm_module.so"))
MODEL = os.environ.get("VLM_IT_MODEL", os.path.join(ROOT, "tests", "fixtures", "models", "tiny-flash"))
IMAGES = os.path.join(ROOT, "tests", "fixtures", "images")
MODEL_ID = "glm-4.6v-flash"

API_KEY = "vlm-it-key-0123456789abcdef"
REVOKED_KEY = "vlm-it-revoked-key-0123456789"
HS_SECRET = b"integration-test-hs256-secret-0123456789abcdef"
AUDIENCE = "vlm"
ISSUER = "https://blog.example.test"
KID = "wordpress"
# order of the P-256 group: (r, s) and (r, n - s) are both valid ECDSA signatures
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def data_url(name):
    path = os.path.join(IMAGES, name)
    ext = os.path.splitext(name)[1][1:].replace("jpg", "jpeg")
    with open(path, "rb") as f:
        return "data:image/%s;base64,%s" % (ext, base64.b64encode(f.read()).decode())


class Stack:
    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_port()
        self.redis_sock = os.path.join(tmp, "redis.sock")
        self.vlmd_sock = os.path.join(tmp, "vlmd.sock")
        self.redis = None
        self.vlmd = None
        self.nginx = None
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rsa_pub_pem = self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.write("hs256.secret", HS_SECRET)
        self.write("rs256.pub", self.rsa_pub_pem)
        self.write("es256.pub", self.ec.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.write_api_keys([(API_KEY, "it-user"), (REVOKED_KEY, "it-revoked")])

    # ---- files ----
    def write(self, name, data):
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(self.tmp, name), "wb") as f:
            f.write(data)

    def write_api_keys(self, keys):
        lines = ["# sha256(key) subject"]
        for key, subject in keys:
            lines.append("%s %s" % (hashlib.sha256(key.encode()).hexdigest(), subject))
        self.write("api-keys", "\n".join(lines) + "\n")

    # ---- tokens ----
    def jwt(self, alg="HS256", claims=None, header=None, key=None):
        now = int(time.time())
        body = {"sub": "jwt-user", "aud": AUDIENCE, "iss": ISSUER, "exp": now + 300, "iat": now}
        body.update(claims or {})
        hdr = {"alg": alg, "typ": "JWT"}
        hdr.update(header or {})
        signing = (b64url(json.dumps(hdr).encode()) + "." + b64url(json.dumps(body).encode())).encode()
        if alg == "HS256":
            sig = hmac.new(key if key is not None else HS_SECRET, signing, hashlib.sha256).digest()
        elif alg == "RS256":
            sig = self.rsa.sign(signing, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "ES256":
            r, s = decode_dss_signature(self.ec.sign(signing, ec.ECDSA(hashes.SHA256())))
            # the module accepts only low-S signatures (s <= n/2); issuers must normalise
            s = min(s, P256_N - s)
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            sig = b""
        return signing.decode() + "." + b64url(sig)

    # ---- processes ----
    def start_redis(self):
        self.redis = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.redis_sock, "--save", "",
             "--appendonly", "no", "--dir", self.tmp],
            stdout=open(os.path.join(self.tmp, "redis.log"), "ab"), stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(self.redis_sock), 10, "redis socket")

    def stop_redis(self):
        if self.redis:
            self.redis.terminate()
            self.redis.wait(10)
            self.redis = None
        if os.path.exists(self.redis_sock):
            os.unlink(self.redis_sock)

    def redis_cli(self, *args):
        return subprocess.run(["redis-cli", "-s", self.redis_sock] + list(args),
                              capture_output=True, text=True, timeout=10).stdout

    def start_vlmd(self):
        vlmd = os.path.join(BIN, "vlmd")
        if not os.access(vlmd, os.X_OK):
            raise AssertionError("%s is missing: build it first (make build)" % vlmd)
        if os.path.exists(self.vlmd_sock):
            os.unlink(self.vlmd_sock)
        # debug: the most vlmd ever writes, for test_log_privacy to search
        cmd = [vlmd, "--model", MODEL, "--socket", self.vlmd_sock, "--threads", "2",
               "--log-level", "debug"]
        prompts = os.path.join(ROOT, "conf", "prompts")
        if os.path.isdir(prompts):
            cmd += ["--prompts", prompts]
        self.vlmd = subprocess.Popen(cmd, stdout=open(os.path.join(self.tmp, "vlmd.log"), "ab"),
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(self.vlmd_sock) or self.vlmd.poll() is not None,
                 60, "vlmd socket")
        assert self.vlmd.poll() is None, "vlmd exited: see %s/vlmd.log" % self.tmp

    def kill_vlmd(self):
        if self.vlmd:
            self.vlmd.kill()
            self.vlmd.wait(10)
            self.vlmd = None

    def wait_ready(self, timeout=30):
        wait_for(lambda: self.get("/readyz")[0] == 200, timeout, "/readyz 200")

    def nginx_http_conf(self):
        """This suite's http-level settings; scripts/dev-nginx-conf.sh puts the shared
        development preamble (conf/dev/nginx.conf.in) around them."""
        t = self.tmp
        return f"""    access_log {t}/access.log;
    client_max_body_size 4m;
    client_body_buffer_size 64k;

    vlm_daemon {self.vlmd_sock};
    vlm_model {MODEL_ID};
    vlm_model_revision it-tiny-flash;
    vlm_redis unix:{self.redis_sock} timeout=200ms;
    vlm_cache_ttl 600s;

    vlm_jwt_key alg=HS256 file={t}/hs256.secret;
    vlm_jwt_key alg=RS256 file={t}/rs256.pub;
    vlm_jwt_key alg=ES256 file={t}/es256.pub;
    vlm_jwt_issuer {ISSUER};
    vlm_jwt_audience {AUDIENCE};
    vlm_jwt_leeway 5s;
    vlm_api_keys {t}/api-keys;

    vlm_max_images 3;
    vlm_max_image_bytes 1m;
    vlm_max_pixels 4000000;
    vlm_max_prompt_bytes 8k;
    vlm_max_tokens 1024;
    vlm_max_json_depth 12;
    vlm_timeout 60s;
    vlm_retry_after 2;
    vlm_cors_origin https://blog.example.test;

    # one request a minute, to see what nginx's own 429 looks like to clients
    limit_req_zone $binary_remote_addr zone=it_tight:1m rate=1r/m;
    limit_req_status 429;

    server {{
        listen 127.0.0.1:{self.port};
        location = /limited/v1/models {{
            limit_req zone=it_tight nodelay;
            vlm_api models;
        }}
        include {ROOT}/conf/dev/api-locations.conf;
        location = /short/v1/chat/completions {{
            vlm_default_max_tokens 3;
            vlm_api chat_completions;
        }}
        location = /low/v1/chat/completions {{
            vlm_max_tokens 2;
            vlm_api chat_completions;
        }}
        location = /kid/v1/models {{
            # keys restricted to one kid, as conf/nginx-vlm.conf shows
            vlm_jwt_key alg=HS256 file={t}/hs256.secret kid={KID};
            vlm_jwt_key alg=ES256 file={t}/es256.pub kid={KID};
            vlm_api models;
        }}
        location = /tenant/v1/chat/completions {{
            vlm_cache_scope subject;
            vlm_api chat_completions;
        }}
    }}
"""

    def write_nginx_conf(self):
        subprocess.run(["sh", os.path.join(ROOT, "scripts", "dev-nginx-conf.sh"), "--run", self.tmp,
                        "--module", MODULE, "--workers", "1", "--log-level", "info"],
                       input=self.nginx_http_conf(), text=True, check=True)

    def start_nginx(self):
        self.write_nginx_conf()
        args = ["nginx", "-p", self.tmp, "-c", os.path.join(self.tmp, "nginx.conf"),
                "-e", os.path.join(self.tmp, "nginx-error.log")]
        env = dict(os.environ)
        if os.environ.get("VLM_IT_NGINX_PRELOAD"):
            env["LD_PRELOAD"] = os.environ["VLM_IT_NGINX_PRELOAD"]
            env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        check = subprocess.run(args + ["-t"], capture_output=True, text=True, env=env)
        assert check.returncode == 0, check.stderr
        env = dict(os.environ)
        if os.environ.get("VLM_IT_NGINX_PRELOAD"):
            # e.g. libasan for a module built with -fsanitize=address
            env["LD_PRELOAD"] = os.environ["VLM_IT_NGINX_PRELOAD"]
            env.setdefault("ASAN_OPTIONS", "detect_leaks=0:log_path=%s/asan" % self.tmp)
            env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:log_path=%s/asan" % self.tmp)
        self.nginx = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env=env)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, 10, "nginx port")

    def reload_nginx(self):
        before = self.worker_pids()
        self.nginx.send_signal(signal.SIGHUP)
        wait_for(lambda: self.worker_pids() and not (set(self.worker_pids()) & set(before)),
                 10, "new nginx workers")

    def worker_pids(self):
        out = subprocess.run(["pgrep", "-P", str(self.nginx.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop_nginx(self):
        if self.nginx:
            self.nginx.send_signal(signal.SIGQUIT)
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
            self.nginx = None

    # ---- HTTP ----
    def request(self, method, path, body=None, headers=None, auth=API_KEY, timeout=60):
        h = dict(headers or {})
        if auth is not None and "Authorization" not in h:
            h["Authorization"] = "Bearer " + auth
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body=body, **kw)

    def vlmd_stats(self):
        """vlmd's own counters, as /metrics shows them (vlmd_* lines)."""
        status, _, body = self.get("/metrics", auth=None)
        assert status == 200
        stats = {}
        for line in body.decode().splitlines():
            if line.startswith("vlmd_"):
                name, value = line.rsplit(" ", 1)
                stats[name] = float(value)
        return stats

    def error_log(self):
        with open(os.path.join(self.tmp, "nginx-error.log")) as f:
            return f.read()


@pytest.fixture(scope="session")
def stack():
    tmp = tempfile.mkdtemp(prefix="vlm-it-")
    s = Stack(tmp)
    try:
        s.start_redis()
        s.start_nginx()
        if not os.environ.get("VLM_IT_NO_VLMD"):   # module-only debugging
            s.start_vlmd()
            s.wait_ready(60)
        yield s
    finally:
        s.stop_nginx()
        s.kill_vlmd()
        s.stop_redis()
        log = os.path.join(tmp, "nginx-error.log")
        if os.path.exists(log):
            with open(log) as f:
                bad = [l for l in f if "[alert]" in l or "[emerg]" in l or "Sanitizer" in l]
            assert not bad, "nginx error.log has alerts:\n" + "".join(bad[:20])
        reports = [f for f in os.listdir(tmp) if f.startswith("asan")]
        assert not reports, "sanitizer reports in %s: %s" % (tmp, reports)
        if os.environ.get("VLM_IT_KEEP"):
            print("integration files kept in", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


EXAMPLE_CONF = os.path.join(ROOT, "conf", "nginx-vlm.conf")
EXAMPLE_ISSUER = "https://blog.example.com"


class ExampleNginx:
    """A second nginx running conf/nginx-vlm.conf as shipped: only the module
    and key paths, the sockets of the session's vlmd and Redis, the port
    (no TLS here), the log files and the process settings are replaced, and
    each replaced line must be found, so the example cannot drift from what
    is tested. Three workers, so per-worker state shows."""

    WORKERS = 3

    def __init__(self, stack):
        self.stack = stack
        self.tmp = os.path.join(stack.tmp, "example")
        self.port = free_port()
        self.nginx = None
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.tmp, d), exist_ok=True)

    def conf(self):
        t, st = self.tmp, self.stack.tmp
        with open(EXAMPLE_CONF) as f:
            text = f.read()
        user = "user root;\n" if os.geteuid() == 0 else ""
        subs = [
            ("load_module /usr/lib/nginx/modules/ngx_http_vlm_module.so;",
             f"{user}load_module {MODULE};\ndaemon off;\nmaster_process on;\n"
             f"pid {t}/nginx.pid;\nworking_directory {t};"),
            ("worker_processes auto;", "worker_processes %d;" % self.WORKERS),
            # raising the limit past the hard one needs root: nginx would alert
            ("worker_rlimit_nofile 8192;",
             "worker_rlimit_nofile 8192;"
             if resource.getrlimit(resource.RLIMIT_NOFILE)[1] >= 8192 or os.geteuid() == 0
             else ""),
            ("error_log /var/log/nginx/vlm.error.log", f"error_log {t}/error.log"),
            ("access_log /var/log/nginx/vlm.access.log", f"access_log {t}/access.log"),
            ("http {\n",
             "http {\n" + "".join(f"    {d}_temp_path {t}/{d};\n" for d in
                                  ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))),
            ("vlm_daemon /run/vlmd/vlmd.sock;", f"vlm_daemon {self.stack.vlmd_sock};"),
            ("vlm_redis unix:/run/redis/redis-vlm.sock",
             "vlm_redis unix:" + self.stack.redis_sock),
            ("file=/etc/vlm/jwt-hs256.secret", f"file={st}/hs256.secret"),
            ("file=/etc/vlm/jwt-rs256.pub", f"file={st}/rs256.pub"),
            ("file=/etc/vlm/jwt-es256.pub", f"file={st}/es256.pub"),
            ("vlm_api_keys /etc/vlm/api-keys;", f"vlm_api_keys {st}/api-keys;"),
            ("listen 443 ssl;", f"listen 127.0.0.1:{self.port};"),
            ("ssl_certificate     /etc/ssl/certs/vlm.example.com.pem;", ""),
            ("ssl_certificate_key /etc/ssl/private/vlm.example.com.key;", ""),
        ]
        for old, new in subs:
            assert text.count(old) == 1, "%r is not in %s exactly once" % (old, EXAMPLE_CONF)
            text = text.replace(old, new)
        return text

    def start(self):
        path = os.path.join(self.tmp, "nginx.conf")
        with open(path, "w") as f:
            f.write(self.conf())
        args = ["nginx", "-p", self.tmp, "-c", path, "-e", os.path.join(self.tmp, "error.log")]
        env = dict(os.environ)
        if os.environ.get("VLM_IT_NGINX_PRELOAD"):
            env["LD_PRELOAD"] = os.environ["VLM_IT_NGINX_PRELOAD"]
            env.setdefault("ASAN_OPTIONS", "detect_leaks=0:log_path=%s/asan" % self.stack.tmp)
            env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:log_path=%s/asan" % self.stack.tmp)
        check = subprocess.run(args + ["-t"], capture_output=True, text=True, env=env)
        assert check.returncode == 0, check.stderr
        self.nginx = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env=env)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, 10, "example nginx port")
        wait_for(lambda: len(self.worker_pids()) == self.WORKERS, 10, "example nginx workers")

    def stop(self):
        if self.nginx:
            self.nginx.send_signal(signal.SIGQUIT)
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
            self.nginx = None

    def worker_pids(self):
        out = subprocess.run(["pgrep", "-P", str(self.nginx.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def jwt(self, sub=None, **claims):
        """An HS256 token the example accepts (kid, issuer, audience); a fresh
        subject by default, so the per-subject rate limit never mixes tests."""
        claims.setdefault("iss", EXAMPLE_ISSUER)
        claims.setdefault("sub", sub or "it-" + os.urandom(6).hex())
        return self.stack.jwt("HS256", claims, header={"kid": "wordpress"})

    def request(self, method, path, body=None, headers=None, auth="jwt", timeout=120):
        h = dict(headers or {})
        if auth == "jwt":
            auth = self.jwt()
        if auth is not None and "Authorization" not in h:
            h["Authorization"] = "Bearer " + auth
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def post(self, path, body, **kw):
        """POST, waiting out the example's rate limits (429 + Retry-After), which
        the boundary tests are not about."""
        for _ in range(10):
            status, headers, data = self.request("POST", path, body=body, **kw)
            if status != 429:
                break
            time.sleep(float(headers.get("retry-after", "1")))
        return status, headers, data

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def raw(self, data, timeout=10):
        """Bytes as sent (http.client cannot send bad framing); the whole
        answer once the server closes or goes quiet."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout)
        try:
            s.sendall(data)
            s.settimeout(timeout)
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out:
                    head, _, rest = out.partition(b"\r\n\r\n")
                    m = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                    if m and len(rest) >= int(m[0].split(b":")[1]):
                        break
            return out
        finally:
            s.close()

    def error_log(self):
        with open(os.path.join(self.tmp, "error.log"), errors="replace") as f:
            return f.read()

    def access_log(self):
        path = os.path.join(self.tmp, "access.log")
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as f:
            return f.read()


@pytest.fixture(scope="session")
def example(stack):
    ex = ExampleNginx(stack)
    ex.start()
    try:
        yield ex
    finally:
        ex.stop()
        log = os.path.join(ex.tmp, "error.log")
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                bad = [l for l in f if "[alert]" in l or "[emerg]" in l or "Sanitizer" in l]
            assert not bad, "example nginx error.log has alerts:\n" + "".join(bad[:20])


def parse_raw(answer):
    """(status, {header: value}, body) of a raw HTTP/1.1 answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def chat_body(text="Describe the image.", image="tiny.png", **kw):
    content = []
    if image:
        content.append({"type": "image_url", "image_url": {"url": data_url(image)}})
    content.append({"type": "text", "text": text})
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": content}],
            "max_tokens": 8, "temperature": 0}
    body.update(kw)
    return body


def error_of(data):
    obj = json.loads(data)
    err = obj["error"]
    assert set(err) >= {"message", "type", "param", "code"}, err
    return err
