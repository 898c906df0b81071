//! Fast kernels. Each entry point returns `false` when it does not handle a problem, and the
//! caller falls back to the reference, so every problem has an implementation.

use crate::element::Element;
use crate::geometry::AxisGeometry;
use crate::plan::{Divisor, Geom};
use std::cell::Cell;

thread_local! {
    static FORCE_REFERENCE: Cell<bool> = const { Cell::new(false) };
}

/// While alive, the current thread runs the reference instead of fast kernels.
pub(crate) struct ForceReference(bool);

impl ForceReference {
    pub fn new() -> Self {
        ForceReference(FORCE_REFERENCE.with(|f| f.replace(true)))
    }
}

impl Drop for ForceReference {
    fn drop(&mut self) {
        FORCE_REFERENCE.with(|f| f.set(self.0));
    }
}

fn reference_forced() -> bool {
    FORCE_REFERENCE.with(|f| f.get())
}

pub(crate) fn max_forward<T: Element>(
    _g: &Geom,
    _axes: &[AxisGeometry],
    _x: &[T],
    _y: &mut [T],
    _idx: Option<&mut [i64]>,
) -> bool {
    if reference_forced() {
        return false;
    }
    false
}

pub(crate) fn avg_forward<T: Element>(
    _g: &Geom,
    _axes: &[AxisGeometry],
    _div: Divisor,
    _x: &[T],
    _y: &mut [T],
) -> bool {
    if reference_forced() {
        return false;
    }
    false
}
