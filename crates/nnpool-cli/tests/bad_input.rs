//! A table of bad inputs through the CLI. Every row must exit non-zero with a one-line message
//! on stderr, never panic, and leave no output file behind (nor touch an existing one).
//! Two unusual but legitimate inputs must work: Fortran-order arrays and output == input.

use nnpool_cli::npy;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A `.npy` file with a hand-written header (for malformed and exotic headers).
fn raw_npy(path: &Path, header: &str, data: &[u8]) {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

fn f32_npy(path: &Path, shape: &[usize]) {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
    let mut buf = Vec::new();
    npy::write_to(&mut buf, shape, &data).unwrap();
    std::fs::write(path, buf).unwrap();
}

fn typed_npy<T: npy::Storable>(path: &Path, shape: &[usize], v: T) {
    let n: usize = shape.iter().product();
    let mut buf = Vec::new();
    npy::write_to(&mut buf, shape, &vec![v; n]).unwrap();
    std::fs::write(path, buf).unwrap();
}

struct Case {
    name: &'static str,
    args: Vec<String>,
    outputs: Vec<PathBuf>,
}

#[test]
fn every_bad_input_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |n: &str| d.join(n);
    let s = |x: &Path| x.to_str().unwrap().to_string();
    // inputs
    f32_npy(&p("x4.npy"), &[1, 2, 6, 6]);
    f32_npy(&p("x3.npy"), &[1, 2, 9]);
    f32_npy(&p("x1.npy"), &[9]);
    f32_npy(&p("gy_bad.npy"), &[1, 2, 2, 2]);
    typed_npy(&p("gy_f64.npy"), &[1, 2, 3, 3], 1.0f64);
    typed_npy(&p("xi.npy"), &[1, 2, 6, 6], 3i32);
    typed_npy(&p("samples_bad.npy"), &[1, 2, 3], 0.5f32);
    typed_npy(&p("samples_f64.npy"), &[1, 2, 2], 0.5f64);
    typed_npy(&p("idx_big.npy"), &[1, 2, 3, 3], 99i64);
    typed_npy(&p("idx_small.npy"), &[1, 2, 2, 2], 0i64);
    typed_npy(&p("idx_float.npy"), &[1, 2, 3, 3], 0.0f32);
    f32_npy(&p("y33.npy"), &[1, 2, 3, 3]);
    let full = std::fs::read(p("x4.npy")).unwrap();
    std::fs::write(p("trunc_header.npy"), &full[..20]).unwrap();
    std::fs::write(p("trunc_data.npy"), &full[..full.len() - 5]).unwrap();
    std::fs::write(p("magic.npy"), b"NOTNUMPY\x01\x00\x10\x00{'descr': '<f4'}").unwrap();
    std::fs::write(p("empty.npy"), b"").unwrap();
    let f = "'fortran_order': False";
    raw_npy(
        &p("version.npy"),
        &format!("{{'descr': '<f4', {f}, 'shape': (2,), }}"),
        &[0; 8],
    );
    let mut v = std::fs::read(p("version.npy")).unwrap();
    v[6] = 9;
    std::fs::write(p("version.npy"), v).unwrap();
    raw_npy(&p("notdict.npy"), "this is not a python dict", &[]);
    raw_npy(
        &p("object.npy"),
        &format!("{{'descr': '|O', {f}, 'shape': (2,), }}"),
        &[0; 16],
    );
    raw_npy(
        &p("complex.npy"),
        &format!("{{'descr': '<c8', {f}, 'shape': (1, 1, 2, 2), }}"),
        &[0; 32],
    );
    raw_npy(
        &p("string.npy"),
        &format!("{{'descr': '<U3', {f}, 'shape': (1, 1, 2, 2), }}"),
        &[0; 48],
    );
    raw_npy(
        &p("bool.npy"),
        &format!("{{'descr': '|b1', {f}, 'shape': (1, 1, 2, 2), }}"),
        &[0; 4],
    );
    raw_npy(
        &p("overflow.npy"),
        &format!("{{'descr': '<f4', {f}, 'shape': (4294967296, 4294967296, 16), }}"),
        &[0; 16],
    );
    raw_npy(
        &p("huge.npy"),
        &format!("{{'descr': '<f4', {f}, 'shape': (1, 1, 100000, 100000), }}"),
        &[0; 16],
    );
    raw_npy(
        &p("negshape.npy"),
        &format!("{{'descr': '<f4', {f}, 'shape': (-1, 4), }}"),
        &[0; 16],
    );
    raw_npy(
        &p("scalar.npy"),
        &format!("{{'descr': '<f4', {f}, 'shape': (), }}"),
        &[0; 4],
    );
    raw_npy(
        &p("zerodim.npy"),
        &format!("{{'descr': '<f4', {f}, 'shape': (1, 0, 4, 4), }}"),
        &[],
    );
    raw_npy(
        &p("rank7.npy"),
        &format!("{{'descr': '<f4', {f}, 'shape': (1, 1, 1, 1, 1, 2, 2), }}"),
        &[0; 16],
    );
    std::fs::create_dir(p("isdir.npy")).unwrap();
    let out = p("out.npy");
    let idx = p("idx_out.npy");
    let fwd = |extra: &[&str], input: &str| -> Vec<String> {
        let mut a: Vec<String> = vec!["forward".into()];
        a.extend(extra.iter().map(|x| x.to_string()));
        a.push(s(&p(input)));
        a.push(s(&out));
        a
    };
    let max2 = ["--op", "max", "--kernel-size", "2,2"];
    let mut cases = vec![
        Case {
            name: "truncated header",
            args: fwd(&max2, "trunc_header.npy"),
            outputs: vec![],
        },
        Case {
            name: "truncated data",
            args: fwd(&max2, "trunc_data.npy"),
            outputs: vec![],
        },
        Case {
            name: "bad magic",
            args: fwd(&max2, "magic.npy"),
            outputs: vec![],
        },
        Case {
            name: "empty file",
            args: fwd(&max2, "empty.npy"),
            outputs: vec![],
        },
        Case {
            name: "unknown format version",
            args: fwd(&max2, "version.npy"),
            outputs: vec![],
        },
        Case {
            name: "header is not a dict",
            args: fwd(&max2, "notdict.npy"),
            outputs: vec![],
        },
        Case {
            name: "object dtype",
            args: fwd(&max2, "object.npy"),
            outputs: vec![],
        },
        Case {
            name: "complex dtype",
            args: fwd(&max2, "complex.npy"),
            outputs: vec![],
        },
        Case {
            name: "string dtype",
            args: fwd(&max2, "string.npy"),
            outputs: vec![],
        },
        Case {
            name: "bool dtype",
            args: fwd(&max2, "bool.npy"),
            outputs: vec![],
        },
        Case {
            name: "element count overflows usize",
            args: fwd(&max2, "overflow.npy"),
            outputs: vec![],
        },
        Case {
            name: "shape larger than the data",
            args: fwd(&max2, "huge.npy"),
            outputs: vec![],
        },
        Case {
            name: "negative dimension",
            args: fwd(&max2, "negshape.npy"),
            outputs: vec![],
        },
        Case {
            name: "0-d input",
            args: fwd(&["--op", "max", "--kernel-size", "2"], "scalar.npy"),
            outputs: vec![],
        },
        Case {
            name: "zero-size channel dim",
            args: fwd(&max2, "zerodim.npy"),
            outputs: vec![],
        },
        Case {
            name: "rank too large",
            args: fwd(&["--op", "max", "--kernel-size", "2"], "rank7.npy"),
            outputs: vec![],
        },
        Case {
            name: "rank too small for the kernel",
            args: fwd(&max2, "x1.npy"),
            outputs: vec![],
        },
        Case {
            name: "input is a directory",
            args: fwd(&max2, "isdir.npy"),
            outputs: vec![],
        },
        Case {
            name: "missing input",
            args: fwd(&max2, "nope.npy"),
            outputs: vec![],
        },
        Case {
            name: "unknown op",
            args: fwd(&["--op", "median", "--kernel-size", "2"], "x4.npy"),
            outputs: vec![],
        },
        Case {
            name: "missing kernel",
            args: fwd(&["--op", "max"], "x4.npy"),
            outputs: vec![],
        },
        Case {
            name: "kernel 0",
            args: fwd(&["--op", "max", "--kernel-size", "0"], "x4.npy"),
            outputs: vec![],
        },
        Case {
            name: "kernel not a number",
            args: fwd(&["--op", "max", "--kernel-size", "3,a"], "x4.npy"),
            outputs: vec![],
        },
        Case {
            name: "stride 0",
            args: fwd(
                &["--op", "max", "--kernel-size", "2", "--stride", "0"],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "negative stride",
            args: fwd(
                &["--op", "avg", "--kernel-size", "2", "--stride", "-1"],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "stride count",
            args: fwd(
                &["--op", "max", "--kernel-size", "2,2", "--stride", "1,1,1"],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "negative padding",
            args: fwd(
                &["--op", "max", "--kernel-size", "2", "--padding", "-1"],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "padding over half the kernel",
            args: fwd(
                &["--op", "max", "--kernel-size", "3", "--padding", "2"],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "dilation 0",
            args: fwd(
                &["--op", "max", "--kernel-size", "2", "--dilation", "0"],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "kernel larger than the input",
            args: fwd(&["--op", "max", "--kernel-size", "7"], "x4.npy"),
            outputs: vec![],
        },
        Case {
            name: "pads count",
            args: fwd(
                &["--op", "max", "--kernel-size", "2,2", "--pads", "1,1,1"],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "padding and pads together",
            args: fwd(
                &[
                    "--op",
                    "max",
                    "--kernel-size",
                    "2,2",
                    "--padding",
                    "0",
                    "--pads",
                    "0,0,0,0",
                ],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "unknown auto_pad",
            args: fwd(
                &["--op", "max", "--kernel-size", "2", "--auto-pad", "same"],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "ceil_mode with SAME",
            args: fwd(
                &[
                    "--op",
                    "max",
                    "--kernel-size",
                    "2",
                    "--auto-pad",
                    "same-upper",
                    "--ceil-mode",
                ],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "bad count_include_pad",
            args: fwd(
                &[
                    "--op",
                    "avg",
                    "--kernel-size",
                    "2",
                    "--count-include-pad",
                    "maybe",
                ],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "divisor 0",
            args: fwd(
                &[
                    "--op",
                    "avg",
                    "--kernel-size",
                    "2",
                    "--divisor-override",
                    "0",
                ],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "norm_type 0",
            args: fwd(
                &["--op", "lp", "--kernel-size", "2", "--norm-type", "0"],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            // PyTorch's formula takes negative p; ONNX's norm does not.
            name: "norm_type negative for onnx",
            args: fwd(
                &[
                    "--op",
                    "lp",
                    "--kernel-size",
                    "2",
                    "--norm-type",
                    "-2",
                    "--lp-variant",
                    "onnx",
                ],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "norm_type nan",
            args: fwd(
                &["--op", "lp", "--kernel-size", "2", "--norm-type", "nan"],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "norm_type not a number",
            args: fwd(
                &["--op", "lp", "--kernel-size", "2", "--norm-type", "two"],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "average of integers",
            args: fwd(&["--op", "avg", "--kernel-size", "2"], "xi.npy"),
            outputs: vec![],
        },
        Case {
            name: "adaptive output 0",
            args: fwd(&["--op", "adaptive-avg", "--output-size", "0,3"], "x4.npy"),
            outputs: vec![],
        },
        Case {
            name: "adaptive without output size",
            args: fwd(&["--op", "adaptive-max"], "x4.npy"),
            outputs: vec![],
        },
        Case {
            name: "option that does not apply",
            args: fwd(
                &["--op", "max", "--kernel-size", "2", "--norm-type", "2"],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "bad layout",
            args: fwd(
                &["--op", "max", "--kernel-size", "2", "--layout", "nchwc"],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "indices for avg",
            args: {
                let mut a = fwd(
                    &["--op", "avg", "--kernel-size", "2", "--indices"],
                    "x4.npy",
                );
                a.insert(6, s(&idx));
                a
            },
            outputs: vec![idx.clone()],
        },
        Case {
            name: "fractional too large",
            args: fwd(
                &[
                    "--op",
                    "fractional-max",
                    "--kernel-size",
                    "3",
                    "--output-size",
                    "5",
                ],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "samples shape",
            args: fwd(
                &[
                    "--op",
                    "fractional-max",
                    "--kernel-size",
                    "2",
                    "--output-size",
                    "3",
                    "--samples",
                    &s(&p("samples_bad.npy")),
                ],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "samples dtype",
            args: fwd(
                &[
                    "--op",
                    "fractional-max",
                    "--kernel-size",
                    "2",
                    "--output-size",
                    "3",
                    "--samples",
                    &s(&p("samples_f64.npy")),
                ],
                "x4.npy",
            ),
            outputs: vec![],
        },
        Case {
            name: "output in a missing directory",
            args: vec![
                "forward".into(),
                "--op".into(),
                "max".into(),
                "--kernel-size".into(),
                "2".into(),
                s(&p("x4.npy")),
                s(&p("no/such/dir/y.npy")),
            ],
            outputs: vec![p("no/such/dir/y.npy")],
        },
        Case {
            name: "output is a directory",
            args: vec![
                "forward".into(),
                "--op".into(),
                "max".into(),
                "--kernel-size".into(),
                "2".into(),
                s(&p("x4.npy")),
                s(&p("isdir.npy")),
            ],
            outputs: vec![],
        },
        Case {
            name: "grad_output shape",
            args: vec![
                "backward".into(),
                "--op".into(),
                "max".into(),
                "--kernel-size".into(),
                "2".into(),
                "--grad-output".into(),
                s(&p("gy_bad.npy")),
                s(&p("x4.npy")),
                s(&out),
            ],
            outputs: vec![],
        },
        Case {
            name: "grad_output dtype",
            args: vec![
                "backward".into(),
                "--op".into(),
                "max".into(),
                "--kernel-size".into(),
                "2".into(),
                "--grad-output".into(),
                s(&p("gy_f64.npy")),
                s(&p("x4.npy")),
                s(&out),
            ],
            outputs: vec![],
        },
        Case {
            name: "backward of integers",
            args: vec![
                "backward".into(),
                "--op".into(),
                "max".into(),
                "--kernel-size".into(),
                "2".into(),
                "--grad-output".into(),
                s(&p("y33.npy")),
                s(&p("xi.npy")),
                s(&out),
            ],
            outputs: vec![],
        },
        Case {
            name: "unpool index out of range",
            args: vec![
                "unpool".into(),
                "--kernel-size".into(),
                "2,2".into(),
                "--indices".into(),
                s(&p("idx_big.npy")),
                s(&p("y33.npy")),
                s(&out),
            ],
            outputs: vec![],
        },
        Case {
            name: "unpool indices shape",
            args: vec![
                "unpool".into(),
                "--kernel-size".into(),
                "2,2".into(),
                "--indices".into(),
                s(&p("idx_small.npy")),
                s(&p("y33.npy")),
                s(&out),
            ],
            outputs: vec![],
        },
        Case {
            name: "unpool float indices",
            args: vec![
                "unpool".into(),
                "--kernel-size".into(),
                "2,2".into(),
                "--indices".into(),
                s(&p("idx_float.npy")),
                s(&p("y33.npy")),
                s(&out),
            ],
            outputs: vec![],
        },
        Case {
            name: "unpool output size out of range",
            args: vec![
                "unpool".into(),
                "--kernel-size".into(),
                "2,2".into(),
                "--output-size".into(),
                "2,2".into(),
                "--indices".into(),
                s(&p("idx_small.npy")),
                s(&p("y33.npy")),
                s(&out),
            ],
            outputs: vec![],
        },
        Case {
            name: "unknown flag",
            args: vec!["forward".into(), "--frobnicate".into()],
            outputs: vec![],
        },
    ];
    assert!(cases.len() >= 40, "{} rows", cases.len());
    // an existing output must survive a failure untouched
    std::fs::write(&out, b"precious").unwrap();
    for c in cases.iter_mut() {
        c.outputs.push(out.clone());
        let r = Command::new(env!("CARGO_BIN_EXE_nnpool"))
            .args(&c.args)
            .current_dir(d)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{}: exited 0", c.name);
        assert!(r.status.code().is_some(), "{}: killed by a signal", c.name);
        assert!(!err.contains("panicked"), "{}: panicked: {err}", c.name);
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{}: message is not one line: {err:?}",
            c.name
        );
        assert!(err.starts_with("nnpool: error: "), "{}: {err}", c.name);
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"precious",
            "{}: touched the existing output",
            c.name
        );
        for o in &c.outputs[..c.outputs.len() - 1] {
            assert!(!o.exists(), "{}: left {o:?} behind", c.name);
        }
        let stray: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("nnpool-tmp"))
            .collect();
        assert!(stray.is_empty(), "{}: left temporary files", c.name);
    }
}

#[test]
fn fortran_order_and_in_place_output_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // a 2x3 float array, C order vs the same array stored column-major
    let c_path = d.join("c.npy");
    let mut buf = Vec::new();
    npy::write_to(&mut buf, &[1, 1, 2, 3], &[1.0f32, 5., 2., 4., 3., 6.]).unwrap();
    std::fs::write(&c_path, &buf).unwrap();
    let f_path = d.join("f.npy");
    let col_major: Vec<u8> = [1.0f32, 4., 5., 3., 2., 6.]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    raw_npy(
        &f_path,
        "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1, 2, 3), }",
        &col_major,
    );
    let run = |input: &Path, output: &Path| {
        let r = Command::new(env!("CARGO_BIN_EXE_nnpool"))
            .args([
                "forward",
                "--op",
                "max",
                "--kernel-size",
                "2",
                "--stride",
                "1",
                input.to_str().unwrap(),
                output.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        npy::read(output).unwrap()
    };
    let a = run(&c_path, &d.join("a.npy"));
    let b = run(&f_path, &d.join("b.npy"));
    assert_eq!(a, b);
    assert_eq!(a.data, npy::Data::F32(vec![5.0, 6.0]));
    // output path == input path: read fully, then replace atomically
    let same = run(&c_path, &c_path);
    assert_eq!(same, a);
}
