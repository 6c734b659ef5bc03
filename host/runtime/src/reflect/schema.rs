//! JSON Schema for component types.

use serde_json::{Map, Value, json};
use wasmtime::component::Type;

use super::{Docs, json_name, map_value_type};

/// A type that has no JSON form, so a tool using it cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{path}: the type {kind} cannot be shown as JSON")]
pub struct UnsupportedType {
    /// Where in the tool's signature the type is.
    pub path: String,
    /// What kind of type it is.
    pub kind: &'static str,
}

/// `schema` widened to accept `null`, as optional fields do: a client may
/// send `null` for "not given".
pub fn nullable(mut schema: Value) -> Value {
    if let Value::Object(object) = &mut schema
        && let Some(Value::String(ty)) = object.get("type").cloned() {
            object.insert("type".into(), json!([ty, "null"]));
            if let Some(Value::Array(values)) = object.get_mut("enum") {
                values.push(Value::Null);
            }
            return schema;
        }
    let description = schema.get("description").cloned();
    let mut wrapped = json!({ "anyOf": [schema, { "type": "null" }] });
    if let Some(description) = description {
        wrapped["description"] = description;
    }
    wrapped
}

fn integer(min: i128, max: i128) -> Value {
    json!({ "type": "integer", "minimum": min, "maximum": max })
}

/// The JSON Schema of `ty`, with descriptions looked up in `docs` under `path`.
///
/// # Errors
///
/// [`UnsupportedType`] for resources, futures, streams and other types with
/// no JSON form.
pub fn schema_for(ty: &Type, docs: &Docs, path: &str) -> Result<Value, UnsupportedType> {
    let unsupported = |kind| UnsupportedType { path: path.to_string(), kind };
    let mut schema = match ty {
        Type::Bool => json!({ "type": "boolean" }),
        Type::S8 => integer(i8::MIN.into(), i8::MAX.into()),
        Type::U8 => integer(0, u8::MAX.into()),
        Type::S16 => integer(i16::MIN.into(), i16::MAX.into()),
        Type::U16 => integer(0, u16::MAX.into()),
        Type::S32 => integer(i32::MIN.into(), i32::MAX.into()),
        Type::U32 => integer(0, u32::MAX.into()),
        Type::S64 => integer(i64::MIN.into(), i64::MAX.into()),
        Type::U64 => integer(0, u64::MAX.into()),
        Type::Float32 | Type::Float64 => json!({ "type": "number" }),
        Type::Char => json!({ "type": "string", "minLength": 1, "maxLength": 1 }),
        Type::String => json!({ "type": "string" }),
        Type::List(list) => match map_value_type(ty) {
            Some(value) => json!({ "type": "object", "additionalProperties": schema_for(&value, docs, path)? }),
            None => json!({ "type": "array", "items": schema_for(&list.ty(), docs, path)? }),
        },
        Type::Record(record) => {
            let mut properties = Map::new();
            let mut required = Vec::new();
            for field in record.fields() {
                let name = json_name(field.name);
                let field_path = format!("{path}.{}", field.name);
                let field_schema = match &field.ty {
                    Type::Option(inner) => nullable(schema_for(&inner.ty(), docs, &field_path)?),
                    other => {
                        required.push(Value::String(name.clone()));
                        schema_for(other, docs, &field_path)?
                    }
                };
                properties.insert(name, field_schema);
            }
            json!({
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            })
        }
        Type::Tuple(tuple) => {
            let items = tuple
                .types()
                .enumerate()
                .map(|(i, t)| schema_for(&t, docs, &format!("{path}.{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            let n = items.len();
            json!({ "type": "array", "prefixItems": items, "minItems": n, "maxItems": n })
        }
        Type::Variant(variant) => {
            let cases = variant
                .cases()
                .map(|case| {
                    let tag = json_name(case.name);
                    Ok(match case.ty {
                        Some(payload) => json!({
                            "type": "object",
                            "properties": {
                                "tag": { "const": tag },
                                "value": schema_for(&payload, docs, &format!("{path}.{}", case.name))?,
                            },
                            "required": ["tag", "value"],
                            "additionalProperties": false,
                        }),
                        None => json!({
                            "type": "object",
                            "properties": { "tag": { "const": tag } },
                            "required": ["tag"],
                            "additionalProperties": false,
                        }),
                    })
                })
                .collect::<Result<Vec<_>, UnsupportedType>>()?;
            json!({ "oneOf": cases })
        }
        Type::Enum(e) => json!({ "type": "string", "enum": e.names().map(json_name).collect::<Vec<_>>() }),
        Type::Flags(flags) => json!({
            "type": "array",
            "items": { "type": "string", "enum": flags.names().map(json_name).collect::<Vec<_>>() },
            "uniqueItems": true,
        }),
        Type::Option(inner) => json!({ "anyOf": [schema_for(&inner.ty(), docs, path)?, { "type": "null" }] }),
        Type::Result(result) => {
            let side = |t: Option<Type>, name: &str| -> Result<Value, UnsupportedType> {
                Ok(match t {
                    Some(t) => schema_for(&t, docs, &format!("{path}.{name}"))?,
                    None => json!({ "type": "null" }),
                })
            };
            json!({
                "oneOf": [
                    { "type": "object", "properties": { "ok": side(result.ok(), "ok")? }, "required": ["ok"], "additionalProperties": false },
                    { "type": "object", "properties": { "err": side(result.err(), "err")? }, "required": ["err"], "additionalProperties": false },
                ]
            })
        }
        Type::Own(_) | Type::Borrow(_) => return Err(unsupported("resource")),
        Type::Future(_) => return Err(unsupported("future")),
        Type::Stream(_) => return Err(unsupported("stream")),
        Type::ErrorContext => return Err(unsupported("error-context")),
        _ => return Err(unsupported("unknown")),
    };
    if let (Some(text), Value::Object(object)) = (docs.get(path), &mut schema) {
        object.insert("description".into(), Value::String(text.to_string()));
    }
    Ok(schema)
}
