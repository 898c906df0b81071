//! `nnpool image`: pools a picture, each colour channel independently (grayscale, RGB, RGBA;
//! 8- and 16-bit), optionally scaled back up by nearest neighbour so it can be compared at the
//! same size.

use crate::options::PoolArgs;
use crate::Failure;
use image::{DynamicImage, ImageBuffer, Luma, LumaA, Rgb, Rgba};
use nnpool::{Layout, PoolPlan};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct ImageArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Scale the result back up by nearest neighbour to the input's size.
    #[arg(long)]
    pub upscale: bool,
    /// The picture (PNG or JPEG).
    pub input: PathBuf,
    /// Where to write the pooled picture (PNG).
    pub output: PathBuf,
}

/// Pools `[H, W, C]` channels-last samples of type f32 and returns the output and its size.
fn pool_hwc(
    args: &ImageArgs,
    data: &[f32],
    h: usize,
    w: usize,
    c: usize,
) -> Result<(Vec<f32>, usize, usize), Failure> {
    let shape = [1, h, w, c];
    let mut pool = args.pool.clone();
    pool.layout = Some("nhwc".into());
    let op = pool.pooling(4, None)?;
    if op.rank() != 2 {
        return Err(Failure::invalid(
            "image pooling is 2-d: give one or two values for --kernel-size / --output-size",
        ));
    }
    let plan = PoolPlan::new(&op, &shape, Layout::ChannelsLast)?;
    let y = plan.forward_to_vec(data)?;
    let o = plan.output_shape();
    Ok((y, o[1], o[2]))
}

fn upscale(y: &[f32], oh: usize, ow: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0f32; h * w * c];
    for i in 0..h {
        let si = (i * oh / h).min(oh - 1);
        for j in 0..w {
            let sj = (j * ow / w).min(ow - 1);
            out[(i * w + j) * c..(i * w + j + 1) * c]
                .copy_from_slice(&y[(si * ow + sj) * c..(si * ow + sj + 1) * c]);
        }
    }
    out
}

pub fn run(args: &ImageArgs) -> Result<(), Failure> {
    crate::options::check_op(&args.pool.op)?;
    let img = image::ImageReader::open(&args.input)
        .map_err(|e| Failure::Io(format!("{}: cannot read: {e}", args.input.display())))?
        .with_guessed_format()
        .map_err(|e| Failure::Io(format!("{}: cannot read: {e}", args.input.display())))?
        .decode()
        .map_err(|e| {
            Failure::invalid(format!(
                "{}: not a readable PNG or JPEG image: {e}",
                args.input.display()
            ))
        })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let sixteen = matches!(
        img,
        DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_)
            | DynamicImage::ImageRgb16(_)
            | DynamicImage::ImageRgba16(_)
    );
    let c = img.color().channel_count() as usize;
    let data: Vec<f32> = if sixteen {
        match c {
            1 => img.to_luma16().into_raw(),
            2 => img.to_luma_alpha16().into_raw(),
            3 => img.to_rgb16().into_raw(),
            _ => img.to_rgba16().into_raw(),
        }
        .into_iter()
        .map(f32::from)
        .collect()
    } else {
        match c {
            1 => img.to_luma8().into_raw(),
            2 => img.to_luma_alpha8().into_raw(),
            3 => img.to_rgb8().into_raw(),
            _ => img.to_rgba8().into_raw(),
        }
        .into_iter()
        .map(f32::from)
        .collect()
    };
    let (mut y, mut oh, mut ow) = pool_hwc(args, &data, h, w, c)?;
    if args.upscale {
        y = upscale(&y, oh, ow, c, h, w);
        (oh, ow) = (h, w);
    }
    let (ow32, oh32) = (ow as u32, oh as u32);
    let out = if sixteen {
        let px: Vec<u16> = y
            .iter()
            .map(|v| v.round().clamp(0.0, 65535.0) as u16)
            .collect();
        match c {
            1 => DynamicImage::ImageLuma16(
                ImageBuffer::<Luma<u16>, _>::from_raw(ow32, oh32, px).expect("size"),
            ),
            2 => DynamicImage::ImageLumaA16(
                ImageBuffer::<LumaA<u16>, _>::from_raw(ow32, oh32, px).expect("size"),
            ),
            3 => DynamicImage::ImageRgb16(
                ImageBuffer::<Rgb<u16>, _>::from_raw(ow32, oh32, px).expect("size"),
            ),
            _ => DynamicImage::ImageRgba16(
                ImageBuffer::<Rgba<u16>, _>::from_raw(ow32, oh32, px).expect("size"),
            ),
        }
    } else {
        let px: Vec<u8> = y
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect();
        match c {
            1 => DynamicImage::ImageLuma8(
                ImageBuffer::<Luma<u8>, _>::from_raw(ow32, oh32, px).expect("size"),
            ),
            2 => DynamicImage::ImageLumaA8(
                ImageBuffer::<LumaA<u8>, _>::from_raw(ow32, oh32, px).expect("size"),
            ),
            3 => DynamicImage::ImageRgb8(
                ImageBuffer::<Rgb<u8>, _>::from_raw(ow32, oh32, px).expect("size"),
            ),
            _ => DynamicImage::ImageRgba8(
                ImageBuffer::<Rgba<u8>, _>::from_raw(ow32, oh32, px).expect("size"),
            ),
        }
    };
    let mut png = Vec::new();
    out.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Failure::Io(format!("{}: cannot encode: {e}", args.output.display())))?;
    crate::files::write_atomic(&args.output, &png).map_err(Failure::Io)?;
    println!(
        "{}: {w}x{h}x{c} -> {}x{}x{c} ({})",
        args.output.display(),
        ow,
        oh,
        args.pool.op
    );
    Ok(())
}
