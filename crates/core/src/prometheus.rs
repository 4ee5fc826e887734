//! The one Prometheus text writer of boltz (exposition format 0.0.4), used
//! by the `/metrics` of `boltz serve`, `boltz l4` and `boltz l7`.
//!
//! A [`Family`] borrows the [`Exposition`] mutably from its `# HELP` and
//! `# TYPE` lines until it is dropped, so every sample is written under its
//! own family's header: interleaving two families does not compile.
//! Label values are escaped; floats are written as Prometheus reads them
//! (`+Inf`, `-Inf`, `NaN`).

use std::fmt::Write;

/// The metric types boltz exposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets on restart); names end in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// A Prometheus text document being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty document.
    pub fn new() -> Self {
        Exposition {
            out: String::with_capacity(4096),
        }
    }

    /// Starts the family `name`: writes its HELP and TYPE lines and returns
    /// the writer of its samples.
    pub fn family<'a>(&'a mut self, name: &'a str, kind: Kind, help: &str) -> Family<'a> {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = write!(self.out, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        let _ = writeln!(self.out, "\n# TYPE {name} {kind}");
        Family {
            out: &mut self.out,
            name,
        }
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Value) {
        self.family(name, kind, help).sample(&[], value);
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// The samples of one family; see [`Exposition::family`].
#[derive(Debug)]
pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl Family<'_> {
    /// One sample with these `(label, value)` pairs (label names must be
    /// valid identifiers; values are escaped).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Value) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        value.write_to(self.out);
        self.out.push('\n');
        self
    }
}

/// A sample value as Prometheus text spells it.
pub trait Value {
    /// Appends the value to `out`.
    fn write_to(self, out: &mut String);
}

impl Value for f64 {
    fn write_to(self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

macro_rules! integer_values {
    ($($t:ty)*) => {$(
        impl Value for $t {
            fn write_to(self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
integer_values!(u8 u16 u32 u64 usize i64);

impl Value for bool {
    fn write_to(self, out: &mut String) {
        out.push(if self { '1' } else { '0' });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_keep_their_samples_under_their_header() {
        let mut e = Exposition::new();
        e.family("a_total", Kind::Counter, "A \\ count.\nTwo lines.")
            .sample(&[("zone", "ex\"ample.")], 3u64)
            .sample(&[("zone", "b"), ("dc", "c\\d")], 1.5);
        e.single("b", Kind::Gauge, "B.", f64::INFINITY);
        e.single("c", Kind::Gauge, "C.", true);
        assert_eq!(
            e.finish(),
            "# HELP a_total A \\\\ count.\\nTwo lines.\n# TYPE a_total counter\n\
             a_total{zone=\"ex\\\"ample.\"} 3\n\
             a_total{zone=\"b\",dc=\"c\\\\d\"} 1.5\n\
             # HELP b B.\n# TYPE b gauge\nb +Inf\n\
             # HELP c C.\n# TYPE c gauge\nc 1\n"
        );
    }
}
