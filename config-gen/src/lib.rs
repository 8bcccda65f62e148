//! Host and guest configuration for VFIO passthrough, rendered from the verified host state and applied atomically.
#![forbid(unsafe_code)]
