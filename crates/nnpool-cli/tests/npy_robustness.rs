//! The `.npy` reader on hostile bytes: random bytes, valid files with flipped bytes, truncated
//! at every length. It must return a value or an error, never panic or over-allocate.

use nnpool_cli::npy;
use proptest::prelude::*;

fn valid() -> Vec<u8> {
    let mut buf = Vec::new();
    npy::write_to(
        &mut buf,
        &[2, 3, 4],
        &(0..24).map(|i| i as f32).collect::<Vec<_>>(),
    )
    .unwrap();
    buf
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = npy::parse(&bytes);
    }

    #[test]
    fn flipped_bytes_never_panic(pos in 0usize..200, val in any::<u8>(), prefix in any::<bool>()) {
        let mut b = valid();
        let p = pos % b.len();
        b[p] = val;
        if prefix {
            // with the magic kept intact, the header parser is what gets exercised
            b[..6].copy_from_slice(b"\x93NUMPY");
        }
        let _ = npy::parse(&b);
    }
}

#[test]
fn every_truncation_is_an_error() {
    let b = valid();
    for n in 0..b.len() {
        assert!(
            npy::parse(&b[..n]).is_err(),
            "a file cut at {n} of {} bytes parsed",
            b.len()
        );
    }
    assert!(npy::parse(&b).is_ok());
}
