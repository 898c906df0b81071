//! Turns the command line's pooling options into a library [`Pooling`], applying the CLI
//! contract's rules for the spatial rank and one-value lists.

use crate::Failure;
use nnpool::{AutoPad, FractionalOutput, Layout, LpVariant, Padding, Pooling, Samples, Window};
use std::path::PathBuf;

/// The pooling options shared by `forward`, `backward` and `shape`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PoolArgs {
    /// The op: max, avg, lp, adaptive-max, adaptive-avg, global-max, global-avg, fractional-max.
    #[arg(long, value_name = "OP")]
    pub op: String,
    /// Window size per spatial dim (one value: every dim).
    #[arg(long, value_name = "K[,K..]", allow_hyphen_values = true)]
    pub kernel_size: Option<String>,
    /// Stride (default: the kernel size).
    #[arg(long, value_name = "S[,S..]", allow_hyphen_values = true)]
    pub stride: Option<String>,
    /// Symmetric padding, at most half the kernel (PyTorch).
    #[arg(long, value_name = "P[,P..]", allow_hyphen_values = true)]
    pub padding: Option<String>,
    /// Asymmetric padding in ONNX order: all begins, then all ends (2r values).
    #[arg(long, value_name = "B1,..,Bd,E1,..,Ed", allow_hyphen_values = true)]
    pub pads: Option<String>,
    /// ONNX auto_pad: notset, valid, same-upper, same-lower.
    #[arg(long, value_name = "MODE")]
    pub auto_pad: Option<String>,
    /// Dilation (max, avg and lp).
    #[arg(long, value_name = "D[,D..]", allow_hyphen_values = true)]
    pub dilation: Option<String>,
    /// Round output sizes up; the last window must start inside the input or its left padding.
    #[arg(long)]
    pub ceil_mode: bool,
    /// Average pooling: count padding in the divisor (true, PyTorch's default) or not.
    #[arg(long, value_name = "true|false")]
    pub count_include_pad: Option<String>,
    /// Average pooling: divide every window by N (non-zero).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub divisor_override: Option<String>,
    /// Lp pooling: p (non-zero, or ±inf; > 0 with --lp-variant onnx).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub norm_type: Option<String>,
    /// Lp pooling formula: torch (sign(S)·relu(|S|)^(1/p), S = Σx^p; default) or onnx ((Σ|x|^p)^(1/p)).
    #[arg(long, value_name = "torch|onnx")]
    pub lp_variant: Option<String>,
    /// Output size per spatial dim (adaptive and fractional ops; `none` keeps a dim).
    #[arg(long, value_name = "O[,O..]", allow_hyphen_values = true)]
    pub output_size: Option<String>,
    /// Fractional max pooling: output = floor(input * ratio), ratio in (0, 1).
    #[arg(long, value_name = "R[,R..]")]
    pub output_ratio: Option<String>,
    /// Fractional max pooling: PyTorch's random samples, shape [N, C, r], the input's dtype.
    #[arg(long, value_name = "FILE.npy")]
    pub samples: Option<PathBuf>,
    /// Fractional max pooling without --samples: seed of the sample generator (default 0).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Memory layout: nchw (channels first, default) or nhwc (channels last, any rank).
    #[arg(long, value_name = "nchw|nhwc")]
    pub layout: Option<String>,
}

pub const OPS: [&str; 8] = [
    "max",
    "avg",
    "lp",
    "adaptive-max",
    "adaptive-avg",
    "global-max",
    "global-avg",
    "fractional-max",
];

pub fn check_op(op: &str) -> Result<(), Failure> {
    if OPS.contains(&op) {
        Ok(())
    } else {
        Err(Failure::invalid(format!(
            "--op: unknown op '{op}'; expected one of {}",
            OPS.join(", ")
        )))
    }
}

/// Parses a comma-separated list of integers.
pub fn int_list(flag: &str, s: &str) -> Result<Vec<i64>, Failure> {
    s.split(',')
        .map(|t| {
            t.trim().parse::<i64>().map_err(|_| {
                Failure::invalid(format!("--{flag}: '{t}' is not an integer (in '{s}')"))
            })
        })
        .collect()
}

/// Parses a list whose values must be >= `min`.
pub fn usize_list(flag: &str, s: &str, min: i64, rule: &str) -> Result<Vec<usize>, Failure> {
    let v = int_list(flag, s)?;
    if v.iter().any(|&x| x < min) {
        return Err(Failure::invalid(format!("--{flag}: {rule}, but got {v:?}")));
    }
    Ok(v.into_iter().map(|x| x as usize).collect())
}

pub fn parse_layout(s: Option<&str>) -> Result<Layout, Failure> {
    match s.map(|s| s.to_ascii_lowercase()) {
        None => Ok(Layout::ChannelsFirst),
        Some(s) => match s.as_str() {
            "nchw" | "ncl" | "ncdhw" | "channels-first" | "channels_first" => Ok(Layout::ChannelsFirst),
            "nhwc" | "nlc" | "ndhwc" | "channels-last" | "channels_last" => Ok(Layout::ChannelsLast),
            _ => Err(Failure::invalid(format!(
                "--layout: unknown layout '{s}'; expected nchw (channels first) or nhwc (channels last)"
            ))),
        },
    }
}

fn parse_bool(flag: &str, s: &str) -> Result<bool, Failure> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(Failure::invalid(format!(
            "--{flag}: expected true or false, but got '{s}'"
        ))),
    }
}

impl PoolArgs {
    /// The spatial rank: the longest of --kernel-size and --output-size when one has several
    /// values; otherwise ndim - 2 (ndim >= 3) or 1.
    pub fn rank(&self, ndim: usize) -> usize {
        let count = |s: &Option<String>| s.as_ref().map_or(0, |s| s.split(',').count());
        let m = count(&self.kernel_size).max(count(&self.output_size));
        if m > 1 {
            m
        } else if ndim >= 3 {
            ndim - 2
        } else {
            1
        }
    }

    fn check_list_len(flag: &str, v: &[usize], n: usize) -> Result<Vec<usize>, Failure> {
        match v.len() {
            1 => Ok(vec![v[0]; n]),
            k if k == n => Ok(v.to_vec()),
            k => Err(Failure::invalid(format!(
                "--{flag}: needs 1 value or {n} (one per spatial dim), but got {k}: {v:?}"
            ))),
        }
    }

    fn window(&self, rank: usize) -> Result<Window, Failure> {
        let k = self.kernel_size.as_deref().ok_or_else(|| {
            Failure::invalid(format!("--kernel-size is required for --op {}", self.op))
        })?;
        let kernel = usize_list("kernel-size", k, 0, "must be greater than zero")?;
        let kernel = Self::check_list_len("kernel-size", &kernel, rank)?;
        let mut w = Window::new(&kernel).ceil_mode(self.ceil_mode);
        if let Some(s) = &self.stride {
            let s = usize_list("stride", s, 1, "must be greater than zero")?;
            w.stride = Self::check_list_len("stride", &s, rank)?;
        }
        if let Some(d) = &self.dilation {
            let d = usize_list("dilation", d, 1, "must be greater than zero")?;
            w.dilation = Self::check_list_len("dilation", &d, rank)?;
        }
        let auto = match self.auto_pad.as_deref().map(|a| a.to_ascii_lowercase().replace('_', "-")) {
            None => None,
            Some(a) => match a.as_str() {
                "notset" => None,
                "valid" => Some(AutoPad::Valid),
                "same-upper" => Some(AutoPad::SameUpper),
                "same-lower" => Some(AutoPad::SameLower),
                _ => {
                    return Err(Failure::invalid(format!(
                        "--auto-pad: unknown mode '{a}'; expected notset, valid, same-upper or same-lower"
                    )))
                }
            },
        };
        let given = [self.padding.is_some(), self.pads.is_some(), auto.is_some()];
        if given.iter().filter(|&&g| g).count() > 1 {
            return Err(Failure::invalid(
                "--padding, --pads and --auto-pad are mutually exclusive: give at most one",
            ));
        }
        if let Some(p) = &self.padding {
            let p = usize_list("padding", p, 0, "must be non-negative")?;
            w.padding = Padding::Symmetric(Self::check_list_len("padding", &p, rank)?);
        } else if let Some(p) = &self.pads {
            let p = usize_list("pads", p, 0, "must be non-negative")?;
            if p.len() != 2 * rank {
                return Err(Failure::invalid(format!(
                    "--pads: needs 2*rank = {} values (begins, then ends), but got {}: {p:?}",
                    2 * rank,
                    p.len()
                )));
            }
            w.padding = Padding::Explicit {
                begin: p[..rank].to_vec(),
                end: p[rank..].to_vec(),
            };
        } else if let Some(a) = auto {
            w.padding = Padding::Auto(a);
        }
        Ok(w)
    }

    fn reject(&self, flags: &[(&str, bool)]) -> Result<(), Failure> {
        for (flag, present) in flags {
            if *present {
                return Err(Failure::invalid(format!(
                    "--{flag} does not apply to --op {}",
                    self.op
                )));
            }
        }
        Ok(())
    }

    fn output_size(&self, rank: usize) -> Result<Vec<Option<usize>>, Failure> {
        let s = self.output_size.as_deref().ok_or_else(|| {
            Failure::invalid(format!("--output-size is required for --op {}", self.op))
        })?;
        let mut v = Vec::new();
        for t in s.split(',') {
            let t = t.trim();
            if t.eq_ignore_ascii_case("none") {
                v.push(None);
                continue;
            }
            let n: i64 = t
                .parse()
                .map_err(|_| Failure::invalid(format!("--output-size: '{t}' is not an integer")))?;
            if n < 1 {
                return Err(Failure::invalid(format!(
                    "--output-size: must be at least 1 in every spatial dim, but got {s}"
                )));
            }
            v.push(Some(n as usize));
        }
        match v.len() {
            1 => Ok(vec![v[0]; rank]),
            k if k == rank => Ok(v),
            k => Err(Failure::invalid(format!(
                "--output-size: needs 1 value or {rank}, but got {k}"
            ))),
        }
    }

    /// Builds the op for an input of `ndim` dims. `samples` are fractional pooling's samples,
    /// already read and converted.
    pub fn pooling(&self, ndim: usize, samples: Option<Vec<f64>>) -> Result<Pooling, Failure> {
        check_op(&self.op)?;
        let rank = self.rank(ndim);
        let window_only = [
            ("stride", self.stride.is_some()),
            ("padding", self.padding.is_some()),
            ("pads", self.pads.is_some()),
            ("auto-pad", self.auto_pad.is_some()),
            ("dilation", self.dilation.is_some()),
            ("ceil-mode", self.ceil_mode),
        ];
        let avg_only = [
            ("count-include-pad", self.count_include_pad.is_some()),
            ("divisor-override", self.divisor_override.is_some()),
        ];
        let lp_only = [
            ("norm-type", self.norm_type.is_some()),
            ("lp-variant", self.lp_variant.is_some()),
        ];
        let frac_only = [
            ("samples", self.samples.is_some()),
            ("seed", self.seed.is_some()),
            ("output-ratio", self.output_ratio.is_some()),
        ];
        let op = self.op.as_str();
        if op != "avg" {
            self.reject(&avg_only)?;
        }
        if op != "lp" {
            self.reject(&lp_only)?;
        }
        if op != "fractional-max" {
            self.reject(&frac_only)?;
        }
        if !matches!(op, "max" | "avg" | "lp") {
            self.reject(&window_only)?;
        }
        if matches!(op, "max" | "avg" | "lp" | "global-max" | "global-avg") {
            self.reject(&[("output-size", self.output_size.is_some())])?;
        }
        if matches!(
            op,
            "adaptive-max" | "adaptive-avg" | "global-max" | "global-avg"
        ) {
            self.reject(&[("kernel-size", self.kernel_size.is_some())])?;
        }
        Ok(match op {
            "max" => Pooling::Max {
                window: self.window(rank)?,
            },
            "avg" => {
                let count_include_pad = match &self.count_include_pad {
                    Some(s) => parse_bool("count-include-pad", s)?,
                    None => true,
                };
                let divisor_override = match &self.divisor_override {
                    None => None,
                    Some(s) => {
                        let d: i64 = s.trim().parse().map_err(|_| {
                            Failure::invalid(format!("--divisor-override: '{s}' is not an integer"))
                        })?;
                        if d == 0 {
                            return Err(Failure::invalid(
                                "--divisor-override: must be non-zero, but got 0",
                            ));
                        }
                        Some(d)
                    }
                };
                Pooling::Avg {
                    window: self.window(rank)?,
                    count_include_pad,
                    divisor_override,
                }
            }
            "lp" => {
                let s = self
                    .norm_type
                    .as_deref()
                    .ok_or_else(|| Failure::invalid("--norm-type is required for --op lp"))?;
                let p: f64 = s
                    .trim()
                    .parse()
                    .map_err(|_| Failure::invalid(format!("--norm-type: '{s}' is not a number")))?;
                if p.is_nan() || p == 0.0 {
                    return Err(Failure::invalid(format!(
                        "--norm-type: must be a non-zero number (or ±inf), but got {s}"
                    )));
                }
                let variant = match self.lp_variant.as_deref() {
                    None | Some("torch") => LpVariant::Torch,
                    Some("onnx") => LpVariant::Onnx,
                    Some(v) => {
                        return Err(Failure::invalid(format!(
                            "--lp-variant: expected torch or onnx, but got '{v}'"
                        )))
                    }
                };
                Pooling::Lp {
                    window: self.window(rank)?,
                    norm_type: p,
                    variant,
                }
            }
            "adaptive-max" => Pooling::AdaptiveMax {
                output_size: self.output_size(rank)?,
            },
            "adaptive-avg" => Pooling::AdaptiveAvg {
                output_size: self.output_size(rank)?,
            },
            "global-max" => Pooling::GlobalMax { rank },
            "global-avg" => Pooling::GlobalAvg { rank },
            "fractional-max" => {
                let k = self.kernel_size.as_deref().ok_or_else(|| {
                    Failure::invalid("--kernel-size is required for --op fractional-max")
                })?;
                let kernel = usize_list("kernel-size", k, 1, "must be greater than zero")?;
                let kernel = Self::check_list_len("kernel-size", &kernel, rank)?;
                let output =
                    match (&self.output_size, &self.output_ratio) {
                        (Some(_), Some(_)) => {
                            return Err(Failure::invalid(
                                "--output-size and --output-ratio are mutually exclusive",
                            ))
                        }
                        (Some(_), None) => FractionalOutput::Size(
                            self.output_size(rank)?
                                .into_iter()
                                .map(|o| {
                                    o.ok_or_else(|| {
                                        Failure::invalid(
                                        "--output-size: 'none' is not allowed for fractional-max",
                                    )
                                    })
                                })
                                .collect::<Result<_, _>>()?,
                        ),
                        (None, Some(r)) => FractionalOutput::Ratio(
                            r.split(',')
                                .map(|t| {
                                    t.trim().parse::<f64>().map_err(|_| {
                                        Failure::invalid(format!(
                                            "--output-ratio: '{t}' is not a number"
                                        ))
                                    })
                                })
                                .collect::<Result<_, _>>()?,
                        ),
                        (None, None) => return Err(Failure::invalid(
                            "--output-size or --output-ratio is required for --op fractional-max",
                        )),
                    };
                if samples.is_some() && self.seed.is_some() {
                    return Err(Failure::invalid(
                        "--samples and --seed are mutually exclusive",
                    ));
                }
                Pooling::FractionalMax {
                    kernel,
                    output,
                    samples: match samples {
                        Some(s) => Samples::Given(s),
                        None => Samples::Seed(self.seed.unwrap_or(0)),
                    },
                }
            }
            _ => unreachable!("check_op accepted the op"),
        })
    }
}
