//! Every table of names matches its WIT enum, case for case, and the API
//! version is the version of the packages guests build against.

use wit_parser::{Resolve, TypeDefKind};

fn resolve() -> Resolve {
    let mut resolve = Resolve::default();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/tools");
    resolve.push_dir(&root).expect("the WIT parses");
    resolve
}

fn enum_cases(resolve: &Resolve, package: &str, name: &str) -> Vec<String> {
    let (_, ty) = resolve
        .types
        .iter()
        .find(|(_, ty)| {
            ty.name.as_deref() == Some(name)
                && match ty.owner {
                    wit_parser::TypeOwner::Interface(i) => {
                        resolve.interfaces[i].package.is_some_and(|p| resolve.packages[p].name.to_string().starts_with(package))
                    }
                    _ => false,
                }
        })
        .unwrap_or_else(|| panic!("{package} {name} not found"));
    let TypeDefKind::Enum(cases) = &ty.kind else { panic!("{name} is not an enum") };
    cases.cases.iter().map(|c| c.name.replace('-', "_")).collect()
}

#[test]
fn the_name_tables_match_the_wit_enums() {
    let resolve = resolve();
    assert_eq!(enum_cases(&resolve, "toolshed:infra", "job-status"), toolshed_contract::JOB_STATUS);
    assert_eq!(enum_cases(&resolve, "toolshed:infra", "lifecycle-state"), toolshed_contract::LIFECYCLE_STATE);
    assert_eq!(enum_cases(&resolve, "toolshed:infra", "transition"), toolshed_contract::TRANSITION);
    assert_eq!(enum_cases(&resolve, "toolshed:tools", "error-category"), toolshed_contract::ERROR_CATEGORY);
    assert_eq!(enum_cases(&resolve, "toolshed:platform", "task-status"), toolshed_contract::TASK_STATUS);
}

#[test]
fn the_api_version_is_the_version_guests_build_against() {
    let resolve = resolve();
    let tools = resolve.packages.iter().find(|(_, p)| p.name.namespace == "toolshed" && p.name.name == "tools").unwrap().1;
    assert_eq!(tools.name.version.as_ref().unwrap().to_string(), toolshed_contract::API_VERSION);
    assert_eq!(toolshed_contract::SUPPORTED_API_VERSIONS.last(), Some(&toolshed_contract::API_VERSION));
}
