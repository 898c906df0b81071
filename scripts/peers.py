#!/usr/bin/env python3
"""Times the `nnpool bench` cases in other libraries on this machine, for a side-by-side run.

Not part of the test suite: it needs the peers, installed into a virtual environment outside
the project, e.g.

    python3 -m venv /tmp/peers
    /tmp/peers/bin/pip install numpy onnx onnxruntime torch openvino tensorflow-cpu jax
    /tmp/peers/bin/python scripts/peers.py --json peers.json

Peers that are not installed are skipped. Each thread count runs in its own process (TensorFlow
and XLA fix their thread pools when they start). Each (peer, case, layout, threads) is warmed up,
then called until at least 10 calls and 0.3 s; the median and minimum are reported, as
`nnpool bench` does. Every peer's output is checked once against NumPy's own pooling of the
same input (max exactly, averages within 1e-5), so a peer that computes something else is
reported, not timed. `scripts/compare-peers.sh` runs this and `nnpool bench` back to back and
prints one table.
"""

import argparse
import json
import os
import statistics
import sys
import time

try:
    import numpy as np
except ImportError:  # only timing needs numpy; --load/--compare run without it
    np = None

# name, kind, (k, s, p) or None for global, channels-first shape, pass
CASES = [
    ("resnet_stem_max", "max", (3, 2, 1), (8, 64, 112, 112), "fwd"),
    ("resnet_gap", "gap", None, (8, 512, 7, 7), "fwd"),
    ("vgg_max_224", "max", (2, 2, 0), (8, 64, 224, 224), "fwd"),
    ("vgg_max_14", "max", (2, 2, 0), (8, 512, 14, 14), "fwd"),
    ("inception_max_s1", "max", (3, 1, 1), (8, 192, 28, 28), "fwd"),
    ("inception_avg_s1", "avg", (3, 1, 1), (8, 192, 28, 28), "fwd"),
    ("alexnet_max", "max", (3, 2, 0), (8, 96, 55, 55), "fwd"),
    ("large_avg", "avg", (7, 1, 3), (8, 64, 56, 56), "fwd"),
    ("sppf_max5", "max", (5, 1, 2), (8, 256, 20, 20), "fwd"),
    ("max3d", "max3d", (3, 2, 1), (2, 64, 16, 56, 56), "fwd"),
    ("resnet_stem_max_bwd", "max", (3, 2, 1), (8, 64, 112, 112), "bwd"),
    ("vgg_max_224_bwd", "max", (2, 2, 0), (8, 64, 224, 224), "bwd"),
    ("inception_avg_s1_bwd", "avg", (3, 1, 1), (8, 192, 28, 28), "bwd"),
]


def timed(fn, min_time):
    for _ in range(3):
        fn()
    samples, start = [], time.perf_counter()
    while len(samples) < 10 or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples), min(samples)


def numpy_pool(x, kind, geo, pads=None, include_pad=True):
    """A plain NumPy oracle: -inf padding for max; averages over the whole window
    (count_include_pad) or over its in-bounds part. `pads` = (before, after) per spatial axis,
    default (p, p) as PyTorch pads."""
    if kind == "gap":
        return x.mean(axis=(2, 3), keepdims=True)
    k, s, p = geo
    spatial = x.ndim - 2
    pads = pads or (p, p)
    fill = -np.inf if kind.startswith("max") else 0.0
    pad = [(0, 0), (0, 0)] + [pads] * spatial
    out_sizes = [(n + sum(pads) - k) // s + 1 for n in x.shape[2:]]
    axes = tuple(range(-spatial, 0))
    sl = (slice(None), slice(None)) + tuple(slice(0, o * s, s) for o in out_sizes)

    def windows(a, value):
        ap = np.pad(a, pad, constant_values=value)
        w = np.lib.stride_tricks.sliding_window_view(ap, (k,) * spatial, axis=tuple(range(2, 2 + spatial)))
        return w[sl]

    if kind.startswith("max"):
        return windows(x, fill).max(axis=axes)
    total = windows(x, 0.0).sum(axis=axes)
    if include_pad:
        return total / k**spatial
    count = windows(np.ones((1, 1) + x.shape[2:], x.dtype), 0.0).sum(axis=axes)
    return total / count


def agree(got, want, kind):
    got = np.asarray(got, dtype=np.float32)
    if got.shape != want.shape:
        return False
    if kind.startswith("max"):
        return np.array_equal(got, want)
    return np.allclose(got, want, rtol=1e-5, atol=1e-6)


def onnxruntime_runner(threads):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    def make(kind, geo, x, layout, pass_):
        shape = x.shape
        if layout != "nchw" or pass_ != "fwd":
            return None  # ONNX pooling is channels-first and has no backward op
        spatial = len(shape) - 2
        if kind == "gap":
            node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
        else:
            k, s, p = geo
            attrs = dict(kernel_shape=[k] * spatial, strides=[s] * spatial, pads=[p] * (2 * spatial))
            if kind == "avg":
                node = helper.make_node("AveragePool", ["x"], ["y"], count_include_pad=1, **attrs)
            else:
                node = helper.make_node("MaxPool", ["x"], ["y"], **attrs)
        graph = helper.make_graph(
            [node],
            "pool",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])

        run = lambda: sess.run(None, {"x": x})[0]
        return run, run

    return make


def torch_runner(threads):
    import torch

    torch.set_num_threads(threads)
    F = torch.nn.functional

    def make(kind, geo, x, layout, pass_):
        spatial = x.ndim - 2
        fmt = {2: torch.channels_last, 3: torch.channels_last_3d}[spatial]
        t = torch.from_numpy(x)
        if layout == "nhwc":
            t = t.contiguous(memory_format=fmt)

        def like_t(shape):
            g = torch.randn(shape)
            return g.contiguous(memory_format=fmt) if layout == "nhwc" else g

        if kind == "gap":
            fwd = lambda: F.adaptive_avg_pool2d(t, 1)
        else:
            k, s, p = geo
            if kind == "avg":
                fwd = lambda: F.avg_pool2d(t, k, s, p, count_include_pad=True)
            elif kind == "max3d":
                fwd = lambda: F.max_pool3d(t, k, s, p)
            else:
                fwd = lambda: F.max_pool2d(t, k, s, p)
        if pass_ == "fwd":
            def run():
                with torch.no_grad():
                    return fwd()

            return run, lambda: run().contiguous().numpy()
        # backward: the input gradient for a given output gradient (max: from the forward's
        # indices), the op `nnpool bench` times
        k, s, p = geo
        if kind == "avg":
            gy = like_t(fwd().shape)
            run = lambda: torch.ops.aten.avg_pool2d_backward(gy, t, [k, k], [s, s], [p, p], False, True, None)
        else:
            y, idx = F.max_pool2d(t, k, s, p, return_indices=True)
            gy = like_t(y.shape)
            run = lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                gy, t, [k, k], [s, s], [p, p], [1, 1], False, idx
            )
        return run, None

    return make


def openvino_runner(threads):
    import openvino as ov
    import openvino.opset8 as ops

    core = ov.Core()

    def make(kind, geo, x, layout, pass_):
        if layout != "nchw" or pass_ != "fwd":
            return None  # OpenVINO models take channels-first input and have no backward
        spatial = x.ndim - 2
        data = ops.parameter(list(x.shape), np.float32)
        if kind == "gap":
            node = ops.reduce_mean(data, np.array([2, 3], dtype=np.int64), True)
        else:
            k, s, p = geo
            dims = lambda v: [v] * spatial
            if kind == "avg":
                node = ops.avg_pool(data, dims(s), dims(p), dims(p), dims(k), False, "floor", "explicit")
            else:
                node = ops.max_pool(data, dims(s), dims(1), dims(p), dims(p), dims(k), "floor", "explicit")
        model = ov.Model([node.output(0)], [data])
        # f32 throughout: on CPUs with AVX-512 BF16 the plugin would otherwise compute in bf16
        compiled = core.compile_model(
            model, "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
        )
        request = compiled.create_infer_request()

        def run():
            request.infer({0: x}, share_inputs=True)
            return request.get_output_tensor(0).data

        return run, lambda: np.array(run())

    return make


def tensorflow_runner(threads):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    def make(kind, geo, x, layout, pass_):
        if layout != "nhwc":
            return None  # TensorFlow's CPU pooling kernels are channels-last only
        spatial = x.ndim - 2
        xt = tf.constant(np.moveaxis(x, 1, -1))
        to_nchw = lambda y: np.moveaxis(np.asarray(y), -1, 1)
        if kind == "gap":
            fwd = lambda: tf.reduce_mean(xt, axis=[1, 2], keepdims=True)
            return fwd, lambda: to_nchw(fwd())
        k, s, p = geo
        ksize, strides = [1] + [k] * spatial + [1], [1] + [s] * spatial + [1]
        explicit = [[0, 0]] + [[p, p]] * spatial + [[0, 0]]
        if kind == "max":
            fwd = lambda: tf.nn.max_pool2d(xt, k, s, explicit if p else "VALID")
        elif kind == "max3d":
            # no explicit padding in 3-D: SAME pads (0, 1) here, the same work as (1, 1)
            fwd = lambda: tf.nn.max_pool3d(xt, k, s, "SAME")
        else:
            # no explicit padding for averages: SAME pads (1, 1) here, and averages over the
            # in-bounds taps (checked against that rule)
            fwd = lambda: tf.nn.avg_pool2d(xt, k, s, "SAME")
        if pass_ == "fwd":
            return fwd, lambda: to_nchw(fwd())
        gy = tf.random.normal(fwd().shape)
        if kind == "avg":
            run = lambda: tf.raw_ops.AvgPoolGrad(
                orig_input_shape=xt.shape, grad=gy, ksize=ksize, strides=strides, padding="SAME"
            )
        else:
            # TensorFlow's max backward finds the argmax again from the input and output
            y = fwd()
            flat = [v for pair in explicit for v in pair]
            run = lambda: tf.raw_ops.MaxPoolGrad(
                orig_input=xt, orig_output=y, grad=gy, ksize=ksize, strides=strides,
                padding="EXPLICIT" if p else "VALID", explicit_paddings=flat if p else [],
            )
        return (lambda: run().numpy()), None

    return make


def jax_runner(threads):
    if threads == 1:
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    import jax
    import jax.numpy as jnp
    from jax import lax

    def make(kind, geo, x, layout, pass_):
        spatial = x.ndim - 2
        nhwc = layout == "nhwc"
        xj = jnp.asarray(np.moveaxis(x, 1, -1) if nhwc else x)
        to_nchw = lambda y: np.moveaxis(np.asarray(y), -1, 1) if nhwc else np.asarray(y)
        sp = range(1, 1 + spatial) if nhwc else range(2, 2 + spatial)
        if kind == "gap":
            pool = lambda a: jnp.mean(a, axis=tuple(sp), keepdims=True)
        else:
            k, s, p = geo
            dims = lambda v, one: tuple(v if i in sp else one for i in range(x.ndim))
            window, strides, pads = dims(k, 1), dims(s, 1), dims((p, p), (0, 0))
            if kind == "avg":
                pool = lambda a: lax.reduce_window(a, 0.0, lax.add, window, strides, pads) / k**spatial
            else:
                pool = lambda a: lax.reduce_window(a, -jnp.inf, lax.max, window, strides, pads)
        if pass_ == "fwd":
            f = jax.jit(pool)
            run = lambda: f(xj).block_until_ready()
            return run, lambda: to_nchw(run())
        gy = jnp.asarray(np.random.default_rng(1).standard_normal(jax.eval_shape(pool, xj).shape, np.float32))
        g = jax.jit(lambda a, b: jax.vjp(pool, a)[1](b)[0])
        return (lambda: g(xj, gy).block_until_ready()), None

    return make


PEERS = [
    ("onnxruntime", onnxruntime_runner),
    ("torch", torch_runner),
    ("openvino", openvino_runner),
    ("tensorflow", tensorflow_runner),
    ("jax", jax_runner),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", help="comma-separated case names (default: all)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument("--load", help="read earlier results from these files (comma-separated) instead of timing")
    ap.add_argument("--compare", metavar="NNPOOL_JSON", help="print nnpool (`nnpool bench --json`) against the fastest peer")
    args = ap.parse_args()
    if args.load:
        results = []
        for name in args.load.split(","):
            with open(name) as f:
                results += json.load(f)
    else:
        results = measure(args)
    if args.json and not args.load:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if args.compare:
        with open(args.compare) as f:
            compare(json.load(f), results)


def compare(ours, peers):
    """Per case and thread count: nnpool in each layout against the fastest peer (any layout).

    The issue's goal holds per case, layout and thread count, so both of nnpool's layouts are
    shown, each with its ratio to its own copy and its speed-up over the fastest peer."""
    print(
        f"\n{'case':22} {'thr':>3} {'nchw ms':>9} {'x copy':>6} {'speed-up':>8}"
        f" {'nhwc ms':>9} {'x copy':>6} {'speed-up':>8}  {'fastest peer':28} {'peer ms':>9}"
    )
    for case, *_ in CASES:
        for threads in sorted({r["threads"] for r in ours}):
            mine = {r["layout"]: r for r in ours if r["case"] == case and r["threads"] == threads}
            theirs = [r for r in peers if r["case"] == case and r["threads"] == threads]
            if not mine:
                continue
            p = min(theirs, key=lambda r: r["median_ms"]) if theirs else None
            line = f"{case:22} {threads:3}"
            for layout in ("nchw", "nhwc"):
                m = mine.get(layout)
                if m is None:
                    line += f" {'-':>9} {'-':>6} {'-':>8}"
                    continue
                up = f"{p['median_ms'] / m['median_ms']:7.2f}x" if p else f"{'-':>8}"
                line += f" {m['median_ms']:9.3f} {m['median_ms'] / m['copy_ms']:6.2f} {up}"
            if p:
                line += f"  {p['peer'] + ' ' + p['layout']:28} {p['median_ms']:9.3f}"
            else:
                line += "  (no peer ran this case)"
            print(line)


def measure(args):
    threads = [int(t) for t in args.threads.split(",")]
    if len(threads) > 1:
        # one process per thread count: TensorFlow and XLA size their pools once per process
        import subprocess
        import tempfile

        results = []
        for t in threads:
            with tempfile.NamedTemporaryFile(suffix=".json") as f:
                cmd = [sys.executable, __file__, "--threads", str(t), "--min-time", str(args.min_time), "--json", f.name]
                if args.case:
                    cmd += ["--case", args.case]
                subprocess.run(cmd, check=True)
                results += json.load(open(f.name))
        return results
    return measure_threads(args, threads[0])


def measure_threads(args, threads):
    if threads == 1 and hasattr(os, "sched_setaffinity"):
        # one CPU for the whole process: XLA (JAX) sizes its pool by the cores it may use and
        # ignores its thread flags (unpinned, JAX's "1 thread" ran on two)
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    wanted = set(args.case.split(",")) if args.case else None
    results = []
    rng = np.random.default_rng(7)
    peers = {}
    for name, factory in PEERS:
        try:
            peers[name] = factory(threads)
        except Exception as e:  # not installed (or broken): skip this peer
            print(f"# {name}: skipped ({type(e).__name__}: {e})", file=sys.stderr)
    for case, kind, geo, shape, pass_ in CASES:
        if wanted and case not in wanted:
            continue
        x = rng.uniform(-1, 1, size=shape).astype(np.float32)
        wants = {}
        for peer, make in peers.items():
            for layout in ("nchw", "nhwc"):
                made = make(kind, geo, x, layout, pass_)
                if made is None:
                    continue
                fn, output = made
                rule = oracle_rule(peer, kind)
                if output is not None and rule not in wants:
                    wants[rule] = numpy_pool(x, kind, geo, **dict(rule))
                if output is not None and not agree(output(), wants[rule], kind):
                    print(f"# {peer} {case} {layout}: wrong result, not timed", file=sys.stderr)
                    continue
                med, low = timed(fn, args.min_time)
                row = dict(peer=peer, case=case, layout=layout, threads=threads, median_ms=med, min_ms=low)
                results.append(row)
                print(f"{peer:12} {case:22} {layout:5} {threads:2}  {med:9.3f} ms  (min {low:.3f})", flush=True)
    return results


def oracle_rule(peer, kind):
    """What the peer is asked to compute (`numpy_pool` options): PyTorch's rule, except where
    TensorFlow has no explicit padding (3-D max: SAME pads (0, 1); averages: SAME, in-bounds
    taps only)."""
    if peer == "tensorflow" and kind == "max3d":
        return (("pads", (0, 1)),)
    if peer == "tensorflow" and kind == "avg":
        return (("include_pad", False),)
    return ()


if __name__ == "__main__":
    main()
