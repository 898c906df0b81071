//! Backward passes (filled in below).
