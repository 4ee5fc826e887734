//! Diagnostics for zone files: every problem is reported as
//! `file:line:col: message`, the format editors and CI logs understand.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a zone file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong, for a human.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// All problems of one load; never empty when returned as an error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Turns byte offsets of one source text into 1-based line and column
/// (columns count characters, not bytes).
pub struct Positions<'a> {
    file: &'a Path,
    text: &'a str,
}

impl<'a> Positions<'a> {
    /// Positions in `text`, the content of `file`.
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Self { file, text }
    }

    /// The 1-based line and column of byte `offset` (clamped to the text).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// A diagnostic at the start of `span`.
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let (line, col) = self.line_col(span.start);
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let text = "a = 1\nbé = 2\n";
        let p = Positions::new(Path::new("z.toml"), text);
        assert_eq!(p.line_col(0), (1, 1));
        assert_eq!(p.line_col(6), (2, 1));
        assert_eq!(p.line_col(9), (2, 3));
        assert_eq!(p.at(6..7, "bad").to_string(), "z.toml:2:1: bad");
    }
}
