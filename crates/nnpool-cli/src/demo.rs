//! `nnpool demo`: replays the lecture's claims about pooling on its own examples. Every number
//! printed is computed here by nnpool's pooling (and a plain convolution), never typed in.

use crate::figure::{self, Canvas, Heatmap, Scale};
use crate::invariance;
use crate::Failure;
use base64::Engine;
use ndarray::{array, s, Array2, Array4, Axis};
use nnpool::nn::MaxPool2d;
use nnpool::{Layout, PoolPlan, Pooling, Window};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Language of the walkthrough: en (default) or zh (the lecture's language).
    #[arg(long, default_value = "en", value_name = "en|zh")]
    pub lang: String,
    /// Folder for the pictures and the HTML page (default: a new folder ./nnpool-demo, or
    /// ./nnpool-demo-2, ... if that exists).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace nnpool's files in an --out folder that already has files.
    #[arg(long)]
    pub force: bool,
    /// Print the walkthrough only; write no pictures.
    #[arg(long, conflicts_with_all = ["out", "force"])]
    pub no_pictures: bool,
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
    let y = nnpool::array::forward_values(op, x.view(), Layout::ChannelsFirst)?;
    Ok(y.index_axis(Axis(0), 0).index_axis(Axis(0), 0).to_owned())
}

/// The lecture's vertical-edge image: 7 rows of `1 1 1 0 0 0`, with the edge moved right by
/// `shift` pixels (the bright region extends, so no second edge appears at the left border).
pub fn edge_image(shift: usize) -> Array2<f64> {
    Array2::from_shape_fn((7, 6), |(_, j)| if j < 3 + shift { 1.0 } else { 0.0 })
}

/// One picture of the walkthrough.
struct Figure {
    file: String,
    caption: String,
    png: Vec<u8>,
}

struct Section {
    title: String,
    text: String,
    figures: Vec<Figure>,
}

/// The walkthrough as it is told: printed line by line, and kept for the HTML page.
struct Report {
    lang: Lang,
    pictures: bool,
    sections: Vec<Section>,
}

impl Report {
    fn l<'a>(&self, en: &'a str, zh: &'a str) -> &'a str {
        self.lang.t(en, zh)
    }

    fn section(&mut self, title: &str) {
        let n = self.sections.len() + 1;
        println!("{n}. {title}");
        self.sections.push(Section {
            title: format!("{n}. {title}"),
            text: String::new(),
            figures: Vec::new(),
        });
    }

    fn say(&mut self, text: impl AsRef<str>) {
        let text = text.as_ref();
        println!("{text}");
        if let Some(s) = self.sections.last_mut() {
            s.text.push_str(text);
            s.text.push('\n');
        }
    }

    fn end_section(&mut self) {
        println!();
    }

    /// Adds a picture to the current section; `draw` runs only when pictures are wanted.
    fn figure(&mut self, file: &str, caption: &str, draw: impl FnOnce() -> Canvas) {
        if !self.pictures {
            return;
        }
        let png = figure::margin(&draw(), 12).png();
        if let Some(s) = self.sections.last_mut() {
            s.figures.push(Figure {
                file: file.into(),
                caption: caption.into(),
                png,
            });
        }
    }
}

fn map_panel(
    title: &str,
    m: &Array2<f64>,
    scale: Scale,
    cell: u32,
    marks: &[(usize, usize, usize, usize)],
) -> Canvas {
    figure::titled(
        title,
        &figure::heatmap(
            m,
            &Heatmap {
                scale,
                cell,
                numbers: true,
                marks,
            },
        ),
    )
}

fn with_legend(body: Canvas, scale: Scale) -> Canvas {
    let h = body.height().min(320);
    figure::row(&[body, figure::legend(scale, h)], 24)
}

/// Input cells -p..n+p as boxes with each output's window drawn as a bar below them.
fn window_diagram(n: usize, k: usize, p: usize, s: usize, m: usize) -> Canvas {
    let cell = 34i64;
    let cells = (n + 2 * p) as i64;
    let top = 36i64;
    let title = format!("n={n} k={k} p={p} s={s} -> m={m}");
    let width = (cells * cell + 20).max(figure::text_width(&title, 2) as i64 + 8);
    let mut c = Canvas::new(width as u32, (top + cell + 22 + m as i64 * 16 + 8) as u32);
    c.text(4, 4, &title, 2, figure::BLACK);
    let mut covered = vec![false; cells as usize];
    for i in 0..m {
        for t in 0..k {
            if let Some(v) = covered.get_mut(i * s + t) {
                *v = true;
            }
        }
    }
    for q in 0..cells {
        let x = 10 + q * cell;
        let pad = q < p as i64 || q >= (n + p) as i64;
        let fill = if pad { figure::LIGHT } else { figure::WHITE };
        c.fill_rect(x, top, cell as u32, cell as u32, fill);
        c.outline(x, top, cell as u32, cell as u32, 1, figure::BLACK);
        let label = if pad {
            "0".to_string()
        } else {
            (q - p as i64).to_string()
        };
        c.text_centered(x + cell / 2, top + cell / 2 - 4, &label, 1, figure::GRAY);
        if !covered[q as usize] {
            c.outline(
                x + 2,
                top + 2,
                cell as u32 - 4,
                cell as u32 - 4,
                2,
                figure::RED,
            );
        }
    }
    for i in 0..m {
        let x = 10 + (i * s) as i64 * cell + 3;
        let y = top + cell + 10 + i as i64 * 16;
        let color = figure::PALETTE[i % figure::PALETTE.len()];
        c.fill_rect(x, y, (k as i64 * cell - 6) as u32, 10, color);
    }
    c
}

fn gray_picture(gray: &Array2<f32>) -> Canvas {
    let (h, w) = gray.dim();
    let mut c = Canvas::new(w as u32, h as u32);
    for ((i, j), &v) in gray.indexed_iter() {
        let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        c.img.put_pixel(j as u32, i as u32, image::Rgb([g, g, g]));
    }
    c
}

/// Chooses the output folder: `--out` as given (refusing one with files unless --force), or a
/// new ./nnpool-demo[-N].
fn output_folder(args: &DemoArgs) -> Result<PathBuf, Failure> {
    match &args.out {
        Some(dir) => {
            if dir.exists() && !dir.is_dir() {
                return Err(Failure::Io(format!(
                    "--out {}: exists and is not a folder",
                    dir.display()
                )));
            }
            let has_files = std::fs::read_dir(dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            if has_files && !args.force {
                return Err(Failure::Io(format!(
                    "--out {}: the folder is not empty; pass --force to overwrite nnpool's files in it",
                    dir.display()
                )));
            }
            Ok(dir.clone())
        }
        None => (1..10_000)
            .map(|i| {
                PathBuf::from(if i == 1 {
                    "nnpool-demo".to_string()
                } else {
                    format!("nnpool-demo-{i}")
                })
            })
            .find(|p| !p.exists())
            .ok_or_else(|| {
                Failure::Io("no free folder name nnpool-demo-N here; pass --out".into())
            }),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One self-contained page: the walkthrough's text and every picture inlined as a data URI.
fn html_page(report: &Report) -> String {
    let lang = match report.lang {
        Lang::En => "en",
        Lang::Zh => "zh",
    };
    let title = report.l(
        "Pooling, live: the lecture's claims computed by nnpool",
        "池化层：用 nnpool 计算讲义中的结论",
    );
    let mut body = String::new();
    for s in &report.sections {
        body.push_str(&format!(
            "<section>\n<h2>{}</h2>\n<pre>{}</pre>\n",
            html_escape(&s.title),
            html_escape(&s.text)
        ));
        for f in &s.figures {
            body.push_str(&format!(
                "<figure><img src=\"data:image/png;base64,{}\" alt=\"{}\"><figcaption>{} <a href=\"{}\">{}</a></figcaption></figure>\n",
                base64::engine::general_purpose::STANDARD.encode(&f.png),
                html_escape(&f.caption),
                html_escape(&f.caption),
                html_escape(&f.file),
                html_escape(&f.file)
            ));
        }
        body.push_str("</section>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>\n\
         body {{ font-family: sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; color: #222; }}\n\
         pre {{ background: #f6f6f6; padding: 0.8em; overflow-x: auto; }}\n\
         figure {{ margin: 1em 0; }} img {{ max-width: 100%; border: 1px solid #ddd; }}\n\
         figcaption {{ color: #555; font-size: 0.9em; }} section {{ margin-bottom: 2.5em; }}\n\
         </style>\n</head>\n<body>\n<h1>{t}</h1>\n<p>{intro}</p>\n{body}</body>\n</html>\n",
        t = html_escape(title),
        intro = html_escape(report.l(
            "Every number and picture below was computed by nnpool's own pooling and convolution code when this page was written (nnpool demo).",
            "本页所有数字和图片均由 nnpool 自己的池化和卷积代码在生成时计算得到（nnpool demo）。"
        )),
    )
}

fn write_pictures(report: &Report, dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Failure::Io(format!(
            "--out {}: cannot create the folder: {e}",
            dir.display()
        ))
    })?;
    for f in report.sections.iter().flat_map(|s| &s.figures) {
        crate::files::write_atomic(&dir.join(&f.file), &f.png).map_err(Failure::Io)?;
    }
    crate::files::write_atomic(&dir.join("index.html"), html_page(report).as_bytes())
        .map_err(Failure::Io)
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
    let dir = if args.no_pictures {
        None
    } else {
        Some(output_folder(args)?)
    };
    let mut r = Report {
        lang,
        pictures: dir.is_some(),
        sections: Vec::new(),
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
    r.section(l(
        "A one-pixel shift zeroes an edge response; pooling brings it back",
        "1个像素的位移会导致0输出；池化让它恢复",
    ));
    let kernel = array![[1.0, -1.0], [1.0, -1.0]];
    let img = edge_image(0);
    let shifted = edge_image(1);
    let edges = conv2d_valid(&img, &kernel);
    let edges_shifted = conv2d_valid(&shifted, &kernel);
    r.say(format!(
        "{} (7x6):\n{}",
        l("input image", "输入图"),
        show(&img)
    ));
    r.say(format!("{}:\n{}", l("kernel", "卷积核"), show(&kernel)));
    r.say(format!(
        "{} ({}x{}):\n{}",
        l("edge map", "边缘图"),
        edges.nrows(),
        edges.ncols(),
        show(&edges)
    ));
    r.say(format!(
        "{}:\n{}",
        l(
            "edge map after the edge moves one pixel right",
            "边缘右移1个像素后的边缘图"
        ),
        show(&edges_shifted)
    ));
    let col = (0..edges.ncols())
        .find(|&j| edges[[0, j]] != 0.0)
        .unwrap_or(0);
    r.say(format!(
        "{} {col}: {} -> {}",
        l("edge response at column", "边缘响应，列"),
        trim(edges[[0, col]]),
        trim(edges_shifted[[0, col]])
    ));
    let maxp = Pooling::max(Window::new(&[2, 2]).stride(&[2, 2]));
    let avgp = Pooling::avg(Window::new(&[2, 2]).stride(&[2, 2]));
    let pooled = pool2(&maxp, &edges)?;
    let pooled_shifted = pool2(&maxp, &edges_shifted)?;
    r.say(format!(
        "{}:\n{}",
        l(
            "max pooling 2x2, stride 2, of the edge map",
            "边缘图的 2x2 最大池化（步幅 2）"
        ),
        show(&pooled)
    ));
    r.say(format!(
        "{}:\n{}",
        l(
            "the same pooling of the shifted edge map",
            "位移后边缘图的同样池化"
        ),
        show(&pooled_shifted)
    ));
    let pc = col / 2;
    r.say(format!(
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
    ));
    let avg = pool2(&avgp, &edges)?;
    let avg_shifted = pool2(&avgp, &edges_shifted)?;
    r.say(format!(
        "{}: {} -> {}",
        l("average pooling at the same place", "同一位置的平均池化"),
        trim(avg[[0, pc]]),
        trim(avg_shifted[[0, pc]])
    ));
    r.figure(
        "1-edge-shift.png",
        l(
            "Top: the image, its edge map and the edge map pooled 2x2 / stride 2. Bottom: the same after a one-pixel shift. Red: the edge column and the pooled cells covering it.",
            "上：原图、边缘图及其 2x2 / 步幅 2 池化结果。下：位移1个像素后的同样结果。红框：边缘所在列及覆盖它的池化单元。",
        ),
        || {
            let scale = Scale::of([&img, &edges, &shifted, &edges_shifted]);
            let cell = figure::cell_for([&img, &edges, &shifted, &edges_shifted, &pooled, &avg]);
            let (er, pr) = (edges.nrows(), pooled.nrows());
            let line = |title: &str, x: &Array2<f64>, e: &Array2<f64>, m: &Array2<f64>, a: &Array2<f64>| {
                figure::titled(
                    title,
                    &figure::row(
                        &[
                            map_panel("image", x, scale, cell, &[]),
                            map_panel("edge map", e, scale, cell, &[(0, col, er, 1)]),
                            map_panel("max 2x2/2", m, scale, cell, &[(0, pc, pr, 1)]),
                            map_panel("avg 2x2/2", a, scale, cell, &[(0, pc, pr, 1)]),
                        ],
                        28,
                    ),
                )
            };
            with_legend(
                figure::column(
                    &[
                        line("original", &img, &edges, &pooled, &avg),
                        line("shifted one pixel right", &shifted, &edges_shifted, &pooled_shifted, &avg_shifted),
                    ],
                    24,
                ),
                scale,
            )
        },
    );
    r.end_section();

    // 2. Max and average of one window.
    r.section(l("Max pooling and average pooling", "最大池化和平均池化"));
    let x = array![
        [1.0, 1.0, 2.0, 4.0],
        [5.0, 6.0, 7.0, 8.0],
        [3.0, 2.0, 1.0, 0.0],
        [1.0, 2.0, 3.0, 4.0]
    ];
    r.say(format!("{} (4x4):\n{}", l("input", "输入"), show(&x)));
    let mx = pool2(&maxp, &x)?;
    let av = pool2(&avgp, &x)?;
    let w = x.slice(s![0..2, 0..2]);
    let list = w.iter().map(|v| trim(*v)).collect::<Vec<_>>().join(", ");
    r.say(format!(
        "{}: max({list}) = {}   mean({list}) = {}",
        l("top-left 2x2 window", "左上 2x2 窗口"),
        trim(mx[[0, 0]]),
        trim(av[[0, 0]])
    ));
    r.say(format!(
        "{}:\n{}",
        l("max pooling 2x2 / 2", "最大池化 2x2 / 2"),
        show(&mx)
    ));
    r.say(format!(
        "{}:\n{}",
        l("average pooling 2x2 / 2", "平均池化 2x2 / 2"),
        show(&av)
    ));
    r.figure(
        "2-max-avg.png",
        l(
            "The top-left 2x2 window (red) becomes one value: its maximum, or its mean.",
            "左上 2x2 窗口（红框）变为一个值：最大值或平均值。",
        ),
        || {
            let scale = Scale::of([&x]);
            let cell = figure::cell_for([&x, &mx, &av]);
            with_legend(
                figure::row(
                    &[
                        map_panel("input 4x4", &x, scale, cell, &[(0, 0, 2, 2)]),
                        map_panel(
                            &format!("max = {}", trim(mx[[0, 0]])),
                            &mx,
                            scale,
                            cell,
                            &[(0, 0, 1, 1)],
                        ),
                        map_panel(
                            &format!("mean = {}", trim(av[[0, 0]])),
                            &av,
                            scale,
                            cell,
                            &[(0, 0, 1, 1)],
                        ),
                    ],
                    36,
                ),
                scale,
            )
        },
    );
    r.end_section();

    // 3. Width and height only; channels independent; no parameters.
    r.section(l(
        "Pooling samples width and height, never depth",
        "池化只在宽和高上采样，不改变深度",
    ));
    let x3 = Array4::from_shape_fn((1, 3, 4, 4), |(_, c, i, j)| {
        ((c * 16 + i * 4 + j) * 7 % 10) as f32
    });
    let layer = MaxPool2d::new([2, 2]);
    let y3 = layer.forward(x3.view())?;
    r.say(format!(
        "{}: {:?} -> {:?}  (C_in = C_out = {})",
        l("shape", "形状"),
        x3.shape(),
        y3.shape(),
        y3.shape()[1]
    ));
    let independent = (0..3).all(|c| {
        let one = x3.slice(s![.., c..c + 1, .., ..]).to_owned();
        layer
            .forward(one.view())
            .map(|yc| yc.slice(s![0, 0, .., ..]) == y3.slice(s![0, c, .., ..]))
            .unwrap_or(false)
    });
    r.say(format!(
        "{}: {independent}",
        l(
            "each channel pooled alone gives the same map",
            "逐通道单独池化结果相同"
        )
    ));
    r.say(format!(
        "{}: 0 ({})",
        l("learnable parameters", "可学习参数"),
        l(
            "a pooling layer holds only its window options",
            "池化层只保存窗口超参数"
        )
    ));
    r.figure(
        "3-channels.png",
        l(
            "Each of the three feature maps is pooled on its own: three maps in, three maps out, each half as wide and high.",
            "三个特征图各自独立池化：输入三个，输出三个，宽和高各减半。",
        ),
        || {
            let to64 = |c: usize, y: &Array4<f32>| y.slice(s![0, c, .., ..]).mapv(f64::from);
            let ins: Vec<Array2<f64>> = (0..3).map(|c| to64(c, &x3)).collect();
            let outs: Vec<Array2<f64>> = (0..3).map(|c| to64(c, &y3)).collect();
            let scale = Scale::of(ins.iter().chain(outs.iter()));
            let panels = |maps: &[Array2<f64>], what: &str| {
                maps.iter()
                    .enumerate()
                    .map(|(c, m)| map_panel(&format!("{what} channel {c}"), m, scale, 0, &[]))
                    .collect::<Vec<_>>()
            };
            with_legend(
                figure::column(
                    &[
                        figure::row(&panels(&ins, "in"), 28),
                        figure::row(&panels(&outs, "out"), 28),
                    ],
                    24,
                ),
                scale,
            )
        },
    );
    r.end_section();

    // 4. Computation saved.
    r.section(l(
        "Pooling cuts the computation of the next layer",
        "池化能成倍减少计算量",
    ));
    let (c, h) = (64usize, 56usize);
    let plan = PoolPlan::new(&maxp, &[1, c, h, h], Layout::ChannelsFirst)?;
    let ho = plan.output_shape()[2];
    let macs = |s: usize| s * s * c * c * 9;
    r.say(format!(
        "{}: {h}x{h}x{c}: {} MACs; {} {ho}x{ho}x{c}: {} MACs ({} {}x)",
        l(
            "3x3 conv, 64 -> 64 channels, on",
            "3x3 卷积 64 -> 64 通道，输入"
        ),
        macs(h),
        l("after 2x2/2 pooling", "2x2/2 池化后"),
        macs(ho),
        l("fewer by", "减少"),
        macs(h) / macs(ho)
    ));
    r.figure(
        "4-computation.png",
        l(
            "Multiply-adds of a 3x3 convolution (64 -> 64 channels) on a 56x56 map, and on the 28x28 map left after 2x2 / stride-2 pooling.",
            "3x3 卷积（64 -> 64 通道）在 56x56 特征图上、以及 2x2 / 步幅 2 池化后 28x28 特征图上的乘加次数。",
        ),
        || {
            figure::bar_chart(
                &format!("3x3 conv multiply-adds: {}x fewer", macs(h) / macs(ho)),
                &[
                    (format!("on {h}x{h}x{c}"), macs(h) as f64),
                    (format!("on {ho}x{ho}x{c} (pooled)"), macs(ho) as f64),
                ],
            )
        },
    );
    r.end_section();

    // 5. The output-size formula.
    r.section(l(
        "Output size m = (n - k + 2p) / s + 1",
        "输出尺寸 m = (n - k + 2p) / s + 1",
    ));
    let mut diagrams = Vec::new();
    for (n, k, p, st) in [
        (6usize, 2usize, 0usize, 2usize),
        (5, 2, 0, 2),
        (7, 3, 1, 2),
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
        r.say(format!(
            "   n={n} k={k} p={p} s={st}: m = floor(({n} - {k} + 2*{p}) / {st}) + 1 = {m}{simple}"
        ));
        if n <= 12 {
            diagrams.push((n, k, p, st, m));
        }
    }
    r.figure(
        "5-output-size.png",
        l(
            "Windows (coloured bars) over the input cells (grey: padding). A red box marks a cell no window reaches: the floor in the formula drops it.",
            "窗口（彩色条）覆盖的输入单元（灰色：填充）。红框标出没有窗口覆盖的单元：公式中的向下取整把它舍去了。",
        ),
        || {
            figure::column(
                &diagrams
                    .iter()
                    .map(|&(n, k, p, s, m)| window_diagram(n, k, p, s, m))
                    .collect::<Vec<_>>(),
                20,
            )
        },
    );
    r.end_section();

    // 6. The claim on a real photograph.
    r.section(l(
        "Shift tolerance measured on a photograph",
        "在真实照片上测量平移不变性",
    ));
    let (gray, _) = invariance::load_gray(None)?;
    let measured = invariance::measure(&gray, 8, &[2, 4])?;
    r.say(l(
        "NASA's public-domain photograph of Eileen Collins (512x512), shifted right by 0..8 pixels;\n\
         vertical-edge map |x * [[1,-1],[1,-1]]|, then k x k / stride k pooling:",
        "NASA 公有领域照片（宇航员 Eileen Collins，512x512）右移 0..8 个像素；\n\
         竖直边缘图 |x * [[1,-1],[1,-1]]|，再做 k x k / 步幅 k 池化：",
    ));
    r.say(invariance::table(&measured).trim_end());
    r.figure(
        "6-photo-edges.png",
        l(
            "The photograph (luminance) and its vertical-edge map (colour scale clipped at the 99th percentile).",
            "照片（亮度）及其竖直边缘图（色标截断在第99百分位）。",
        ),
        || {
            let edges = invariance::vertical_edges(&gray).mapv(f64::from);
            // a few strong edges would leave the rest dark: clip the scale at the 99th percentile
            let mut sorted: Vec<f64> = edges.iter().cloned().collect();
            sorted.sort_by(f64::total_cmp);
            let scale = Scale {
                lo: 0.0,
                hi: sorted[sorted.len() * 99 / 100].max(f64::MIN_POSITIVE),
            };
            with_legend(
                figure::row(
                    &[
                        figure::titled("photograph", &gray_picture(&gray)),
                        figure::titled(
                            "vertical edges",
                            &figure::heatmap(
                                &edges,
                                &Heatmap {
                                    scale,
                                    cell: 1,
                                    numbers: false,
                                    marks: &[],
                                },
                            ),
                        ),
                    ],
                    24,
                ),
                scale,
            )
        },
    );
    r.figure(
        "7-shift-tolerance.png",
        l(
            "Cosine similarity between the edge map of the shifted photo and the original, at the same positions. Pooling keeps the maps more similar at every shift, and a larger window more so; max pooling keeps more values exactly unchanged (see the table).",
            "位移后与原图边缘图在相同位置上的余弦相似度。池化在每个位移下都使结果更相似，窗口越大越明显；最大池化保留了更多完全不变的值（见表）。",
        ),
        || invariance::plot(&measured, "astronaut, NASA"),
    );
    r.end_section();

    if let Some(dir) = dir {
        write_pictures(&r, &dir)?;
        println!(
            "{}: {}",
            l("pictures and page", "图片和网页"),
            dir.join("index.html").display()
        );
    }
    Ok(())
}
