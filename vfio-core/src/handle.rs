//! The one owner of a seam fd that the Arc-shared handles wrap.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sys::{Fd, VfioSys};

/// An fd of the seam, closed exactly once when the last handle sharing it drops.
#[derive(Debug)]
pub(crate) struct Handle<S: VfioSys + ?Sized> {
    pub(crate) sys: Arc<S>,
    pub(crate) fd: Fd,
    /// What errors call it (`container /dev/vfio/vfio`, `group 16`, `device 0000:06:00.0`).
    pub(crate) target: String,
}

impl<S: VfioSys + ?Sized> Handle<S> {
    pub(crate) fn new(sys: &Arc<S>, fd: Fd, target: String) -> Self {
        Handle {
            sys: sys.clone(),
            fd,
            target,
        }
    }

    /// Hand an fd opened elsewhere to the seam, which owns it from then on.
    pub(crate) fn adopt(sys: &Arc<S>, fd: OwnedFd, target: &str) -> Result<Fd> {
        sys.adopt_fd(fd)
            .map_err(|e| Error::ioctl("adopt fd", target.to_owned(), e))
    }

    /// A duplicate of the fd, owned by the caller.
    pub(crate) fn dup(&self) -> Result<OwnedFd> {
        self.sys
            .dup_fd(self.fd)
            .map_err(|e| Error::ioctl("F_DUPFD_CLOEXEC", self.target.clone(), e))
    }
}

impl<S: VfioSys + ?Sized> Drop for Handle<S> {
    fn drop(&mut self) {
        let _ = self.sys.close(self.fd);
    }
}
