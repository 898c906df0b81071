//! The `nnpool` command as a user runs it: the demo, shape explanations, the benchmark, and
//! the CLI contract's error behaviour (exit code, one-line message, no partial output).

use std::process::Command;

fn nnpool(args: &[&str]) -> (i32, String, String) {
    nnpool_in(std::path::Path::new("."), args)
}

/// Runs the command with `dir` as its working folder (the demo writes its pictures there).
fn nnpool_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nnpool"))
        .args(args)
        .current_dir(dir)
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
    let (code, out, _) = nnpool(&["demo", "--no-pictures"]);
    assert_eq!(code, 0);
    assert!(out.contains("max(1, 1, 5, 6) = 6"), "{out}");
    assert!(out.contains("mean(1, 1, 5, 6) = 3.25"), "{out}");
    assert!(out.contains("edge response at column 2: 2 -> 0"), "{out}");
    assert!(out.contains("2 -> 2  (survives the shift)"), "{out}");
    assert!(out.contains("learnable parameters: 0"), "{out}");
    assert!(out.contains("fewer by 4x"), "{out}");
    let (code, out, _) = nnpool(&["demo", "--lang", "zh", "--no-pictures"]);
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

#[test]
fn demo_writes_pictures_and_one_self_contained_page() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = nnpool_in(dir.path(), &["demo"]);
    assert_eq!(code, 0, "{err}");
    let folder = dir.path().join("nnpool-demo");
    assert!(out.contains("nnpool-demo/index.html"), "{out}");
    let html = std::fs::read_to_string(folder.join("index.html")).unwrap();
    assert_eq!(
        html.matches("<h2>").count(),
        6,
        "one section per claim + the photograph"
    );
    let pngs = [
        "1-edge-shift.png",
        "2-max-avg.png",
        "3-channels.png",
        "4-computation.png",
        "5-output-size.png",
        "6-photo-edges.png",
        "7-shift-tolerance.png",
    ];
    // every picture is inlined (the page needs no other file) and also written beside it
    assert_eq!(
        html.matches("src=\"data:image/png;base64,").count(),
        pngs.len()
    );
    for name in pngs {
        assert!(html.contains(&format!("href=\"{name}\"")), "{name}");
        let img = image::open(folder.join(name)).unwrap();
        assert!(img.width() >= 100 && img.height() >= 60, "{name}");
    }
    assert!(html.contains("max(1, 1, 5, 6) = 6"));
    // never overwrite: a second run picks a new folder; an --out folder with files needs --force
    let (code, _, _) = nnpool_in(dir.path(), &["demo"]);
    assert_eq!(code, 0);
    assert!(dir.path().join("nnpool-demo-2/index.html").exists());
    let before = std::fs::metadata(folder.join("index.html"))
        .unwrap()
        .modified()
        .unwrap();
    let (code, _, err) = nnpool_in(dir.path(), &["demo", "--out", "nnpool-demo"]);
    assert_eq!(code, 3);
    assert!(err.contains("--force"), "{err}");
    let after = std::fs::metadata(folder.join("index.html"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
    let (code, _, err) = nnpool_in(
        dir.path(),
        &["demo", "--out", "nnpool-demo", "--force", "--lang", "zh"],
    );
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(folder.join("index.html")).unwrap();
    assert!(html.contains("lang=\"zh\"") && html.contains("最大池化"));
    // --out naming a file is refused
    std::fs::write(dir.path().join("plain"), "x").unwrap();
    let (code, _, err) = nnpool_in(dir.path(), &["demo", "--out", "plain"]);
    assert_eq!(code, 3, "{err}");
    // text only writes nothing
    let empty = tempfile::tempdir().unwrap();
    let (code, _, _) = nnpool_in(empty.path(), &["demo", "--no-pictures"]);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

#[test]
fn invariance_measures_the_built_in_photograph() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = nnpool_in(dir.path(), &["invariance", "--max-shift", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("astronaut"), "{out}");
    assert!(out.contains("no pooling") && out.contains("max 2x2/2") && out.contains("avg 4x4/4"));
    // shift 0 compares a map with itself
    let row0 = out
        .lines()
        .find(|l| l.trim_start().starts_with("0 "))
        .unwrap();
    assert_eq!(row0.matches("1.000").count(), 5, "{row0}");
    let plot = image::open(dir.path().join("invariance.png")).unwrap();
    assert!(plot.width() > 400);
    // the plot is not replaced without --force
    let (code, _, err) = nnpool_in(dir.path(), &["invariance", "--max-shift", "1"]);
    assert_eq!(code, 3);
    assert!(err.contains("--force"), "{err}");
    let (code, _, _) = nnpool_in(dir.path(), &["invariance", "--max-shift", "1", "--force"]);
    assert_eq!(code, 0);
}

#[test]
fn invariance_on_a_given_picture_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    // vertical stripes of period 4: a 4-pixel shift reproduces every edge map exactly
    let stripes = dir.path().join("stripes.png");
    image::GrayImage::from_fn(40, 16, |x, _| {
        image::Luma([if x % 4 < 2 { 255 } else { 0 }])
    })
    .save(&stripes)
    .unwrap();
    let plot = dir.path().join("p.png");
    let (code, out, err) = nnpool(&[
        "invariance",
        stripes.to_str().unwrap(),
        "--max-shift",
        "4",
        "--windows",
        "2",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let row4 = out
        .lines()
        .find(|l| l.trim_start().starts_with("4 "))
        .unwrap();
    assert_eq!(row4.matches("1.000").count(), 3, "{row4}");
    assert!(plot.exists());
    let missing = dir.path().join("missing.png");
    let (code, _, _) = nnpool(&["invariance", missing.to_str().unwrap(), "--no-plot"]);
    assert_eq!(code, 3);
    let text = dir.path().join("text.png");
    std::fs::write(&text, "not a picture").unwrap();
    let (code, _, err) = nnpool(&["invariance", text.to_str().unwrap(), "--no-plot"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a readable"), "{err}");
    let bad_plot = dir.path().join("bad.png");
    let (code, _, err) = nnpool(&[
        "invariance",
        stripes.to_str().unwrap(),
        "--windows",
        "64",
        "--plot",
        bad_plot.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--windows 64"), "{err}");
    assert!(!bad_plot.exists());
    let (code, _, err) = nnpool(&[
        "invariance",
        stripes.to_str().unwrap(),
        "--max-shift",
        "39",
        "--no-plot",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--max-shift"), "{err}");
    let (code, _, err) = nnpool(&["invariance", "--windows", "2,zero", "--no-plot"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--windows"), "{err}");
}
