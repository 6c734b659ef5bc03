//! Each capability's list of interfaces is the set of interfaces with
//! functions in its WIT packages: an interface added to the WIT and not to
//! the list (or the other way round) could never be granted, or would be
//! granted and not linked.

use std::collections::BTreeSet;

use wit_parser::Resolve;

/// `namespace:package/interface` of every interface with functions in the
/// packages named `packages` (namespace:name, any version).
fn interfaces_with_functions(packages: &[&str]) -> BTreeSet<String> {
    let mut resolve = Resolve::default();
    resolve.push_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/tools")).expect("the WIT parses");
    let mut found = BTreeSet::new();
    for (_, package) in resolve.packages.iter() {
        let name = format!("{}:{}", package.name.namespace, package.name.name);
        if !packages.contains(&name.as_str()) {
            continue;
        }
        for (interface, id) in &package.interfaces {
            if !resolve.interfaces[*id].functions.is_empty() {
                found.insert(format!("{name}/{interface}"));
            }
        }
    }
    found
}

fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn each_capabilitys_interface_list_is_its_wit_packages_interfaces() {
    assert_eq!(set(&toolshed_runtime::interfaces::INTERFACES), interfaces_with_functions(&["toolshed:runtime"]), "toolshed-runtime");
    assert_eq!(set(&toolshed_infra::INTERFACES), interfaces_with_functions(&["toolshed:infra", "toolshed:builds"]), "toolshed-infra");
    assert_eq!(set(&toolshed_platform::INTERFACES), interfaces_with_functions(&["toolshed:platform"]), "toolshed-platform");
}
