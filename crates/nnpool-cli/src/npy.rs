//! `.npy` input and output. Reading goes through `npyz`, after checking the header and the data
//! length ourselves so that a hostile file (huge shape, truncated data) gives an error, never an
//! allocation failure. Writing goes to a temporary file that is renamed into place only after
//! every output of a command has been written.

use half::f16;
use std::fmt;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A tensor read from or written to a `.npy` file: C-order data and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

/// Typed element storage.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F16(Vec<f16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
}

/// Runs `$body` with `$v` bound to the typed vector inside a [`Data`].
#[macro_export]
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::npy::Data::F16($v) => $body,
            $crate::npy::Data::F32($v) => $body,
            $crate::npy::Data::F64($v) => $body,
            $crate::npy::Data::I8($v) => $body,
            $crate::npy::Data::I16($v) => $body,
            $crate::npy::Data::I32($v) => $body,
            $crate::npy::Data::I64($v) => $body,
            $crate::npy::Data::U8($v) => $body,
            $crate::npy::Data::U16($v) => $body,
            $crate::npy::Data::U32($v) => $body,
            $crate::npy::Data::U64($v) => $body,
        }
    };
}

/// Element types that can live in a [`Data`].
pub trait Storable: nnpool::Element + npyz::Deserialize + npyz::AutoSerialize {
    fn wrap(v: Vec<Self>) -> Data;
    fn unwrap(d: &Data) -> Option<&Vec<Self>>;
}

macro_rules! storable {
    ($t:ty, $var:ident) => {
        impl Storable for $t {
            fn wrap(v: Vec<Self>) -> Data {
                Data::$var(v)
            }
            fn unwrap(d: &Data) -> Option<&Vec<Self>> {
                match d {
                    Data::$var(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
storable!(f16, F16);
storable!(f32, F32);
storable!(f64, F64);
storable!(i8, I8);
storable!(i16, I16);
storable!(i32, I32);
storable!(i64, I64);
storable!(u8, U8);
storable!(u16, U16);
storable!(u32, U32);
storable!(u64, U64);

impl Data {
    pub fn dtype_name(&self) -> &'static str {
        with_data!(self, v => dtype_of(v))
    }
}

fn dtype_of<T: nnpool::Element>(_: &[T]) -> &'static str {
    T::DTYPE.name()
}

/// Why a `.npy` file could not be read.
#[derive(Debug)]
pub enum NpyError {
    Io(PathBuf, io::Error),
    Format(PathBuf, String),
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NpyError::Io(p, e) => write!(f, "{}: cannot read: {e}", p.display()),
            NpyError::Format(p, m) => write!(f, "{}: not a valid .npy file: {m}", p.display()),
        }
    }
}

impl std::error::Error for NpyError {}

/// The byte offset of the data: 6 magic + 2 version + header length + header.
fn data_offset(bytes: &[u8]) -> Result<usize, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("missing the \\x93NUMPY magic string".into());
    }
    match bytes[6] {
        1 => Ok(10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated header".into());
            }
            Ok(12 + u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize)
        }
        v => Err(format!("unsupported format version {v}")),
    }
}

/// Rejects header text that no plain array has before the dependency's general Python-literal
/// parser sees it (defensive: a plain array's header is a dict holding a shape tuple, two
/// levels of brackets; structured dtypes, which nnpool refuses anyway, add one).
fn check_header_text(h: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    for &b in h {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > 3 {
                    return Err("header nests brackets more than 3 deep; not a plain array".into());
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Reads a `.npy` file (C or Fortran order) into a C-order tensor.
pub fn read(path: &Path) -> Result<Tensor, NpyError> {
    let fmt_err = |m: String| NpyError::Format(path.to_path_buf(), m);
    let bytes = fs::read(path).map_err(|e| NpyError::Io(path.to_path_buf(), e))?;
    parse(&bytes).map_err(fmt_err)
}

/// Parses the bytes of a `.npy` file.
pub fn parse(bytes: &[u8]) -> Result<Tensor, String> {
    let offset = data_offset(bytes)?;
    if offset > bytes.len() {
        return Err(format!(
            "header claims {offset} bytes but the file has {}",
            bytes.len()
        ));
    }
    check_header_text(&bytes[if bytes[6] == 1 { 10 } else { 12 }..offset])?;
    let npy = npyz::NpyFile::new(bytes).map_err(|e| format!("bad header: {e}"))?;
    let descr = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => {
            return Err(format!(
                "unsupported dtype {}: nnpool reads plain numeric arrays",
                other.descr()
            ))
        }
    };
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("dimension {d} does not fit in memory")))
        .collect::<Result<_, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} has more elements than memory can address"))?;
    let kind = &descr[1..];
    let item = match kind {
        "f2" | "i2" | "u2" => 2,
        "f4" | "i4" | "u4" => 4,
        "f8" | "i8" | "u8" => 8,
        "i1" | "u1" => 1,
        _ => {
            return Err(format!(
                "unsupported dtype {} ({descr}): nnpool takes float16/32/64 and integer arrays",
                numpy_name(&descr)
            ))
        }
    };
    let need = count
        .checked_mul(item)
        .ok_or_else(|| format!("shape {shape:?} is too large"))?;
    let have = bytes.len() - offset;
    if have < need {
        return Err(format!(
            "truncated data: shape {shape:?} of {descr} needs {need} bytes, the file holds {have}"
        ));
    }
    let fortran = matches!(npy.order(), npyz::Order::Fortran);
    let data = match kind {
        "f2" => load::<f16>(npy, &shape, fortran)?,
        "f4" => load::<f32>(npy, &shape, fortran)?,
        "f8" => load::<f64>(npy, &shape, fortran)?,
        "i1" => load::<i8>(npy, &shape, fortran)?,
        "i2" => load::<i16>(npy, &shape, fortran)?,
        "i4" => load::<i32>(npy, &shape, fortran)?,
        "i8" => load::<i64>(npy, &shape, fortran)?,
        "u1" => load::<u8>(npy, &shape, fortran)?,
        "u2" => load::<u16>(npy, &shape, fortran)?,
        "u4" => load::<u32>(npy, &shape, fortran)?,
        "u8" => load::<u64>(npy, &shape, fortran)?,
        _ => unreachable!("kinds were filtered above"),
    };
    Ok(Tensor { shape, data })
}

fn numpy_name(descr: &str) -> String {
    let kind = descr.trim_start_matches(['<', '>', '|', '=']);
    match kind {
        "b1" => "bool".into(),
        "c8" => "complex64".into(),
        "c16" => "complex128".into(),
        "O" => "object".into(),
        k if k.starts_with('U') || k.starts_with('S') => "string".into(),
        k => k.to_string(),
    }
}

fn load<T: Storable>(
    npy: npyz::NpyFile<&[u8]>,
    shape: &[usize],
    fortran: bool,
) -> Result<Data, String> {
    let v: Vec<T> = npy
        .into_vec()
        .map_err(|e| format!("cannot decode data: {e}"))?;
    if !fortran || shape.len() < 2 {
        return Ok(T::wrap(v));
    }
    use ndarray::ShapeBuilder;
    let a = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape).f(), v)
        .map_err(|e| format!("cannot reorder Fortran data: {e}"))?;
    Ok(T::wrap(a.as_standard_layout().iter().copied().collect()))
}

/// Serializes a tensor as `.npy` bytes into `w`.
pub fn write_to<T: Storable>(w: impl Write, shape: &[usize], data: &[T]) -> io::Result<()> {
    use npyz::WriterBuilder;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(w)
        .begin_nd()?;
    writer.extend(data.iter().copied())?;
    writer.finish()
}

/// Outputs staged in temporary files next to their destinations, renamed into place by
/// [`Staged::commit`]; dropped without committing, they are removed.
#[derive(Default)]
pub struct Staged {
    files: Vec<(PathBuf, PathBuf)>,
}

impl Staged {
    pub fn add<T: Storable>(
        &mut self,
        dest: &Path,
        shape: &[usize],
        data: &[T],
    ) -> Result<(), String> {
        let tmp = crate::files::temp_path(dest, self.files.len())?;
        let result = (|| -> io::Result<()> {
            let f = fs::File::create(&tmp)?;
            let mut w = BufWriter::new(f);
            write_to(&mut w, shape, data)?;
            w.flush()?;
            w.into_inner().map_err(|e| e.into_error())?.sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(format!("{}: cannot write: {e}", dest.display()));
        }
        self.files.push((tmp, dest.to_path_buf()));
        Ok(())
    }

    pub fn commit(mut self) -> Result<(), String> {
        let files = std::mem::take(&mut self.files);
        for (i, (tmp, dest)) in files.iter().enumerate() {
            if let Err(e) = fs::rename(tmp, dest) {
                for (t, _) in &files[i..] {
                    let _ = fs::remove_file(t);
                }
                return Err(format!("{}: cannot write: {e}", dest.display()));
            }
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (tmp, _) in &self.files {
            let _ = fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fortran_order() {
        let mut buf = Vec::new();
        write_to(&mut buf, &[2, 3], &[1.0f32, 2., 3., 4., 5., 6.]).unwrap();
        let t = parse(&buf).unwrap();
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.data, Data::F32(vec![1., 2., 3., 4., 5., 6.]));
        // The same array stored column-major.
        let mut f = buf[..data_offset(&buf).unwrap()].to_vec();
        let (from, to) = (b"'fortran_order': False", b"'fortran_order': True ");
        let at = f.windows(from.len()).position(|w| w == from).unwrap();
        f[at..at + to.len()].copy_from_slice(to);
        for v in [1.0f32, 4., 2., 5., 3., 6.] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        let t = parse(&f).unwrap();
        assert_eq!(t.data, Data::F32(vec![1., 2., 3., 4., 5., 6.]));
    }

    #[test]
    fn deeply_nested_headers_are_refused_quickly() {
        let mut h = String::from("{'descr': '<f4', 'fortran_order': False, 'shape': ");
        h.push_str(&"(".repeat(60));
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        let t = std::time::Instant::now();
        assert!(parse(&b).unwrap_err().contains("nests"));
        assert!(t.elapsed().as_secs_f64() < 1.0);
    }

    #[test]
    fn truncated_and_garbage_are_errors() {
        let mut buf = Vec::new();
        write_to(&mut buf, &[4], &[1.0f64, 2., 3., 4.]).unwrap();
        assert!(parse(&buf[..buf.len() - 1])
            .unwrap_err()
            .contains("truncated"));
        assert!(parse(b"hello world, not npy").is_err());
        assert!(parse(&buf[..8]).is_err());
    }
}
