//! [`GeoError`]: what can go wrong building, opening and reloading geo
//! databases, always naming the file.

use std::io;
use std::path::{Path, PathBuf};

use maxminddb::MaxMindDbError;

/// Errors of building, opening and reloading geo databases. Every variant
/// names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// A bad line in a CSV source.
    #[error("{}:{line}: {message}", path.display())]
    Csv {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a valid MaxMind DB: {source}", path.display())]
    Db {
        path: PathBuf,
        #[source]
        source: MaxMindDbError,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl GeoError {
    pub(crate) fn io(path: &Path, action: &'static str, source: io::Error) -> Self {
        GeoError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    pub(super) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        GeoError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
