#!/bin/sh
# Renders the demo's HTML page in headless Chromium and saves a screenshot, to check by eye that
# the page and its inlined pictures display. Needs Debian's chromium (apt-get install chromium;
# fonts-wqy-microhei for the Chinese page). Not part of the test suite: CI has no browser.
# usage: scripts/screenshot-demo.sh [en|zh] [OUT.png]
set -eu
lang=${1:-en}
shot=$(realpath -m "${2:-demo-$lang.png}")
dir=$(mktemp -d)
cargo run --quiet --release -p nnpool-cli -- demo --lang "$lang" --out "$dir/page" >/dev/null
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$dir/profile" --window-size=1200,5200 \
  --screenshot="$shot" "file://$dir/page/index.html" 2>/dev/null
rm -rf "$dir"
echo "screenshot: $shot"
