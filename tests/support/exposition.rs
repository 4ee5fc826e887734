//! Checks a `/metrics` document the way a scraper reads it: with
//! `promtool check metrics` where promtool is installed (the test script
//! installs it), and always with the rule promtool does not enforce: every
//! sample follows its own family's `# HELP` and `# TYPE` lines, and no
//! family appears twice.

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};

/// Panics with the offending line if `text` breaks the exposition format.
pub fn check_exposition(what: &str, text: &str) {
    let mut current: Option<&str> = None;
    let mut seen = HashSet::new();
    let mut help: Option<&str> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split(' ').next();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or_default();
            assert_eq!(help, Some(name), "{what}: TYPE without its HELP: {line}");
            assert!(seen.insert(name), "{what}: family {name} twice");
            current = Some(name);
        } else if !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert_eq!(
                current,
                Some(name),
                "{what}: sample outside its family's header: {line}"
            );
        }
    }
    assert!(!seen.is_empty(), "{what}: no metric families:\n{text}");
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        println!("skipped: promtool check metrics of {what}: promtool is not installed (apt-get install prometheus)");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
