#!/bin/sh
# Builds every libFuzzer target with clang (-fsanitize=fuzzer,address,undefined):
# tests/fuzz/fuzz_*.cpp against the runtime sources (model_runtime/*.cpp and the
# chat-template library model_runtime/text/jinja/*.cpp), and tests/fuzz/fuzz_ngx_*.c
# against the nginx module's parsers (ngx_module/), Debian nginx-dev's headers
# and tests/fuzz/ngx_harness.c. Writes seed corpora build/fuzz/seeds_<name>
# for each target fuzz_<name>.
# Usage: tests/fuzz/build.sh [out_dir]   (default: build/fuzz)
# Then e.g.: build/fuzz/fuzz_safetensors -max_total_time=60 build/fuzz/corpus_safetensors
# The runtime sources are compiled once into an archive; a target only links
# the objects it uses. A runtime file that does not compile is skipped with a
# warning (its targets will then fail to link, which is reported).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/build/fuzz}
CXX=${CXX:-clang++}
mkdir -p "$OUT/obj"

if ! echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long){return 0;}' |
     $CXX -x c++ -fsanitize=fuzzer - -o "$OUT/.probe" 2>/dev/null; then
    echo "build.sh: $CXX cannot build libFuzzer targets (install Debian clang)" >&2
    exit 1
fi
rm -f "$OUT/.probe"

DEPS="jansson libpcre2-8 libpng libwebp libexif libjpeg libcrypto"
PKG_CFLAGS=$(pkg-config --cflags $DEPS 2>/dev/null || true)
PKG_LIBS=$(pkg-config --libs $DEPS 2>/dev/null || echo "-ljansson -lcrypto")
CXXFLAGS="-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
  -fno-sanitize-recover=undefined -I$ROOT/model_runtime -I$ROOT/model_runtime/ipc -I$ROOT/kernels $PKG_CFLAGS"

objs=""
# every library layer of the runtime (model_runtime/<layer>/*.cpp); not the
# programs (tools/, bench/)
for src in "$ROOT"/model_runtime/*/*.cpp "$ROOT"/model_runtime/text/jinja/*.cpp; do
    case "$src" in */tools/*|*/bench/*|*_main.cpp) continue ;; esac
    base=$(basename "$src" .cpp)
    case "$src" in */text/jinja/*) base=jinja_$base ;; esac
    isa=""
    case "$base" in
        *_avx512) isa="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mfma -mf16c" ;;
        *_avx2) isa="-mavx2 -mfma -mf16c" ;;
    esac
    obj="$OUT/obj/$base.o"
    hdrs=$(dirname "$src")/*.h
    newer_hdr=""
    case "$src" in */text/jinja/*) for h in $hdrs; do [ "$h" -nt "$obj" ] && newer_hdr=1; done ;; esac
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$newer_hdr" ]; then
        # shellcheck disable=SC2086
        if ! $CXX $CXXFLAGS $isa -fsanitize=fuzzer-no-link -c "$src" -o "$obj" 2>"$OUT/obj/$base.log"; then
            echo "build.sh: warning: skipping $src (see $OUT/obj/$base.log)" >&2
            rm -f "$obj"
            continue
        fi
    fi
    objs="$objs $obj"
done
# the C client of vlmd's protocol (model_runtime/ipc/), for fuzz_ipc_results
ipc_src=$ROOT/model_runtime/ipc/vlm_ipc_client.c
ipc_obj=$OUT/obj/vlm_ipc_client.o
if [ ! -f "$ipc_obj" ] || [ "$ipc_src" -nt "$ipc_obj" ]; then
    if ! ${CC:-clang} -std=c11 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link -c "$ipc_src" \
            -o "$ipc_obj" 2>"$OUT/obj/vlm_ipc_client.log"; then
        echo "build.sh: warning: skipping $ipc_src (see $OUT/obj/vlm_ipc_client.log)" >&2
        rm -f "$ipc_obj"
    fi
fi
[ -f "$ipc_obj" ] && objs="$objs $ipc_obj"
rm -f "$OUT/libvlm_runtime_fuzz.a"
# shellcheck disable=SC2086
ar rcs "$OUT/libvlm_runtime_fuzz.a" $objs
# vlm-bulk's document scanners (editor_plugin/bulk/), for fuzz_doc_images: only the pure
# string code, which needs neither libcurl nor jansson
bulk_objs=""
for base in doc_images md_link_refs image_source alt_quality; do
    src=$ROOT/editor_plugin/bulk/$base.cpp
    obj=$OUT/obj/bulk_$base.o
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$ROOT/editor_plugin/bulk/$base.h" -nt "$obj" ]; then
        # shellcheck disable=SC2086
        if ! $CXX $CXXFLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$obj" 2>"$OUT/obj/bulk_$base.log"; then
            echo "build.sh: warning: skipping $src (see $OUT/obj/bulk_$base.log)" >&2
            rm -f "$obj"
            continue
        fi
    fi
    bulk_objs="$bulk_objs $obj"
done
rm -f "$OUT/libvlm_bulk_fuzz.a"
# shellcheck disable=SC2086
ar rcs "$OUT/libvlm_bulk_fuzz.a" $bulk_objs

status=0
for target in "$ROOT"/tests/fuzz/fuzz_*.cpp; do
    name=$(basename "$target" .cpp)
    # shellcheck disable=SC2086
    if $CXX $CXXFLAGS -fsanitize=fuzzer "$target" "$OUT/libvlm_bulk_fuzz.a" "$OUT/libvlm_runtime_fuzz.a" $PKG_LIBS \
            -lgif -lpthread -o "$OUT/$name"; then
        echo "built $OUT/$name"
    else
        echo "build.sh: FAILED to build $name" >&2
        status=1
    fi
done

# --- nginx module parsers -------------------------------------------------
# nginx-dev ships headers and configure scripts but no core sources: the
# headers are configured (Debian's flags, so structs have the production
# layout) in a private copy under $OUT/ngx, and ngx_harness.c supplies the
# few core functions the parsers call.
CC=${CC:-clang}
NGX_SRC=${NGX_SRC:-/usr/share/nginx/src}
NGX_PARSERS="ngx_http_vlm_image_sniff ngx_http_vlm_image ngx_http_vlm_body \
  ngx_http_vlm_json ngx_http_vlm_schema ngx_http_vlm_jwt ngx_http_vlm_util"
ngx=$OUT/ngx
if [ ! -f "$NGX_SRC/conf_flags" ]; then
    echo "build.sh: $NGX_SRC/conf_flags missing (install nginx-dev); fuzz_ngx_* not built" >&2
    status=1
else
    if [ ! -f "$ngx/objs/ngx_auto_config.h" ] || [ "$NGX_SRC/conf_flags" -nt "$ngx/objs/ngx_auto_config.h" ]; then
        rm -rf "$ngx"
        mkdir -p "$ngx"
        cp -R "$NGX_SRC/auto" "$NGX_SRC/src" "$NGX_SRC/configure" "$NGX_SRC/conf_flags" "$ngx/"
        # conf_flags defines a bash array
        if ! (cd "$ngx" && bash -c '. ./conf_flags && ./configure "${NGX_CONF_FLAGS[@]}"') \
                >"$ngx/configure.log" 2>&1; then
            echo "build.sh: nginx configure failed, see $ngx/configure.log" >&2
            rm -f "$ngx/objs/ngx_auto_config.h"
            exit 1
        fi
    fi
    NGX_CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
      -fno-sanitize-recover=undefined -I$ngx/src/core -I$ngx/src/event \
      -I$ngx/src/event/modules -I$ngx/src/os/unix -I$ngx/objs -I$ngx/src/http \
      -I$ngx/src/http/modules -I$ngx/src/http/v2 -I$ROOT/ngx_module -I$ROOT/tests/fuzz \
      $(pkg-config --cflags jansson libcrypto 2>/dev/null || true)"
    NGX_LIBS=$(pkg-config --libs jansson libcrypto 2>/dev/null || echo "-ljansson -lcrypto")
    # fuzz_ngx_image_sniff checks the sniffer against the decoding libraries
    NGX_LIBS="$NGX_LIBS -lgif $(pkg-config --libs libjpeg libpng libwebp 2>/dev/null || echo "-ljpeg -lpng -lwebp")"
    ngx_objs=""
    for base in $NGX_PARSERS; do
        # shellcheck disable=SC2086
        if $CC $NGX_CFLAGS -fsanitize=fuzzer-no-link -c "$ROOT/ngx_module/$base.c" \
                -o "$OUT/obj/$base.o"; then
            ngx_objs="$ngx_objs $OUT/obj/$base.o"
        else
            echo "build.sh: FAILED to compile ngx_module/$base.c" >&2
            status=1
        fi
    done
    rm -f "$OUT/libvlm_ngx_fuzz.a"
    # shellcheck disable=SC2086
    ar rcs "$OUT/libvlm_ngx_fuzz.a" $ngx_objs
    for target in "$ROOT"/tests/fuzz/fuzz_ngx_*.c; do
        name=$(basename "$target" .c)
        # shellcheck disable=SC2086
        if $CC $NGX_CFLAGS -fsanitize=fuzzer "$target" "$ROOT/tests/fuzz/ngx_harness.c" \
                "$OUT/libvlm_ngx_fuzz.a" $NGX_LIBS -o "$OUT/$name"; then
            echo "built $OUT/$name"
        else
            echo "build.sh: FAILED to build $name" >&2
            status=1
        fi
    done
    # the stand-ins must behave as nginx does, or the targets test something else
    # shellcheck disable=SC2086
    if ! $CC $NGX_CFLAGS "$ROOT/tests/fuzz/ngx_harness_check.c" "$ROOT/tests/fuzz/ngx_harness.c" \
            $NGX_LIBS -o "$OUT/ngx_harness_check" || ! "$OUT/ngx_harness_check"; then
        echo "build.sh: ngx_harness_check FAILED" >&2
        status=1
    fi
fi

# --- seed corpora: small, regenerated on every build, never committed -------
seeds() { rm -rf "$OUT/seeds_$1"; mkdir -p "$OUT/seeds_$1"; echo "$OUT/seeds_$1"; }
IMG=$ROOT/tests/fixtures/images

d=$(seeds image_decode)
for f in "$IMG"/*; do cp "$f" "$d/"; done

d=$(seeds doc_images)
# byte 0 (see fuzz_doc_images.cpp): bit 0 Markdown, bits 1-2 == 3 stress (tiled to 64 KiB),
# bits 3-5 rotate the replacement alts, bit 6 alts cut from the document; then the document
SITE=$ROOT/tests/bulk/site
{ printf '\001'; cat "$SITE/index.md"; } >"$d/index_md"
{ printf '\111'; cat "$SITE/docs/guide.md"; } >"$d/guide_md"
{ printf '\000'; cat "$SITE/blog/post.html"; } >"$d/post_html"
{ printf '\007'; cat "$SITE/index.md"; } >"$d/index_md_stress"
{ printf '\006'; cat "$SITE/blog/post.html"; } >"$d/post_html_stress"
printf '\021# Refs\n\nFull: ![IMG_1.jpg][Hero  Shot], collapsed: ![logo][] and shortcut: ![Map].\n`![map]` ![x][nope]\n\n```\n![map]\n[ignored]: fenced.png\n```\n[hero shot]: <images/hero shot.png> "The hero"\n  [LOGO]: /img/logo.png\n   '"'"'Logo title'"'"'\n[map]: maps/first.png\n[Map]: maps/second.png\n![a \\[b\\]](x.png "t") <img src=y.png alt="">\n' >"$d/refs_md"
printf '\110<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" data-src="real.jpg" class="lazyload">\n<img data-lazy-src='"'"'lazy.png'"'"' src='"'"'p.png'"'"' alt='"'"''"'"'>\n<IMG SRC="a.png" ALT="123"><img alt=photo src=b.png/><!-- <img src=c.png> --><script>"<img src=s.png>"</script>\n<img srcset=" small,v2.jpg 320w,large.jpg 1024w" alt="x &quot;y&quot; &#x4e00;"><img\nsrc="d&amp;e.png"\nalt>\n<h1>T &amp; <b>b</b></h1>\n' >"$d/lazy_html"

d=$(seeds ngx_image_sniff)
for f in "$IMG"/*; do head -c 4096 "$f" >"$d/$(basename "$f")"; done

d=$(seeds safetensors)
# 8-byte little-endian header length, JSON header, data
hdr='{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}}'
{ printf '\%03o\000\000\000\000\000\000\000' "${#hdr}"; printf '%s' "$hdr"; printf '\000\000\200\077\000\000\000\100'; } >"$d/f32"
hdr='{"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[0,4]},"c":{"dtype":"I64","shape":[],"data_offsets":[4,12]}}'
{ printf '\%03o\000\000\000\000\000\000\000' "${#hdr}"; printf '%s' "$hdr"; printf '\200\077\000\100\001\000\000\000\000\000\000\000'; } >"$d/two"

d=$(seeds jinja)
# the parity corpus' real chat templates, and a few constructs they do not use
for f in "$ROOT"/tests/fixtures/chat_templates/*.jinja "$ROOT"/tests/fixtures/tokenizer/chat_template.jinja; do
    cp "$f" "$d/$(basename "$(dirname "$f")")_$(basename "$f")"
done
printf '%s' '{% macro m(a, b=2) %}{{ caller(a) ~ b }}{% endmacro %}{% call(x) m(1) %}<{{ x }}>{% endcall %}{% filter upper %}{{ range(3)|map("string")|join(",") }}{% endfilter %}{% set ns = namespace(v=[]) %}{% for k, v in {"a": 1}|dictsort %}{% set ns.v = ns.v + [k] %}{% endfor %}{{ ns.v|tojson(indent=2) }}{{ "%s-%d" % ("a", 1) }}{{ x[1:] if x is string else s[::-1] }}' >"$d/constructs"
printf '%s' '{%- for m in messages -%}{{- m.role|upper ~ ": " -}}{%- if m.content is string -%}{{ m.content|trim }}{%- else -%}{%- for p in m.content if p.type == "text" -%}{{ p.text.split()|join(" ") }}{%- endfor -%}{%- endif -%}{% if not loop.last %}
{% endif %}{%- endfor -%}{% raw %}{{ raw }}{% endraw %}{# c #}' >"$d/messages"

d=$(seeds tokenizer)
printf 'Hello, world! 你好 <|user|>\n' >"$d/text"
printf '{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"added_tokens":[]}' >"$d/json"

d=$(seeds ipc_request)
# byte 0 * 8 = body length; the rest is the request arena (here a 10-byte GIF header)
body='{"task":"chat","messages":[{"role":"user","content":[{"type":"image","image":0},{"type":"text","text":"hi"}]}],"images":[{"offset":0,"length":10}],"max_tokens":4}'
pad=$(( (8 - ${#body} % 8) % 8 ))
{ printf '\%03o' $(( (${#body} + pad) / 8 )); printf '%s%*s' "$body" "$pad" ''; printf 'GIF89a\002\000\002\000'; } >"$d/chat"

d=$(seeds ipc_results)
# hex digits (spaces ignored) -> bytes
hexbin() {
    esc=''
    for h in $(printf '%s' "$1" | tr -d ' \n' | sed 's/../& /g'); do
        esc="$esc\\$(printf '%03o' "0x$h")"
    done
    # shellcheck disable=SC2059  # octal escapes built above
    printf "$esc"
}
# see fuzz_ipc_results.cpp: mode 01 (valid layout): ring caps 4/8, epoch, 4 slots,
# arenas 320/2049 bytes, indices from 0; then the handshake (10: WELCOME),
# the requests (count, then each), the daemon ops (a record: op 00, flags,
# kind, request, text, tokens, logprobs, slack, usage) and the end byte
lay='01 1a 0102030405060708 03 00 0001 00 0008 00 20'
delta='00 00 00 00 05 68656c6c6f 02 01000000 02000000 01 01000000 000080bf 02 6869 01 02000000 000000c0 01 78 00 07 01'
done0='00 00 01 00 00 00 00 00 07 01'
pong1='00 00 04 01 00 00 00 00 00 00'
# a chat request and a ping answered, published, then EOF: all delivered
hexbin "$lay 10 01 000400 03 $delta $done0 $pong1 02 01" >"$d/results_then_eof"
# partial client turns, the daemon takes requests, a STATS request failed
# with 500, a cancel (op 0x13), no EOF
hexbin "$lay 10 01 000400 03 $delta 02 0803 06 0902 00 10 02 02 f401 03 626164 00 00 00 00 00 13 00 $done0 $pong1 02 0807 00" >"$d/interleaved"
# three requests in flight when the daemon closes: three 503 errors
hexbin "$lay 10 02 000400 02 03 07 00" >"$d/close_pending"
# REFUSED
hexbin "$lay 00" >"$d/refused"
# mode 00: a raw, valid 512-byte header (4 KiB, rings 4/4 at 512/768, arenas
# 512 at 1024 and 1024 at 1536, 4 slots), a ping answered, EOF
{ hexbin '00 564c4d5049433100 01000000 00020000 0102030405060708 0010000000000000
          0002000000000000 0003000000000000 0004000000000000 0002000000000000
          0006000000000000 0004000000000000 04000000 04000000 04000000 00100000
          01000000 00000000 0000000000000000'
  head -c 400 /dev/zero
  hexbin "10 00 03 00 00 04 00 00 00 00 00 00 00 02 01"; } >"$d/raw_header"

# minimal images the module's sniffer accepts (it never decodes): a PNG with
# enough IDAT for its IHDR, a GIF with its first frame, a VP8X canvas with its
# bitstream
png='\211PNG\015\012\032\012\000\000\000\015IHDR\000\000\000\002\000\000\000\003\010\002\000\000\0006\210I\326\000\000\000\013IDATx\332c\140\300\002\000\000\025\000\0019\301\340#\000\000\000\000IEND\256B\140\202'
gif='GIF89a\002\000\002\000\000\000\000,\000\000\000\000\001\000\001\000\000\002\002D\001\000;'
jpg='\377\330\377\340\000\004ab\377\300\000\013\010\000\003\000\002\001\001\021\000'
webp='RIFF\044\000\000\000WEBPVP8X\012\000\000\000\000\000\000\000\000\000\000\001\000\000VP8L\005\000\000\000/\000@\000\000\000'
d=$(seeds ngx_body)
# shellcheck disable=SC2059  # the argument is a printf escape string
b64() { printf "$1" | base64 -w0; }
# byte 0: bits 0-1 endpoint (0 chat, 1 alt-text, 2 summary), bit 2 multipart,
# bits 3-7 where the body is cut in two
printf '\000{"model":"glm-4.6v-flash","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,%s"}}]}],"max_tokens":5,"temperature":0,"top_p":0.9,"seed":1,"stop":["x","y"],"stream":true,"stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":2,"n":1}' "$(b64 "$png")" >"$d/chat"
printf '\200{"messages":[{"role":"user","content":[{"type":"image_url","image_url":"data:image/jpeg;base64,%s"},{"type":"image_url","image_url":{"url":"data:image/webp;base64,%s"}}]}],"stop":"end"}' "$(b64 "$jpg")" "$(b64 "$webp")" >"$d/chat2"
printf '\001{"image":{"url":"data:image/gif;base64,%s"},"language":"en","title":"T","context":"C","max_length":120}' "$(b64 "$gif")" >"$d/alt"
printf '\002{"kind":"seo_description","text":"An article.","title":"T","language":"zh","images":[{"url":"data:image/png;base64,%s"},"data:image/gif;base64,%s"]}' "$(b64 "$png")" "$(b64 "$gif")" >"$d/summary"
# shellcheck disable=SC2059
printf '\005multipart/form-data; boundary=XyZ\n--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'"$png"'\r\n--XyZ\r\nContent-Disposition: form-data; name="language"\r\n\r\nen\r\n--XyZ\r\nContent-Disposition: form-data; name="max_length"\r\n\r\n100\r\n--XyZ--\r\n' >"$d/multipart"
printf '\135multipart/form-data; boundary="a b"\n--a b\r\nContent-Disposition: form-data; name="title"\r\n\r\nT\r\n--a b\r\nContent-Disposition: form-data;name="image"\r\n\r\ndata:image/gif;base64,%s\r\n--a b--' "$(b64 "$gif")" >"$d/multipart2"
# shellcheck disable=SC2059
printf '\015multipart/form-data; charset=utf-8; BOUNDARY=q\n--q\r\nContent-Disposition: form-data; filename="b.gif"; name="image"\r\n\r\n'"$gif"'\r\n--q\r\nContent-Disposition: form-data; name="context"\r\n\r\nA cat.\r\n--q--\r\n' >"$d/multipart3"

d=$(seeds ngx_json)
# byte 0: bits 0-3 depth - 1, bit 4 a 64-value budget; then the body
printf '\017{"a":[1,-0,2.5e-3,true,false,null,"x\\u00e9\\ud83d\\ude00\\n"],"b":{"c":{}},"":""}' >"$d/mixed"
printf '\017{"s":"caf\303\251 \344\275\240\345\245\275","k\\"q":"\\/\\b\\f\\r\\t"}' >"$d/utf8"
printf '\002{"d":[[[[1]]]]}' >"$d/deep"
printf '\037{"v":[{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}]}' >"$d/values"
printf '\017{"n":[9223372036854775807,-9223372036854775808,1e308,0.1]}' >"$d/numbers"

d=$(seeds ngx_jwt)
# byte 0 odd: header '\n' claims, signed by the target with key (byte 0 >> 1) & 3
claims='{"sub":"user-42","exp":1700000600,"nbf":1699999000,"iss":"https://wp.example","aud":["vlm","x"]}'
printf '\001{"alg":"HS256","typ":"JWT","kid":"k1"}\n%s' "$claims" >"$d/hs256"
printf '\003{"alg":"RS256"}\n%s' "$claims" >"$d/rs256"
printf '\005{"alg":"ES256","kid":"any"}\n{"sub":"s","exp":1700000000.5,"aud":"vlm","iss":"https://wp.example"}' >"$d/es256"
printf '\007{"alg":"none"}\n%s\nsig' "$claims" >"$d/none"
printf '\001{"alg":"HS256","crit":["exp"]}\n%s' "$claims" >"$d/crit"
# byte 0 even: the token as sent (HS256 secret as in fuzz_ngx_jwt.c)
if command -v openssl >/dev/null; then
    b64u() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
    si=$(printf '{"alg":"HS256","kid":"k1"}' | b64u).$(printf '%s' "$claims" | b64u)
    sig=$(printf '%s' "$si" | openssl dgst -sha256 -hmac 'fuzz-hs256-secret-0123456789abcdef' -binary | b64u)
    printf '\000%s.%s' "$si" "$sig" >"$d/token"
fi
exit $status
