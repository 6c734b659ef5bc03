//! Reading `///` docs from WIT and writing them into a component.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use wit_parser::{Resolve, Type, TypeDefKind, WorldItem};

/// The custom section the host reads docs from.
pub const SECTION: &str = "toolshed:docs";

/// The docs of every function the world exports, keyed by the host's paths:
/// `func`, `func/param.field...`, `func/ok.field...`, `func/err.field...`.
///
/// # Errors
///
/// When the WIT cannot be parsed or the world is not found.
pub fn docs_for_world(wit_dirs: &[PathBuf], world: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut resolve = Resolve::default();
    let mut last = None;
    for dir in wit_dirs {
        let (package, _) = resolve.push_dir(dir).with_context(|| format!("parsing WIT in {}", dir.display()))?;
        last = Some(package);
    }
    let world_id = resolve.select_world(&last.into_iter().collect::<Vec<_>>(), Some(world))?;
    let mut docs = BTreeMap::new();
    for item in resolve.worlds[world_id].exports.values() {
        let WorldItem::Interface { id, .. } = item else { continue };
        for (name, func) in &resolve.interfaces[*id].functions {
            if let Some(text) = &func.docs.contents {
                docs.insert(name.clone(), flow(text));
            }
            for param in &func.params {
                walk(&resolve, &param.ty, &format!("{name}/{}", param.name), &mut docs);
            }
            if let Some(result) = &func.result {
                match result {
                    Type::Id(id) if matches!(resolve.types[*id].kind, TypeDefKind::Result(_)) => {
                        let TypeDefKind::Result(r) = &resolve.types[*id].kind else { unreachable!() };
                        if let Some(ok) = &r.ok {
                            walk(&resolve, ok, &format!("{name}/ok"), &mut docs);
                        }
                        if let Some(err) = &r.err {
                            walk(&resolve, err, &format!("{name}/err"), &mut docs);
                        }
                    }
                    other => walk(&resolve, other, &format!("{name}/ok"), &mut docs),
                }
            }
        }
    }
    Ok(docs)
}

/// Doc text as flowing paragraphs: WIT comments are wrapped for the
/// source, but clients show descriptions as running text.
fn flow(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Records the docs of `ty` at `path`, and of its fields below it.
fn walk(resolve: &Resolve, ty: &Type, path: &str, docs: &mut BTreeMap<String, String>) {
    let Type::Id(id) = ty else { return };
    let def = &resolve.types[*id];
    if let Some(text) = &def.docs.contents {
        docs.entry(path.to_string()).or_insert_with(|| flow(text));
    }
    match &def.kind {
        TypeDefKind::Record(record) => {
            for field in &record.fields {
                let field_path = format!("{path}.{}", field.name);
                if let Some(text) = &field.docs.contents {
                    docs.insert(field_path.clone(), flow(text));
                }
                walk(resolve, &field.ty, &field_path, docs);
            }
        }
        TypeDefKind::Variant(variant) => {
            for case in &variant.cases {
                if let Some(ty) = &case.ty {
                    walk(resolve, ty, &format!("{path}.{}", case.name), docs);
                }
            }
        }
        TypeDefKind::Option(inner) | TypeDefKind::List(inner) | TypeDefKind::Type(inner) => {
            walk(resolve, inner, path, docs)
        }
        TypeDefKind::Tuple(tuple) => {
            // A string-keyed tuple list is a JSON map: its values share the path.
            if let [Type::String, value] = tuple.types.as_slice() {
                walk(resolve, value, path, docs);
            }
        }
        TypeDefKind::Result(result) => {
            if let Some(ok) = &result.ok {
                walk(resolve, ok, &format!("{path}.ok"), docs);
            }
            if let Some(err) = &result.err {
                walk(resolve, err, &format!("{path}.err"), docs);
            }
        }
        _ => {}
    }
}

/// `component` with a `toolshed:docs` custom section holding `docs` as JSON.
pub fn embed_docs(mut component: Vec<u8>, docs: &BTreeMap<String, String>) -> Vec<u8> {
    use wasm_encoder::ComponentSection;
    let data = serde_json::to_vec(docs).expect("a map of strings always serializes");
    let section = wasm_encoder::CustomSection { name: SECTION.into(), data: data.into() };
    section.append_to_component(&mut component);
    component
}
