//! Reflection between component types and JSON: schemas for the tool list,
//! and conversion of arguments and results.
//!
//! Conventions: records are objects (option fields not required, kebab-case
//! names in snake_case), enums are string enums, variants are tagged objects
//! `{"tag": ..., "value": ...}`, `list<tuple<string, T>>` is an object map,
//! and integers carry their bounds.

pub mod answer;
mod docs;
mod schema;
mod value;

pub use docs::{Docs, Metadata};
pub use schema::{UnsupportedType, nullable, schema_for};
pub use value::{ArgumentError, describe, json_size_estimate, json_to_val, val_into_json, val_to_json};

/// The JSON name of a WIT name: kebab-case becomes snake_case.
pub fn json_name(wit_name: &str) -> String {
    wit_name.replace('-', "_")
}

/// Whether `ty` is `list<tuple<string, T>>`, shown as a JSON object map.
fn map_value_type(ty: &wasmtime::component::Type) -> Option<wasmtime::component::Type> {
    use wasmtime::component::Type;
    let Type::List(list) = ty else { return None };
    let Type::Tuple(tuple) = list.ty() else { return None };
    let mut types = tuple.types();
    match (types.next(), types.next(), types.next()) {
        (Some(Type::String), Some(value), None) => Some(value),
        _ => None,
    }
}
