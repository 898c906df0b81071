//! The `nnpool` command's implementation. Thin: parse → validate (the library) → run → write
//! atomically. The binary's `main` only calls [`run_cli`].

pub mod bench;
pub mod demo;
pub mod figure;
pub mod files;
pub mod invariance;
pub mod npy;
pub mod options;
pub mod picture;
pub mod shape;

use clap::{Parser, Subcommand};
use nnpool::{Layout, PoolPlan, Unpool, UnpoolPlan};
use npy::{Data, Staged, Storable, Tensor};
use options::{parse_layout, usize_list, PoolArgs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const LONG_ABOUT: &str = "\
Pooling layers of convolutional networks, exact to PyTorch, on .npy files.

Spatial rank r: the number of values in --kernel-size or --output-size (whichever has more).
When every list has one value, r = ndim - 2 for an input of ndim >= 3, else 1. An input of
r + 2 dims is batched [N, C, ...]; r + 1 dims is unbatched [C, ...]. --layout nhwc puts the
channel axis last ([N, ..., C]) for any rank.

A single value in --stride, --padding, --dilation or --output-size applies to every spatial
dim; otherwise give exactly r values (--pads: 2r, begins then ends). --padding, --pads and
--auto-pad are mutually exclusive. --padding must be at most half the (undilated) kernel, as
in PyTorch; --pads and --auto-pad follow ONNX. --ceil-mode keeps only windows that start
inside the input or its left padding; it cannot be combined with --auto-pad same-*.

Max-type ops: NaN propagates and its index is the last NaN of the window in row-major
order; otherwise the first maximum wins. Indices are int64, flat within each channel's
spatial plane, stored in the output's layout. Average pooling counts padding unless
--count-include-pad false, never the ceil-mode overhang; --divisor-override replaces the
divisor. Lp pooling is PyTorch's: sign(S)*relu(|S|)^(1/p) with S = sum of x^p
(--lp-variant onnx: (sum |x|^p)^(1/p)). Output dtype = input dtype; float16/32/64 for every
op, integer types for max-type ops and unpooling.

Exit codes: 0 success; 1 invalid input (options, shapes, dtypes, malformed .npy);
2 command-line syntax; 3 a file could not be read or written. On failure a one-line
message goes to stderr and no output file is created or changed (outputs are written to
temporary files and renamed into place).";

const SHAPE_HELP: &str = "\
Explain output shapes before running anything.

One op: nnpool shape --input 1,64,112,112 --op max --kernel-size 3 --stride 2 --padding 1
prints the output shape and, per spatial dim, the formula m = (n - k + 2p) / s + 1 with the
numbers substituted (with ceil_mode: rounded up, and whether the last window is dropped
because it would start in the right padding). An invalid combination is explained: which
rule it breaks and what would be valid.

A chain: nnpool shape --input 1,3,224,224 --chain 'conv7x7/2p3:64 -> maxpool3x3/2p1 -> gap'
Layers, separated by '->':
  conv{K}[x{K}..][/{S}][p{P}][d{D}][:{C_out}]   convolution (stride 1 unless given)
  maxpool{K}[x{K}..][/{S}][p{P}][d{D}][c]       max pooling (trailing c = ceil_mode)
  avgpool{K}[x{K}..][/{S}][p{P}][c]             average pooling
  lppool{K}[x{K}..][/{S}][c]                    Lp pooling
  adaptive{O}[x{O}..]                           adaptive pooling to O
  gap | gmp                                     global average / max pooling
One number for K, S, P or D applies to every spatial dim; pooling stride defaults to K.";

#[derive(Parser)]
#[command(name = "nnpool", version, about = "Pooling layers of CNNs, exact to PyTorch", long_about = LONG_ABOUT)]
struct Cli {
    /// Refuse problems whose input, outputs and workspace would exceed this many bytes
    /// (suffixes K, M, G; default 16G, or NNPOOL_MAX_MEMORY).
    #[arg(long, global = true, value_name = "BYTES")]
    max_memory: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Parses a byte count with an optional K/M/G suffix (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u128, Failure> {
    let t = s.trim().to_ascii_uppercase();
    let (num, mul) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 1u128 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (&t[..], 1),
    };
    let n: u128 = num.trim_end_matches('B').parse().map_err(|_| {
        Failure::invalid(format!(
            "--max-memory: '{s}' is not a byte count (e.g. 512M, 16G)"
        ))
    })?;
    n.checked_mul(mul)
        .ok_or_else(|| Failure::invalid(format!("--max-memory: '{s}' is too large")))
}

static MEMORY_LIMIT: std::sync::OnceLock<u128> = std::sync::OnceLock::new();

fn memory_limit() -> u128 {
    *MEMORY_LIMIT.get().unwrap_or(&(16u128 << 30))
}

/// Refuses a command whose memory would exceed the limit, before anything is allocated.
fn check_memory(what: &str, bytes: u128) -> Result<(), Failure> {
    let limit = memory_limit();
    if bytes > limit {
        return Err(Failure::invalid(format!(
            "{what} needs {bytes} bytes, more than the memory limit of {limit} bytes (raise it with --max-memory or NNPOOL_MAX_MEMORY)"
        )));
    }
    Ok(())
}

#[derive(Subcommand)]
enum Cmd {
    /// Pool INPUT.npy into OUTPUT.npy (and the argmax indices with --indices).
    Forward {
        #[command(flatten)]
        pool: PoolArgs,
        /// Also write int64 plane-local argmax indices (max, adaptive-max, global-max, fractional-max).
        #[arg(long, value_name = "FILE.npy")]
        indices: Option<PathBuf>,
        /// The input tensor.
        input: PathBuf,
        /// Where to write the output.
        output: PathBuf,
    },
    /// Gradient of the pooling with respect to INPUT.npy, given the output's gradient.
    Backward {
        #[command(flatten)]
        pool: PoolArgs,
        /// Gradient with respect to the output: the forward output's shape, the input's dtype.
        #[arg(long, value_name = "GY.npy")]
        grad_output: PathBuf,
        /// The forward pass's input.
        input: PathBuf,
        /// Where to write the gradient with respect to the input.
        grad_input: PathBuf,
    },
    /// Max unpooling: scatter INPUT.npy to the positions in --indices.
    Unpool {
        /// Kernel size of the max pooling being inverted.
        #[arg(long, value_name = "K[,K..]", allow_hyphen_values = true)]
        kernel_size: String,
        /// Stride (default: the kernel size).
        #[arg(long, value_name = "S[,S..]", allow_hyphen_values = true)]
        stride: Option<String>,
        /// Padding of the max pooling.
        #[arg(long, value_name = "P[,P..]", allow_hyphen_values = true)]
        padding: Option<String>,
        /// Output spatial size, strictly within one stride of (in-1)*stride + kernel - 2*padding.
        #[arg(long, value_name = "O[,O..]", allow_hyphen_values = true)]
        output_size: Option<String>,
        /// int64 indices (the input's shape), positions in the output plane.
        #[arg(long, value_name = "IDX.npy")]
        indices: PathBuf,
        /// Memory layout: nchw or nhwc.
        #[arg(long, value_name = "nchw|nhwc")]
        layout: Option<String>,
        /// The pooled values.
        input: PathBuf,
        /// Where to write the unpooled tensor.
        output: PathBuf,
    },
    /// Walk through pooling on the lecture's built-in examples (no files needed).
    Demo(demo::DemoArgs),
    /// Time the layers of real networks against a plain copy of the same bytes.
    Bench(bench::BenchArgs),
    /// Pool a picture (PNG or JPEG), each colour channel independently, into a PNG.
    Image(picture::ImageArgs),
    /// Measure how much an edge map changes when a photograph shifts, with and without pooling.
    Invariance(invariance::InvarianceArgs),
    /// Explain output shapes: one op (forward's options) or a chain of layers.
    #[command(long_about = SHAPE_HELP)]
    Shape(shape::ShapeArgs),
}

/// A failure with its exit code.
#[derive(Debug)]
pub enum Failure {
    Invalid(String),
    Io(String),
}

impl Failure {
    pub fn invalid(m: impl Into<String>) -> Self {
        Failure::Invalid(m.into())
    }
}

impl From<nnpool::PoolError> for Failure {
    fn from(e: nnpool::PoolError) -> Self {
        Failure::Invalid(e.to_string())
    }
}

fn read(path: &Path, what: &str) -> Result<Tensor, Failure> {
    if let Ok(meta) = std::fs::metadata(path) {
        check_memory(
            &format!("reading {what} {}", path.display()),
            meta.len() as u128,
        )?;
    }
    npy::read(path).map_err(|e| match e {
        npy::NpyError::Io(..) => Failure::Io(format!("{what} {e}")),
        npy::NpyError::Format(..) => Failure::Invalid(format!("{what} {e}")),
    })
}

fn typed<'a, T: Storable>(t: &'a Tensor, what: &str, like: &str) -> Result<&'a [T], Failure> {
    T::unwrap(&t.data).map(|v| v.as_slice()).ok_or_else(|| {
        Failure::invalid(format!(
            "{what} has dtype {}, but must have the input's dtype {like}",
            t.data.dtype_name()
        ))
    })
}

fn samples_of<T: Storable>(
    path: Option<&Path>,
    input: &Tensor,
    rank: usize,
    batched: bool,
) -> Result<Option<Vec<f64>>, Failure> {
    let Some(path) = path else { return Ok(None) };
    let s = read(path, "--samples")?;
    let v = typed::<T>(&s, "--samples", input.data.dtype_name())?;
    let n = if batched { input.shape[0] } else { 1 };
    let ok = match s.shape.as_slice() {
        [sn, _, sr] => *sn == n && *sr == rank,
        [_, sr] => !batched && *sr == rank,
        _ => false,
    };
    if !ok {
        return Err(Failure::invalid(format!(
            "--samples: shape {:?} must be [N, C, {rank}] = [{n}, C, {rank}]",
            s.shape
        )));
    }
    Ok(Some(v.iter().map(|x| x.to_f64()).collect()))
}

fn forward_cmd(
    pool: &PoolArgs,
    indices: Option<&Path>,
    input: &Path,
    output: &Path,
) -> Result<(), Failure> {
    options::check_op(&pool.op)?;
    let layout = parse_layout(pool.layout.as_deref())?;
    let x = read(input, "input")?;
    let rank = pool.rank(x.shape.len());
    let batched = x.shape.len() == rank + 2;
    with_data!(&x.data, v => {
        let samples = samples_of_typed(v, pool, &x, rank, batched)?;
        let op = pool.pooling(x.shape.len(), samples)?;
        if indices.is_some() && !op.has_indices() {
            return Err(Failure::invalid(format!("--indices: --op {} has no indices", pool.op)));
        }
        let plan = PoolPlan::new(&op, &x.shape, layout)?;
        let elem = std::mem::size_of_val(&v[..1.min(v.len())]).max(1) as u128;
        let need = (plan.input_len() as u128 + plan.output_len() as u128) * elem
            + if indices.is_some() { plan.output_len() as u128 * 8 } else { 0 };
        check_memory("this forward pass", need)?;
        let (y, idx) = if indices.is_some() {
            let (y, idx) = plan.forward_with_indices_to_vec(v)?;
            (y, Some(idx))
        } else {
            (plan.forward_to_vec(v)?, None)
        };
        let mut staged = Staged::default();
        staged.add(output, plan.output_shape(), &y).map_err(Failure::Io)?;
        if let (Some(p), Some(i)) = (indices, &idx) {
            staged.add(p, plan.output_shape(), i).map_err(Failure::Io)?;
        }
        staged.commit().map_err(Failure::Io)
    })
}

fn samples_of_typed<T: Storable>(
    _: &[T],
    pool: &PoolArgs,
    x: &Tensor,
    rank: usize,
    batched: bool,
) -> Result<Option<Vec<f64>>, Failure> {
    samples_of::<T>(pool.samples.as_deref(), x, rank, batched)
}

fn backward_cmd(
    pool: &PoolArgs,
    grad_output: &Path,
    input: &Path,
    grad_input: &Path,
) -> Result<(), Failure> {
    options::check_op(&pool.op)?;
    let layout = parse_layout(pool.layout.as_deref())?;
    let x = read(input, "input")?;
    let gy = read(grad_output, "--grad-output")?;
    let rank = pool.rank(x.shape.len());
    let batched = x.shape.len() == rank + 2;
    with_data!(&x.data, v => {
        let samples = samples_of_typed(v, pool, &x, rank, batched)?;
        let op = pool.pooling(x.shape.len(), samples)?;
        let plan = PoolPlan::new(&op, &x.shape, layout)?;
        let g = typed(&gy, "--grad-output", x.data.dtype_name())?;
        if gy.shape != plan.output_shape() {
            return Err(Failure::invalid(format!(
                "--grad-output: shape {:?} does not match the forward output's shape {:?}",
                gy.shape, plan.output_shape()
            )));
        }
        let elem = std::mem::size_of_val(&v[..1.min(v.len())]).max(1) as u128;
        let need = (2 * plan.input_len() as u128 + 2 * plan.output_len() as u128) * elem + plan.output_len() as u128 * 8;
        check_memory("this backward pass", need)?;
        let gx = plan.backward_to_vec(v, g)?;
        let mut staged = Staged::default();
        staged.add(grad_input, &x.shape, &gx).map_err(Failure::Io)?;
        staged.commit().map_err(Failure::Io)
    })
}

fn indices_as_i64(t: &Tensor) -> Result<Vec<i64>, Failure> {
    Ok(match &t.data {
        Data::I64(v) => v.clone(),
        Data::I32(v) => v.iter().map(|&x| x as i64).collect(),
        Data::I16(v) => v.iter().map(|&x| x as i64).collect(),
        Data::I8(v) => v.iter().map(|&x| x as i64).collect(),
        Data::U8(v) => v.iter().map(|&x| x as i64).collect(),
        Data::U16(v) => v.iter().map(|&x| x as i64).collect(),
        Data::U32(v) => v.iter().map(|&x| x as i64).collect(),
        Data::U64(v) => v
            .iter()
            .map(|&x| i64::try_from(x).unwrap_or(i64::MAX))
            .collect(),
        d => {
            return Err(Failure::invalid(format!(
                "--indices: must be an integer array (int64), but has dtype {}",
                d.dtype_name()
            )))
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn unpool_cmd(
    kernel: &str,
    stride: Option<&str>,
    padding: Option<&str>,
    output_size: Option<&str>,
    indices: &Path,
    layout: Option<&str>,
    input: &Path,
    output: &Path,
) -> Result<(), Failure> {
    let layout: Layout = parse_layout(layout)?;
    let mut opts = Unpool::new(&usize_list(
        "kernel-size",
        kernel,
        1,
        "must be greater than zero",
    )?);
    if let Some(s) = stride {
        opts.stride = usize_list("stride", s, 1, "must be greater than zero")?;
    }
    if let Some(p) = padding {
        opts.padding = usize_list("padding", p, 0, "must be non-negative")?;
    }
    if let Some(o) = output_size {
        opts.output_size = Some(usize_list("output-size", o, 1, "must be at least 1")?);
    }
    let x = read(input, "input")?;
    let idx_t = read(indices, "--indices")?;
    // The rank comes from the options; with one value everywhere, from the input's ndim.
    let r = opts
        .kernel
        .len()
        .max(opts.output_size.as_ref().map_or(0, |o| o.len()));
    if r == 1 {
        let rank = if x.shape.len() >= 3 {
            x.shape.len() - 2
        } else {
            1
        };
        opts.kernel = vec![opts.kernel[0]; rank];
    }
    let plan = UnpoolPlan::new(&opts, &x.shape, layout)?;
    if idx_t.shape != x.shape {
        return Err(Failure::invalid(format!(
            "--indices: shape {:?} must equal the input's shape {:?}",
            idx_t.shape, x.shape
        )));
    }
    let idx = indices_as_i64(&idx_t)?;
    with_data!(&x.data, v => {
        let elem = std::mem::size_of_val(&v[..1.min(v.len())]).max(1) as u128;
        check_memory("this unpooling", plan.output_shape().iter().product::<usize>() as u128 * elem)?;
        let mut y = vec![Default::default(); plan.output_shape().iter().product()];
        plan.forward(v, &idx, &mut y)?;
        let mut staged = Staged::default();
        staged.add(output, plan.output_shape(), &y).map_err(Failure::Io)?;
        staged.commit().map_err(Failure::Io)
    })
}

/// Parses the process's arguments, runs the command and returns its exit code.
pub fn run_cli() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let text = e.to_string();
            let line = text
                .lines()
                .next()
                .unwrap_or("invalid command line")
                .trim_start_matches("error: ");
            eprintln!("nnpool: error: {line} (see nnpool --help)");
            return ExitCode::from(2);
        }
    };
    let limit = match cli
        .max_memory
        .clone()
        .or_else(|| std::env::var("NNPOOL_MAX_MEMORY").ok())
    {
        Some(s) => match parse_bytes(&s) {
            Ok(b) => b,
            Err(Failure::Invalid(m)) | Err(Failure::Io(m)) => {
                eprintln!("nnpool: error: {m}");
                return ExitCode::from(1);
            }
        },
        None => 16u128 << 30,
    };
    let _ = MEMORY_LIMIT.set(limit);
    let result = match &cli.cmd {
        Cmd::Forward {
            pool,
            indices,
            input,
            output,
        } => forward_cmd(pool, indices.as_deref(), input, output),
        Cmd::Backward {
            pool,
            grad_output,
            input,
            grad_input,
        } => backward_cmd(pool, grad_output, input, grad_input),
        Cmd::Unpool {
            kernel_size,
            stride,
            padding,
            output_size,
            indices,
            layout,
            input,
            output,
        } => unpool_cmd(
            kernel_size,
            stride.as_deref(),
            padding.as_deref(),
            output_size.as_deref(),
            indices,
            layout.as_deref(),
            input,
            output,
        ),
        Cmd::Demo(args) => demo::run(args),
        Cmd::Bench(args) => bench::run(args),
        Cmd::Shape(args) => shape::run(args),
        Cmd::Image(args) => picture::run(args),
        Cmd::Invariance(args) => invariance::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid(m)) => {
            eprintln!("nnpool: error: {}", m.replace('\n', " "));
            ExitCode::from(1)
        }
        Err(Failure::Io(m)) => {
            eprintln!("nnpool: error: {}", m.replace('\n', " "));
            ExitCode::from(3)
        }
    }
}
