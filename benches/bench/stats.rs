//! Medians and the `Value` a figure reports: a number with its unit, or why a server cannot do
//! the workload at all.

use std::time::Duration;

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unit {
    Ms,
    /// Milliseconds to two decimals, for figures that are themselves below a millisecond.
    MsFine,
    /// Microseconds.
    Us,
    /// A ratio of two figures of the same server.
    Factor,
    S,
    Mib,
    PerSec,
    Count,
}

#[derive(Clone, Debug)]
pub enum Value {
    Num(f64, Unit),
    /// The server cannot do this workload; the text says why.
    Na(String),
}

impl Value {
    pub fn num(&self) -> Option<f64> {
        match self {
            Value::Num(v, _) => Some(*v),
            Value::Na(_) => None,
        }
    }

    pub fn render(&self) -> String {
        match self {
            Value::Na(why) => format!("n/a — {why}"),
            Value::Num(v, u) if v.is_nan() => format!("? {u:?}"),
            Value::Num(v, Unit::Ms) => format!("{v:.1} ms"),
            Value::Num(v, Unit::MsFine) => format!("{v:.2} ms"),
            Value::Num(v, Unit::Us) => format!("{v:.1} µs"),
            Value::Num(v, Unit::Factor) => format!("{v:.2}x"),
            Value::Num(v, Unit::S) => format!("{v:.2} s"),
            Value::Num(v, Unit::Mib) => format!("{v:.1} MiB"),
            Value::Num(v, Unit::PerSec) => format!("{}/s", group(*v)),
            Value::Num(v, Unit::Count) => group(*v),
        }
    }
}

/// 123456.7 → "123,457".
fn group(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}
