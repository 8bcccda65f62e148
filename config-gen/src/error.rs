//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while generating or applying configuration.
///
/// Each variant names what and where (file path, line); I/O errors keep the
/// underlying `std::io::Error` as their source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a file under the root failed.
    #[error("cannot read {path}")]
    Read {
        /// The file (as seen on disk, root included).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing, renaming or syncing a file under the root failed.
    #[error("cannot write {path}")]
    Write {
        /// The file (as seen on disk, root included).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file exists but could not be read: passthru does not write
    /// over what it could not read back.
    #[error("{path}: {reason}: passthru does not write configuration it could not read; make it a readable text file or remove it")]
    Unreadable {
        /// The file (system path).
        path: PathBuf,
        /// Why it could not be read.
        reason: String,
    },
    /// A configuration file has a shape passthru refuses to edit.
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file (system path, e.g. `/etc/default/grub`).
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong there.
        message: String,
    },
    /// A file is not valid UTF-8 text.
    #[error("{path}: not UTF-8 text (byte {offset})")]
    NotText {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// A requested kernel parameter cannot be written safely.
    #[error("kernel parameter {param:?}: {message}")]
    Param {
        /// The parameter as given.
        param: String,
        /// Why it is refused.
        message: String,
    },
    /// The request itself is inconsistent (unknown device, empty set, ...).
    #[error("{0}")]
    Request(String),
    /// A backup set needed for rollback is missing or damaged.
    #[error("backup {path}: {message}")]
    Backup {
        /// The backup directory or manifest.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A command could not be started.
    #[error("cannot run `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
