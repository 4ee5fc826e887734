//! Printing as a command-line tool should. `println!` panics when stdout
//! is a pipe whose reader has gone (`boltz explain … | head -3`); these
//! macros return the error instead, and [`is_broken_pipe`] lets `main` end
//! the command quietly with success, as ripgrep does.

use std::io::{self, Write};

/// Writes `args` to stdout and flushes (so a closed pipe shows up here,
/// not at exit).
pub fn write(args: std::fmt::Arguments<'_>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)?;
    out.flush()
}

/// `print!` that returns from the calling function with the I/O error.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!($($arg)*))?
    };
}

/// `println!` that returns from the calling function with the I/O error.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// Whether `e` is (or was caused by) writing to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
