#!/usr/bin/env python3
"""Runs ONNX's own backend node tests for the pooling operators against the `nnpool` CLI.

Not part of the test suite (it needs the `onnx` package, installed outside the project):

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install numpy onnx
    cargo build --release -p nnpool-cli
    /tmp/peers/bin/python scripts/onnx-node-tests.py [--bin PATH] [-v]

The cases are those `onnx.backend.test.case.node.collect_testcases` builds (MaxPool,
AveragePool, LpPool, GlobalMaxPool, GlobalAveragePool, MaxUnpool: their models and expected
outputs). Each node's attributes become CLI options (`pads` → `--pads`, `auto_pad`,
`dilations`, `ceil_mode`, `count_include_pad`, `p` with `--lp-variant onnx`); MaxPool's flat
Indices output (row- or column-major, `storage_order`) and MaxUnpool's flat indices are
converted to and from nnpool's plane-local ones. Max values and indices must be exact,
averages and Lp within ONNX's own rtol 1e-3 / atol 1e-7.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from onnx import helper, numpy_helper
from onnx.backend.test.case.node import collect_testcases

# ONNX's expected output here is its reference implementation's, which pastes the unpooled
# block into the top-left corner of the larger output; ONNX Runtime and PyTorch (and nnpool)
# scatter the flat indices into it (SEMANTICS.md, ONNX MaxUnpool).
KNOWN = {"test_maxunpool_export_with_output_shape": "ONNX reference vs ONNX Runtime/PyTorch"}

OPS = {"MaxPool": "max", "AveragePool": "avg", "LpPool": "lp",
       "GlobalMaxPool": "global-max", "GlobalAveragePool": "global-avg"}


def csv(v):
    return ",".join(str(int(x)) for x in v)


def attrs_of(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def compare(actual, expected, exact):
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != {expected.shape}"
    if actual.dtype != expected.dtype:
        return f"dtype {actual.dtype} != {expected.dtype}"
    if exact or not np.issubdtype(expected.dtype, np.floating):
        same = np.array_equal(actual, expected, equal_nan=np.issubdtype(expected.dtype, np.floating))
        return None if same else f"differs (max |d| {np.max(np.abs(actual.astype(float) - expected.astype(float)))})"
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    if not np.array_equal(np.isnan(a), np.isnan(e)):
        return "NaN positions differ"
    fin = np.isfinite(e)
    if not np.array_equal(a[~fin], e[~fin]):
        return "inf differs"
    # ONNX's backend tests compare with rtol 1e-3, atol 1e-7: some expected outputs are
    # written to 4 decimals (test_averagepool_2d_ceil_last_window_starts_on_pad: 0.1511
    # for 0.15105554, which ONNX Runtime and PyTorch also give).
    over = np.abs(a[fin] - e[fin]) > 1e-7 + 1e-3 * np.abs(e[fin])
    return f"values differ (max |d| {np.max(np.abs(a[fin] - e[fin]))})" if over.any() else None


def run_case(case, binary, tmp):
    node = case.model.graph.node[0]
    op, at = node.op_type, attrs_of(node)
    inputs, outputs = case.data_sets[0]
    x = inputs[0]
    np.save(os.path.join(tmp, "in.npy"), x)
    rank = x.ndim - 2
    if op == "MaxUnpool":
        idx = inputs[1]
        out_spatial = (list(inputs[2][2:]) if len(inputs) > 2 else
                       [(n - 1) * s + k - b - e for n, s, k, b, e in zip(
                           x.shape[2:], at.get("strides", [1] * rank), at["kernel_shape"],
                           at.get("pads", [0] * 2 * rank)[:rank], at.get("pads", [0] * 2 * rank)[rank:])])
        plane_out = int(np.prod(out_spatial))
        # flat over N·C·plane_out → plane-local in the output plane
        local = idx - (np.arange(x.shape[0] * x.shape[1]).reshape(x.shape[0], x.shape[1], *[1] * rank) * plane_out)
        np.save(os.path.join(tmp, "idx.npy"), local.astype(np.int64))
        argv = ["unpool", "--kernel-size", csv(at["kernel_shape"]),
                "--stride", csv(at.get("strides", [1] * rank)), "--output-size", csv(out_spatial),
                "--indices", "idx.npy"]
        if any(at.get("pads", [])):
            pads = at["pads"]
            if pads[:rank] != pads[rank:]:
                return "skipped: asymmetric MaxUnpool pads"
            argv += ["--padding", csv(pads[:rank])]
        argv += ["in.npy", "out.npy"]
        expect = {"out.npy": (outputs[0], True)}
    else:
        argv = ["forward", "--op", OPS[op]]
        if not op.startswith("Global"):
            argv += ["--kernel-size", csv(at["kernel_shape"]),
                     "--stride", csv(at.get("strides", [1] * rank))]
            auto = at.get("auto_pad", b"NOTSET")
            auto = auto.decode() if isinstance(auto, bytes) else auto
            if auto not in ("NOTSET", ""):
                argv += ["--auto-pad", auto.lower().replace("_", "-")]
            elif "pads" in at:
                argv += ["--pads", csv(at["pads"])]
            if "dilations" in at:
                argv += ["--dilation", csv(at["dilations"])]
            if at.get("ceil_mode", 0):
                argv += ["--ceil-mode"]
            if op == "AveragePool":
                argv += ["--count-include-pad", "true" if at.get("count_include_pad", 0) else "false"]
            if op == "LpPool":
                argv += ["--norm-type", str(at.get("p", 2)), "--lp-variant", "onnx"]
        expect = {"out.npy": (outputs[0], op in ("MaxPool", "GlobalMaxPool"))}
        if op == "MaxPool" and len(outputs) > 1:
            argv += ["--indices", "idx_out.npy"]
            spatial = x.shape[2:]
            local = outputs[1] % int(np.prod(spatial))
            if at.get("storage_order", 0) == 1:
                local = np.ravel_multi_index(np.unravel_index(local, spatial, order="F"), spatial)
            expect["idx_out.npy"] = (local.astype(np.int64), True)
        argv += ["in.npy", "out.npy"]
    proc = subprocess.run([binary] + argv, cwd=tmp, capture_output=True, text=True)
    if proc.returncode != 0:
        return f"exit {proc.returncode}: {proc.stderr.strip()[:200]}  [{' '.join(argv)}]"
    for name, (want, exact) in expect.items():
        problem = compare(np.load(os.path.join(tmp, name)), want, exact)
        if problem:
            return f"{name}: {problem}  [{' '.join(argv)}]"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/nnpool")
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    cases = [c for c in collect_testcases(None)
             if c.model.graph.node and c.model.graph.node[0].op_type in (*OPS, "MaxUnpool")]
    failed = skipped = 0
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            problem = run_case(case, binary, tmp)
        if problem and case.name in KNOWN:
            skipped += 1
            print(f"{case.name}: known difference ({KNOWN[case.name]}): {problem}")
        elif problem and problem.startswith("skipped"):
            skipped += 1
            print(f"{case.name}: {problem}")
        elif problem:
            failed += 1
            print(f"{case.name}: FAIL {problem}")
        elif args.v:
            print(f"{case.name}: ok")
    print(f"onnx node tests: {len(cases) - failed - skipped} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
