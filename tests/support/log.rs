//! A child process's stderr kept line by line, for a test that fails to
//! show what the process said.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

/// Reads `err` on a thread of its own onto the end of `log`.
pub fn capture(err: impl Read + Send + 'static, log: &Arc<Mutex<String>>) {
    let l2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let mut g = l2.lock().unwrap();
            g.push_str(&line);
            g.push('\n');
        }
    });
}
