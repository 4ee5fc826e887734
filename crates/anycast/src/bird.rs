//! BIRD's control socket (what `birdc` speaks): a `0001` banner on
//! connect, then per command lines `NNNN-text` (more follow), ` text`
//! (continuation of the last code) and a final `NNNN text`. Codes 0xxx
//! are success, 1xxx table output, 8xxx and 9xxx errors (9001: syntax
//! error, e.g. an unknown protocol name).
//!
//! A connection per command: a restarted BIRD is simply reached again,
//! and nothing is held across the daemon's life.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Bound of one command, connect included.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Longest reply read (a `show protocols` of a large config).
const MAX_LINES: usize = 100_000;

/// A BIRD control socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bird {
    socket: PathBuf,
}

/// One command's reply: its final code and every line's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The code of the last line.
    pub code: u16,
    /// `(code, text)` per line (continuations carry their line's code).
    pub lines: Vec<(u16, String)>,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    /// The socket is not there or refused (BIRD is down).
    #[error("BIRD at {0}: {1}")]
    Unreachable(String, std::io::Error),
    /// BIRD did not answer in time.
    #[error("BIRD at {0}: no answer within {TIMEOUT:?}")]
    Timeout(String),
    /// An answer that is not BIRD's protocol.
    #[error("BIRD at {0}: unexpected answer {1:?}")]
    Garbled(String, String),
    /// BIRD refused the command (8xxx, 9xxx).
    #[error("BIRD refused {command:?}: {code} {text}")]
    Refused {
        /// The command sent.
        command: String,
        /// BIRD's code.
        code: u16,
        /// BIRD's message.
        text: String,
    },
}

/// A protocol as `show protocols` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protocol {
    /// Its name.
    pub name: String,
    /// Its kind (`Static`, `BGP`, ...).
    pub kind: String,
    /// `up`, `down`, `start`, ...
    pub state: String,
}

impl Bird {
    /// The control socket at `socket` (BIRD's `-s`).
    pub fn new(socket: impl Into<PathBuf>) -> Bird {
        Bird {
            socket: socket.into(),
        }
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn name(&self) -> String {
        self.socket.display().to_string()
    }

    /// Sends one command and reads its reply; an error code is an error.
    pub async fn command(&self, command: &str) -> Result<Reply, BirdError> {
        let reply = tokio::time::timeout(TIMEOUT, self.exchange(command))
            .await
            .map_err(|_| BirdError::Timeout(self.name()))??;
        if reply.code >= 8000 {
            let text = reply.lines.last().map(|l| l.1.clone()).unwrap_or_default();
            return Err(BirdError::Refused {
                command: command.to_string(),
                code: reply.code,
                text,
            });
        }
        Ok(reply)
    }

    async fn exchange(&self, command: &str) -> Result<Reply, BirdError> {
        let s = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| BirdError::Unreachable(self.name(), e))?;
        let (r, mut w) = s.into_split();
        let mut r = BufReader::new(r);
        let banner = read_reply(&mut r, &self.name()).await?;
        if banner.code != 1 {
            return Err(BirdError::Garbled(
                self.name(),
                format!("banner {banner:?}"),
            ));
        }
        // One line; a newline in a name would be a second command.
        let line = command.replace(['\n', '\r'], " ");
        w.write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| BirdError::Unreachable(self.name(), e))?;
        read_reply(&mut r, &self.name()).await
    }

    /// Enables protocol `name`; `true` if it was disabled (0011), `false`
    /// if it already was enabled (0010).
    pub async fn enable(&self, name: &str) -> Result<bool, BirdError> {
        self.toggle("enable", name, 11, 10).await
    }

    /// Disables protocol `name`; `true` if it was enabled (0009), `false`
    /// if it already was disabled (0008).
    pub async fn disable(&self, name: &str) -> Result<bool, BirdError> {
        self.toggle("disable", name, 9, 8).await
    }

    async fn toggle(
        &self,
        verb: &str,
        name: &str,
        done: u16,
        already: u16,
    ) -> Result<bool, BirdError> {
        let command = format!("{verb} {name}");
        let reply = self.command(&command).await?;
        // `0011-name: enabled` then `0000 `: the verdict is on a line of
        // its own before the final code.
        let said = |code: u16| reply.lines.iter().any(|(c, _)| *c == code);
        if said(done) {
            Ok(true)
        } else if said(already) {
            Ok(false)
        } else {
            Err(BirdError::Garbled(
                self.name(),
                format!("{command}: {:?}", reply.lines),
            ))
        }
    }

    /// Every protocol BIRD runs (`show protocols`).
    pub async fn protocols(&self) -> Result<Vec<Protocol>, BirdError> {
        let reply = self.command("show protocols").await?;
        // 2002 is the header ("Name Proto Table State Since Info"), 1002
        // one line per protocol.
        Ok(reply
            .lines
            .iter()
            .filter(|(c, _)| *c == 1002)
            .filter_map(|(_, text)| {
                let mut f = text.split_whitespace();
                let name = f.next()?.to_string();
                let kind = f.next()?.to_string();
                let _table = f.next()?;
                let state = f.next()?.to_string();
                Some(Protocol { name, kind, state })
            })
            .collect())
    }
}

/// Reads one reply: lines up to and including the one whose code is
/// followed by a space.
async fn read_reply<R: AsyncBufReadExt + Unpin>(r: &mut R, name: &str) -> Result<Reply, BirdError> {
    let mut lines = Vec::new();
    let mut last = 0;
    for _ in 0..MAX_LINES {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .await
            .map_err(|e| BirdError::Unreachable(name.to_string(), e))?;
        if n == 0 {
            return Err(BirdError::Garbled(
                name.to_string(),
                "connection closed mid-reply".into(),
            ));
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if let Some(rest) = line.strip_prefix(' ') {
            lines.push((last, rest.to_string()));
            continue;
        }
        let (code, sep, text) = match (line.get(..4), line.as_bytes().get(4)) {
            (Some(c), Some(&s)) => (c, s, &line[5..]),
            (Some(c), None) if line.len() == 4 => (c, b' ', ""),
            _ => return Err(BirdError::Garbled(name.to_string(), line.to_string())),
        };
        let code: u16 = code
            .parse()
            .map_err(|_| BirdError::Garbled(name.to_string(), line.to_string()))?;
        last = code;
        lines.push((code, text.to_string()));
        match sep {
            b' ' => return Ok(Reply { code, lines }),
            b'-' => {}
            _ => return Err(BirdError::Garbled(name.to_string(), line.to_string())),
        }
    }
    Err(BirdError::Garbled(
        name.to_string(),
        "reply too long".into(),
    ))
}

#[cfg(test)]
mod tests;
