//! Go's `encoding/json` field matching for API request bodies: an object key names a struct
//! field exactly or, failing that, case-insensitively (`"Channel"` is `channel`), as Centrifugo's
//! decoder does. Map keys (`tags`) and raw payloads (`data`) are left as they are.
//!
//! A [`Deserializer`] adapter: every struct a request contains is read through [`FieldMap`],
//! which renames keys to the struct's own field names; everything else passes through.

use std::fmt;

use serde::de::value::StrDeserializer;
use serde::de::{DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Parses `bytes` as `T`, matching struct fields as Go does.
pub fn from_slice<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> serde_json::Result<T> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(GoFields(&mut json))?;
    json.end()?;
    Ok(value)
}

/// The name of the field `key` means: the exact field, else the first that differs in case only.
fn field_for<'a>(key: &'a str, fields: &'static [&'static str]) -> &'a str {
    if fields.contains(&key) {
        return key;
    }
    fields.iter().find(|field| field.eq_ignore_ascii_case(key)).copied().unwrap_or(key)
}

struct GoFields<D>(D);

macro_rules! forward_plain {
    ($($method:ident),*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method(visitor)
        })*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for GoFields<D> {
    type Error = D::Error;

    forward_plain!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_unit,
        deserialize_identifier,
        deserialize_ignored_any
    );

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(Nested(visitor))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_option(Nested(visitor))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        if name.starts_with("$serde_json") {
            // A raw JSON payload: serde_json reads it only from its own deserializer.
            return self.0.deserialize_newtype_struct(name, visitor);
        }
        self.0.deserialize_newtype_struct(name, Nested(visitor))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_seq(Nested(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Nested(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Nested(visitor))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Nested(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct(name, fields, Struct { visitor, fields })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }
}

/// A visitor whose nested values are read through [`GoFields`] too.
struct Nested<V>(V);

/// A struct's visitor: its keys are matched to `fields`.
struct Struct<V> {
    visitor: V,
    fields: &'static [&'static str],
}

macro_rules! forward_visits {
    ($inner:tt; $($method:ident($ty:ty)),*) => {
        $(fn $method<E: serde::de::Error>(self, value: $ty) -> Result<Self::Value, E> {
            self.$inner.$method(value)
        })*
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            self.$inner.visit_none()
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            self.$inner.visit_unit()
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
            self.$inner.visit_borrowed_str(value)
        }
        fn visit_borrowed_bytes<E: serde::de::Error>(self, value: &'de [u8]) -> Result<Self::Value, E> {
            self.$inner.visit_borrowed_bytes(value)
        }
        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            self.$inner.visit_some(GoFields(deserializer))
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            self.$inner.visit_newtype_struct(GoFields(deserializer))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            self.$inner.visit_seq(Elements(seq))
        }
        fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
            self.$inner.visit_enum(data)
        }
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Nested<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visits!(0; visit_bool(bool), visit_i8(i8), visit_i16(i16), visit_i32(i32), visit_i64(i64),
        visit_i128(i128), visit_u8(u8), visit_u16(u16), visit_u32(u32), visit_u64(u64), visit_u128(u128),
        visit_f32(f32), visit_f64(f64), visit_char(char), visit_str(&str), visit_string(String),
        visit_bytes(&[u8]), visit_byte_buf(Vec<u8>));

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(Entries { map, fields: None })
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Struct<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_visits!(visitor; visit_bool(bool), visit_i8(i8), visit_i16(i16), visit_i32(i32), visit_i64(i64),
        visit_i128(i128), visit_u8(u8), visit_u16(u16), visit_u32(u32), visit_u64(u64), visit_u128(u128),
        visit_f32(f32), visit_f64(f64), visit_char(char), visit_str(&str), visit_string(String),
        visit_bytes(&[u8]), visit_byte_buf(Vec<u8>));

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_map(Entries { map, fields: Some(self.fields) })
    }
}

/// A map's entries: keys renamed to a struct's fields (`fields` set) or kept (a plain map);
/// values read through [`GoFields`].
struct Entries<A> {
    map: A,
    fields: Option<&'static [&'static str]>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Entries<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        let Some(fields) = self.fields else {
            return self.map.next_key_seed(Wrapped(seed));
        };
        let Some(key) = self.map.next_key::<String>()? else { return Ok(None) };
        seed.deserialize(StrDeserializer::<A::Error>::new(field_for(&key, fields))).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(Wrapped(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A sequence's elements, read through [`GoFields`].
struct Elements<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Elements<A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, A::Error> {
        self.0.next_element_seed(Wrapped(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// A seed that reads through [`GoFields`].
struct Wrapped<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrapped<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(GoFields(deserializer))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::value::RawValue;

    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Inner {
        offset: u64,
        epoch: String,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Request {
        channel: String,
        data: Option<Box<RawValue>>,
        tags: BTreeMap<String, String>,
        since: Option<Inner>,
        list: Vec<Inner>,
        skip_history: bool,
    }

    #[test]
    fn keys_match_fields_case_insensitively_at_every_depth() {
        let body = br#"{"CHANNEL":"news","Data":{"Keep":"As Is"},"Tags":{"Key":"V"},
            "Since":{"Offset":3,"EPOCH":"e"},"List":[{"OFFSET":1}],"Skip_History":true}"#;
        let request: Request = from_slice(body).expect("parses");
        assert_eq!(request.channel, "news");
        assert_eq!(request.data.map(|d| d.get().to_owned()), Some(r#"{"Keep":"As Is"}"#.to_owned()));
        assert_eq!(request.tags.into_iter().collect::<Vec<_>>(), vec![("Key".to_owned(), "V".to_owned())]);
        assert_eq!(request.since.map(|s| (s.offset, s.epoch)), Some((3, "e".to_owned())));
        assert_eq!(request.list[0].offset, 1);
        assert!(request.skip_history);
    }

    #[test]
    fn unknown_keys_are_ignored_and_types_still_checked() {
        let request: Request = from_slice(br#"{"Channel":"folded","nope":1}"#).expect("parses");
        assert_eq!(request.channel, "folded");
        assert!(from_slice::<Request>(br#"{"channel":1}"#).is_err(), "types are still checked");
        assert!(from_slice::<Request>(br#"{"channel":"a"} x"#).is_err(), "trailing bytes are refused");
    }
}
