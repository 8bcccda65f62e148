//! Tests of the fuzz crate itself: seed sanity and fuzz-found regressions.
mod grub;
mod seeds;
mod vfio_info;
