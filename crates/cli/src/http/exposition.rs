//! A Prometheus text-format (0.0.4) writer: families with `# HELP` / `# TYPE`, samples
//! with escaped labels. The node's counters already live in atomics; rendering them at
//! scrape time needs no registry, no global recorder and nothing on the hot path.

use std::fmt::Write;

/// The metric kinds the text format names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One scrape's text.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts family `name` (a counter's name ends in `_total`).
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample of the current family.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
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
        if value.is_nan() {
            self.out.push_str("NaN");
        } else if value.is_infinite() {
            self.out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
        } else if value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = write!(self.out, "{}", value as i64);
        } else {
            let _ = write!(self.out, "{value}");
        }
        self.out.push('\n');
        self
    }

    /// A family with one unlabelled sample.
    pub(crate) fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// The text.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Label values are escaped, integers print without a fraction, infinities as `+Inf`.
    #[test]
    fn escapes_and_formats() {
        let mut e = Exposition::default();
        e.family("x_total", Kind::Counter, "a\nb").sample("x_total", &[("l", "a\"b\\c\nd")], 3.0);
        e.single("g", Kind::Gauge, "g", 0.25).single("h", Kind::Gauge, "h", f64::INFINITY);
        assert_eq!(
            e.finish(),
            "# HELP x_total a\\nb\n# TYPE x_total counter\nx_total{l=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP g g\n# TYPE g gauge\ng 0.25\n# HELP h h\n# TYPE h gauge\nh +Inf\n"
        );
    }
}
