#!/bin/bash
# Builds ngx_http_vlm_module.so against Debian's nginx-dev with the exact
# configure flags Debian's nginx was built with (so load_module accepts it),
# into build/nginx-module/ and copies it to build/modules/.
# Needs the nginx and nginx-dev packages (scripts/install-deps.sh).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
src=/usr/share/nginx/src
bld=$(realpath -m "${VLM_NGX_BUILDDIR:-$root/build/nginx-module}")
out=${VLM_NGX_OUTDIR:-$root/build/modules}

if [ ! -f "$src/conf_flags" ]; then
    echo "build-module: $src/conf_flags missing; install nginx-dev" >&2
    exit 1
fi

# shellcheck disable=SC1091
. "$src/conf_flags"
mkdir -p "$bld" "$out"

# Reconfigure only when the addon script or its inputs changed.
stamp=$bld/.configured
if [ ! -f "$bld/Makefile" ] || [ "$root/config" -nt "$stamp" ] \
   || [ "$0" -nt "$stamp" ]; then
    (cd "$src" && ./configure \
        --with-cc-opt="-g -O2 -fPIC -fstack-protector-strong -Wformat \
-Werror=format-security -D_FORTIFY_SOURCE=2 ${VLM_NGX_CC_OPT:-}" \
        --with-ld-opt="-Wl,-z,relro -Wl,-z,now -fPIC ${VLM_NGX_LD_OPT:-}" \
        "${NGX_CONF_FLAGS[@]}" \
        --add-dynamic-module="$root" \
        --builddir="$bld") > "$bld/configure.log" 2>&1 || {
        echo "build-module: configure failed, see $bld/configure.log" >&2
        tail -20 "$bld/configure.log" >&2
        exit 1
    }
    touch "$stamp"
fi

make -s -f "$bld/Makefile" -C "$src" -j"${JOBS:-2}" modules
cp "$bld/ngx_http_vlm_module.so" "$out/ngx_http_vlm_module.so.tmp"
mv "$out/ngx_http_vlm_module.so.tmp" "$out/ngx_http_vlm_module.so"
echo "build-module: $out/ngx_http_vlm_module.so"
