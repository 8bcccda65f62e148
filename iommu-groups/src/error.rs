//! The crate's one error type.

use crate::model::system_path;
use std::path::PathBuf;

/// Why the host could not be read, a snapshot not written, or a device spec not resolved.
///
/// Every variant names the path (or the spec) it is about; I/O errors keep the
/// `std::io::Error` as their source without repeating it in the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The root directory itself cannot be used.
    #[error("cannot use {path} as a host root")]
    Root {
        /// The root directory given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The root has no `sys/bus/pci/devices`: not a Linux root, snapshot or fixture tree.
    #[error("{path} does not exist: not a Linux root, snapshot or fixture tree")]
    NoPciBus {
        /// The missing directory (under the root).
        path: PathBuf,
    },
    /// Reading a file, link or directory failed.
    #[error("cannot read {}", system_path(.path))]
    Io {
        /// The path (under the root) being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A symbolic link points outside the root.
    #[error("{}: symbolic link leads outside the root", system_path(.path))]
    Escape {
        /// The path (relative to the root) whose resolution escaped.
        path: PathBuf,
    },
    /// Too many symbolic links while resolving a path (a loop).
    #[error("{}: too many levels of symbolic links (a loop?)", system_path(.path))]
    SymlinkLoop {
        /// The path (relative to the root) being resolved.
        path: PathBuf,
    },
    /// A text attribute is larger than the bound this reader accepts.
    #[error("{}: larger than {limit} bytes", system_path(.path))]
    TooLarge {
        /// The path (relative to the root).
        path: PathBuf,
        /// The bound in bytes.
        limit: usize,
    },
    /// A text attribute is not UTF-8.
    #[error("{}: not UTF-8 text", system_path(.path))]
    NotUtf8 {
        /// The path (relative to the root).
        path: PathBuf,
    },
    /// A text attribute does not hold the value its name promises.
    #[error("{}: unexpected content {content:?} ({expected})", system_path(.path))]
    Garbage {
        /// The path (relative to the root).
        path: PathBuf,
        /// The content (trimmed, cut to 64 characters).
        content: String,
        /// What was expected, e.g. "a hex number".
        expected: &'static str,
    },
    /// A device argument is neither a BDF, a slot nor `vendor:device`.
    #[error("{spec:?} is not a PCI address (0000:0b:00.0, 0b:00.0), a slot (0b:00) or vendor:device (1002:7300)")]
    BadSpec {
        /// The argument as given.
        spec: String,
    },
    /// A device argument matches no device of the host (code `unknown-device`).
    #[error(
        "unknown-device: no PCI device matches {spec:?} on this host (`passthru list` shows them)"
    )]
    NoMatch {
        /// The argument as given.
        spec: String,
    },
    /// An address given to [`check_bdfs`](crate::check_bdfs) is not a device of
    /// the host (code `unknown-device`).
    #[error("unknown-device: no PCI device {bdf} on this host (`passthru list` shows them)")]
    UnknownDevice {
        /// The address.
        bdf: passthru_pci_ids::Bdf,
    },
    /// Writing a snapshot or fixture failed.
    #[error("cannot write {path}")]
    Write {
        /// The path being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The stable kebab-case code of an error about the request rather than the
    /// host: `unknown-device` for a device argument or address the host does not
    /// have (a usage error: the CLI exits 2).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Error::NoMatch { .. } | Error::UnknownDevice { .. } => Some("unknown-device"),
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
