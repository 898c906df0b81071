//! Runtime CPU-feature dispatch. Kernels are written once as `#[inline(always)]` generic code;
//! [`multiversion!`] instantiates each entry point for AVX-512 and AVX2 with
//! `#[target_feature]` and keeps a portable copy that compiles everywhere. Features are
//! detected once; `NNPOOL_KERNEL=reference|portable|avx2|avx512` pins a choice (a choice the
//! CPU lacks falls back to the best it has).

use std::sync::OnceLock;

/// An instruction-set level the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust, whatever the target's baseline is.
    Portable,
    /// x86-64 AVX2 + FMA (with BMI1, BMI2, LZCNT and POPCNT).
    Avx2,
    /// x86-64 AVX-512 (F, BW, VL, DQ) and all of [`Isa::Avx2`]'s.
    Avx512,
}

/// What the kernels run: the reference alone, or fast kernels at an ISA level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Fast kernels disabled.
    Reference,
    /// Fast kernels at this level.
    Fast(Isa),
}

fn best_available() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        // every feature that `multiversion!`'s AVX2 instance enables (its bit-manipulation
        // extensions too: a CPU or a virtual machine may offer AVX2 without them)
        let avx2 = has!("avx2")
            && has!("fma")
            && has!("bmi1")
            && has!("bmi2")
            && has!("lzcnt")
            && has!("popcnt");
        if avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512dq") {
            return Isa::Avx512;
        }
        if avx2 {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// `want`, or the best level this CPU has when it lacks `want`.
pub(crate) fn clamp_to_available(want: Isa) -> Isa {
    let have = best_available();
    let rank = |i: Isa| match i {
        Isa::Portable => 0,
        Isa::Avx2 => 1,
        Isa::Avx512 => 2,
    };
    if rank(want) <= rank(have) {
        want
    } else {
        have
    }
}

/// The kernel choice for this process (detected once).
pub fn choice() -> Choice {
    static CHOICE: OnceLock<Choice> = OnceLock::new();
    *CHOICE.get_or_init(|| match std::env::var("NNPOOL_KERNEL").ok().as_deref() {
        Some("reference") => Choice::Reference,
        Some("portable") => Choice::Fast(Isa::Portable),
        Some("avx2") => Choice::Fast(clamp_to_available(Isa::Avx2)),
        Some("avx512") => Choice::Fast(clamp_to_available(Isa::Avx512)),
        _ => Choice::Fast(best_available()),
    })
}

/// Whether AVX-512F may be used (detected and not pinned away by `NNPOOL_KERNEL`).
#[inline]
pub fn has_avx512() -> bool {
    matches!(choice(), Choice::Fast(Isa::Avx512))
}

/// Whether AVX2 is the level the kernels run at (detected, and AVX-512 not: its own kernels
/// run there), where the few explicit AVX2 kernels replace the generic code.
#[inline]
pub fn avx2_level() -> bool {
    matches!(choice(), Choice::Fast(Isa::Avx2))
}

/// A human-readable name of the active kernel set (for reports).
pub fn describe() -> &'static str {
    match choice() {
        Choice::Reference => "reference",
        Choice::Fast(Isa::Portable) => "portable",
        Choice::Fast(Isa::Avx2) => "avx2",
        Choice::Fast(Isa::Avx512) => "avx512",
    }
}

/// Instantiates a generic `#[inline(always)]` body for every ISA and dispatches on [`Isa`].
///
/// `multiversion!(pub(crate) fn name<F: Bound>(args..) -> Ret = body_fn);` defines
/// `name(isa, args..)`.
macro_rules! multiversion {
    ($vis:vis fn $name:ident<$F:ident: $bound:path>($($a:ident: $t:ty),* $(,)?) -> $ret:ty = $body:ident) => {
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<$F: $bound>(isa: $crate::kernels::isa::Isa, $($a: $t),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx512<$F: $bound>($($a: $t),*) -> $ret {
                $body::<$F>($($a),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx2<$F: $bound>($($a: $t),*) -> $ret {
                $body::<$F>($($a),*)
            }
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: an `Isa::Avx512` value is only produced by `choice()` after
                // `is_x86_feature_detected!` confirmed every feature enabled above.
                $crate::kernels::isa::Isa::Avx512 => unsafe { avx512::<$F>($($a),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above, for the features enabled on the AVX2 instance.
                $crate::kernels::isa::Isa::Avx2 => unsafe { avx2::<$F>($($a),*) },
                _ => $body::<$F>($($a),*),
            }
        }
    };
}
pub(crate) use multiversion;
