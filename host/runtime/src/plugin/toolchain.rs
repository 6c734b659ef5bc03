//! What a plugin offers and what it needs, whatever toolchain built it.
//!
//! Toolchains for other languages add exports of their own beside the
//! plugin's tools (componentize-py exports an instance `exports` holding
//! `init`), and link WASI interfaces by default that the host may not
//! provide (componentize-js imports `wasi:http`). Only the plugin's own
//! interfaces are tools, and a refused import names the flag that leaves it
//! out when the toolchain is known.

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

/// The WASI packages every plugin is linked with (`wasmtime_wasi::p2`, as
/// [`Runtime`](crate::Runtime) links it): each import from them is answered
/// inside the sandbox. An import from any other `wasi:` package has nothing
/// behind it.
pub const WASI_PACKAGES_LINKED: [&str; 6] = ["wasi:cli", "wasi:clocks", "wasi:filesystem", "wasi:io", "wasi:random", "wasi:sockets"];

/// Whether an exported instance named `export` is a tool interface: a
/// package-qualified interface (`namespace:package/interface`) that is not
/// WASI's. A bare name, such as componentize-py's `exports`, is a
/// toolchain's helper and never a tool.
pub fn is_tool_interface(export: &str) -> bool {
    let Some((package, interface)) = export.split_once('/') else { return false };
    // Every `wasi:` export is the toolchain's (a command's `run`, an HTTP
    // handler), whether or not the host links that package.
    package.contains(':') && !interface.is_empty() && !package.starts_with("wasi:")
}

/// Whether the host links `import`, a `wasi:` interface.
pub fn wasi_linked(import: &str) -> bool {
    let package = import.split('/').next().unwrap_or(import);
    WASI_PACKAGES_LINKED.contains(&package)
}

/// A toolchain that builds plugins in another language, as far as the
/// host can tell it from the component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    /// componentize-py: it exports a helper instance `exports` with `init`.
    ComponentizePy,
    /// componentize-js (also run as `jco componentize`): its name is in the
    /// component's `producers` section.
    ComponentizeJs,
    /// Anything else, Rust's included.
    Other,
}

impl Toolchain {
    /// The toolchain that built `component`, from the names in its
    /// `producers` sections (`processed_by`) and its exports.
    pub fn detect(component: &Component, engine: &Engine, processed_by: &[String]) -> Toolchain {
        if processed_by.iter().any(|name| name.eq_ignore_ascii_case("ComponentizeJS")) {
            return Toolchain::ComponentizeJs;
        }
        let py_helper = component.component_type().exports(engine).any(|(name, item)| {
            name == "exports"
                && matches!(item.ty, ComponentItem::ComponentInstance(instance) if instance.exports(engine).any(|(f, _)| f == "init"))
        });
        if py_helper { Toolchain::ComponentizePy } else { Toolchain::Other }
    }

    /// How to build the plugin without `import`, which the host refuses,
    /// when this toolchain has a switch for it.
    pub fn how_to_leave_out(self, import: &str) -> Option<String> {
        let package = import.split('/').next().unwrap_or(import);
        match self {
            Toolchain::ComponentizeJs => {
                // componentize-js's `--disable` features and the WASI packages
                // they import: both `http` and `fetch-event` import wasi:http.
                let features: &[&str] = match package {
                    "wasi:http" => &["http", "fetch-event"],
                    "wasi:random" => &["random"],
                    "wasi:clocks" => &["clocks"],
                    "wasi:cli" => &["stdio"],
                    _ => return None,
                };
                let long: Vec<String> = features.iter().map(|f| format!("--disable {f}")).collect();
                let short: Vec<String> = features.iter().map(|f| format!("-d {f}")).collect();
                Some(format!("componentize-js imports it by default: build with `{}` (`jco componentize {}`)", long.join(" "), short.join(" ")))
            }
            Toolchain::ComponentizePy if package.starts_with("wasi:") => {
                Some("componentize-py imports WASI by default: build with `componentize-py componentize --stub-wasi`".to_string())
            }
            Toolchain::ComponentizePy | Toolchain::Other => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_package_qualified_interfaces_outside_wasi_are_tool_interfaces() {
        assert!(is_tool_interface("plugins:hello/hello-tools@0.1.0"));
        assert!(is_tool_interface("toolshed:tools/workspace@0.2.0"));
        for helper in ["exports", "hello-tools", "wasi:cli/run@0.2.0", "wasi:http/incoming-handler@0.2.0", "a:b/", "/x"] {
            assert!(!is_tool_interface(helper), "{helper} was taken for tools");
        }
    }

    #[test]
    fn wasi_http_is_not_linked_and_the_p2_packages_are() {
        assert!(wasi_linked("wasi:io/streams@0.2.12"));
        assert!(wasi_linked("wasi:sockets/tcp@0.2.0"));
        assert!(!wasi_linked("wasi:http/types@0.2.10"));
        assert!(!wasi_linked("wasi:keyvalue/store@0.2.0-draft"));
    }

    #[test]
    fn each_known_toolchain_names_its_switch() {
        let js = Toolchain::ComponentizeJs.how_to_leave_out("wasi:http/outgoing-handler@0.2.10").unwrap();
        assert!(js.contains("--disable http --disable fetch-event") && js.contains("-d http -d fetch-event"), "{js}");
        let py = Toolchain::ComponentizePy.how_to_leave_out("wasi:http/types@0.2.0").unwrap();
        assert!(py.contains("--stub-wasi"), "{py}");
        assert_eq!(Toolchain::Other.how_to_leave_out("wasi:http/types@0.2.0"), None);
        assert_eq!(Toolchain::ComponentizePy.how_to_leave_out("toolshed:infra/db@0.1.0"), None);
    }
}
