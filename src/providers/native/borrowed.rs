//! Reading upstream events in place: strings borrowed from the event, and arrays that are almost
//! always one element long read without a heap allocation.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A string borrowed from the event when it has no escapes, owned otherwise. Unlike a bare
/// `Option<Cow<str>>` field, which serde always copies, `Option<Str>` borrows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Str<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl Str<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A JSON array kept as its first element inline and the others in a `Vec`, which allocates only
/// when there is a second (Gemini's `candidates` and `parts` have one element per stream event).
#[derive(Debug, Clone)]
pub struct Few<T> {
    first: Option<T>,
    rest: Vec<T>,
}

impl<T> Default for Few<T> {
    fn default() -> Self {
        Self { first: None, rest: Vec::new() }
    }
}

impl<T> Few<T> {
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.first.iter().chain(&self.rest)
    }
}

impl<'a, T> IntoIterator for &'a Few<T> {
    type Item = &'a T;
    type IntoIter = std::iter::Chain<std::option::Iter<'a, T>, std::slice::Iter<'a, T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.first.iter().chain(&self.rest)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Few<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FewVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for FewVisitor<T> {
            type Value = Few<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Few<T>, A::Error> {
                let mut few = Few { first: seq.next_element()?, rest: Vec::new() };
                if few.first.is_some() {
                    while let Some(item) = seq.next_element()? {
                        few.rest.push(item);
                    }
                }
                Ok(few)
            }
        }
        deserializer.deserialize_seq(FewVisitor(PhantomData))
    }
}

/// Any JSON value, read and dropped. serde's own way of skipping an unknown field (`IgnoredAny`)
/// makes serde_json allocate a scratch stack, per parse, for a value nested two levels deep; a
/// field declared as `Skip` walks the value instead and allocates nothing. For the nested fields an
/// event usually carries and a translation does not read (e.g. Gemini's token details).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SkipVisitor;
        impl<'de> Visitor<'de> for SkipVisitor {
            type Value = Skip;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_unit<E>(self) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_none<E>(self) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
                while seq.next_element::<Skip>()?.is_some() {}
                Ok(Skip)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
                while map.next_entry::<IgnoredAny, Skip>()?.is_some() {}
                Ok(Skip)
            }
        }
        deserializer.deserialize_any(SkipVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_keeps_order_and_strings_borrow() {
        #[derive(Deserialize)]
        struct Event<'a> {
            #[serde(borrow)]
            items: Few<Str<'a>>,
            #[serde(default, borrow)]
            kind: Option<Str<'a>>,
        }
        let json = r#"{"items":["a","b\"","c"],"kind":"text_delta"}"#;
        let event: Event = serde_json::from_str(json).unwrap();
        let items: Vec<&str> = event.items.iter().map(Str::as_str).collect();
        assert_eq!(items, ["a", "b\"", "c"]);
        assert_eq!(event.items.len(), 3);
        assert!(matches!(event.kind.as_ref().map(|k| &k.0), Some(Cow::Borrowed("text_delta"))));
        let nested: Skip = serde_json::from_str(r#"{"a":[{"b":{"c":[1,2.5,-3,"d",null,true]}}]}"#).unwrap();
        assert_eq!(nested, Skip);
        assert!(serde_json::from_str::<Skip>(r#"{"a":[}"#).is_err());
        let empty: Few<u8> = serde_json::from_str("[]").unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.iter().count(), empty.len());
    }
}
