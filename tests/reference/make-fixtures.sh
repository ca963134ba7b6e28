#!/bin/sh
# make-fixtures.sh: regenerates tests/fixtures/ with the pinned reference stack.
# Creates the virtualenv build/venv-ref from requirements.txt when missing (network: PyPI only),
# installs the CJK font used to draw the screenshot image
# (Debian fonts-wqy-microhei) when absent, then runs make_fixtures.py. Deterministic output.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv="$root/build/venv-ref"
req="$here/requirements.txt"

if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/requirements.txt"; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -r "$req"
    cp "$req" "$venv/requirements.txt"
fi

if [ ! -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] && \
   [ ! -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y fonts-wqy-microhei >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y fonts-wqy-microhei >/dev/null; }
    else
        sudo apt-get install -y fonts-wqy-microhei >/dev/null
    fi
fi

cd "$here"
exec "$venv/bin/python" make_fixtures.py "$@"
