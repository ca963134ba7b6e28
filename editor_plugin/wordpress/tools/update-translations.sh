#!/bin/sh
# Regenerates languages/vlm.pot from the PHP sources (JS strings are translated in PHP, see
# includes/assets.php vlm_js_strings), merges it into vlm-zh_CN.po and compiles the .mo.
# Needs Debian's gettext (xgettext, msgmerge, msgfmt). New strings still need a translator.
set -eu
cd "$(dirname "$0")/.."
xgettext --language=PHP --from-code=UTF-8 --add-comments=translators \
    --keyword=__ --keyword=_e --keyword=esc_html__ --keyword=esc_html_e \
    --keyword=esc_attr__ --keyword=esc_attr_e --package-name=vlm \
    -o languages/vlm.pot vlm.php includes/*.php
msgmerge --quiet --update --backup=none languages/vlm-zh_CN.po languages/vlm.pot
msgfmt --check --statistics -o languages/vlm-zh_CN.mo languages/vlm-zh_CN.po
