//! `nnpool demo`: replays the lecture's claims about pooling on its own examples. Every number
//! printed is computed here by nnpool's pooling (and a plain convolution), never typed in.

use crate::Failure;
use ndarray::{array, s, Array2, Array4, Axis};
use nnpool::nn::{AvgPool2d, MaxPool2d};
use nnpool::{Layout, PoolPlan, Pooling, Window};

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Language of the walkthrough: en (default) or zh (the lecture's language).
    #[arg(long, default_value = "en", value_name = "en|zh")]
    pub lang: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Lang {
    En,
    Zh,
}

impl Lang {
    fn t<'a>(self, en: &'a str, zh: &'a str) -> &'a str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }
}

/// Valid cross-correlation (what CNNs call convolution) of one map with one kernel.
pub fn conv2d_valid(x: &Array2<f64>, k: &Array2<f64>) -> Array2<f64> {
    let (h, w) = x.dim();
    let (kh, kw) = k.dim();
    Array2::from_shape_fn((h + 1 - kh, w + 1 - kw), |(i, j)| {
        (x.slice(s![i..i + kh, j..j + kw]).to_owned() * k).sum()
    })
}

fn show(m: &Array2<f64>) -> String {
    m.rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .map(|v| format!("{:>5}", trim(*v)))
                .collect::<Vec<_>>()
                .join("")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn trim(v: f64) -> String {
    if v == v.trunc() {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn pool2(op: &Pooling, m: &Array2<f64>) -> Result<Array2<f64>, Failure> {
    let x = m.clone().insert_axis(Axis(0)).insert_axis(Axis(0));
    let (y, _) = nnpool::array::forward(op, x.view(), Layout::ChannelsFirst)?;
    Ok(y.index_axis(Axis(0), 0).index_axis(Axis(0), 0).to_owned())
}

/// The lecture's vertical-edge image: 7 rows of `1 1 1 0 0 0`, with the edge moved right by
/// `shift` pixels (the bright region extends, so no second edge appears at the left border).
pub fn edge_image(shift: usize) -> Array2<f64> {
    Array2::from_shape_fn((7, 6), |(_, j)| if j < 3 + shift { 1.0 } else { 0.0 })
}

pub fn run(args: &DemoArgs) -> Result<(), Failure> {
    let lang = match args.lang.as_str() {
        "en" => Lang::En,
        "zh" => Lang::Zh,
        other => {
            return Err(Failure::invalid(format!(
                "--lang: expected en or zh, but got '{other}'"
            )))
        }
    };
    let l = |en, zh| lang.t(en, zh);
    println!(
        "{}\n",
        l(
            "nnpool demo: what pooling does, on the lecture's examples",
            "nnpool 演示：用讲义中的例子说明池化层的作用"
        )
    );

    // 1. Shift tolerance on the vertical-edge example.
    println!(
        "1. {}",
        l(
            "A one-pixel shift zeroes an edge response; pooling brings it back",
            "1个像素的位移会导致0输出；池化让它恢复"
        )
    );
    let kernel = array![[1.0, -1.0], [1.0, -1.0]];
    let img = edge_image(0);
    let shifted = edge_image(1);
    let edges = conv2d_valid(&img, &kernel);
    let edges_shifted = conv2d_valid(&shifted, &kernel);
    println!("{} (7x6):\n{}", l("input image", "输入图"), show(&img));
    println!("{}:\n{}", l("kernel", "卷积核"), show(&kernel));
    println!(
        "{} ({}x{}):\n{}",
        l("edge map", "边缘图"),
        edges.nrows(),
        edges.ncols(),
        show(&edges)
    );
    println!(
        "{}:\n{}",
        l(
            "edge map after the edge moves one pixel right",
            "边缘右移1个像素后的边缘图"
        ),
        show(&edges_shifted)
    );
    let col = (0..edges.ncols())
        .find(|&j| edges[[0, j]] != 0.0)
        .unwrap_or(0);
    println!(
        "{} {col}: {} -> {}",
        l("edge response at column", "边缘响应，列"),
        trim(edges[[0, col]]),
        trim(edges_shifted[[0, col]])
    );
    let maxp = Pooling::max(Window::new(&[2, 2]).stride(&[2, 2]));
    let avgp = Pooling::avg(Window::new(&[2, 2]).stride(&[2, 2]));
    let pooled = pool2(&maxp, &edges)?;
    let pooled_shifted = pool2(&maxp, &edges_shifted)?;
    println!(
        "{}:\n{}",
        l(
            "max pooling 2x2, stride 2, of the edge map",
            "边缘图的 2x2 最大池化（步幅 2）"
        ),
        show(&pooled)
    );
    println!(
        "{}:\n{}",
        l(
            "the same pooling of the shifted edge map",
            "位移后边缘图的同样池化"
        ),
        show(&pooled_shifted)
    );
    let pc = col / 2;
    println!(
        "{} {pc} ({} {}-{}): {} -> {}  {}",
        l("pooled response at column", "池化输出第"),
        l("covering edge columns", "覆盖边缘图列"),
        pc * 2,
        pc * 2 + 1,
        trim(pooled[[0, pc]]),
        trim(pooled_shifted[[0, pc]]),
        if pooled[[0, pc]] == pooled_shifted[[0, pc]] {
            l("(survives the shift)", "（位移后仍然保留）")
        } else {
            ""
        }
    );
    let a = pool2(&avgp, &edges)?;
    let b = pool2(&avgp, &edges_shifted)?;
    println!(
        "{}: {} -> {}\n",
        l("average pooling at the same place", "同一位置的平均池化"),
        trim(a[[0, pc]]),
        trim(b[[0, pc]])
    );

    // 2. Max and average of one window.
    println!(
        "2. {}",
        l("Max pooling and average pooling", "最大池化和平均池化")
    );
    let x = array![
        [1.0, 1.0, 2.0, 4.0],
        [5.0, 6.0, 7.0, 8.0],
        [3.0, 2.0, 1.0, 0.0],
        [1.0, 2.0, 3.0, 4.0]
    ];
    println!("{} (4x4):\n{}", l("input", "输入"), show(&x));
    let mx = pool2(&maxp, &x)?;
    let av = pool2(&avgp, &x)?;
    let w = x.slice(s![0..2, 0..2]);
    let list = w.iter().map(|v| trim(*v)).collect::<Vec<_>>().join(", ");
    println!(
        "{}: max({list}) = {}   mean({list}) = {}",
        l("top-left 2x2 window", "左上 2x2 窗口"),
        trim(mx[[0, 0]]),
        trim(av[[0, 0]])
    );
    println!(
        "{}:\n{}",
        l("max pooling 2x2 / 2", "最大池化 2x2 / 2"),
        show(&mx)
    );
    println!(
        "{}:\n{}\n",
        l("average pooling 2x2 / 2", "平均池化 2x2 / 2"),
        show(&av)
    );

    // 3. Width and height only; channels independent; no parameters.
    println!(
        "3. {}",
        l(
            "Pooling samples width and height, never depth",
            "池化只在宽和高上采样，不改变深度"
        )
    );
    let x = Array4::from_shape_fn((1, 3, 4, 4), |(_, c, i, j)| {
        ((c * 16 + i * 4 + j) * 7 % 10) as f32
    });
    let layer = MaxPool2d::new([2, 2]);
    let y = layer.forward(x.view())?;
    println!(
        "{}: {:?} -> {:?}  (C_in = C_out = {})",
        l("shape", "形状"),
        x.shape(),
        y.shape(),
        y.shape()[1]
    );
    let independent = (0..3).all(|c| {
        let one = x.slice(s![.., c..c + 1, .., ..]).to_owned();
        layer
            .forward(one.view())
            .map(|yc| yc.slice(s![0, 0, .., ..]) == y.slice(s![0, c, .., ..]))
            .unwrap_or(false)
    });
    println!(
        "{}: {independent}",
        l(
            "each channel pooled alone gives the same map",
            "逐通道单独池化结果相同"
        )
    );
    println!(
        "{}: 0 ({})\n",
        l("learnable parameters", "可学习参数"),
        l(
            "a pooling layer holds only its window options",
            "池化层只保存窗口超参数"
        )
    );
    let _ = AvgPool2d::new([2, 2]);

    // 4. Computation saved.
    println!(
        "4. {}",
        l(
            "Pooling cuts the computation of the next layer",
            "池化能成倍减少计算量"
        )
    );
    let (c, h) = (64usize, 56usize);
    let plan = PoolPlan::new(&maxp, &[1, c, h, h], Layout::ChannelsFirst)?;
    let ho = plan.output_shape()[2];
    let macs = |s: usize| s * s * c * c * 9;
    println!(
        "{}: {h}x{h}x{c}: {} MACs; {} {ho}x{ho}x{c}: {} MACs ({} {}x)\n",
        l(
            "3x3 conv, 64 -> 64 channels, on",
            "3x3 卷积 64 -> 64 通道，输入"
        ),
        macs(h),
        l("after 2x2/2 pooling", "2x2/2 池化后"),
        macs(ho),
        l("fewer by", "减少"),
        macs(h) / macs(ho)
    );

    // 5. The output-size formula.
    println!(
        "5. {}",
        l(
            "Output size m = (n - k + 2p) / s + 1",
            "输出尺寸 m = (n - k + 2p) / s + 1"
        )
    );
    for (n, k, p, st) in [
        (6usize, 2usize, 0usize, 2usize),
        (5, 2, 0, 2),
        (224, 2, 0, 2),
        (112, 3, 1, 2),
    ] {
        let plan = PoolPlan::new(
            &Pooling::max(Window::new(&[k]).stride(&[st]).padding(&[p])),
            &[1, 1, n],
            Layout::ChannelsFirst,
        )?;
        let m = plan.output_shape()[2];
        let simple = match (p == 0 && st == k, n % st == 0) {
            (true, true) => format!("  = n/s = {n}/{st}"),
            (true, false) => format!("  = floor(n/s) = floor({n}/{st})"),
            _ => String::new(),
        };
        println!(
            "   n={n} k={k} p={p} s={st}: m = floor(({n} - {k} + 2*{p}) / {st}) + 1 = {m}{simple}"
        );
    }
    Ok(())
}
