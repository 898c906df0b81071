//! Raster figures for the lecture tools: heatmaps with a legend (numbers in the cells of small
//! maps), line plots and bar charts, drawn into PNGs with the `image` crate and the public-domain
//! `font8x8` bitmap font.
//!
//! Why not `plotters`: its text needs a TrueType font found on the system or shipped with us, and
//! CI machines have none; an 8×8 bitmap font scaled by whole pixels is sharp and always present.
//! Labels are ASCII; the HTML page around the pictures carries the translated prose.

use font8x8::{UnicodeFonts, BASIC_FONTS};
use image::{Rgb, RgbImage};
use ndarray::Array2;

pub type Color = Rgb<u8>;

pub const WHITE: Color = Rgb([255, 255, 255]);
pub const BLACK: Color = Rgb([0, 0, 0]);
pub const GRAY: Color = Rgb([150, 150, 150]);
pub const LIGHT: Color = Rgb([228, 228, 228]);
pub const RED: Color = Rgb([220, 30, 40]);

/// Distinct line colours (Tableau 10), in the order series are drawn.
pub const PALETTE: [Color; 6] = [
    Rgb([31, 119, 180]),
    Rgb([255, 127, 14]),
    Rgb([44, 160, 44]),
    Rgb([214, 39, 40]),
    Rgb([148, 103, 189]),
    Rgb([140, 86, 75]),
];

/// A white RGB picture with drawing primitives; coordinates are clipped, never panic.
pub struct Canvas {
    pub img: RgbImage,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Canvas {
        Canvas {
            img: RgbImage::from_pixel(width.max(1), height.max(1), WHITE),
        }
    }

    pub fn width(&self) -> u32 {
        self.img.width()
    }

    pub fn height(&self) -> u32 {
        self.img.height()
    }

    pub fn put(&mut self, x: i64, y: i64, c: Color) {
        if x >= 0 && y >= 0 && (x as u64) < self.width() as u64 && (y as u64) < self.height() as u64
        {
            self.img.put_pixel(x as u32, y as u32, c);
        }
    }

    pub fn fill_rect(&mut self, x: i64, y: i64, w: u32, h: u32, c: Color) {
        for yy in y..y + h as i64 {
            for xx in x..x + w as i64 {
                self.put(xx, yy, c);
            }
        }
    }

    pub fn outline(&mut self, x: i64, y: i64, w: u32, h: u32, thickness: u32, c: Color) {
        let t = thickness as i64;
        let (w, h) = (w as i64, h as i64);
        for d in 0..t {
            for xx in x..x + w {
                self.put(xx, y + d, c);
                self.put(xx, y + h - 1 - d, c);
            }
            for yy in y..y + h {
                self.put(x + d, yy, c);
                self.put(x + w - 1 - d, yy, c);
            }
        }
    }

    /// A line `thickness` pixels wide; with `dash > 0`, drawn in dashes of that many pixels.
    #[allow(clippy::too_many_arguments)]
    pub fn line(
        &mut self,
        x0: i64,
        y0: i64,
        x1: i64,
        y1: i64,
        thickness: u32,
        dash: u32,
        c: Color,
    ) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
        let r = thickness as i64 / 2;
        for i in 0..=steps {
            if dash > 0 && (i / dash as i64) % 2 == 1 {
                continue;
            }
            let x = x0 + (x1 - x0) * i / steps;
            let y = y0 + (y1 - y0) * i / steps;
            for dy in -r..thickness as i64 - r {
                for dx in -r..thickness as i64 - r {
                    self.put(x + dx, y + dy, c);
                }
            }
        }
    }

    /// ASCII text with its top-left corner at (x, y), each font pixel drawn `scale`×`scale`.
    pub fn text(&mut self, x: i64, y: i64, s: &str, scale: u32, c: Color) {
        for (i, ch) in s.chars().enumerate() {
            let glyph = BASIC_FONTS
                .get(ch)
                .or_else(|| BASIC_FONTS.get('?'))
                .unwrap_or([0; 8]);
            let gx = x + (i as i64) * 8 * scale as i64;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        self.fill_rect(
                            gx + col * scale as i64,
                            y + row as i64 * scale as i64,
                            scale,
                            scale,
                            c,
                        );
                    }
                }
            }
        }
    }

    pub fn text_centered(&mut self, cx: i64, y: i64, s: &str, scale: u32, c: Color) {
        self.text(cx - text_width(s, scale) as i64 / 2, y, s, scale, c);
    }

    pub fn blit(&mut self, other: &Canvas, x: i64, y: i64) {
        for (ox, oy, p) in other.img.enumerate_pixels() {
            self.put(x + ox as i64, y + oy as i64, *p);
        }
    }

    /// The picture encoded as PNG.
    pub fn png(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.img
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .expect("encoding an in-memory RGB8 PNG cannot fail");
        bytes
    }
}

pub fn text_width(s: &str, scale: u32) -> u32 {
    s.chars().count() as u32 * 8 * scale
}

/// The value range a colour scale spans.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    pub lo: f64,
    pub hi: f64,
}

impl Scale {
    /// The finite range of all values given (0..1 when there are none).
    pub fn of<'a>(maps: impl IntoIterator<Item = &'a Array2<f64>>) -> Scale {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for m in maps {
            for &v in m.iter().filter(|v| v.is_finite()) {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        }
        Scale { lo, hi }
    }

    fn unit(&self, v: f64) -> f64 {
        if self.hi > self.lo {
            ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }
}

/// Viridis (perceptually uniform, readable in grey and by colour-blind readers), interpolated
/// between nine of its stops.
pub fn viridis(t: f64) -> Color {
    const STOPS: [[f64; 3]; 9] = [
        [68.0, 1.0, 84.0],
        [71.0, 44.0, 122.0],
        [59.0, 81.0, 139.0],
        [44.0, 113.0, 142.0],
        [33.0, 144.0, 141.0],
        [39.0, 173.0, 129.0],
        [92.0, 200.0, 99.0],
        [170.0, 220.0, 50.0],
        [253.0, 231.0, 37.0],
    ];
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) } * 8.0;
    let i = (t.floor() as usize).min(7);
    let f = t - i as f64;
    let mix = |k: usize| (STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f).round() as u8;
    Rgb([mix(0), mix(1), mix(2)])
}

fn luminance(c: Color) -> f64 {
    0.299 * c[0] as f64 + 0.587 * c[1] as f64 + 0.114 * c[2] as f64
}

/// A short label for a value: integers without a point, others with at most two decimals.
pub fn number_label(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// Options of a heatmap.
pub struct Heatmap<'a> {
    pub scale: Scale,
    /// Side of one cell in pixels; 0 picks a size that fits the printed numbers.
    pub cell: u32,
    /// Print each value in its cell (small maps).
    pub numbers: bool,
    /// Cells outlined in red: (row, col, rows, cols).
    pub marks: &'a [(usize, usize, usize, usize)],
}

/// A cell size that fits the printed numbers of every map given, so panels of one figure match.
pub fn cell_for<'a>(maps: impl IntoIterator<Item = &'a Array2<f64>>) -> u32 {
    let len = maps
        .into_iter()
        .flat_map(|m| m.iter())
        .map(|v| number_label(*v).len())
        .max()
        .unwrap_or(1);
    (len as u32 * 16 + 12).max(40)
}

/// A map drawn as coloured cells (row 0 at the top), with a thin grid when cells are large.
pub fn heatmap(map: &Array2<f64>, opts: &Heatmap) -> Canvas {
    let (rows, cols) = map.dim();
    let cell = if opts.cell > 0 {
        opts.cell
    } else if opts.numbers {
        cell_for([map])
    } else {
        40
    };
    let mut c = Canvas::new(cols as u32 * cell, rows as u32 * cell);
    for ((i, j), &v) in map.indexed_iter() {
        let color = viridis(opts.scale.unit(v));
        let (x, y) = ((j as u32 * cell) as i64, (i as u32 * cell) as i64);
        c.fill_rect(x, y, cell, cell, color);
        if cell >= 8 {
            c.outline(x, y, cell, cell, 1, WHITE);
        }
        if opts.numbers {
            let ink = if luminance(color) > 140.0 {
                BLACK
            } else {
                WHITE
            };
            let label = number_label(v);
            let scale = if text_width(&label, 2) + 4 <= cell {
                2
            } else {
                1
            };
            c.text_centered(
                x + cell as i64 / 2,
                y + (cell as i64 - 8 * scale as i64) / 2,
                &label,
                scale,
                ink,
            );
        }
    }
    for &(i, j, h, w) in opts.marks {
        c.outline(
            (j as u32 * cell) as i64,
            (i as u32 * cell) as i64,
            w as u32 * cell,
            h as u32 * cell,
            3,
            RED,
        );
    }
    c
}

/// A vertical colour bar for `scale`, `height` pixels tall, with its top, middle and bottom
/// values written beside it.
pub fn legend(scale: Scale, height: u32) -> Canvas {
    let height = height.max(60);
    let labels = [scale.hi, (scale.lo + scale.hi) / 2.0, scale.lo].map(number_label);
    let text_w = labels.iter().map(|l| text_width(l, 2)).max().unwrap_or(16);
    let mut c = Canvas::new(24 + 6 + text_w + 4, height);
    let bar = height - 8;
    for y in 0..bar {
        let t = 1.0 - y as f64 / (bar - 1).max(1) as f64;
        c.fill_rect(0, 4 + y as i64, 18, 1, viridis(t));
    }
    c.outline(0, 4, 18, bar, 1, BLACK);
    let x = 24;
    c.text(x, 0, &labels[0], 2, BLACK);
    c.text(x, (height / 2) as i64 - 8, &labels[1], 2, BLACK);
    c.text(x, height as i64 - 16, &labels[2], 2, BLACK);
    c
}

/// `body` with `title` (ASCII) written centred above it.
pub fn titled(title: &str, body: &Canvas) -> Canvas {
    let scale = if text_width(title, 2) <= body.width().max(160) {
        2
    } else {
        1
    };
    let th = 8 * scale + 10;
    let w = body.width().max(text_width(title, scale) + 8);
    let mut c = Canvas::new(w, body.height() + th);
    c.text_centered(w as i64 / 2, 2, title, scale, BLACK);
    c.blit(body, ((w - body.width()) / 2) as i64, th as i64);
    c
}

/// Pictures side by side, top-aligned, `gap` pixels apart.
pub fn row(parts: &[Canvas], gap: u32) -> Canvas {
    let w =
        parts.iter().map(|p| p.width()).sum::<u32>() + gap * parts.len().saturating_sub(1) as u32;
    let h = parts.iter().map(|p| p.height()).max().unwrap_or(1);
    let mut c = Canvas::new(w, h);
    let mut x = 0i64;
    for p in parts {
        c.blit(p, x, 0);
        x += (p.width() + gap) as i64;
    }
    c
}

/// Pictures stacked, left-aligned, `gap` pixels apart.
pub fn column(parts: &[Canvas], gap: u32) -> Canvas {
    let h =
        parts.iter().map(|p| p.height()).sum::<u32>() + gap * parts.len().saturating_sub(1) as u32;
    let w = parts.iter().map(|p| p.width()).max().unwrap_or(1);
    let mut c = Canvas::new(w, h);
    let mut y = 0i64;
    for p in parts {
        c.blit(p, 0, y);
        y += (p.height() + gap) as i64;
    }
    c
}

/// `body` inside a white margin.
pub fn margin(body: &Canvas, m: u32) -> Canvas {
    let mut c = Canvas::new(body.width() + 2 * m, body.height() + 2 * m);
    c.blit(body, m as i64, m as i64);
    c
}

/// One line of a plot.
pub struct Series {
    pub label: String,
    pub values: Vec<f64>,
    pub color: Color,
    pub dashed: bool,
}

/// A line plot of `series` over the integer x values `xs`, y axis from `y_lo` to `y_hi`.
pub fn line_plot(
    title: &str,
    x_label: &str,
    y_label: &str,
    xs: &[f64],
    series: &[Series],
    (y_lo, y_hi): (f64, f64),
) -> Canvas {
    let (pw, ph) = (560i64, 340i64);
    let (left, top) = (70i64, 40i64);
    let legend_w = series
        .iter()
        .map(|s| text_width(&s.label, 1) as i64)
        .max()
        .unwrap_or(0)
        + 50;
    let width = (left + pw + 20 + legend_w).max(text_width(title, 2) as i64 + 20);
    let mut c = Canvas::new(width as u32, (top + ph + 60) as u32);
    c.text_centered(width / 2, 8, title, 2, BLACK);
    let (x_lo, x_hi) = (
        xs.iter().cloned().fold(f64::INFINITY, f64::min),
        xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    );
    let x_span = if x_hi > x_lo { x_hi - x_lo } else { 1.0 };
    // ticks at a round step; the axis starts at a multiple of it
    let raw_span = if y_hi > y_lo { y_hi - y_lo } else { 1.0 };
    let step = [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|s| raw_span / s <= 8.0)
        .unwrap_or(raw_span / 4.0);
    let y_lo = (y_lo / step).floor() * step;
    let y_span = if y_hi > y_lo { y_hi - y_lo } else { 1.0 };
    let px = |x: f64| left + ((x - x_lo) / x_span * pw as f64).round() as i64;
    let py = |y: f64| top + ph - ((y.clamp(y_lo, y_hi) - y_lo) / y_span * ph as f64).round() as i64;
    let ticks = (y_span / step).round() as i64;
    for k in 0..=ticks {
        let y = y_lo + step * k as f64;
        c.line(left, py(y), left + pw, py(y), 1, 0, LIGHT);
        let l = number_label(y);
        c.text(left - 8 - text_width(&l, 1) as i64, py(y) - 4, &l, 1, BLACK);
    }
    for &x in xs {
        c.line(px(x), top + ph, px(x), top + ph + 5, 1, 0, BLACK);
        c.text_centered(px(x), top + ph + 10, &number_label(x), 1, BLACK);
    }
    c.line(left, top, left, top + ph, 2, 0, BLACK);
    c.line(left, top + ph, left + pw, top + ph, 2, 0, BLACK);
    c.text_centered(left + pw / 2, top + ph + 30, x_label, 1, BLACK);
    // the y label, written vertically one character per line
    for (i, ch) in y_label.chars().enumerate() {
        c.text(8, top + 10 + i as i64 * 10, &ch.to_string(), 1, BLACK);
    }
    for s in series {
        let pts: Vec<(i64, i64)> = xs
            .iter()
            .zip(&s.values)
            .filter(|(_, v)| v.is_finite())
            .map(|(&x, &v)| (px(x), py(v)))
            .collect();
        for w in pts.windows(2) {
            c.line(
                w[0].0,
                w[0].1,
                w[1].0,
                w[1].1,
                if s.dashed { 2 } else { 3 },
                if s.dashed { 6 } else { 0 },
                s.color,
            );
        }
        for &(x, y) in &pts {
            c.fill_rect(x - 3, y - 3, 7, 7, s.color);
        }
    }
    let lx = left + pw + 20;
    for (i, s) in series.iter().enumerate() {
        let y = top + 10 + i as i64 * 20;
        c.line(
            lx,
            y + 4,
            lx + 36,
            y + 4,
            if s.dashed { 2 } else { 3 },
            if s.dashed { 6 } else { 0 },
            s.color,
        );
        c.text(lx + 44, y, &s.label, 1, BLACK);
    }
    c
}

/// Horizontal bars with their values written at their ends.
pub fn bar_chart(title: &str, bars: &[(String, f64)]) -> Canvas {
    let label_w = bars
        .iter()
        .map(|(l, _)| text_width(l, 1))
        .max()
        .unwrap_or(0) as i64;
    let max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max);
    let bar_w = 420i64;
    let mut c = Canvas::new(
        (label_w + bar_w + 160) as u32,
        (40 + bars.len() * 44 + 10) as u32,
    );
    c.text(8, 8, title, 2, BLACK);
    for (i, (label, v)) in bars.iter().enumerate() {
        let y = 40 + i as i64 * 44;
        c.text(8, y + 12, label, 1, BLACK);
        let w = if max > 0.0 {
            (v / max * bar_w as f64).round() as u32
        } else {
            0
        };
        c.fill_rect(label_w + 16, y, w.max(1), 32, PALETTE[i % PALETTE.len()]);
        c.text(
            label_w + 24 + w as i64,
            y + 12,
            &group_digits(*v as u64),
            1,
            BLACK,
        );
    }
    c
}

/// 1234567 → "1,234,567".
pub fn group_digits(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn labels_and_digits() {
        assert_eq!(number_label(3.25), "3.25");
        assert_eq!(number_label(2.0), "2");
        assert_eq!(number_label(-0.001), "0");
        assert_eq!(number_label(f64::NEG_INFINITY), "-inf");
        assert_eq!(group_digits(1234567), "1,234,567");
        assert_eq!(group_digits(12), "12");
    }

    #[test]
    fn heatmap_colours_follow_the_scale_and_marks_are_red() {
        let m = array![[0.0, 2.0]];
        let scale = Scale::of([&m]);
        assert_eq!(scale, Scale { lo: 0.0, hi: 2.0 });
        let h = heatmap(
            &m,
            &Heatmap {
                scale,
                cell: 20,
                numbers: false,
                marks: &[(0, 1, 1, 1)],
            },
        );
        assert_eq!((h.width(), h.height()), (40, 20));
        assert_eq!(*h.img.get_pixel(10, 10), viridis(0.0));
        assert_eq!(*h.img.get_pixel(30, 10), viridis(1.0));
        assert_eq!(*h.img.get_pixel(21, 10), RED);
    }

    #[test]
    fn text_draws_ink_and_clips_outside() {
        let mut c = Canvas::new(20, 10);
        c.text(0, 0, "8", 1, BLACK);
        c.text(-50, -50, "clipped", 3, BLACK);
        assert!(c.img.pixels().any(|p| *p == BLACK));
        let png = c.png();
        assert_eq!(&png[1..4], b"PNG");
    }
}
