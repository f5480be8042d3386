//! `NamedMap`: the name-keyed sections of `agents.yaml` (`agents:`, `groups:`) in file order,
//! and what a name must look like for the file to load.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{AgentConfig, Group, lenient};

/// Entries in file order. A `Vec` of pairs: lookups are over a handful of entries.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedMap<T>(pub Vec<(String, T)>);

pub type AgentMap = NamedMap<AgentConfig>;
pub type GroupMap = NamedMap<Group>;

impl<T> Default for NamedMap<T> {
    fn default() -> Self {
        NamedMap(Vec::new())
    }
}

impl<T> NamedMap<T> {
    pub fn get(&self, name: &str) -> Option<&T> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }
    pub fn get_mut(&mut self, name: &str) -> Option<&mut T> {
        self.0.iter_mut().find(|(n, _)| n == name).map(|(_, a)| a)
    }
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    /// Inserts or replaces, keeping the position of an existing entry.
    pub fn insert(&mut self, name: String, value: T) {
        match self.get_mut(&name) {
            Some(slot) => *slot = value,
            None => self.0.push((name, value)),
        }
    }
    pub fn remove(&mut self, name: &str) -> Option<T> {
        let at = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(at).1)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.0.iter().map(|(n, a)| (n.as_str(), a))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a key under a [`NamedMap`] must look like to load.
pub trait Named {
    /// `Err(reason)` refuses the file.
    fn check_name(_name: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Agent names are not checked on load (the reference never did); `doctor` warns instead.
impl Named for AgentConfig {}

/// Group names are checked on load as 0.16.0 does: they label text sent to members.
impl Named for Group {
    fn check_name(name: &str) -> Result<(), String> {
        super::validate_group_name(name)
    }
}

impl<T: Serialize> Serialize for NamedMap<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de> + Named> Deserialize<'de> for NamedMap<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Named> serde::de::Visitor<'de> for Visit<T> {
            type Value = NamedMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names to settings")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<NamedMap<T>, E> {
                Ok(NamedMap::default())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<NamedMap<T>, A::Error> {
                let mut out = NamedMap::default();
                while let Some(name) = m.next_key::<lenient::Key>()? {
                    T::check_name(&name.0).map_err(serde::de::Error::custom)?;
                    let value = m.next_value::<T>()?;
                    out.insert(name.0, value);
                }
                Ok(out)
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}
