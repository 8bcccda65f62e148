//! Safe wrappers over the VFIO ioctls (container/group and iommufd), DMA mapping guards, reset and hot-reset verification.
