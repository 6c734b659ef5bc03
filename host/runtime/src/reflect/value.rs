//! Converting JSON arguments to component values, and results back to JSON.

use serde_json::{Map, Value};
use wasmtime::component::{Type, Val};

use super::{json_name, map_value_type};

/// An argument that does not fit the tool's signature.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: expected {expected}, got {got}")]
pub struct ArgumentError {
    /// The JSON path of the offending value, such as `$.parameters.region`.
    pub path: String,
    /// What the signature wants there.
    pub expected: String,
    /// What was given.
    pub got: String,
}

/// A short description of a JSON value, for error messages.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > 40 => format!("a string of {} characters", s.chars().count()),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

fn mismatch(path: &str, expected: impl Into<String>, got: &Value) -> ArgumentError {
    ArgumentError { path: path.to_string(), expected: expected.into(), got: describe(got) }
}

fn integer<T: TryFrom<i128>>(value: &Value, path: &str, name: &str) -> Result<T, ArgumentError> {
    let wide = match value {
        Value::Number(n) => n.as_i128().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e38).map(|f| f as i128)),
        _ => None,
    };
    wide.and_then(|w| T::try_from(w).ok()).ok_or_else(|| mismatch(path, format!("an integer ({name})"), value))
}

/// Converts `value` to a component value of type `ty`; `path` names where
/// `value` sits in the arguments (`$` at the top).
///
/// # Errors
///
/// [`ArgumentError`] naming the first path whose value does not fit.
pub fn json_to_val(value: &Value, ty: &Type, path: &str) -> Result<Val, ArgumentError> {
    Ok(match ty {
        Type::Bool => Val::Bool(value.as_bool().ok_or_else(|| mismatch(path, "a boolean", value))?),
        Type::S8 => Val::S8(integer(value, path, "s8")?),
        Type::U8 => Val::U8(integer(value, path, "u8")?),
        Type::S16 => Val::S16(integer(value, path, "s16")?),
        Type::U16 => Val::U16(integer(value, path, "u16")?),
        Type::S32 => Val::S32(integer(value, path, "s32")?),
        Type::U32 => Val::U32(integer(value, path, "u32")?),
        Type::S64 => Val::S64(integer(value, path, "s64")?),
        Type::U64 => Val::U64(integer(value, path, "u64")?),
        Type::Float32 => Val::Float32(value.as_f64().ok_or_else(|| mismatch(path, "a number", value))? as f32),
        Type::Float64 => Val::Float64(value.as_f64().ok_or_else(|| mismatch(path, "a number", value))?),
        Type::Char => {
            let text = value.as_str().ok_or_else(|| mismatch(path, "a one-character string", value))?;
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return Err(mismatch(path, "a one-character string", value)),
            }
        }
        Type::String => Val::String(value.as_str().ok_or_else(|| mismatch(path, "a string", value))?.to_string()),
        Type::List(list) => match map_value_type(ty) {
            Some(value_ty) => {
                let object = value.as_object().ok_or_else(|| mismatch(path, "an object", value))?;
                let mut entries = Vec::with_capacity(object.len());
                for (key, item) in object {
                    let item = json_to_val(item, &value_ty, &format!("{path}.{key}"))?;
                    entries.push(Val::Tuple(vec![Val::String(key.clone()), item]));
                }
                Val::List(entries)
            }
            None => {
                let items = value.as_array().ok_or_else(|| mismatch(path, "an array", value))?;
                let item_ty = list.ty();
                Val::List(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| json_to_val(item, &item_ty, &format!("{path}[{i}]")))
                        .collect::<Result<_, _>>()?,
                )
            }
        },
        Type::Record(record) => {
            let object = value.as_object().ok_or_else(|| mismatch(path, "an object", value))?;
            let fields: Vec<_> = record.fields().collect();
            if let Some(unknown) = object.keys().find(|k| !fields.iter().any(|f| json_name(f.name) == **k)) {
                let known: Vec<String> = fields.iter().map(|f| json_name(f.name)).collect();
                return Err(ArgumentError {
                    path: format!("{path}.{unknown}"),
                    expected: format!("one of the fields {}", known.join(", ")),
                    got: "an unknown field".into(),
                });
            }
            let mut values = Vec::with_capacity(fields.len());
            for field in fields {
                let name = json_name(field.name);
                let field_path = format!("{path}.{name}");
                let val = match (object.get(&name), &field.ty) {
                    (None | Some(Value::Null), Type::Option(_)) => Val::Option(None),
                    (Some(v), Type::Option(inner)) => Val::Option(Some(Box::new(json_to_val(v, &inner.ty(), &field_path)?))),
                    (Some(v), ty) => json_to_val(v, ty, &field_path)?,
                    (None, _) => {
                        return Err(ArgumentError {
                            path: field_path,
                            expected: "a value (the field is required)".into(),
                            got: "nothing".into(),
                        });
                    }
                };
                values.push((field.name.to_string(), val));
            }
            Val::Record(values)
        }
        Type::Tuple(tuple) => {
            let items = value.as_array().ok_or_else(|| mismatch(path, "an array", value))?;
            let types: Vec<Type> = tuple.types().collect();
            if items.len() != types.len() {
                return Err(mismatch(path, format!("an array of {} items", types.len()), value));
            }
            Val::Tuple(
                items
                    .iter()
                    .zip(&types)
                    .enumerate()
                    .map(|(i, (item, ty))| json_to_val(item, ty, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Variant(variant) => {
            let tags: Vec<String> = variant.cases().map(|c| json_name(c.name)).collect();
            let expected = format!("an object {{\"tag\": one of {}, \"value\": ...}}", tags.join(", "));
            let object = value.as_object().ok_or_else(|| mismatch(path, expected.clone(), value))?;
            let tag = object.get("tag").and_then(Value::as_str).ok_or_else(|| mismatch(path, expected.clone(), value))?;
            let case = variant.cases().find(|c| json_name(c.name) == tag).ok_or_else(|| ArgumentError {
                path: format!("{path}.tag"),
                expected: format!("one of {}", tags.join(", ")),
                got: format!("{tag:?}"),
            })?;
            if let Some(extra) = object.keys().find(|k| *k != "tag" && *k != "value") {
                return Err(ArgumentError { path: format!("{path}.{extra}"), expected: "only tag and value".into(), got: "an unknown field".into() });
            }
            let payload = match (case.ty, object.get("value")) {
                (Some(ty), Some(v)) => Some(Box::new(json_to_val(v, &ty, &format!("{path}.value"))?)),
                (Some(_), None) => {
                    return Err(ArgumentError { path: format!("{path}.value"), expected: "a value".into(), got: "nothing".into() });
                }
                (None, None) => None,
                (None, Some(v)) => return Err(mismatch(&format!("{path}.value"), "no value for this tag", v)),
            };
            Val::Variant(case.name.to_string(), payload)
        }
        Type::Enum(e) => {
            let names: Vec<String> = e.names().map(json_name).collect();
            let text = value.as_str().ok_or_else(|| mismatch(path, format!("one of {}", names.join(", ")), value))?;
            let name = e
                .names()
                .find(|n| json_name(n) == text)
                .ok_or_else(|| mismatch(path, format!("one of {}", names.join(", ")), value))?;
            Val::Enum(name.to_string())
        }
        Type::Flags(flags) => {
            let items = value.as_array().ok_or_else(|| mismatch(path, "an array of flag names", value))?;
            let mut set = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let text = item.as_str().unwrap_or_default();
                let name = flags
                    .names()
                    .find(|n| json_name(n) == text)
                    .ok_or_else(|| mismatch(&format!("{path}[{i}]"), "a flag name", item))?;
                set.push(name.to_string());
            }
            Val::Flags(set)
        }
        Type::Option(inner) => match value {
            Value::Null => Val::Option(None),
            v => Val::Option(Some(Box::new(json_to_val(v, &inner.ty(), path)?))),
        },
        Type::Result(result) => {
            let object = value.as_object().ok_or_else(|| mismatch(path, "an object with ok or err", value))?;
            let side = |t: Option<Type>, v: &Value, p: &str| -> Result<Option<Box<Val>>, ArgumentError> {
                t.map(|t| json_to_val(v, &t, p).map(Box::new)).transpose()
            };
            match (object.get("ok"), object.get("err")) {
                (Some(v), None) => Val::Result(Ok(side(result.ok(), v, &format!("{path}.ok"))?)),
                (None, Some(v)) => Val::Result(Err(side(result.err(), v, &format!("{path}.err"))?)),
                _ => return Err(mismatch(path, "an object with exactly one of ok or err", value)),
            }
        }
        _ => return Err(mismatch(path, "a value of a type with no JSON form", value)),
    })
}

/// Renders a component value of type `ty` as JSON: option fields of records
/// are omitted when empty, names become snake_case, string-keyed tuple lists
/// become objects. [`val_into_json`] does the same without copying strings.
pub fn val_to_json(val: &Val, ty: &Type) -> Value {
    val_into_json(val.clone(), ty)
}

/// [`val_to_json`] for a value the caller no longer needs: its strings, field
/// names included, move into the JSON instead of being copied, which is most
/// of the work for a result made of text.
pub fn val_into_json(val: Val, ty: &Type) -> Value {
    match (val, ty) {
        (Val::Bool(b), _) => Value::Bool(b),
        (Val::S8(n), _) => n.into(),
        (Val::U8(n), _) => n.into(),
        (Val::S16(n), _) => n.into(),
        (Val::U16(n), _) => n.into(),
        (Val::S32(n), _) => n.into(),
        (Val::U32(n), _) => n.into(),
        (Val::S64(n), _) => n.into(),
        (Val::U64(n), _) => n.into(),
        (Val::Float32(n), _) => serde_json::Number::from_f64(f64::from(n)).map_or(Value::Null, Value::Number),
        (Val::Float64(n), _) => serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
        (Val::Char(c), _) => Value::String(c.to_string()),
        (Val::String(s), _) => Value::String(s),
        (Val::List(items), Type::List(list)) => match map_value_type(ty) {
            Some(value_ty) => {
                let mut object = Map::with_capacity(items.len());
                for item in items {
                    if let Val::Tuple(pair) = item
                        && let Ok::<[Val; 2], _>([Val::String(key), value]) = pair.try_into()
                    {
                        object.insert(key, val_into_json(value, &value_ty));
                    }
                }
                Value::Object(object)
            }
            None => {
                let item_ty = list.ty();
                Value::Array(items.into_iter().map(|v| val_into_json(v, &item_ty)).collect())
            }
        },
        (Val::Record(fields), Type::Record(record)) => {
            let mut object = Map::with_capacity(fields.len());
            for ((name, value), field) in fields.into_iter().zip(record.fields()) {
                match (value, &field.ty) {
                    (Val::Option(None), _) => {}
                    (Val::Option(Some(inner)), Type::Option(opt)) => {
                        object.insert(into_json_name(name), val_into_json(*inner, &opt.ty()));
                    }
                    (value, ty) => {
                        object.insert(into_json_name(name), val_into_json(value, ty));
                    }
                }
            }
            Value::Object(object)
        }
        (Val::Tuple(items), Type::Tuple(tuple)) => {
            Value::Array(items.into_iter().zip(tuple.types()).map(|(v, t)| val_into_json(v, &t)).collect())
        }
        (Val::Variant(name, payload), Type::Variant(variant)) => {
            let mut object = Map::with_capacity(2);
            let case_ty = variant.cases().find(|c| c.name == name).and_then(|c| c.ty);
            object.insert("tag".into(), Value::String(into_json_name(name)));
            if let (Some(payload), Some(case_ty)) = (payload, case_ty) {
                object.insert("value".into(), val_into_json(*payload, &case_ty));
            }
            Value::Object(object)
        }
        (Val::Enum(name), _) => Value::String(into_json_name(name)),
        (Val::Flags(names), _) => Value::Array(names.into_iter().map(|n| Value::String(into_json_name(n))).collect()),
        (Val::Option(None), _) => Value::Null,
        (Val::Option(Some(inner)), Type::Option(opt)) => val_into_json(*inner, &opt.ty()),
        (Val::Result(result), Type::Result(rt)) => {
            let (key, payload, side_ty) = match result {
                Ok(v) => ("ok", v, rt.ok()),
                Err(v) => ("err", v, rt.err()),
            };
            let inner = match (payload, side_ty) {
                (Some(v), Some(t)) => val_into_json(*v, &t),
                _ => Value::Null,
            };
            let mut object = Map::with_capacity(1);
            object.insert(key.into(), inner);
            Value::Object(object)
        }
        // Values and types always agree for values the component produced.
        _ => Value::Null,
    }
}

/// [`json_name`] of a name already owned, which is kept as it is when it
/// has nothing to rewrite.
fn into_json_name(name: String) -> String {
    if name.contains('-') { json_name(&name) } else { name }
}

/// An upper estimate of the JSON size of `val` in bytes, without rendering
/// it: string bytes (escapes counted as six), names and punctuation.
pub fn json_size_estimate(val: &Val) -> usize {
    match val {
        Val::String(s) => 2 + s.len() * 6,
        Val::Char(_) => 8,
        Val::Bool(_) => 5,
        Val::List(items) | Val::Tuple(items) => 2 + items.iter().map(|v| json_size_estimate(v) + 1).sum::<usize>(),
        Val::Record(fields) => 2 + fields.iter().map(|(name, v)| name.len() + 4 + json_size_estimate(v)).sum::<usize>(),
        Val::Variant(name, payload) => name.len() + 24 + payload.as_deref().map_or(0, json_size_estimate),
        Val::Enum(name) => name.len() + 2,
        Val::Option(inner) => inner.as_deref().map_or(4, json_size_estimate),
        Val::Result(result) => 8 + match result {
            Ok(v) | Err(v) => v.as_deref().map_or(4, json_size_estimate),
        },
        Val::Flags(names) => 2 + names.iter().map(|n| n.len() + 3).sum::<usize>(),
        _ => 24,
    }
}
