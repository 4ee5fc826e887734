//! Builds a geo database from a CSV source and installs it atomically.
//!
//! Format, one network per line:
//! `network,latitude,longitude,country,continent`, e.g.
//! `192.0.2.0/24,52.52,13.405,DE,EU`. Country and continent may be empty
//! (trailing empty fields may be left out). A first line whose first field
//! is `network` is a header; blank lines and lines starting with `#` are
//! ignored. The format is deliberately strict — a database steering DNS
//! answers should not silently differ from its source — so networks with
//! host bits set and repeated networks are errors, each reported as
//! `file:line: message`. There is no quoting; no field needs it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use super::writer::{canonical_net, GeoRecord, MmdbWriter};
use super::GeoError;

/// What a build wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildStats {
    /// Networks in the database (one per data line).
    pub networks: usize,
    /// Distinct records, i.e. what the data section holds.
    pub records: usize,
}

/// Parses `input`, writes the database to a temporary file next to `output`
/// and renames it over `output`, so a server watching `output` sees either
/// the old or the new database, never a partial one. Nothing is written
/// unless the whole input is valid.
pub fn build_from_csv(input: &Path, output: &Path) -> Result<BuildStats, GeoError> {
    let writer = parse(input)?;
    let stats = BuildStats {
        networks: writer.len(),
        records: writer.record_count(),
    };
    write_atomically(&writer, output)?;
    tracing::info!(
        input = %input.display(),
        output = %output.display(),
        networks = stats.networks,
        records = stats.records,
        "geo database built"
    );
    Ok(stats)
}

fn parse(input: &Path) -> Result<MmdbWriter, GeoError> {
    let file = File::open(input).map_err(|e| GeoError::io(input, "open", e))?;
    let mut reader = BufReader::new(file);
    let name = input.file_name().map_or_else(
        || input.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut writer = MmdbWriter::new(format!("boltz geo database built from {name}"));
    // Canonical network → line of first definition, for duplicate reports.
    let mut seen: HashMap<IpNet, usize> = HashMap::new();
    let mut buf = Vec::new();
    let mut line_no = 0;
    let mut seen_content = false;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| GeoError::io(input, "read", e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let err = |message: String| GeoError::Csv {
            path: input.to_path_buf(),
            line: line_no,
            message,
        };
        let line = std::str::from_utf8(&buf)
            .map_err(|e| err(format!("not valid UTF-8 ({e})")))?
            .trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first_content = !seen_content;
        seen_content = true;
        if first_content && line.split(',').next().map(str::trim) == Some("network") {
            continue;
        }
        let (net, record) = parse_line(line).map_err(err)?;
        if let Some(first) = seen.insert(canonical_net(net), line_no) {
            return Err(err(format!(
                "duplicate network {net} (first defined on line {first})"
            )));
        }
        writer.insert(net, record);
    }
    Ok(writer)
}

fn parse_line(line: &str) -> Result<(IpNet, GeoRecord), String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if !(3..=5).contains(&fields.len()) {
        return Err(format!(
            "expected 5 fields (network,latitude,longitude,country,continent), found {}",
            fields.len()
        ));
    }
    let net_text = fields[0];
    let net: IpNet = net_text
        .parse()
        .map_err(|_| format!("invalid network {net_text:?}: expected CIDR like 192.0.2.0/24"))?;
    if net.trunc() != net {
        return Err(format!(
            "network {net} has host bits set beyond /{} (did you mean {}?)",
            net.prefix_len(),
            net.trunc()
        ));
    }
    let latitude = coordinate(fields[1], "latitude", 90.0)?;
    let longitude = coordinate(fields[2], "longitude", 180.0)?;
    let country = code(fields.get(3).copied(), "country")?;
    let continent = code(fields.get(4).copied(), "continent")?;
    Ok((
        net,
        GeoRecord {
            latitude,
            longitude,
            country,
            continent,
        },
    ))
}

fn coordinate(text: &str, what: &str, limit: f64) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("invalid {what} {text:?}: expected a number"))?;
    // The range check also rejects NaN and infinities.
    if !(-limit..=limit).contains(&value) {
        return Err(format!("{what} {text} out of range [-{limit}, {limit}]"));
    }
    Ok(value)
}

/// Two ASCII letters, upper-cased to match GeoIP2 data; empty means absent.
fn code(field: Option<&str>, what: &str) -> Result<Option<String>, String> {
    match field {
        None | Some("") => Ok(None),
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(Some(c.to_ascii_uppercase()))
        }
        Some(c) => Err(format!("invalid {what} code {c:?}: expected two letters")),
    }
}

fn write_atomically(writer: &MmdbWriter, output: &Path) -> Result<(), GeoError> {
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(file_name) = output.file_name() else {
        return Err(GeoError::Invalid {
            path: output.to_path_buf(),
            message: "output path has no file name".into(),
        });
    };
    let (tmp_path, file) = create_temp(dir, &file_name.to_string_lossy())
        .map_err(|e| GeoError::io(output, "create temporary file", e))?;

    let result = (|| -> Result<(), (&'static str, io::Error)> {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        writer.write_to(&mut out).map_err(|e| ("write", e))?;
        let file = out.into_inner().map_err(|e| ("write", e.into_error()))?;
        // Data must be on disk before the rename makes it visible, or a
        // crash could leave a renamed but empty file.
        file.sync_all().map_err(|e| ("sync", e))?;
        drop(file);
        fs::rename(&tmp_path, output).map_err(|e| ("rename", e))
    })();
    if let Err((action, e)) = result {
        // Best effort: the original error matters more than a leftover.
        let _ = fs::remove_file(&tmp_path);
        return Err(GeoError::io(output, action, e));
    }
    // Persist the rename itself; failing here loses nothing already visible.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates a new hidden file next to the output (same directory, so the
/// rename stays on one filesystem and is atomic). The name is unique per
/// process and attempt; `create_new` guards against leftovers.
fn create_temp(dir: &Path, base: &str) -> io::Result<(PathBuf, File)> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut attempt = 0u32;
    loop {
        let path = dir.join(format!(
            ".{base}.{}.{nanos}.{attempt}.tmp",
            std::process::id()
        ));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
