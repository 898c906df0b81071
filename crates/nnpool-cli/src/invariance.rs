//! `nnpool invariance`: the lecture's central claim measured on a photograph. The picture is
//! shifted right by 0..=S pixels; each shifted copy goes through the lecture's vertical-edge
//! kernel `[[1,-1],[1,-1]]` (edge strength = |response|), then optionally through max or average
//! pooling with window k and stride k. Each result is compared with the unshifted one at the
//! same positions — what the next layer sees — by cosine similarity and by the fraction of
//! values that are exactly unchanged.

use crate::figure::{self, Canvas, Series, PALETTE};
use crate::Failure;
use ndarray::{s, Array2, Axis};
use nnpool::{Layout, Pooling, Window};
use std::path::{Path, PathBuf};

/// NASA's public-domain photograph of Eileen Collins, as scikit-image ships it (see
/// `assets/README.md`).
pub const ASTRONAUT_PNG: &[u8] = include_bytes!("../assets/astronaut.png");

#[derive(clap::Args, Debug, Clone)]
pub struct InvarianceArgs {
    /// The photograph (PNG or JPEG); default: the built-in astronaut photograph (NASA, public
    /// domain).
    pub image: Option<PathBuf>,
    /// Largest shift, in pixels (shifts 0..=S are measured).
    #[arg(long, default_value_t = 8, value_name = "S")]
    pub max_shift: usize,
    /// Pooling windows to compare (each k×k with stride k), e.g. 2,4.
    #[arg(long, default_value = "2,4", value_name = "K,..")]
    pub windows: String,
    /// Where to draw the line plot (PNG).
    #[arg(long, default_value = "invariance.png", value_name = "FILE.png")]
    pub plot: PathBuf,
    /// Print the table only; draw no plot.
    #[arg(long)]
    pub no_plot: bool,
    /// Replace the plot file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// How one kind of map (no pooling, or one pooling) changes with the shift.
pub struct Column {
    pub label: String,
    /// Cosine similarity to the unshifted map, per shift.
    pub cosine: Vec<f64>,
    /// Fraction of positions whose value is exactly unchanged, per shift.
    pub unchanged: Vec<f64>,
}

pub struct Measurement {
    pub shifts: Vec<usize>,
    pub columns: Vec<Column>,
    /// Size of the unpooled edge maps compared (rows, cols).
    pub edge_dims: (usize, usize),
}

/// Decodes a photograph (or the built-in one) into luminance in [0, 1], rows × cols.
pub fn load_gray(path: Option<&Path>) -> Result<(Array2<f32>, String), Failure> {
    let (img, name) = match path {
        None => (
            image::load_from_memory(ASTRONAUT_PNG)
                .map_err(|e| Failure::invalid(format!("built-in photograph: {e}")))?,
            "built-in astronaut photograph (NASA, public domain)".to_string(),
        ),
        Some(p) => {
            let reader = image::ImageReader::open(p)
                .map_err(|e| Failure::Io(format!("{}: cannot read: {e}", p.display())))?
                .with_guessed_format()
                .map_err(|e| Failure::Io(format!("{}: cannot read: {e}", p.display())))?;
            let img = reader.decode().map_err(|e| {
                Failure::invalid(format!(
                    "{}: not a readable PNG or JPEG image: {e}",
                    p.display()
                ))
            })?;
            (img, p.display().to_string())
        }
    };
    let luma = img.to_luma32f();
    let (w, h) = (luma.width() as usize, luma.height() as usize);
    let gray = Array2::from_shape_vec((h, w), luma.into_raw())
        .map_err(|e| Failure::invalid(format!("{name}: {e}")))?;
    Ok((gray, name))
}

/// |x ⋆ [[1,-1],[1,-1]]| over the valid region: the strength of vertical edges.
pub fn vertical_edges(x: &Array2<f32>) -> Array2<f32> {
    let (h, w) = x.dim();
    if h < 2 || w < 2 {
        return Array2::zeros((h.saturating_sub(1), w.saturating_sub(1)));
    }
    Array2::from_shape_fn((h - 1, w - 1), |(i, j)| {
        (x[[i, j]] - x[[i, j + 1]] + x[[i + 1, j]] - x[[i + 1, j + 1]]).abs()
    })
}

fn cosine(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b.iter()) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    match (aa > 0.0, bb > 0.0) {
        // clamped: a map against itself can round to 1 + 2^-52
        (true, true) => (ab / (aa.sqrt() * bb.sqrt())).clamp(-1.0, 1.0),
        (false, false) => 1.0,
        _ => 0.0,
    }
}

fn unchanged(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let same = a.iter().zip(b.iter()).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

fn pool(op: &Pooling, map: &Array2<f32>) -> Result<Array2<f32>, Failure> {
    let x = map.view().insert_axis(Axis(0)).insert_axis(Axis(0));
    let y = nnpool::array::forward_values(op, x, Layout::ChannelsFirst)?;
    Ok(y.index_axis_move(Axis(0), 0).index_axis_move(Axis(0), 0))
}

/// Parses `--windows`: a comma-separated list of window sizes ≥ 1.
pub fn parse_windows(text: &str) -> Result<Vec<usize>, Failure> {
    let ks = text
        .split(',')
        .map(|t| t.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            Failure::invalid(format!(
                "--windows: expected comma-separated whole numbers such as 2,4, but got '{text}'"
            ))
        })?;
    if ks.is_empty() || ks.contains(&0) || ks.len() > 6 {
        return Err(Failure::invalid(format!(
            "--windows: give 1 to 6 window sizes, each at least 1, but got '{text}'"
        )));
    }
    Ok(ks)
}

/// Measures shifts 0..=`max_shift` of `gray` with no pooling and with max and average pooling
/// for each window in `windows`.
pub fn measure(
    gray: &Array2<f32>,
    max_shift: usize,
    windows: &[usize],
) -> Result<Measurement, Failure> {
    let (h, w) = gray.dim();
    if h < 2 || w < max_shift + 2 {
        return Err(Failure::invalid(format!(
            "--max-shift {max_shift}: the picture ({w}x{h}) must be at least 2 pixels tall and \
             wider than the largest shift + 1 (at most {} here)",
            w.saturating_sub(2)
        )));
    }
    // Shifting right by s: the crop starting at column S - s, so content at column j of the
    // unshifted crop is at column j + s of the shifted one.
    let crop_w = w - max_shift;
    let edges: Vec<Array2<f32>> = (0..=max_shift)
        .map(|s| {
            vertical_edges(
                &gray
                    .slice(s![.., max_shift - s..max_shift - s + crop_w])
                    .to_owned(),
            )
        })
        .collect();
    let edge_dims = edges[0].dim();
    let mut columns = vec![Column {
        label: "no pooling".into(),
        cosine: edges.iter().map(|e| cosine(&edges[0], e)).collect(),
        unchanged: edges.iter().map(|e| unchanged(&edges[0], e)).collect(),
    }];
    for &k in windows {
        for (name, op) in [
            ("max", Pooling::max(Window::new(&[k, k]).stride(&[k, k]))),
            ("avg", Pooling::avg(Window::new(&[k, k]).stride(&[k, k]))),
        ] {
            let pooled = edges
                .iter()
                .map(|e| pool(&op, e))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| match e {
                    Failure::Invalid(m) => Failure::invalid(format!(
                        "--windows {k}: cannot pool the {}x{} edge map: {m}",
                        edge_dims.1, edge_dims.0
                    )),
                    other => other,
                })?;
            columns.push(Column {
                label: format!("{name} {k}x{k}/{k}"),
                cosine: pooled.iter().map(|p| cosine(&pooled[0], p)).collect(),
                unchanged: pooled.iter().map(|p| unchanged(&pooled[0], p)).collect(),
            });
        }
    }
    Ok(Measurement {
        shifts: (0..=max_shift).collect(),
        columns,
        edge_dims,
    })
}

/// The measurement as two aligned text tables (cosine similarity, unchanged fraction).
pub fn table(m: &Measurement) -> String {
    let mut out = String::new();
    for (title, pick) in [
        (
            "cosine similarity to the unshifted map",
            (|c: &Column| &c.cosine) as fn(&Column) -> &Vec<f64>,
        ),
        ("fraction of values exactly unchanged", |c: &Column| {
            &c.unchanged
        }),
    ] {
        out.push_str(&format!("{title}:\n{:>6}", "shift"));
        for c in &m.columns {
            out.push_str(&format!("  {:>12}", c.label));
        }
        out.push('\n');
        for (i, s) in m.shifts.iter().enumerate() {
            out.push_str(&format!("{s:>6}"));
            for c in &m.columns {
                out.push_str(&format!("  {:>12.3}", pick(c)[i]));
            }
            out.push('\n');
        }
    }
    out
}

/// Cosine similarity against the shift, one line per column (no pooling in black, max solid,
/// average dashed, one colour per window).
pub fn plot(m: &Measurement, source: &str) -> Canvas {
    let xs: Vec<f64> = m.shifts.iter().map(|&s| s as f64).collect();
    let series: Vec<Series> = m
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| Series {
            label: c.label.clone(),
            values: c.cosine.clone(),
            color: if i == 0 {
                figure::BLACK
            } else {
                PALETTE[((i - 1) / 2) % PALETTE.len()]
            },
            dashed: i > 0 && c.label.starts_with("avg"),
        })
        .collect();
    let lo = m
        .columns
        .iter()
        .flat_map(|c| c.cosine.iter().cloned())
        .fold(1.0f64, f64::min);
    let y_lo = ((lo * 10.0).floor() / 10.0).clamp(-1.0, 0.9);
    let title = format!("Edge map vs shifted edge map ({source})");
    figure::margin(
        &figure::line_plot(
            &title,
            "shift (pixels to the right)",
            "cosine similarity",
            &xs,
            &series,
            (y_lo, 1.0),
        ),
        10,
    )
}

pub fn run(args: &InvarianceArgs) -> Result<(), Failure> {
    let windows = parse_windows(&args.windows)?;
    if !args.no_plot {
        crate::files::check_overwrite(&args.plot, args.force).map_err(Failure::Io)?;
    }
    let (gray, name) = load_gray(args.image.as_deref())?;
    let m = measure(&gray, args.max_shift, &windows)?;
    println!(
        "{name}: {}x{} pixels; vertical-edge map {}x{} (kernel [[1,-1],[1,-1]], |response|);\n\
         pooling k x k with stride k; the picture is shifted right by 0..{} pixels.\n",
        gray.ncols(),
        gray.nrows(),
        m.edge_dims.1,
        m.edge_dims.0,
        args.max_shift
    );
    print!("{}", table(&m));
    if !args.no_plot {
        let short = args
            .image
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "astronaut, NASA".into());
        crate::files::write_atomic(&args.plot, &plot(&m, &short).png()).map_err(Failure::Io)?;
        println!("plot: {}", args.plot.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shift_by_the_window_on_a_periodic_picture_changes_nothing_after_pooling() {
        // stripes of period 4: shifting by 4 reproduces the picture exactly
        let gray = Array2::from_shape_fn((16, 40), |(_, j)| if j % 4 < 2 { 1.0 } else { 0.0 });
        let m = measure(&gray, 4, &[2]).unwrap();
        let none = &m.columns[0];
        assert!((none.cosine[0] - 1.0).abs() < 1e-12);
        assert!((none.cosine[4] - 1.0).abs() < 1e-12);
        assert_eq!(none.unchanged[4], 1.0);
        // a one-pixel shift moves every edge off its column
        assert_eq!(none.unchanged[1], 0.0);
        // max 2x2/2 keeps a value in every window that holds an edge before and after
        assert!(m.columns[1].cosine[1] > none.cosine[1]);
    }

    #[test]
    fn bad_options_are_errors() {
        let gray = Array2::zeros((4, 4));
        assert!(measure(&gray, 3, &[2]).is_err());
        assert!(measure(&gray, 1, &[9]).is_err());
        assert!(parse_windows("2,x").is_err());
        assert!(parse_windows("0").is_err());
    }
}
