#!/bin/sh
# Integration suites (real nginx + ngx_http_vlm_module, Redis, vlmd on
# loopback). With "asan" as the first argument the module is built with
# AddressSanitizer+UBSan into build/modules-asan, nginx runs with libasan
# preloaded, vlmd is the sanitizer build, and any sanitizer report fails.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = asan ]; then
    shift
    san="-fsanitize=address,undefined -fno-omit-frame-pointer"
    VLM_NGX_BUILDDIR=$root/build/nginx-module-asan VLM_NGX_OUTDIR=$root/build/modules-asan \
    VLM_NGX_CC_OPT="$san" VLM_NGX_LD_OPT="$san" \
        bash "$root/scripts/build-module.sh" >/dev/null
    VLM_NGX_MODULE=$root/build/modules-asan/ngx_http_vlm_module.so \
    VLM_IT_NGINX_PRELOAD=$(gcc -print-file-name=libasan.so) \
    VLM_BIN_DIR=$root/build/sanitize/bin \
        exec sh "$root/tests/integration/run.sh" "$@"
fi
exec sh "$root/tests/integration/run.sh" "$@"
