#!/usr/bin/env python3
"""Random differential testing of the `nnpool` CLI against PyTorch and ONNX Runtime.

Not part of the test suite (it needs the peers, in a virtual environment outside the project):

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install numpy torch onnx onnxruntime
    cargo build --release -p nnpool-cli
    /tmp/peers/bin/python scripts/differential.py --cases 2000 [--seed N] [--bin PATH]

Each case draws an op (max, avg, Lp, adaptive, global, unpool; forward with and without
indices, backward), a rank (1–3), shapes with odd sizes and tails, kernel, stride, padding,
dilation, ceil_mode, count_include_pad, divisor_override, layout and dtype, and data with NaN,
±inf and ties mixed in. PyTorch computes the expected result; ONNX-only options (asymmetric
`pads`, `auto_pad`, Lp's ONNX formula) go to ONNX Runtime. The CLI's output is compared with
the public corpus's rules (`crates/nnpool-cli/tests/conformance/run.py`): same dtype and
shape, NaN positions and ±inf equal, finite values within atol + rtol·|expected|, integers
equal. A configuration the oracle rejects must make the CLI exit non-zero with no output file.
Every failure is printed with the argv and kept under --keep for replaying.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F


def spatial(rng, rank, lo=1, hi=9):
    return [rng.randint(lo, hi) for _ in range(rank)]


def data(rng, shape, dtype):
    nprng = np.random.default_rng(rng.randrange(1 << 30))
    kind = rng.random()
    if kind < 0.3:  # ties: small integers
        x = nprng.integers(-3, 4, size=shape).astype(np.float64)
    else:
        x = nprng.standard_normal(shape)
    if x.size and rng.random() < 0.3:
        flat = x.reshape(-1)
        for _ in range(rng.randint(1, 3)):
            flat[nprng.integers(0, flat.size)] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0])
    return x.astype(dtype)


def csv(v):
    return ",".join(str(int(x)) for x in v)


class Oracle(Exception):
    """The oracle rejected the configuration: the CLI must reject it too."""


def torch_pool(kind, rank, x, k, s, p, d, ceil, cip, div, norm, want_idx):
    t = torch.from_numpy(x)
    if kind == "max":
        fn = [F.max_pool1d, F.max_pool2d, F.max_pool3d][rank - 1]
        y, i = fn(t, k, s, p, d, ceil_mode=ceil, return_indices=True)
        return y, (i if want_idx else None)
    if kind == "avg":
        fn = [F.avg_pool1d, F.avg_pool2d, F.avg_pool3d][rank - 1]
        if rank == 1:
            if div is not None:
                raise ValueError("1-d has no divisor_override")
            return fn(t, k, s, p, ceil_mode=ceil, count_include_pad=cip), None
        return fn(t, k, s, p, ceil_mode=ceil, count_include_pad=cip, divisor_override=div), None
    if kind == "lp":
        if rank == 1:  # lp_pool1d multiplies by kernel_size, which must be an int
            return F.lp_pool1d(t, norm, k[0], s[0], ceil_mode=ceil), None
        return [F.lp_pool2d, F.lp_pool3d][rank - 2](t, norm, k, s, ceil_mode=ceil), None
    raise AssertionError(kind)


def make_case(rng, tmp):
    """Returns (argv, files, expected {name: array} or None for an expected error, tol)."""
    rank = rng.randint(1, 3)
    dtype = rng.choice([np.float32, np.float32, np.float32, np.float64])
    n, c = rng.choice([0, 1, 1, 2, 3]), rng.randint(1, 5)
    size = spatial(rng, rank, 1, 11 if rank < 3 else 7)
    if rng.random() < 0.3:
        # Large enough for the SIMD kernels' interiors, strips and tails, and channel counts
        # around the vector widths for channels-last.
        size = spatial(rng, rank, *{1: (30, 300), 2: (12, 70), 3: (6, 20)}[rank])
        c = rng.choice([1, 3, 8, 15, 16, 17, 33, 64] if rank < 3 else [1, 3, 16, 17])
    x = data(rng, [n, c] + size, dtype)
    layout = rng.choice(["nchw", "nchw", "nhwc"])
    kind = rng.choice(["max", "max", "avg", "avg", "lp", "adaptive-max", "adaptive-avg",
                       "unpool", "onnx", "fractional", "global"])
    if kind == "fractional":
        return make_fractional_case(rng, tmp, x if rank > 1 else data(rng, [n, c, 5, 6], dtype),
                                    max(rank, 2))
    if kind == "global":
        return make_global_case(rng, tmp, x, rank, layout)
    if kind in ("avg", "adaptive-avg") and rank < 3 and dtype == np.float32 and rng.random() < 0.15:
        # PyTorch has no f16 avg_pool3d on the CPU. Sums in f32, rounded once (forward) or
        # after every add (backward).
        dtype = np.float16
        x = x.astype(dtype)
    if kind == "max" and dtype == np.float32 and rng.random() < 0.2:
        dtype = np.float16  # max values and indices are exact in every dtype
        x = x.astype(dtype)
    backward = kind in ("max", "avg", "lp", "adaptive-max", "adaptive-avg") and rng.random() < 0.35
    tol = (0.0, 0.0)
    loose = {np.float16: (1e-3, 1e-3), np.float32: (1e-5, 1e-6)}.get(dtype, (1e-12, 1e-12))
    argv, expect = [], {}
    grad = None

    if kind in ("max", "avg", "lp"):
        k = [rng.randint(1, 4) for _ in range(rank)]
        s = [rng.randint(1, 3) for _ in range(rank)]
        if kind == "lp":
            p, d = [0] * rank, [1] * rank
        else:
            p = [rng.randint(0, kk // 2 + (1 if rng.random() < 0.05 else 0)) for kk in k]
            d = [rng.randint(1, 2) if kind == "max" else 1 for _ in range(rank)]
        ceil = rng.random() < 0.4
        cip = rng.random() < 0.5
        div = rng.choice([None, None, None, 2, 5, -3]) if kind == "avg" and rank > 1 else None
        # Not p < 1: its gradient 0.5·x^-0.5 on small x turns one-ulp differences in the
        # window sums into 1e-5 relative ones, and PyTorch's vectorised f32 sqrt (x^0.5) is
        # not correctly rounded on this CPU (1 ulp off for 17 % of inputs).
        norm = rng.choice([1, 2, 3, 1.5, 4, float("inf"), -1, -2, float("-inf")]) if kind == "lp" else None
        want_idx = kind == "max" and not backward and rng.random() < 0.6
        if kind == "lp" and rng.random() < 0.5:
            x = np.abs(x)  # PyTorch's formula and the norm agree on non-negative data
        argv = ["--op", kind, "--kernel-size", csv(k), "--stride", csv(s)]
        if kind != "lp":
            argv += ["--padding", csv(p)]
        if kind == "max":
            argv += ["--dilation", csv(d)]
        if ceil:
            argv += ["--ceil-mode"]
        if kind == "avg":
            argv += ["--count-include-pad", "true" if cip else "false"]
            if div is not None:
                argv += ["--divisor-override", str(div)]
        if kind == "lp":
            argv += ["--norm-type", str(norm)]
        try:
            if backward:
                xt = torch.from_numpy(x).requires_grad_()
                y, _ = torch_pool(kind, rank, xt.detach().numpy(), k, s, p, d, ceil, cip, div,
                                  norm, False)
                gy = data(rng, list(y.shape), dtype)
                gy[~np.isfinite(gy)] = 1.0
                xt = torch.from_numpy(x.copy()).requires_grad_()
                if kind == "max":
                    _, i = torch_pool(kind, rank, x, k, s, p, d, ceil, cip, div, norm, True)
                    if (i >= int(np.prod(x.shape[2:]))).any():
                        # A window of padding only (dilation) reports an index past its plane;
                        # PyTorch's backward then writes into the next plane (or out of
                        # bounds), nnpool drops it (see reference::scatter_by_index).
                        return None
                fn_out = _torch_graph(kind, rank, xt, k, s, p, d, ceil, cip, div, norm)
                fn_out.backward(torch.from_numpy(gy))
                expect["out"] = xt.grad.numpy()
                grad = gy
            else:
                y, i = torch_pool(kind, rank, x, k, s, p, d, ceil, cip, div, norm, want_idx)
                expect["out"] = y.numpy()
                if i is not None:
                    expect["idx_out"] = i.numpy()
        except (RuntimeError, ValueError):
            expect = None
        if kind != "max" or backward:
            tol = loose
    elif kind in ("adaptive-max", "adaptive-avg"):
        out = [rng.randint(1, 8) for _ in range(rank)]
        want_idx = kind == "adaptive-max" and not backward and rng.random() < 0.6
        argv = ["--op", kind, "--output-size", csv(out)]
        fn = {
            "adaptive-max": [F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d],
            "adaptive-avg": [F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d],
        }[kind][rank - 1]
        try:
            if backward:
                xt = torch.from_numpy(x.copy()).requires_grad_()
                y = fn(xt, out)
                if isinstance(y, tuple):
                    y = y[0]
                gy = data(rng, list(y.shape), dtype)
                gy[~np.isfinite(gy)] = 1.0
                y.backward(torch.from_numpy(gy))
                expect["out"] = xt.grad.numpy()
                grad = gy
            elif kind == "adaptive-max":
                y, i = fn(torch.from_numpy(x), out, return_indices=True)
                expect["out"] = y.numpy()
                if want_idx:
                    expect["idx_out"] = i.numpy()
            else:
                expect["out"] = fn(torch.from_numpy(x), out).numpy()
        except RuntimeError:
            expect = None
        if kind == "adaptive-avg" or backward:
            tol = loose
    elif kind == "unpool":
        k = [rng.randint(1, 3) for _ in range(rank)]
        s = [rng.randint(1, 3) for _ in range(rank)]
        p = [rng.randint(0, kk // 2) for kk in k]
        pool = [F.max_pool1d, F.max_pool2d, F.max_pool3d][rank - 1]
        unpool = [F.max_unpool1d, F.max_unpool2d, F.max_unpool3d][rank - 1]
        argv = ["unpool", "--kernel-size", csv(k), "--stride", csv(s), "--padding", csv(p)]
        out_size = None
        try:
            y, i = pool(torch.from_numpy(x), k, s, p, return_indices=True)
            if rng.random() < 0.4:
                # Within one stride of the default: PyTorch reinterprets the indices in the
                # output's plane shape.
                default = [(n_in - 1) * ss + kk - 2 * pp
                           for n_in, ss, kk, pp in zip(y.shape[2:], s, k, p)]
                out_size = [max(1, d + rng.randint(-ss + 1, ss - 1)) for d, ss in zip(default, s)]
                argv += ["--output-size", csv(out_size)]
            expect["out"] = unpool(y, i, k, s, p, output_size=out_size).numpy()
        except (RuntimeError, ValueError):
            return None
        if 0 in expect["out"].shape[2:]:
            expect = None  # PyTorch returns an empty tensor; the contract asks for an error
        if layout == "nhwc":
            layout = "nchw"
        np.save(os.path.join(tmp, "in.npy"), y.numpy())
        np.save(os.path.join(tmp, "idx.npy"), i.numpy())
        argv += ["--indices", "idx.npy", "in.npy", "out.npy"]
        return argv, expect, tol
    else:
        return make_onnx_case(rng, tmp, x, rank, dtype, loose)

    if layout == "nhwc" and expect is not None and n > 0:
        perm = [0] + list(range(2, rank + 2)) + [1]
        x = np.ascontiguousarray(x.transpose(perm))
        if grad is not None:
            grad = np.ascontiguousarray(grad.transpose(perm))
        for name in ("out", "idx_out"):
            if name in expect:
                expect[name] = np.ascontiguousarray(expect[name].transpose(perm))
        argv += ["--layout", "nhwc"]
    if n == 1 and layout == "nchw" and expect is not None and rng.random() < 0.2:
        # Unbatched input [C, *spatial]: same results without the batch axis.
        x = x[0]
        grad = None if grad is None else grad[0]
        expect = {name: v[0] for name, v in expect.items()}
    np.save(os.path.join(tmp, "in.npy"), x)
    cmd = ["backward" if backward else "forward"] + argv
    if grad is not None:
        np.save(os.path.join(tmp, "gy.npy"), grad)
        cmd += ["--grad-output", "gy.npy"]
    if expect is not None and "idx_out" in expect:
        cmd += ["--indices", "idx_out.npy"]
    elif expect is None and kind == "max" and not backward:
        cmd += ["--indices", "idx_out.npy"]
    cmd += ["in.npy", "out.npy"]
    return cmd, expect, tol


def make_fractional_case(rng, tmp, x, rank):
    n, c = x.shape[:2]
    size = list(x.shape[2:])
    k = [rng.randint(1, min(3, sz)) for sz in size]
    out = [rng.randint(1, sz - kk + 1) for sz, kk in zip(size, k)]
    samples = np.random.default_rng(rng.randrange(1 << 30)).random((n, c, rank)).astype(x.dtype)
    fn = F.fractional_max_pool2d if rank == 2 else F.fractional_max_pool3d
    np.save(os.path.join(tmp, "in.npy"), x)
    np.save(os.path.join(tmp, "samples.npy"), samples)
    argv = ["forward", "--op", "fractional-max", "--kernel-size", csv(k), "--output-size",
            csv(out), "--samples", "samples.npy", "--indices", "idx_out.npy", "in.npy", "out.npy"]
    try:
        y, i = fn(torch.from_numpy(x), k, output_size=out, return_indices=True,
                  _random_samples=torch.from_numpy(samples))
    except RuntimeError:
        return argv, None, None
    return argv, {"out": y.numpy(), "idx_out": i.numpy()}, (0.0, 0.0)


def make_global_case(rng, tmp, x, rank, layout):
    op = rng.choice(["global-max", "global-avg"])
    fn = {
        "global-max": [F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d],
        "global-avg": [F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d],
    }[op][rank - 1]
    if x.shape[0] == 0:
        return None
    y = fn(torch.from_numpy(x), [1] * rank)
    y = y[0] if isinstance(y, tuple) else y
    y = y.numpy()
    argv = ["forward", "--op", op]
    if layout == "nhwc":
        perm = [0] + list(range(2, rank + 2)) + [1]
        x, y = np.ascontiguousarray(x.transpose(perm)), np.ascontiguousarray(y.transpose(perm))
        argv += ["--layout", "nhwc"]
    np.save(os.path.join(tmp, "in.npy"), x)
    loose = (1e-5, 1e-6) if x.dtype == np.float32 else (1e-12, 1e-12)
    return argv + ["in.npy", "out.npy"], {"out": y}, (0.0, 0.0) if op == "global-max" else loose


def _torch_graph(kind, rank, xt, k, s, p, d, ceil, cip, div, norm):
    if kind == "max":
        return [F.max_pool1d, F.max_pool2d, F.max_pool3d][rank - 1](xt, k, s, p, d, ceil_mode=ceil)
    if kind == "avg":
        fn = [F.avg_pool1d, F.avg_pool2d, F.avg_pool3d][rank - 1]
        if rank == 1:
            return fn(xt, k, s, p, ceil_mode=ceil, count_include_pad=cip)
        return fn(xt, k, s, p, ceil_mode=ceil, count_include_pad=cip, divisor_override=div)
    if rank == 1:
        return F.lp_pool1d(xt, norm, k[0], s[0], ceil_mode=ceil)
    return [F.lp_pool2d, F.lp_pool3d][rank - 2](xt, norm, k, s, ceil_mode=ceil)


def make_onnx_case(rng, tmp, x, rank, dtype, loose):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    if x.shape[0] == 0:
        x = data(rng, [1] + list(x.shape[1:]), dtype)
    op = rng.choice(["MaxPool", "AveragePool", "LpPool"])
    k = [rng.randint(1, 4) for _ in range(rank)]
    s = [rng.randint(1, 3) for _ in range(rank)]
    attrs = {"kernel_shape": k, "strides": s}
    argv = ["forward", "--kernel-size", csv(k), "--stride", csv(s)]
    auto = rng.choice(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])
    if auto == "NOTSET":
        pads = [rng.randint(0, kk) for kk in k] + [rng.randint(0, kk) for kk in k]
        pads = [min(pv, kk - 1) for pv, kk in zip(pads, k + k)]
        attrs["pads"] = pads
        argv += ["--pads", csv(pads)]
    elif auto == "VALID":
        attrs["auto_pad"] = auto
        argv += ["--auto-pad", "valid"]
    else:
        # ONNX Runtime's own SAME padding is wrong for some 3-d averages (it gave other
        # windows' means); give it the pads of the spec's formula (onnx/defs/nn/defs.cc
        # convPoolShapeInference) and the CLI the auto_pad mode.
        pads = []
        for n_in, kk, ss in zip(x.shape[2:], k, s):
            total = max(0, kk - ss if n_in % ss == 0 else kk - n_in % ss)
            small = total // 2
            pads.append((small, total - small) if auto == "SAME_UPPER" else (total - small, small))
        attrs["pads"] = [b for b, _ in pads] + [e for _, e in pads]
        argv += ["--auto-pad", auto.lower().replace("_", "-")]
    if op != "LpPool" and rng.random() < 0.4 and auto == "NOTSET":
        attrs["ceil_mode"] = 1
        argv += ["--ceil-mode"]
    if rng.random() < 0.4 and auto in ("NOTSET", "VALID"):
        dil = [rng.randint(1, 2) for _ in range(rank)]
        attrs["dilations"] = dil
        argv += ["--dilation", csv(dil)]
    tol = (0.0, 0.0)
    if op == "MaxPool":
        argv += ["--op", "max"]
        x = x.copy()
        # ONNX Runtime's NaN handling is order-dependent, and its max starts from the lowest
        # finite value, so a window of -inf and padding gives -FLT_MAX there.
        x[~np.isfinite(x)] = 0.5
    elif op == "AveragePool":
        cip = rng.random() < 0.5
        attrs["count_include_pad"] = int(cip)
        argv += ["--op", "avg", "--count-include-pad", "true" if cip else "false"]
        tol = loose
    else:
        pnorm = rng.choice([1, 2, 3])
        attrs["p"] = pnorm
        argv += ["--op", "lp", "--norm-type", str(pnorm), "--lp-variant", "onnx"]
        x = x.copy()
        x[~np.isfinite(x)] = 1.0
        tol = loose
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    # MaxPool's second output: int64 indices flat over the whole tensor (N, C and the plane,
    # row-major, or column-major within the plane with storage_order = 1), converted below to
    # nnpool's plane-local row-major ones. Distinct values, so that no tie decides an index.
    with_indices = op == "MaxPool" and rng.random() < 0.5 and "dilations" not in attrs
    if with_indices:
        x = np.random.default_rng(rng.randrange(1 << 30)).permutation(x.size).reshape(x.shape)
        x = (x.astype(np.float64) / 7.0 - 3.0).astype(dtype)
        attrs["storage_order"] = rng.randint(0, 1)
    outputs = ["y", "i"] if with_indices else ["y"]
    node = helper.make_node(op, ["x"], outputs, **attrs)
    out_info = [helper.make_tensor_value_info("y", elem, None)]
    if with_indices:
        out_info.append(helper.make_tensor_value_info("i", TensorProto.INT64, None))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", elem, None)],
                              out_info)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    model.ir_version = 10
    try:
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"x": x})
        y = got[0]
        if op == "MaxPool":
            # A window of padding only (dilation): ONNX Runtime starts from the lowest finite
            # value, nnpool (and PyTorch) from -inf.
            y[y == np.finfo(y.dtype).min] = -np.inf
        expect = {"out": y}
        if with_indices:
            spatial = x.shape[2:]
            local = got[1] % int(np.prod(spatial))
            if attrs["storage_order"] == 1:  # column-major within the plane
                coords = np.unravel_index(local, spatial, order="F")
                local = np.ravel_multi_index(coords, spatial, order="C")
            expect["idx_out"] = local.astype(np.int64)
            argv += ["--indices", "idx_out.npy"]
    except Exception:  # noqa: BLE001 - any rejection by the runtime
        return None  # ORT's rejections are not all ONNX's rules; skip rather than guess
    if y.size == 0 or any(v == 0 for v in y.shape):
        return None
    begins, ends = (attrs["pads"][:rank], attrs["pads"][rank:]) if "pads" in attrs else ([0] * rank, [0] * rank)
    dil = attrs.get("dilations", [1] * rank)
    if any(n + b + e < (kk - 1) * dd + 1 for n, b, e, kk, dd in zip(x.shape[2:], begins, ends, k, dil)):
        # ONNX Runtime truncates a negative numerator to an output of 1 (SEMANTICS.md §1.2);
        # nnpool refuses a padded input shorter than the window, as PyTorch does.
        return None
    np.save(os.path.join(tmp, "in.npy"), x)
    return argv + ["in.npy", "out.npy"], expect, tol


def compare(actual, expected, tol):
    if actual.dtype != expected.dtype:
        return f"dtype {actual.dtype} != {expected.dtype}"
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != {expected.shape}"
    if np.issubdtype(expected.dtype, np.integer):
        bad = np.argwhere(actual != expected)
        return None if bad.size == 0 else f"index differs at {bad[0].tolist()}: {actual[tuple(bad[0])]} != {expected[tuple(bad[0])]}"
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    if not np.array_equal(np.isnan(a), np.isnan(e)):
        bad = np.argwhere(np.isnan(a) != np.isnan(e))[0]
        return f"NaN position differs at {bad.tolist()}: {a[tuple(bad)]} != {e[tuple(bad)]}"
    inf = np.isinf(e) | np.isinf(a)
    if not np.array_equal(a[inf], e[inf]):
        return "inf differs"
    fin = np.isfinite(e) & np.isfinite(a)
    rtol, atol = tol
    over = np.abs(a[fin] - e[fin]) > atol + rtol * np.abs(e[fin])
    if over.any():
        j = np.argwhere(fin)[np.argmax(over)]
        return f"value differs at {j.tolist()}: {a[tuple(j)]!r} != {e[tuple(j)]!r}"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bin", default="target/release/nnpool")
    ap.add_argument("--keep", default="/tmp/nnpool-differential")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    shutil.rmtree(args.keep, ignore_errors=True)
    failures = ran = 0
    for case in range(args.cases):
        rng = random.Random(args.seed * 1_000_003 + case)
        tmp = tempfile.mkdtemp()
        try:
            made = make_case(rng, tmp)
            if made is None:
                continue
            argv, expect, tol = made
            proc = subprocess.run([binary] + argv, cwd=tmp, capture_output=True, text=True)
            ran += 1
            problem = None
            if expect is None:
                leftovers = [f for f in ("out.npy", "idx_out.npy") if os.path.exists(os.path.join(tmp, f))]
                if proc.returncode == 0:
                    problem = "oracle rejected it; the CLI accepted it"
                elif leftovers or not proc.stderr.strip():
                    problem = f"error without a message or with output left: {leftovers}"
            elif proc.returncode != 0:
                problem = f"exit {proc.returncode}: {proc.stderr.strip()[:300]}"
            else:
                for name, want in expect.items():
                    got = np.load(os.path.join(tmp, name + ".npy"))
                    problem = compare(got, want, tol)
                    if problem:
                        problem = f"{name}: {problem}"
                        break
            if problem:
                failures += 1
                keep = os.path.join(args.keep, str(case))
                shutil.copytree(tmp, keep)
                for name, want in (expect or {}).items():
                    np.save(os.path.join(keep, "expected_" + name + ".npy"), want)
                print(f"case {case}: {problem}\n  nnpool {' '.join(argv)}\n  kept in {keep}",
                      flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"differential: {ran} cases run, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
