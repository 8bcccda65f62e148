//! Tests of the fuzz crate itself: seed sanity and fuzz-found regressions.
mod seeds;
mod vfio_info;
