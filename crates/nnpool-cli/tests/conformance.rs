//! Runs every public PyTorch reference case in `tests/conformance/cases.jsonl` through the
//! `nnpool` binary, with the comparison rules of the corpus's `run.py`: same dtype and shape,
//! NaN positions equal, ±inf equal, finite values within `atol + rtol·|expected|`, integers
//! equal; an expected error must exit non-zero with a message and leave no output behind.

use nnpool_cli::npy::{self, Data, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

fn as_f64(d: &Data) -> Option<Vec<f64>> {
    Some(match d {
        Data::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
        Data::F32(v) => v.iter().map(|&x| x as f64).collect(),
        Data::F64(v) => v.clone(),
        _ => return None,
    })
}

fn as_i128(d: &Data) -> Vec<i128> {
    match d {
        Data::I8(v) => v.iter().map(|&x| x as i128).collect(),
        Data::I16(v) => v.iter().map(|&x| x as i128).collect(),
        Data::I32(v) => v.iter().map(|&x| x as i128).collect(),
        Data::I64(v) => v.iter().map(|&x| x as i128).collect(),
        Data::U8(v) => v.iter().map(|&x| x as i128).collect(),
        Data::U16(v) => v.iter().map(|&x| x as i128).collect(),
        Data::U32(v) => v.iter().map(|&x| x as i128).collect(),
        Data::U64(v) => v.iter().map(|&x| x as i128).collect(),
        _ => unreachable!("floats are compared as floats"),
    }
}

/// ONNX MaxPool indices are flat over the whole tensor; reduce them to plane-local indices.
fn convert_indices(t: &mut Tensor, conv: &Value) {
    let shape: Vec<usize> = conv["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let spatial = &shape[2..];
    let plane: i64 = spatial.iter().product::<usize>() as i64;
    let column_major = conv.get("storage_order").and_then(Value::as_i64) == Some(1);
    if let Data::I64(v) = &mut t.data {
        for x in v.iter_mut() {
            let mut r = *x % plane;
            if column_major {
                let mut coords = vec![0i64; spatial.len()];
                let mut rem = r;
                for (i, &s) in spatial.iter().enumerate() {
                    coords[i] = rem % s as i64;
                    rem /= s as i64;
                }
                r = coords
                    .iter()
                    .zip(spatial)
                    .fold(0, |acc, (&c, &s)| acc * s as i64 + c);
            }
            *x = r;
        }
    }
}

fn compare(actual: &Tensor, expected: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if actual.data.dtype_name() != expected.data.dtype_name() {
        return Err(format!(
            "dtype {} != expected {}",
            actual.data.dtype_name(),
            expected.data.dtype_name()
        ));
    }
    if actual.shape != expected.shape {
        return Err(format!(
            "shape {:?} != expected {:?}",
            actual.shape, expected.shape
        ));
    }
    if let (Some(a), Some(e)) = (as_f64(&actual.data), as_f64(&expected.data)) {
        for (i, (&a, &e)) in a.iter().zip(&e).enumerate() {
            let ok = if e.is_nan() {
                a.is_nan()
            } else if e.is_infinite() {
                a == e
            } else {
                a.is_finite() && (a - e).abs() <= atol + rtol * e.abs()
            };
            if !ok {
                return Err(format!("element {i}: got {a}, expected {e}"));
            }
        }
        return Ok(());
    }
    let (a, e) = (as_i128(&actual.data), as_i128(&expected.data));
    match a.iter().zip(&e).position(|(x, y)| x != y) {
        Some(i) => Err(format!("element {i}: got {}, expected {}", a[i], e[i])),
        None => Ok(()),
    }
}

fn run_case(case: &Value, dir: &Path) -> Result<(), String> {
    let root = corpus();
    let mut paths = std::collections::HashMap::new();
    if let Some(files) = case["files"].as_object() {
        for (ph, rel) in files {
            let dst = dir.join(format!("{ph}.npy"));
            if let Some(rel) = rel.as_str() {
                std::fs::copy(root.join(rel), &dst).map_err(|e| format!("corpus: {e}"))?;
            }
            paths.insert(ph.clone(), dst);
        }
    }
    let mut outs: Vec<String> = case["outputs"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    if let Some(exp) = case["expect"].as_object() {
        outs.extend(
            exp.keys()
                .filter(|k| !outs.contains(k))
                .cloned()
                .collect::<Vec<_>>(),
        );
    }
    for ph in &outs {
        paths.insert(ph.clone(), dir.join(format!("{ph}.npy")));
    }
    let argv: Vec<String> = case["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let mut t = t.as_str().unwrap().to_string();
            for (ph, p) in &paths {
                t = t.replace(&format!("{{{ph}}}"), p.to_str().unwrap());
            }
            t
        })
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_nnpool"))
        .args(&argv)
        .current_dir(dir)
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if case["expect"] == "error" {
        if out.status.success() {
            return Err("expected a non-zero exit, got 0".into());
        }
        if out.status.code().is_none() {
            return Err("killed by a signal".into());
        }
        if let Some(w) = outs.iter().find(|ph| paths[*ph].exists()) {
            return Err(format!("left output {{{w}}} behind"));
        }
        if stderr.trim().is_empty() || stderr.contains("panicked") {
            return Err(format!("bad error message: {stderr:?}"));
        }
        return Ok(());
    }
    if !out.status.success() {
        return Err(format!("exit {:?}: {stderr}", out.status.code()));
    }
    let rtol = case["tolerance"]["rtol"].as_f64().unwrap_or(0.0);
    let atol = case["tolerance"]["atol"].as_f64().unwrap_or(0.0);
    for (ph, rel) in case["expect"].as_object().unwrap() {
        let actual = npy::read(&paths[ph]).map_err(|e| format!("{{{ph}}}: {e}"))?;
        let mut expected =
            npy::read(&root.join(rel.as_str().unwrap())).map_err(|e| e.to_string())?;
        if let Some(conv) = case.get("index_conversion").and_then(|c| c.get(ph)) {
            if conv
                .get("applied")
                .and_then(Value::as_str)
                .unwrap_or("by-runner")
                == "by-runner"
            {
                convert_indices(&mut expected, conv);
            }
        }
        compare(&actual, &expected, rtol, atol).map_err(|e| format!("{{{ph}}}: {e}"))?;
    }
    Ok(())
}

#[test]
fn public_pytorch_reference_cases() {
    let text =
        std::fs::read_to_string(corpus().join("cases.jsonl")).expect("cases.jsonl is committed");
    let cases: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(cases.len() >= 378, "the corpus has {} cases", cases.len());
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut run = 0;
    for (i, case) in cases.iter().enumerate() {
        if case.get("skip").is_some() || case.get("optional").is_some() {
            continue;
        }
        let dir = tmp.path().join(i.to_string());
        std::fs::create_dir(&dir).unwrap();
        run += 1;
        if let Err(e) = run_case(case, &dir) {
            failures.push(format!(
                "{} [{}]: {e}",
                case["id"].as_str().unwrap(),
                case["category"].as_str().unwrap()
            ));
        }
    }
    println!(
        "conformance: {} passed, {} failed",
        run - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {run} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
