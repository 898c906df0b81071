#!/usr/bin/env bash
# Side by side on this machine: `nnpool bench` and the peers (scripts/peers.py) back to back,
# then one table of nnpool against the fastest peer per case and thread count.
#   scripts/compare-peers.sh /tmp/peers/bin/python [--case NAME,..]
# The Python given must have numpy and the peers (onnx + onnxruntime, torch) installed; peers
# that are missing are skipped. Results go to ./compare-nnpool.json and ./compare-peers.json.
# RUST_PEERS=1 adds burn, candle and tract (scripts/rust-peers/run.sh, ./compare-rust-peers.json).
set -euo pipefail
py=${1:?usage: scripts/compare-peers.sh PYTHON [--case NAME,..]}
shift
cd "$(dirname "$0")/.."
cargo build --release -p nnpool-cli
./target/release/nnpool bench --threads 1,2 --json compare-nnpool.json "$@"
"$py" scripts/peers.py --threads 1,2 --json compare-peers.json "$@"
loads=compare-peers.json
if [ "${RUST_PEERS:-0}" = 1 ]; then
  # burn, candle and tract too (scripts/rust-peers: a separate build of a few hundred crates)
  cases=()
  if [ "${1:-}" = --case ]; then cases=("$2"); fi
  scripts/rust-peers/run.sh "${cases[@]}"
  loads=$loads,compare-rust-peers.json
fi
"$py" scripts/peers.py --load "$loads" --compare compare-nnpool.json
