//! `nnpool shape`: output shapes before anyone runs a network, with the formula spelled out.
//!
//! Single layer: the same options as `forward`, plus `--input N,C,H,W` (any rank).
//! Chain: `--chain "conv7x7/2p3:64 -> maxpool3x3/2p1 -> gap"`. Layer syntax (case-insensitive):
//!
//! ```text
//! conv{K}[x{K}..][/{S}][p{P}][d{D}][:{C_out}]     convolution (same output-size formula, C changes)
//! maxpool{K}[x{K}..][/{S}][p{P}][d{D}][c]         max pooling; trailing `c` = ceil_mode
//! avgpool{K}[x{K}..][/{S}][p{P}][c]               average pooling
//! lppool{K}[x{K}..][/{S}][c]                      Lp pooling (shape as average pooling)
//! adaptive{O}[x{O}..]                             adaptive pooling to O
//! gap | gmp                                       global average / max pooling
//! ```
//! One number for K, S, P or D applies to every spatial dim.

use crate::options::{usize_list, PoolArgs};
use crate::Failure;
use nnpool::geometry::AxisGeometry;
use nnpool::{Layout, Padding, PoolError, PoolPlan, Pooling, Window};

#[derive(clap::Args, Debug, Clone)]
pub struct ShapeArgs {
    /// Input shape, e.g. 1,64,112,112 (channels-first unless --layout nhwc).
    #[arg(long, value_name = "N,C,..")]
    pub input: String,
    /// A chain of layers instead of one op, e.g. "conv7x7/2p3:64 -> maxpool3x3/2p1 -> gap".
    #[arg(long, value_name = "LAYERS")]
    pub chain: Option<String>,
    #[command(flatten)]
    pub pool: OptionalPool,
}

/// `forward`'s options, with `--op` optional (a chain needs none).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OptionalPool {
    #[arg(long, value_name = "OP")]
    pub op: Option<String>,
    #[arg(long, value_name = "K[,K..]", allow_hyphen_values = true)]
    pub kernel_size: Option<String>,
    #[arg(long, value_name = "S[,S..]", allow_hyphen_values = true)]
    pub stride: Option<String>,
    #[arg(long, value_name = "P[,P..]", allow_hyphen_values = true)]
    pub padding: Option<String>,
    #[arg(long, value_name = "B..,E..", allow_hyphen_values = true)]
    pub pads: Option<String>,
    #[arg(long, value_name = "MODE")]
    pub auto_pad: Option<String>,
    #[arg(long, value_name = "D[,D..]", allow_hyphen_values = true)]
    pub dilation: Option<String>,
    #[arg(long)]
    pub ceil_mode: bool,
    #[arg(long, value_name = "O[,O..]", allow_hyphen_values = true)]
    pub output_size: Option<String>,
    #[arg(long, value_name = "nchw|nhwc")]
    pub layout: Option<String>,
}

impl OptionalPool {
    fn to_pool_args(&self, op: &str) -> PoolArgs {
        PoolArgs {
            op: op.to_string(),
            kernel_size: self.kernel_size.clone(),
            stride: self.stride.clone(),
            padding: self.padding.clone(),
            pads: self.pads.clone(),
            auto_pad: self.auto_pad.clone(),
            dilation: self.dilation.clone(),
            ceil_mode: self.ceil_mode,
            output_size: self.output_size.clone(),
            layout: self.layout.clone(),
            ..Default::default()
        }
    }
}

/// The formula for one axis, numbers substituted.
fn explain_axis(name: &str, a: &AxisGeometry, ceil: bool) -> String {
    let (n, k, s, d, pb, pe) = (
        a.input,
        a.kernel,
        a.stride,
        a.dilation,
        a.pad_begin,
        a.pad_end,
    );
    let eff = d * (k - 1) + 1;
    let num = n as i64 + pb as i64 + pe as i64 - eff as i64;
    let mut out = String::new();
    let lecture = if d == 1 && pb == pe {
        format!("m = (n - k + 2p) / s + 1 = ({n} - {k} + 2*{pb}) / {s} + 1")
    } else {
        format!("m = (n + p_begin + p_end - d*(k-1) - 1) / s + 1 = ({n} + {pb} + {pe} - {d}*({k}-1) - 1) / {s} + 1")
    };
    if ceil {
        let m = num.div_euclid(s as i64) + if num.rem_euclid(s as i64) != 0 { 1 } else { 0 } + 1;
        out += &format!("  {name}: {lecture}, rounded up (ceil_mode) = ceil({num}/{s}) + 1 = {m}");
        if m as usize != a.output {
            let start = (m - 1) * s as i64 - pb as i64;
            out += &format!(
                "; the last window would start at (m-1)*s - p_begin = {start} >= n = {n}, i.e. entirely in the right padding, so it is dropped: m = {}",
                a.output
            );
        } else if num.rem_euclid(s as i64) != 0 {
            let start = (m - 1) * s as i64 - pb as i64;
            out += &format!(" (its last window starts at {start} < n + p_begin, inside the input or its left padding, so it is kept)");
        }
    } else {
        out += &format!("  {name}: {lecture} = floor({num}/{s}) + 1 = {}", a.output);
        if pb == 0 && pe == 0 && s == k && d == 1 {
            out += &format!("  (p = 0, s = k: m = floor(n/s) = floor({n}/{s}))");
        }
    }
    out
}

fn axis_names(rank: usize) -> Vec<&'static str> {
    match rank {
        1 => vec!["L"],
        2 => vec!["H", "W"],
        _ => vec!["D", "H", "W"],
    }
}

/// Advice for a rule a configuration breaks.
fn advise(e: &PoolError, window: Option<&Window>, spatial: &[usize]) -> String {
    let mut s = format!("invalid: {e}");
    if let (
        PoolError::InvalidParameter {
            param: "padding", ..
        },
        Some(w),
    ) = (e, window)
    {
        let max: Vec<usize> = w.kernel.iter().map(|k| k / 2).collect();
        s += &format!("\n  rule: PyTorch's symmetric padding is at most half the kernel (floor(k/2)); valid here: padding <= {max:?} (or use --pads for ONNX-style padding)");
    }
    if let (PoolError::OutputTooSmall { .. }, Some(w)) = (e, window) {
        let d = if w.dilation.is_empty() {
            vec![1; w.kernel.len()]
        } else {
            w.dilation.clone()
        };
        let need: Vec<usize> = w
            .kernel
            .iter()
            .enumerate()
            .map(|(i, k)| d[if d.len() == 1 { 0 } else { i }] * (k - 1) + 1)
            .collect();
        s += &format!(
            "\n  rule: every output size must be >= 1, so the padded input must be at least the dilated kernel extent d*(k-1)+1 = {need:?}; the input's spatial size is {spatial:?}: use a smaller kernel or dilation, more padding, or ceil_mode"
        );
    }
    if let PoolError::InvalidParameter {
        param: "ceil_mode", ..
    } = e
    {
        s += "\n  rule: auto_pad SAME fixes out = ceil(in / stride); drop --ceil-mode or use explicit --pads";
    }
    s
}

fn single(args: &ShapeArgs, shape: &[usize]) -> Result<(), Failure> {
    let op =
        args.pool.op.clone().ok_or_else(|| {
            Failure::invalid("shape: give --op (with forward's options) or --chain")
        })?;
    let layout = crate::options::parse_layout(args.pool.layout.as_deref())?;
    let pool = args.pool.to_pool_args(&op);
    let pooling = pool.pooling(shape.len(), None)?;
    let window = match &pooling {
        Pooling::Max { window } | Pooling::Avg { window, .. } | Pooling::Lp { window, .. } => {
            Some(window.clone())
        }
        _ => None,
    };
    let rank = pooling.rank();
    let spatial: Vec<usize> = match layout {
        Layout::ChannelsFirst => shape[shape.len().saturating_sub(rank)..].to_vec(),
        Layout::ChannelsLast => {
            shape[shape.len().saturating_sub(rank + 1)..shape.len().saturating_sub(1)].to_vec()
        }
    };
    match PoolPlan::new(&pooling, shape, layout) {
        Ok(plan) => {
            println!("{op}: input {shape:?} -> output {:?}", plan.output_shape());
            if let (Some(axes), Some(w)) = (plan.axes(), &window) {
                if let Padding::Auto(mode) = &w.padding {
                    println!(
                        "  auto_pad {mode:?}: pads (begin, end) = {:?}",
                        axes.iter()
                            .map(|a| (a.pad_begin, a.pad_end))
                            .collect::<Vec<_>>()
                    );
                }
                for (a, name) in axes.iter().zip(axis_names(rank)) {
                    println!("{}", explain_axis(name, a, w.ceil_mode));
                }
            } else {
                println!(
                    "  {op} sets the spatial size directly: {:?} -> {:?}",
                    spatial,
                    plan.output_spatial()
                );
            }
            println!("  channels are pooled independently: C_in = C_out; no learnable parameters");
            Ok(())
        }
        Err(e) => {
            // the full explanation on stdout, the one-line error on stderr (exit code 1)
            println!(
                "{op}: input {shape:?}\n  {}",
                advise(&e, window.as_ref(), &spatial)
            );
            Err(Failure::Invalid(e.to_string()))
        }
    }
}

/// One parsed chain layer.
#[derive(Debug)]
enum Layer {
    Conv {
        window: Window,
        out_channels: Option<usize>,
    },
    Pool(Pooling),
}

fn parse_layer(spec: &str, rank: usize) -> Result<(String, Layer), Failure> {
    let t = spec.trim().to_ascii_lowercase();
    let bad = |why: &str| Failure::invalid(format!("--chain: layer '{spec}': {why}"));
    if t == "gap" {
        return Ok((t, Layer::Pool(Pooling::GlobalAvg { rank })));
    }
    if t == "gmp" {
        return Ok((t, Layer::Pool(Pooling::GlobalMax { rank })));
    }
    if let Some(rest) = t.strip_prefix("adaptive") {
        let o = usize_list("chain", &rest.replace('x', ","), 1, "must be at least 1")?;
        let o = if o.len() == 1 { vec![o[0]; rank] } else { o };
        return Ok((t.clone(), Layer::Pool(Pooling::adaptive_avg(&o))));
    }
    let (kind, rest) = ["conv", "maxpool", "avgpool", "lppool"]
        .iter()
        .find_map(|k| t.strip_prefix(k).map(|r| (*k, r.to_string())))
        .ok_or_else(|| bad("expected conv, maxpool, avgpool, lppool, adaptive, gap or gmp"))?;
    let (rest, out_channels) = match rest.split_once(':') {
        Some((r, c)) => (
            r.to_string(),
            Some(
                c.trim()
                    .parse::<usize>()
                    .map_err(|_| bad("channels after ':' must be a number"))?,
            ),
        ),
        None => (rest, None),
    };
    let (rest, ceil) = match rest.strip_suffix('c') {
        Some(r) => (r.to_string(), true),
        None => (rest, false),
    };
    // K[xK..] then optional /S, pP, dD in any order
    let mut parts = rest.splitn(2, ['/', 'p', 'd']);
    let kpart = parts.next().unwrap_or("");
    let kernel = usize_list(
        "chain",
        &kpart.replace('x', ","),
        1,
        "kernel must be at least 1",
    )?;
    let mut stride = None;
    let mut pad = None;
    let mut dil = None;
    let mut cur = String::new();
    let mut tag = ' ';
    for ch in rest[kpart.len()..].chars().chain(std::iter::once('\0')) {
        if ch == '/' || ch == 'p' || ch == 'd' || ch == '\0' {
            if tag != ' ' {
                let v = usize_list("chain", &cur.replace('x', ","), 0, "must be non-negative")?;
                match tag {
                    '/' => stride = Some(v),
                    'p' => pad = Some(v),
                    _ => dil = Some(v),
                }
            }
            tag = ch;
            cur.clear();
        } else {
            cur.push(ch);
        }
    }
    let expand = |v: Vec<usize>| if v.len() == 1 { vec![v[0]; rank] } else { v };
    let mut w = Window::new(&expand(kernel)).ceil_mode(ceil);
    if let Some(s) = stride {
        w = w.stride(&expand(s));
    }
    if let Some(p) = pad {
        w = w.padding(&expand(p));
    }
    if let Some(d) = dil {
        w = w.dilation(&expand(d));
    }
    let layer = match kind {
        "conv" => {
            if w.stride.is_empty() {
                w.stride = vec![1; rank]; // convolutions default to stride 1
            }
            Layer::Conv {
                window: w,
                out_channels,
            }
        }
        "maxpool" => Layer::Pool(Pooling::max(w)),
        "avgpool" => Layer::Pool(Pooling::avg(w)),
        _ => Layer::Pool(Pooling::lp(w, 2.0)),
    };
    Ok((t, layer))
}

fn chain(args: &ShapeArgs, chain: &str, shape: &[usize]) -> Result<(), Failure> {
    let layout = crate::options::parse_layout(args.pool.layout.as_deref())?;
    if shape.len() < 3 {
        return Err(Failure::invalid(
            "--input: a chain needs a batched shape N,C,spatial..",
        ));
    }
    let rank = shape.len() - 2;
    let mut cur = shape.to_vec();
    println!("input {cur:?}");
    for spec in chain.split("->") {
        let (name, layer) = parse_layer(spec, rank)?;
        match layer {
            Layer::Conv {
                window,
                out_channels,
            } => {
                // a convolution's output size is the pooling formula (no padding limit)
                let mut probe = window.clone();
                if let Padding::Symmetric(p) = &probe.padding {
                    probe.padding = Padding::Explicit {
                        begin: p.clone(),
                        end: p.clone(),
                    };
                }
                let (spatial, c) = match layout {
                    Layout::ChannelsFirst => (cur[2..].to_vec(), cur[1]),
                    Layout::ChannelsLast => (cur[1..cur.len() - 1].to_vec(), cur[cur.len() - 1]),
                };
                let axes = probe.resolve(&spatial).map_err(|e| {
                    Failure::invalid(format!("{name}: {}", advise(&e, Some(&probe), &spatial)))
                })?;
                let out: Vec<usize> = axes.iter().map(|a| a.output).collect();
                let c_out = out_channels.unwrap_or(c);
                let mut next = vec![cur[0]];
                match layout {
                    Layout::ChannelsFirst => {
                        next.push(c_out);
                        next.extend(&out);
                    }
                    Layout::ChannelsLast => {
                        next.extend(&out);
                        next.push(c_out);
                    }
                }
                println!("{name:>16} -> {next:?}");
                for (a, n) in axes.iter().zip(axis_names(rank)) {
                    println!("    {}", explain_axis(n, a, window.ceil_mode).trim_start());
                }
                cur = next;
            }
            Layer::Pool(p) => {
                let window = match &p {
                    Pooling::Max { window }
                    | Pooling::Avg { window, .. }
                    | Pooling::Lp { window, .. } => Some(window.clone()),
                    _ => None,
                };
                let plan = PoolPlan::new(&p, &cur, layout).map_err(|e| {
                    Failure::invalid(format!(
                        "{name}: {}",
                        advise(&e, window.as_ref(), &cur[2..])
                    ))
                })?;
                println!("{name:>16} -> {:?}", plan.output_shape());
                if let (Some(axes), Some(w)) = (plan.axes(), &window) {
                    for (a, n) in axes.iter().zip(axis_names(rank)) {
                        println!("    {}", explain_axis(n, a, w.ceil_mode).trim_start());
                    }
                }
                cur = plan.output_shape().to_vec();
            }
        }
    }
    println!("output {cur:?}");
    Ok(())
}

pub fn run(args: &ShapeArgs) -> Result<(), Failure> {
    let shape = usize_list("input", &args.input, 0, "must be non-negative")?;
    match &args.chain {
        Some(c) => chain(args, c, &shape),
        None => single(args, &shape),
    }
}
