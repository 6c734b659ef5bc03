//! One exported function of a plugin, reflected as a tool.

use serde_json::{Value, json};
use wasmtime::component::{ComponentExportIndex, Type, Val};

use crate::reflect::{answer, ArgumentError, describe, Docs, UnsupportedType, json_name, json_to_val, nullable, schema_for};

/// How a tool's JSON arguments map onto the function's parameters.
#[derive(Clone)]
pub enum ArgumentShape {
    /// One record parameter: its fields are the arguments.
    Record {
        /// The record type.
        ty: Type,
    },
    /// Any other parameters: each parameter is an argument.
    Params(Vec<(String, Type)>),
}

/// A tool: a function a plugin exports, with its schemas.
#[derive(Clone)]
pub struct Tool {
    /// The tool's name as clients see it (snake_case).
    pub name: String,
    /// The plugin that exports it.
    pub plugin: String,
    /// What the tool does, from the WIT docs.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub input_schema: Value,
    /// JSON Schema of what the tool answers: its result, or the contract's
    /// error object (see [`answer`]).
    pub output_schema: Value,
    pub(crate) export: ComponentExportIndex,
    pub(crate) arguments: ArgumentShape,
    pub(crate) ok: Option<Type>,
    pub(crate) err: Option<Type>,
}

impl Tool {
    /// Reflects the function `func_name` of type `func` into a tool.
    pub(crate) fn reflect(
        plugin: &str,
        func_name: &str,
        func: &wasmtime::component::types::ComponentFunc,
        export: ComponentExportIndex,
        docs: &Docs,
    ) -> Result<Tool, UnsupportedType> {
        let params: Vec<(String, Type)> = func.params().map(|(n, t)| (n.to_string(), t)).collect();
        let (arguments, input_schema) = match params.as_slice() {
            [(param, ty @ Type::Record(_))] => {
                let schema = schema_for(ty, docs, &format!("{func_name}/{param}"))?;
                (ArgumentShape::Record { ty: ty.clone() }, schema)
            }
            _ => {
                let mut properties = serde_json::Map::new();
                let mut required = Vec::new();
                for (name, ty) in &params {
                    let path = format!("{func_name}/{name}");
                    let schema = match ty {
                        Type::Option(inner) => nullable(schema_for(&inner.ty(), docs, &path)?),
                        other => {
                            required.push(json_name(name));
                            schema_for(other, docs, &path)?
                        }
                    };
                    properties.insert(json_name(name), schema);
                }
                let schema = json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false });
                (ArgumentShape::Params(params.clone()), schema)
            }
        };
        let (ok, err) = match func.results().next() {
            Some(Type::Result(result)) => (result.ok(), result.err()),
            Some(other) => (Some(other), None),
            None => (None, None),
        };
        let result_schema = match &ok {
            Some(ty) => schema_for(ty, docs, &format!("{func_name}/ok"))?,
            None => json!({ "type": "object", "properties": {}, "additionalProperties": false }),
        };
        if let Some(err) = &err {
            schema_for(err, docs, &format!("{func_name}/err"))?;
        }
        Ok(Tool {
            name: json_name(func_name),
            plugin: plugin.to_string(),
            description: docs.get(func_name).unwrap_or("").trim().to_string(),
            input_schema,
            output_schema: answer::output_schema(result_schema),
            export,
            arguments,
            ok,
            err,
        })
    }

    /// Converts a JSON arguments object into the function's parameters.
    ///
    /// # Errors
    ///
    /// [`ArgumentError`] naming the first path that does not fit.
    pub fn parameters(&self, arguments: &Value) -> Result<Vec<Val>, ArgumentError> {
        match &self.arguments {
            ArgumentShape::Record { ty, .. } => Ok(vec![json_to_val(arguments, ty, "$")?]),
            ArgumentShape::Params(params) => {
                let Value::Object(object) = arguments else {
                    return Err(ArgumentError { path: "$".into(), expected: "an object".into(), got: describe(arguments) });
                };
                if let Some(unknown) = object.keys().find(|k| !params.iter().any(|(n, _)| json_name(n) == **k)) {
                    return Err(ArgumentError {
                        path: format!("$.{unknown}"),
                        expected: if params.is_empty() { "no arguments".into() } else { "a known argument".into() },
                        got: "an unknown field".into(),
                    });
                }
                params
                    .iter()
                    .map(|(name, ty)| {
                        let path = format!("$.{}", json_name(name));
                        match (object.get(&json_name(name)), ty) {
                            (None | Some(Value::Null), Type::Option(_)) => Ok(Val::Option(None)),
                            (Some(v), ty) => json_to_val(v, ty, &path),
                            (None, _) => Err(ArgumentError { path, expected: "a value (the argument is required)".into(), got: "nothing".into() }),
                        }
                    })
                    .collect()
            }
        }
    }
}
