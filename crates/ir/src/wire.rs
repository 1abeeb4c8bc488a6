//! Schema-independent comparison of protobuf encodings.
//!
//! Used to prove that a load/save round trip loses no field, whatever the schema says:
//! both encodings are parsed as raw protobuf (field number, wire type, payload). A
//! length-delimited payload that parses completely as a message is compared as one,
//! otherwise as bytes (the same bytes always get the same reading, so the heuristic is
//! symmetric). Fields are compared per field number in order; fields holding the default
//! value (varint 0, empty payload) count as absent, as protobuf readers treat them.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

#[derive(Debug, PartialEq, Eq)]
enum Value {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Message(Fields),
    /// Length and hash of the bytes (payloads can be hundreds of MB).
    Bytes(usize, u64),
}

type Fields = BTreeMap<u32, Vec<Value>>;

/// Parsing nested payloads as messages is limited to this depth.
const MAX_DEPTH: usize = 64;

fn read_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn parse(b: &[u8], depth: usize) -> Option<Fields> {
    let mut fields = Fields::new();
    let mut pos = 0;
    while pos < b.len() {
        let key = read_varint(b, &mut pos)?;
        let (number, wire) = ((key >> 3) as u32, key & 7);
        if number == 0 {
            return None;
        }
        let value = match wire {
            0 => Value::Varint(read_varint(b, &mut pos)?),
            1 => {
                let s = b.get(pos..pos + 8)?;
                pos += 8;
                Value::Fixed64(u64::from_le_bytes(s.try_into().ok()?))
            }
            5 => {
                let s = b.get(pos..pos + 4)?;
                pos += 4;
                Value::Fixed32(u32::from_le_bytes(s.try_into().ok()?))
            }
            2 => {
                let len = usize::try_from(read_varint(b, &mut pos)?).ok()?;
                let s = b.get(pos..pos.checked_add(len)?)?;
                pos += len;
                payload(s, depth)
            }
            _ => return None,
        };
        if !is_default(&value) {
            fields.entry(number).or_default().push(value);
        }
    }
    Some(fields)
}

fn payload(s: &[u8], depth: usize) -> Value {
    if depth < MAX_DEPTH
        && !s.is_empty()
        && let Some(f) = parse(s, depth + 1)
    {
        return Value::Message(f);
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    Value::Bytes(s.len(), h.finish())
}

fn is_default(v: &Value) -> bool {
    matches!(v, Value::Varint(0) | Value::Bytes(0, _))
}

/// Compares two encodings of the same message. Returns one line per difference (a path of
/// field numbers and what differs); empty when equivalent. Errors when `original` is not
/// protobuf at all.
pub fn compare(original: &[u8], saved: &[u8]) -> Result<Vec<String>, String> {
    let a = parse(original, 0).ok_or("the original is not a protobuf message")?;
    let b = parse(saved, 0).ok_or("the saved bytes are not a protobuf message")?;
    let mut diffs = Vec::new();
    diff(&a, &b, "", &mut diffs);
    Ok(diffs)
}

fn diff(a: &Fields, b: &Fields, path: &str, out: &mut Vec<String>) {
    for (num, av) in a {
        let bv = b.get(num).map_or(&[][..], Vec::as_slice);
        if av.len() != bv.len() {
            out.push(format!(
                "{path}/{num}: {} values in the original, {} saved",
                av.len(),
                bv.len()
            ));
            continue;
        }
        for (i, (x, y)) in av.iter().zip(bv).enumerate() {
            let here = format!("{path}/{num}[{i}]");
            match (x, y) {
                (Value::Message(fx), Value::Message(fy)) => diff(fx, fy, &here, out),
                _ if x == y => {}
                _ => out.push(format!("{here}: {x:?} became {y:?}")),
            }
        }
    }
    for num in b.keys().filter(|n| !a.contains_key(n)) {
        out.push(format!("{path}/{num}: field added by saving"));
    }
}
