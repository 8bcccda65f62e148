//! The host model: PCI devices, IOMMU groups, resets and boot setup as sysfs/procfs show them, read under a root directory; and the preflight verdicts.
#![forbid(unsafe_code)]
