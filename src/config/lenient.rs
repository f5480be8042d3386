//! Lenient scalar coercion for `agents.yaml` (SPEC §2.2): the Python reference validated the file
//! with pydantic in lax mode, so hand-written files say `timeout: "30"` or `enabled: yes`, and
//! those must keep loading. Each function here is a serde `deserialize_with` target; its errors
//! are raised while the YAML deserializer still knows the position, so they carry line/column.
//!
//! Range rules live here too (negative timeouts and budgets are rejected, SPEC §13 0.12.0),
//! because a check done after deserialising would have lost the location.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// A number as written: integral, fractional, or a string holding one.
enum Num {
    Int(i128),
    Float(f64),
}

fn parse_num_str<E: de::Error>(s: &str) -> Result<Num, E> {
    let t = s.trim();
    if let Ok(i) = t.parse::<i128>() {
        return Ok(Num::Int(i));
    }
    match t.parse::<f64>() {
        Ok(f) if !t.is_empty() => Ok(Num::Float(f)),
        _ => Err(E::custom(format!("expected a number, got {s:?}"))),
    }
}

/// Reads a number (or `null`) and runs `check` on it *inside* the visitor: serde_yaml_ng only
/// attaches the value's own line/column to errors raised there.
struct NumVisitor<F>(F);

impl<F> NumVisitor<F> {
    fn done<T, E: de::Error>(self, n: Option<Num>) -> Result<T, E>
    where
        F: FnOnce(Option<Num>) -> Result<T, String>,
    {
        (self.0)(n).map_err(E::custom)
    }
}

impl<'de, T, F: FnOnce(Option<Num>) -> Result<T, String>> Visitor<'de> for NumVisitor<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.done(Some(Num::Int(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.done(Some(Num::Int(v.into())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        self.done(Some(Num::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        let n = parse_num_str(v)?;
        self.done(Some(n))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        self.done(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        self.done(None)
    }
}

fn whole(n: Option<Num>, min: u64, default: u64, max: u64) -> Result<u64, String> {
    let n = match n {
        None => return Ok(default),
        Some(Num::Int(i)) => i,
        Some(Num::Float(f)) => {
            if !f.is_finite() || f.fract() != 0.0 {
                return Err(format!("expected a whole number, got {f}"));
            }
            f as i128
        }
    };
    if n < i128::from(min) {
        return Err(format!("must be greater than or equal to {min}, got {n}"));
    }
    if n > i128::from(max) {
        return Err(format!("number too large: {n}"));
    }
    u64::try_from(n).map_err(|_| format!("number too large: {n}"))
}

/// An integer ≥ `MIN`; `null` means `DEFAULT`. `"30"` and `30.0` are accepted, `30.5` is not.
pub fn uint<'de, D: Deserializer<'de>, const MIN: u64, const DEFAULT: u64>(
    d: D,
) -> Result<u64, D::Error> {
    d.deserialize_any(NumVisitor(|n| whole(n, MIN, DEFAULT, u64::MAX)))
}

/// Like [`uint`] for `u32` fields.
pub fn uint32<'de, D: Deserializer<'de>, const MIN: u64, const DEFAULT: u64>(
    d: D,
) -> Result<u32, D::Error> {
    d.deserialize_any(NumVisitor(|n| {
        whole(n, MIN, DEFAULT, u32::MAX.into()).map(|v| v as u32)
    }))
}

/// Like [`uint`] for `usize` fields.
pub fn usize_<'de, D: Deserializer<'de>, const MIN: u64, const DEFAULT: u64>(
    d: D,
) -> Result<usize, D::Error> {
    d.deserialize_any(NumVisitor(|n| {
        let v = whole(n, MIN, DEFAULT, u64::MAX)?;
        usize::try_from(v).map_err(|_| format!("number too large: {v}"))
    }))
}

/// A finite amount ≥ 0, or absent (`null`).
pub fn budget<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_any(NumVisitor(|n| {
        let f = match n {
            None => return Ok(None),
            Some(Num::Int(i)) => i as f64,
            Some(Num::Float(f)) => f,
        };
        if !f.is_finite() {
            return Err(format!("must be a finite number, got {f}"));
        }
        if f < 0.0 {
            return Err(format!("must be greater than or equal to 0, got {f}"));
        }
        Ok(Some(f))
    }))
}

struct BoolVisitor;

impl<'de> Visitor<'de> for BoolVisitor {
    type Value = Option<bool>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean (true/false, yes/no, on/off, 1/0)")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match v {
            0 => Ok(Some(false)),
            1 => Ok(Some(true)),
            _ => Err(E::custom(format!("expected a boolean, got {v}"))),
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" | "y" | "t" => Ok(Some(true)),
            "false" | "no" | "off" | "0" | "n" | "f" => Ok(Some(false)),
            _ => Err(E::custom(format!("expected a boolean, got {v:?}"))),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(BoolVisitor)
    }
}

/// A boolean in any of the spellings YAML 1.1 and pydantic accept; `null` means true.
pub fn bool_default_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(d.deserialize_any(BoolVisitor)?.unwrap_or(true))
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    // A bare `model: 4` or `description: 2024` in YAML is a number; the user meant the text.
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(StrVisitor)
    }
}

/// A string; numbers and booleans become their text; `null` is absent.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(StrVisitor)
}

/// A string; `null` is empty.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(d.deserialize_any(StrVisitor)?.unwrap_or_default())
}

/// A required non-empty path string (`directory`).
pub fn path<'de, D: Deserializer<'de>>(d: D) -> Result<std::path::PathBuf, D::Error> {
    struct PathVisitor;
    impl<'de> Visitor<'de> for PathVisitor {
        type Value = std::path::PathBuf;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a directory path")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.trim().is_empty() {
                return Err(E::custom("directory must be a non-empty path"));
            }
            Ok(std::path::PathBuf::from(v))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(E::custom("directory must be a non-empty path"))
        }
    }
    d.deserialize_any(PathVisitor)
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = Option<Vec<String>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of tool names, e.g. [Bash, Read]")
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<Item>()? {
            out.push(item.0);
        }
        Ok(Some(out))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ListVisitor)
    }
}

/// One list item: a string, or a scalar taken as its text.
struct Item(String);

impl<'de> de::Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(StrVisitor)? {
            Some(s) => Ok(Item(s)),
            None => Err(de::Error::custom("a tool name must not be null")),
        }
    }
}

/// Tri-state tool list: `null`/absent inherits, `[]` is explicitly none.
pub fn opt_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    d.deserialize_any(ListVisitor)
}

/// A plain list; `null` is empty.
pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(d.deserialize_any(ListVisitor)?.unwrap_or_default())
}

/// A nested section (`settings:`, `cache:`); an empty section (`null`) is all defaults.
pub fn section<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: de::Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

use serde::Deserialize as _;

/// A mapping key taken as text (`123:` names agent "123").
pub struct Key(pub String);

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(StrVisitor)? {
            Some(s) => Ok(Key(s)),
            None => Err(de::Error::custom("an agent name must not be null")),
        }
    }
}
