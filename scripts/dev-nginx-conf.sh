#!/bin/sh
# Writes RUN_DIR/nginx.conf for a development nginx from conf/dev/nginx.conf.in:
# the part every development configuration shares (load_module, pid, logs,
# temp paths, workers, mime types), with the caller's http-level directives
# and server blocks (stdin) inside http { }. Creates RUN_DIR/tmp/* for the
# temp paths. Server blocks serve the API with
#     include <repository>/conf/dev/api-locations.conf;
# Used by scripts/run-local.sh (make run), scripts/bench-nginx.sh (make bench),
# tests/browser/wp-env.sh and tests/integration/conftest.py.
# Usage: dev-nginx-conf.sh --run DIR --module PATH [--workers N] [--log-level LEVEL] < http-body
#   --workers     worker_processes (default 2)
#   --log-level   error_log level (default info)
# Then: nginx -p DIR -c DIR/nginx.conf -e DIR/nginx-error.log
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
run="" module="" workers=2 level=info

die() { echo "dev-nginx-conf: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || die "$1 needs a value"
    case "$1" in
    --run) run=$2 ;;
    --module) module=$2 ;;
    --workers) workers=$2 ;;
    --log-level) level=$2 ;;
    *) die "unknown option $1" ;;
    esac
    shift 2
done
[ -n "$run" ] && [ -n "$module" ] || die "usage: $0 --run DIR --module PATH [--workers N] [--log-level LEVEL] < http-body"
case "$run" in /*) ;; *) die "--run must be an absolute path: $run" ;; esac
[ -d "$run" ] || die "$run is not a directory"

mkdir -p "$run/tmp/body" "$run/tmp/proxy" "$run/tmp/fastcgi" "$run/tmp/uwsgi" "$run/tmp/scgi"

body=$(mktemp "$run/.nginx-http.XXXXXX")
trap 'rm -f "$body" "$run/nginx.conf.tmp"' EXIT
cat >"$body"

user=""
[ "$(id -u)" -eq 0 ] && user="user root;"

# Plain string replacement (no regex, so paths may hold any character);
# the line @HTTP@ becomes the caller's text, indented as it came.
DEV_RUN=$run DEV_MODULE=$module DEV_WORKERS=$workers DEV_LEVEL=$level DEV_USER=$user \
DEV_BODY=$body awk '
function subst(s, key, val,    i, out) {
    out = ""
    while ((i = index(s, key)) > 0) {
        out = out substr(s, 1, i - 1) val
        s = substr(s, i + length(key))
    }
    return out s
}
$0 == "@HTTP@" {
    while ((getline line < ENVIRON["DEV_BODY"]) > 0) print line
    next
}
$0 == "@USER@" { if (ENVIRON["DEV_USER"] != "") print ENVIRON["DEV_USER"]; next }
{
    s = subst($0, "@RUN@", ENVIRON["DEV_RUN"])
    s = subst(s, "@MODULE@", ENVIRON["DEV_MODULE"])
    s = subst(s, "@WORKERS@", ENVIRON["DEV_WORKERS"])
    s = subst(s, "@LOG_LEVEL@", ENVIRON["DEV_LEVEL"])
    print s
}' "$root/conf/dev/nginx.conf.in" >"$run/nginx.conf.tmp"
mv "$run/nginx.conf.tmp" "$run/nginx.conf"
