//! Output files written so that a failure never leaves a partial file: bytes go to a temporary
//! file in the destination's folder, which is then renamed over the destination.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A hidden temporary path beside `dest` (same folder, so a rename replaces `dest` atomically);
/// `tag` tells apart several temporaries of one process.
pub fn temp_path(dest: &Path, tag: usize) -> Result<PathBuf, String> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest
        .file_name()
        .ok_or_else(|| format!("{}: not a file path", dest.display()))?;
    Ok(dir.join(format!(
        ".{}.nnpool-tmp-{}-{tag}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Writes `bytes` to `dest` atomically (temporary file + rename in the same folder).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = temp_path(dest, 0)?;
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, dest)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("{}: cannot write: {e}", dest.display())
    })
}

/// Refuses to replace an existing file unless `force`.
pub fn check_overwrite(dest: &Path, force: bool) -> Result<(), String> {
    if !force && dest.exists() {
        return Err(format!(
            "{}: already exists; pass --force to overwrite it",
            dest.display()
        ));
    }
    Ok(())
}
