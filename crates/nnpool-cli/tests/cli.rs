//! The `nnpool` command as a user runs it: the demo, shape explanations, the benchmark, and
//! the CLI contract's error behaviour (exit code, one-line message, no partial output).

use std::process::Command;

fn nnpool(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nnpool"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_computes_the_lecture_numbers() {
    let (code, out, _) = nnpool(&["demo"]);
    assert_eq!(code, 0);
    assert!(out.contains("max(1, 1, 5, 6) = 6"), "{out}");
    assert!(out.contains("mean(1, 1, 5, 6) = 3.25"), "{out}");
    assert!(out.contains("edge response at column 2: 2 -> 0"), "{out}");
    assert!(out.contains("2 -> 2  (survives the shift)"), "{out}");
    assert!(out.contains("learnable parameters: 0"), "{out}");
    assert!(out.contains("fewer by 4x"), "{out}");
    let (code, out, _) = nnpool(&["demo", "--lang", "zh"]);
    assert_eq!(code, 0);
    assert!(out.contains("最大池化"), "{out}");
    let (code, _, err) = nnpool(&["demo", "--lang", "fr"]);
    assert_eq!(code, 1);
    assert!(err.contains("--lang"));
}

#[test]
fn shape_explains_formulas_rules_and_chains() {
    let (code, out, _) = nnpool(&[
        "shape",
        "--input",
        "1,64,112,112",
        "--op",
        "max",
        "--kernel-size",
        "3",
        "--stride",
        "2",
        "--padding",
        "1",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("[1, 64, 56, 56]"), "{out}");
    assert!(out.contains("(112 - 3 + 2*1) / 2 + 1"), "{out}");
    // the ceil_mode start-inside rule, spelled out when it drops a window
    let (code, out, _) = nnpool(&[
        "shape",
        "--input",
        "1,1,5",
        "--op",
        "avg",
        "--kernel-size",
        "2",
        "--stride",
        "2",
        "--padding",
        "1",
        "--ceil-mode",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("dropped: m = 3"), "{out}");
    // an invalid padding names the rule and the valid range
    let (code, out, err) = nnpool(&[
        "shape",
        "--input",
        "1,1,6,6",
        "--op",
        "max",
        "--kernel-size",
        "3",
        "--padding",
        "2",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("padding <= [1, 1]"), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // a kernel larger than the image
    let (code, out, _) = nnpool(&[
        "shape",
        "--input",
        "1,1,6,6",
        "--op",
        "max",
        "--kernel-size",
        "7",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("at least the dilated kernel extent"), "{out}");
    // the ResNet stem as a chain
    let (code, out, _) = nnpool(&[
        "shape",
        "--input",
        "1,3,224,224",
        "--chain",
        "conv7x7/2p3:64 -> maxpool3x3/2p1 -> gap",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("[1, 64, 112, 112]")
            && out.contains("[1, 64, 56, 56]")
            && out.contains("output [1, 64, 1, 1]"),
        "{out}"
    );
    let (code, _, err) = nnpool(&["shape", "--input", "1,3,8,8", "--chain", "frobnicate3"]);
    assert_eq!(code, 1);
    assert!(err.contains("frobnicate3"));
}

#[test]
fn bench_runs_checks_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("b.json");
    let (code, out, err) = nnpool(&[
        "bench",
        "--case",
        "vgg_max_14,resnet_gap",
        "--layout",
        "both",
        "--threads",
        "1",
        "--min-time",
        "0.01",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("vgg_max_14") && out.contains("x copy"),
        "{out}"
    );
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in rows {
        for key in [
            "case",
            "layout",
            "threads",
            "median_ms",
            "min_ms",
            "gbps",
            "copy_ms",
        ] {
            assert!(r.get(key).is_some(), "missing {key} in {r}");
        }
        assert!(r["median_ms"].as_f64().unwrap() > 0.0 && r["copy_ms"].as_f64().unwrap() > 0.0);
    }
    let (code, _, err) = nnpool(&["bench", "--case", "no_such_case"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown case"));
}

#[test]
fn errors_are_one_line_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("y.npy");
    let (code, _, err) = nnpool(&[
        "forward",
        "--op",
        "max",
        "--kernel-size",
        "2",
        "missing.npy",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 3);
    assert_eq!(err.lines().count(), 1);
    assert!(!out.exists());
    let (code, _, err) = nnpool(&[
        "forward",
        "--op",
        "max",
        "--layout",
        "nchwc",
        "a.npy",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--layout"));
    let (code, _, err) = nnpool(&["forward", "--bogus-flag"]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn image_pools_each_channel() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    let img = image::RgbImage::from_fn(6, 4, |x, y| {
        image::Rgb([(x * 40) as u8, (y * 60) as u8, ((x + y) * 10) as u8])
    });
    img.save(&input).unwrap();
    let out = dir.path().join("out.png");
    let (code, _, err) = nnpool(&[
        "image",
        "--op",
        "max",
        "--kernel-size",
        "2",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let pooled = image::open(&out).unwrap().to_rgb8();
    assert_eq!(pooled.dimensions(), (3, 2));
    for (x, y, p) in pooled.enumerate_pixels() {
        let expect = [
            (2 * x + 1) * 40,
            (2 * y + 1) * 60,
            (2 * x + 1 + 2 * y + 1) * 10,
        ];
        assert_eq!(p.0, expect.map(|v| v as u8), "pixel ({x}, {y})");
    }
    // upscaled back to the input's size
    let (code, _, _) = nnpool(&[
        "image",
        "--op",
        "avg",
        "--kernel-size",
        "2",
        "--upscale",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert_eq!(image::open(&out).unwrap().to_rgb8().dimensions(), (6, 4));
    // bad input: missing file, not an image, kernel larger than the image
    let bad_out = dir.path().join("bad.png");
    let (code, _, _) = nnpool(&[
        "image",
        "--op",
        "max",
        "--kernel-size",
        "2",
        "missing.png",
        bad_out.to_str().unwrap(),
    ]);
    assert_eq!(code, 3);
    let text = dir.path().join("text.png");
    std::fs::write(&text, "not a picture").unwrap();
    let (code, _, err) = nnpool(&[
        "image",
        "--op",
        "max",
        "--kernel-size",
        "2",
        text.to_str().unwrap(),
        bad_out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = nnpool(&[
        "image",
        "--op",
        "max",
        "--kernel-size",
        "9",
        input.to_str().unwrap(),
        bad_out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("output size is too small"), "{err}");
    assert!(!bad_out.exists());
}
