#!/usr/bin/env bash
# The Rust peers (burn Flex / NdArray, candle, tract) on the cases of `nnpool bench`, one
# process per thread count, into ./compare-rust-peers.json (in peers.py's form):
#   scripts/rust-peers/run.sh [CASE,..]
# Then, beside the Python peers and nnpool (scripts/compare-peers.sh writes those two):
#   python3 scripts/peers.py --load compare-peers.json,compare-rust-peers.json \
#       --compare compare-nnpool.json
# The first build fetches and compiles a few hundred crates (about 15 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release
bin=$CARGO_TARGET_DIR/release/rust-peers
out=../../compare-rust-peers.json
tmp=$(mktemp -d)
for t in 1 2; do
  if [ "$t" = 1 ]; then pin=(taskset -c 0); else pin=(); fi
  RAYON_NUM_THREADS=$t "${pin[@]}" "$bin" "$t" "$tmp/$t.json" "$@"
done
python3 -c 'import json,sys; print(json.dumps(sum((json.load(open(f)) for f in sys.argv[1:]), []), indent=1))' \
  "$tmp/1.json" "$tmp/2.json" > "$out.tmp"
mv "$out.tmp" "$out"
rm -r "$tmp"
echo "wrote $out"
