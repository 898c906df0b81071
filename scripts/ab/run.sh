#!/usr/bin/env bash
# Usage: scripts/ab/run.sh BASE_REV [ARGS..]   (ARGS: 2d|3d THREADS; default: all four)
# Times this tree's kernels against BASE_REV's in one process, alternating (10 rounds of 5
# calls each, medians), with a plain copy of the input in the same rounds: on a shared
# machine, runs minutes apart differ by up to 2x, so only same-process ratios mean much.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
base=/tmp/nnpool-ab-base
rev="${1:?usage: run.sh BASE_REV [2d|3d THREADS]}"
shift
rm -rf "$base"
git -C "$root" worktree prune
git -C "$root" worktree add -f --detach "$base" "$rev" >/dev/null
# two packages of one name need two versions
sed -i 's/^version.workspace = true/version = "0.0.0-base"/' "$base/crates/nnpool/Cargo.toml"
cargo build --release --manifest-path "$here/Cargo.toml" -q
bin="${CARGO_TARGET_DIR:-$here/target}/release/nnpool-ab"
if [ $# -gt 0 ]; then
    "$bin" "$@"
else
    for shape in 2d 3d; do for t in 1 2; do "$bin" "$shape" "$t"; done; done
fi
git -C "$root" worktree remove --force "$base"
