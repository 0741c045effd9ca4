//! The proto3 JSON of an RPC's answer written straight from its protobuf bytes, for the
//! message shapes `proto/` answers with (scalars, strings, enums, nested and repeated
//! messages, maps, `Timestamp`, `Struct`). It writes what prost-reflect's serializer
//! writes (with the gateway's options: camelCase names, 64-bit integers as strings,
//! enums by name, default values left out, fields in declaration order) without first
//! building a `DynamicMessage`, which is most of the cost of a small HTTP answer.
//! Anything else (floats, bytes, other well-known types, a field sent twice, a wire
//! type that does not fit its field) answers `None`, and the gateway uses prost-reflect;
//! unknown fields are left out, as prost-reflect leaves them out. The unit tests compare
//! both on every answer message of `proto/`.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

/// One field as it was on the wire.
#[derive(Clone, Copy)]
enum Raw<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

/// Writes the JSON of the message `message` encoded in `bytes` to `out`; `None` when it
/// meets something it does not write (`out` is then partly written: discard it).
pub fn write_message(message: &MessageDescriptor, bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    match message.full_name() {
        "google.protobuf.Timestamp" => return write_timestamp(bytes, out),
        "google.protobuf.Struct" => return write_struct(message, bytes, out),
        "google.protobuf.Value" => return write_value(message, bytes, out),
        "google.protobuf.ListValue" => return write_list_value(message, bytes, out),
        name if name.starts_with("google.protobuf.") => return None,
        _ => {}
    }
    let entries = parse(bytes)?;
    out.push(b'{');
    let mut first = true;
    for field in message.fields() {
        let number = field.number();
        let mut values = entries
            .iter()
            .filter(|(n, _)| *n == number)
            .map(|(_, raw)| *raw);
        let Some(head) = values.next() else {
            continue;
        };
        let start = out.len();
        if !first {
            out.push(b',');
        }
        write_string(field.json_name(), out);
        out.push(b':');
        if field.is_map() {
            let entry = field.kind();
            let entry = entry.as_message()?;
            out.push(b'{');
            for (i, raw) in std::iter::once(head).chain(values).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_map_entry(entry, raw, out)?;
            }
            out.push(b'}');
        } else if field.is_list() {
            out.push(b'[');
            let mut count = 0;
            for raw in std::iter::once(head).chain(values) {
                write_list_items(&field, raw, &mut count, out)?;
            }
            out.push(b']');
        } else {
            if values.next().is_some() {
                return None;
            }
            if !field.supports_presence() && is_default(&field.kind(), head) {
                out.truncate(start);
                continue;
            }
            write_single(&field.kind(), head, out)?;
        }
        first = false;
    }
    out.push(b'}');
    Some(())
}

/// Every field of `bytes` in wire order; `None` on a malformed message or a wire type
/// this writer does not read (groups).
fn parse(mut bytes: &[u8]) -> Option<Vec<(u32, Raw<'_>)>> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let number = u32::try_from(key >> 3).ok()?;
        let raw = match key & 7 {
            0 => Raw::Varint(varint(&mut bytes)?),
            1 => {
                let (head, rest) = bytes.split_first_chunk::<8>()?;
                bytes = rest;
                Raw::Fixed64(u64::from_le_bytes(*head))
            }
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                if bytes.len() < len {
                    return None;
                }
                let (head, rest) = bytes.split_at(len);
                bytes = rest;
                Raw::Bytes(head)
            }
            5 => {
                let (head, rest) = bytes.split_first_chunk::<4>()?;
                bytes = rest;
                Raw::Fixed32(u32::from_le_bytes(*head))
            }
            _ => return None,
        };
        entries.push((number, raw));
    }
    Some(entries)
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// Whether a field without presence holds its default (and is left out).
fn is_default(kind: &Kind, raw: Raw<'_>) -> bool {
    match (kind, raw) {
        (Kind::String, Raw::Bytes(bytes)) => bytes.is_empty(),
        (_, Raw::Varint(value) | Raw::Fixed64(value)) => value == 0,
        (_, Raw::Fixed32(value)) => value == 0,
        _ => false,
    }
}

fn write_single(kind: &Kind, raw: Raw<'_>, out: &mut Vec<u8>) -> Option<()> {
    match (kind, raw) {
        (Kind::String, Raw::Bytes(bytes)) => write_string(std::str::from_utf8(bytes).ok()?, out),
        (Kind::Message(message), Raw::Bytes(bytes)) => write_message(message, bytes, out)?,
        (Kind::Enum(enumeration), Raw::Varint(value)) => {
            let number = value as i32;
            if enumeration.full_name() == "google.protobuf.NullValue" {
                out.extend_from_slice(b"null");
            } else {
                match enumeration.get_value(number) {
                    Some(known) => write_string(known.name(), out),
                    None => write_number(number, out),
                }
            }
        }
        (Kind::Bool, Raw::Varint(value)) => {
            out.extend_from_slice(if value != 0 { b"true" } else { b"false" })
        }
        (Kind::Int32, Raw::Varint(value)) => write_number(value as i32, out),
        (Kind::Uint32, Raw::Varint(value)) => write_number(value as u32, out),
        (Kind::Sint32, Raw::Varint(value)) => write_number(zigzag(value) as i32, out),
        (Kind::Int64, Raw::Varint(value)) => write_quoted(value as i64, out),
        (Kind::Uint64, Raw::Varint(value)) => write_quoted(value, out),
        (Kind::Sint64, Raw::Varint(value)) => write_quoted(zigzag(value), out),
        (Kind::Fixed32, Raw::Fixed32(value)) => write_number(value, out),
        (Kind::Sfixed32, Raw::Fixed32(value)) => write_number(value as i32, out),
        (Kind::Fixed64, Raw::Fixed64(value)) => write_quoted(value, out),
        (Kind::Sfixed64, Raw::Fixed64(value)) => write_quoted(value as i64, out),
        // Floats, doubles, bytes, and a wire type that does not fit the field.
        _ => return None,
    }
    Some(())
}

/// The items of a repeated field in one wire entry: one, or a packed run of numbers.
fn write_list_items(
    field: &FieldDescriptor,
    raw: Raw<'_>,
    count: &mut usize,
    out: &mut Vec<u8>,
) -> Option<()> {
    let kind = field.kind();
    let packed = matches!(raw, Raw::Bytes(_))
        && !matches!(kind, Kind::String | Kind::Bytes | Kind::Message(_));
    let mut item = |raw: Raw<'_>, out: &mut Vec<u8>| {
        if *count > 0 {
            out.push(b',');
        }
        *count += 1;
        write_single(&kind, raw, out)
    };
    if !packed {
        return item(raw, out);
    }
    let Raw::Bytes(mut bytes) = raw else {
        return None;
    };
    while !bytes.is_empty() {
        let raw = match kind {
            Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => {
                let (head, rest) = bytes.split_first_chunk::<4>()?;
                bytes = rest;
                Raw::Fixed32(u32::from_le_bytes(*head))
            }
            Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => {
                let (head, rest) = bytes.split_first_chunk::<8>()?;
                bytes = rest;
                Raw::Fixed64(u64::from_le_bytes(*head))
            }
            _ => Raw::Varint(varint(&mut bytes)?),
        };
        item(raw, out)?;
    }
    Some(())
}

/// `"key":value` of one map entry (a message of `key = 1`, `value = 2`); a missing
/// key or value is its default.
fn write_map_entry(entry: &MessageDescriptor, raw: Raw<'_>, out: &mut Vec<u8>) -> Option<()> {
    let Raw::Bytes(bytes) = raw else {
        return None;
    };
    let fields = parse(bytes)?;
    let (key_field, value_field) = (entry.get_field(1)?, entry.get_field(2)?);
    let key = fields
        .iter()
        .rev()
        .find(|(n, _)| *n == 1)
        .map(|(_, raw)| *raw);
    let value = fields
        .iter()
        .rev()
        .find(|(n, _)| *n == 2)
        .map(|(_, raw)| *raw);
    match (key_field.kind(), key) {
        (Kind::String, Some(Raw::Bytes(bytes))) => {
            write_string(std::str::from_utf8(bytes).ok()?, out)
        }
        (Kind::String, None) => write_string("", out),
        // Integer and bool keys are rare enough to leave to prost-reflect.
        _ => return None,
    }
    out.push(b':');
    match (value_field.kind(), value) {
        (kind, Some(raw)) => write_single(&kind, raw, out),
        (Kind::String, None) => {
            write_string("", out);
            Some(())
        }
        (Kind::Message(message), None) => write_message(&message, &[], out),
        _ => None,
    }
}

/// RFC 3339 in UTC, as `prost_types::Timestamp` displays it (prost-reflect's format),
/// without the formatting machinery (two timestamps were a third of an answer's JSON).
fn write_timestamp(bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut timestamp = prost_types::Timestamp::default();
    for (number, raw) in parse(bytes)? {
        match (number, raw) {
            (1, Raw::Varint(value)) => timestamp.seconds = value as i64,
            (2, Raw::Varint(value)) => timestamp.nanos = value as i32,
            _ => return None,
        }
    }
    // prost-reflect's range: years 1 to 9999; nanos normalised.
    if !(-62_135_596_800..=253_402_300_799).contains(&timestamp.seconds)
        || !(0..1_000_000_000).contains(&timestamp.nanos)
    {
        return None;
    }
    let time = chrono::DateTime::from_timestamp(timestamp.seconds, timestamp.nanos as u32)?;
    use chrono::{Datelike as _, Timelike as _};
    let digits = |out: &mut Vec<u8>, value: u32, width: usize| {
        let mut buffer = [b'0'; 9];
        let mut rest = value;
        for slot in buffer[..width].iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.extend_from_slice(&buffer[..width]);
    };
    out.push(b'"');
    digits(out, time.year() as u32, 4);
    for (separator, value) in [
        (b'-', time.month()),
        (b'-', time.day()),
        (b'T', time.hour()),
        (b':', time.minute()),
        (b':', time.second()),
    ] {
        out.push(separator);
        digits(out, value, 2);
    }
    // prost_types' format: no fraction, or millis, micros or nanos.
    let nanos = timestamp.nanos as u32;
    if nanos != 0 {
        out.push(b'.');
        if nanos.is_multiple_of(1_000_000) {
            digits(out, nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            digits(out, nanos / 1_000, 6);
        } else {
            digits(out, nanos, 9);
        }
    }
    out.extend_from_slice(b"Z\"");
    Some(())
}

/// A `Struct`: its `fields` map as a JSON object.
fn write_struct(message: &MessageDescriptor, bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let entry = message.get_field(1)?.kind();
    let entry = entry.as_message()?;
    out.push(b'{');
    for (i, (number, raw)) in parse(bytes)?.into_iter().enumerate() {
        if number != 1 {
            return None;
        }
        if i > 0 {
            out.push(b',');
        }
        write_map_entry(entry, raw, out)?;
    }
    out.push(b'}');
    Some(())
}

/// A `Value`: the JSON value its one set `kind` holds.
fn write_value(message: &MessageDescriptor, bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let fields = parse(bytes)?;
    let [(number, raw)] = fields.as_slice() else {
        return None;
    };
    match (number, *raw) {
        (1, Raw::Varint(_)) => out.extend_from_slice(b"null"),
        (2, Raw::Fixed64(bits)) => {
            let number = f64::from_bits(bits);
            if !number.is_finite() {
                return None;
            }
            serde_json::to_writer(&mut *out, &number).ok()?;
        }
        (3, Raw::Bytes(text)) => write_string(std::str::from_utf8(text).ok()?, out),
        (4, Raw::Varint(value)) => {
            out.extend_from_slice(if value != 0 { b"true" } else { b"false" })
        }
        (5 | 6, Raw::Bytes(nested)) => {
            let kind = message.get_field(*number)?.kind();
            write_message(kind.as_message()?, nested, out)?;
        }
        _ => return None,
    }
    Some(())
}

/// A `ListValue`: its values as a JSON array.
fn write_list_value(message: &MessageDescriptor, bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let value = message.get_field(1)?.kind();
    let value = value.as_message()?;
    out.push(b'[');
    for (i, (number, raw)) in parse(bytes)?.into_iter().enumerate() {
        let (1, Raw::Bytes(nested)) = (number, raw) else {
            return None;
        };
        if i > 0 {
            out.push(b',');
        }
        write_value(value, nested, out)?;
    }
    out.push(b']');
    Some(())
}

fn zigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    // Writing a str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn write_number(number: impl std::fmt::Display, out: &mut Vec<u8>) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{number}");
}

fn write_quoted(number: impl std::fmt::Display, out: &mut Vec<u8>) {
    out.push(b'"');
    write_number(number, out);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, ReflectMessage as _, Value};

    use super::*;

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(crate::grpc::pb::FILE_DESCRIPTOR_SET).expect("descriptors")
    }

    /// A value of `kind` that exercises the JSON mapping: escapes, non-ASCII, negative
    /// and 64-bit numbers, an enum number the enum does not name.
    fn sample(kind: &Kind, variant: u32, depth: u32) -> Option<Value> {
        Some(match kind {
            Kind::String => Value::String(format!("a\"b\\c\u{1}é {variant}")),
            Kind::Bool => Value::Bool(variant.is_multiple_of(2)),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(-7 - variant as i32),
            Kind::Uint32 | Kind::Fixed32 => Value::U32(7 + variant),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(i64::MIN + variant as i64),
            Kind::Uint64 | Kind::Fixed64 => Value::U64(u64::MAX - u64::from(variant)),
            Kind::Enum(e) => Value::EnumNumber(if variant == 2 {
                99
            } else {
                e.values().last().map_or(0, |v| v.number())
            }),
            Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
                let mut t = DynamicMessage::new(m.clone());
                t.set_field_by_name(
                    "seconds",
                    Value::I64(
                        [1_765_000_000, -62_135_596_800, 253_402_300_799, 0][variant as usize % 4],
                    ),
                );
                t.set_field_by_name(
                    "nanos",
                    Value::I32([0, 5_000_000, 195_080_000][variant as usize % 3]),
                );
                Value::Message(t)
            }
            Kind::Message(m) if m.full_name() == "google.protobuf.Struct" => {
                let json = serde_json::json!({
                    "n": 1.5, "i": 3, "s": "x\"y", "b": true, "z": null,
                    "l": [1, "two", {"three": [false]}], "o": {"p": {}}
                });
                let value = prost_types::Struct::decode(
                    serde_json::from_value::<serde_json::Value>(json)
                        .ok()
                        .and_then(|v| DynamicMessage::deserialize(m.clone(), v).ok())?
                        .encode_to_vec()
                        .as_slice(),
                )
                .ok()?;
                Value::Message(value.transcode_to_dynamic())
            }
            Kind::Message(m) if m.full_name().starts_with("google.protobuf.") => return None,
            Kind::Message(m) => {
                if depth > 3 {
                    return None;
                }
                Value::Message(filled(m, variant, depth + 1))
            }
            Kind::Float | Kind::Double | Kind::Bytes => return None,
        })
    }

    fn filled(message: &MessageDescriptor, variant: u32, depth: u32) -> DynamicMessage {
        let mut filled = DynamicMessage::new(message.clone());
        for field in message.fields() {
            // One member of each oneof, chosen by the variant.
            if let Some(oneof) = field.containing_oneof()
                && !oneof.is_synthetic()
            {
                let members: Vec<_> = oneof.fields().collect();
                if members[variant as usize % members.len()].number() != field.number() {
                    continue;
                }
            }
            let value = if field.is_map() {
                let entry = field.kind();
                let entry = entry.as_message().expect("a map entry");
                let (key, value) = (entry.map_entry_key_field(), entry.map_entry_value_field());
                if key.kind() != Kind::String {
                    continue;
                }
                let Some(item) = sample(&value.kind(), variant, depth) else {
                    continue;
                };
                Value::Map(
                    [
                        (MapKey::String("k1".into()), item.clone()),
                        (MapKey::String("k\"2".into()), item),
                    ]
                    .into(),
                )
            } else if field.is_list() {
                let Some(item) = sample(&field.kind(), variant, depth) else {
                    continue;
                };
                let other = sample(&field.kind(), variant + 1, depth).unwrap_or(item.clone());
                Value::List(vec![item, other])
            } else {
                match sample(&field.kind(), variant, depth) {
                    Some(value) => value,
                    None => continue,
                }
            };
            filled.set_field(&field, value);
        }
        filled
    }

    /// Every message an RPC answers with, and every message those reach.
    fn answer_messages(pool: &DescriptorPool) -> Vec<MessageDescriptor> {
        let mut seen = std::collections::BTreeMap::new();
        let mut todo: Vec<MessageDescriptor> = pool
            .services()
            .flat_map(|s| s.methods().map(|m| m.output()).collect::<Vec<_>>())
            .collect();
        while let Some(message) = todo.pop() {
            if message.package_name() != "tenancy.v1" || seen.contains_key(message.full_name()) {
                continue;
            }
            for field in message.fields() {
                if let Some(nested) = field.kind().as_message() {
                    todo.push(nested.clone());
                }
            }
            seen.insert(message.full_name().to_string(), message);
        }
        seen.into_values().collect()
    }

    #[test]
    fn every_answer_is_written_as_prost_reflect_writes_it() {
        let pool = pool();
        let messages = answer_messages(&pool);
        assert!(messages.len() > 20, "{} messages", messages.len());
        let mut checked_customer = false;
        for message in &messages {
            for variant in 0..4 {
                for value in [
                    DynamicMessage::new(message.clone()),
                    filled(message, variant, 0),
                ] {
                    let bytes = value.encode_to_vec();
                    let expected = crate::http::gateway::to_json(&value).expect("prost-reflect");
                    let mut written = Vec::new();
                    write_message(message, &bytes, &mut written).unwrap_or_else(|| {
                        panic!("{} is left to prost-reflect", message.full_name())
                    });
                    let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
                    if variant == 0 && message.name() == "Customer" && !bytes.is_empty() {
                        assert!(written.len() > 300, "{}", String::from_utf8_lossy(&written));
                        checked_customer = true;
                    }
                    assert_eq!(
                        parse(&written),
                        parse(&expected),
                        "{} variant {variant}:\n{}\n{}",
                        message.full_name(),
                        String::from_utf8_lossy(&written),
                        String::from_utf8_lossy(&expected)
                    );
                }
            }
        }
        assert!(checked_customer, "a filled Customer was compared");
    }

    #[test]
    fn what_it_does_not_write_is_refused_not_guessed() {
        let pool = pool();
        let customer = pool
            .get_message_by_name("tenancy.v1.Customer")
            .expect("Customer");
        let refused = |bytes: &[u8]| write_message(&customer, bytes, &mut Vec::new()).is_none();
        // A truncated message, a group, a field sent twice, a field of the wrong wire type.
        assert!(refused(&[0x0a, 0x05, b'a']));
        assert!(refused(&[0x0b]));
        assert!(refused(&[0x0a, 0x01, b'a', 0x0a, 0x01, b'b']));
        assert!(refused(&[0x08, 0x01]));
        // An unknown field is left out, as prost-reflect leaves it out.
        let mut out = Vec::new();
        write_message(&customer, &[0xf8, 0xff, 0x03, 0x01], &mut out).expect("written");
        assert_eq!(out, b"{}");
    }
}
