//! Reading `///` docs from WIT and writing them into a component.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use toolshed_contract::DOCS_SECTION as SECTION;
use wit_parser::{Resolve, Type, TypeDefKind, WorldItem};

/// What the host needs from a plugin's world: its exports' docs and the
/// version of the package that defines it.
#[derive(Debug, Clone, Default)]
pub struct WorldDocs {
    /// Docs keyed by the host's paths: `func`, `func/param.field...`,
    /// `func/ok.field...`, `func/err.field...`.
    pub docs: BTreeMap<String, String>,
    /// The toolshed API version the world is written against, such as
    /// `0.2.0`: its package's version when it is the toolshed tools package, else
    /// the newest version of the toolshed runtime and tools packages it uses.
    pub version: Option<String>,
}

/// The docs of every function `world` exports, read from the WIT package in
/// `wit_dir` (its dependencies in `wit_dir/deps`). Without a name, the
/// package's only world.
///
/// # Errors
///
/// When the WIT cannot be parsed or the world is not found.
pub fn docs_for_world(wit_dir: &Path, world: Option<&str>) -> anyhow::Result<WorldDocs> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(wit_dir).with_context(|| format!("parsing WIT in {}", wit_dir.display()))?;
    let world_id = resolve.select_world(&[package], world).with_context(|| format!("choosing the world in {}", wit_dir.display()))?;
    let version = api_version(&resolve, world_id);
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
    Ok(WorldDocs { docs, version })
}

/// The toolshed API version `world` is written against. A plugin's own
/// package (`plugins:hello@0.1.0`) versions the plugin, not the API: its
/// API is that of the toolshed runtime and tools packages it uses.
fn api_version(resolve: &Resolve, world: wit_parser::WorldId) -> Option<String> {
    let name_of = |package: wit_parser::PackageId| &resolve.packages[package].name;
    // A world of the tools package (the API itself) is its version; any
    // other world, a fixture's in the toolshed namespace included, is the
    // newest API it imports or exports.
    if let Some(own) = resolve.worlds[world].package.map(name_of).filter(|name| name.namespace == "toolshed" && name.name == "tools") {
        return own.version.as_ref().map(ToString::to_string);
    }
    let items = resolve.worlds[world].imports.values().chain(resolve.worlds[world].exports.values());
    items
        .filter_map(|item| match item {
            WorldItem::Interface { id, .. } => resolve.interfaces[*id].package,
            _ => None,
        })
        .map(name_of)
        .filter(|name| name.namespace == "toolshed" && (name.name == "runtime" || name.name == "tools"))
        .filter_map(|name| name.version.clone())
        .max()
        .map(|version| version.to_string())
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
pub fn embed_docs(component: Vec<u8>, docs: &BTreeMap<String, String>) -> Vec<u8> {
    let data = serde_json::to_vec(docs).expect("a map of strings always serializes");
    embed_section(component, SECTION, &data)
}

/// `component` with a custom section `name` holding `data`.
pub fn embed_section(mut component: Vec<u8>, name: &str, data: &[u8]) -> Vec<u8> {
    use wasm_encoder::ComponentSection;
    let section = wasm_encoder::CustomSection { name: name.into(), data: data.into() };
    section.append_to_component(&mut component);
    component
}
