//! The `.npy` reader on arbitrary bytes: a value or an error, never a panic or an abort.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nnpool_cli::npy::parse(data);
});
