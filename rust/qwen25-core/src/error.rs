//! The one error type of the core. The Python binding maps each variant to exactly one
//! exception class (see `rust/qwen25-py/src/errors.rs`).

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A malformed input file; `line` is 1-based (0 when no line applies).
    #[error("{}: {msg}", location(.path, .line))]
    Format {
        path: String,
        line: usize,
        msg: String,
    },
    /// A bad argument value.
    #[error("{0}")]
    Value(String),
    /// A token id that is not in the vocabulary.
    #[error("unknown token id {0}")]
    UnknownId(i64),
    /// A special token that the caller disallowed was found in the text.
    #[error("disallowed special token {0:?} found in text; pass it in allowed_special to encode it as a special token, or set disallowed_special=() to encode it as plain text")]
    DisallowedSpecial(String),
}

/// `path:line`, or just `path` when no line applies.
fn location(path: &str, line: &usize) -> String {
    if *line > 0 {
        format!("{path}:{line}")
    } else {
        path.to_string()
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub fn format(path: impl AsRef<str>, line: usize, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.as_ref().to_string(),
            line,
            msg: msg.into(),
        }
    }
}
