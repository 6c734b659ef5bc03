//! The allow-list's checks, apart from any request: whether a method and
//! URL match an entry of a plugin's policy, and whether the addresses a
//! name resolved to lie in ranges the entry names.

use std::net::SocketAddr;

use toolshed_runtime::policy::NetworkPolicy;
use toolshed_runtime::policy::network::{AddressRange, Destination, Scheme, not_a_host_name};

/// A request the allow-list lets through: where it goes, and the entry
/// that allowed it.
#[derive(Debug, Clone)]
pub struct Allowed {
    /// The scheme.
    pub scheme: Scheme,
    /// The host name, lower case.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The entry that allowed it.
    pub destination: Destination,
}

/// Checks a request against `policy`'s allow-list: its method, scheme,
/// host, port and path. The answer's error says why it was refused.
///
/// # Errors
///
/// The reason, for the log.
pub fn check(policy: &NetworkPolicy, method: &str, uri: &http::Uri) -> Result<Allowed, String> {
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        other => return Err(format!("scheme {} is neither http nor https", other.unwrap_or("(none)"))),
    };
    let authority = uri.authority().ok_or("the request names no host")?;
    if authority.as_str().contains('@') {
        return Err("the authority carries user info".into());
    }
    let host = authority.host().to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host).to_string();
    if let Some(why) = not_a_host_name(&host) {
        return Err(format!("host {host:?}: {why}"));
    }
    let port = authority.port_u16().unwrap_or(scheme.default_port());
    let path = uri.path();
    if let Some(why) = unsafe_path(path) {
        return Err(format!("path {path:?}: {why}"));
    }
    match policy.allow.iter().find(|d| d.allows(method, scheme, &host, port, path)) {
        Some(destination) => Ok(Allowed { scheme, host, port, destination: destination.clone() }),
        None => Err(format!("{method} {}://{host}:{port}{path} matches no allow entry", scheme.name())),
    }
}

/// Why a path could reach outside the prefix it starts with, if it could:
/// `.` and `..` segments (also percent-encoded) and encoded slashes.
fn unsafe_path(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains('\\') {
        return Some("it holds an encoded slash or a backslash");
    }
    let decoded = lower.replace("%2e", ".");
    if decoded.split('/').any(|segment| segment == "." || segment == "..") {
        return Some("it holds a . or .. segment");
    }
    None
}

/// Checks every address `addrs` a name resolved to against the ranges the
/// entry names: one address in a range it does not name refuses them all.
///
/// # Errors
///
/// The reason, naming the address and its range.
pub fn check_addresses(destination: &Destination, host: &str, addrs: &[SocketAddr]) -> Result<(), String> {
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    for addr in addrs {
        if let Some(range) = AddressRange::of(addr.ip()) {
            if !destination.ranges.contains(&range) {
                return Err(format!(
                    "{host} resolves to {}, in the {} range, which its allow entry ({}) does not name",
                    addr.ip(),
                    range.name(),
                    destination.url()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use toolshed_runtime::Policy;

    fn policy(entries: &str) -> Arc<NetworkPolicy> {
        let text = format!("[plugins.p]\ngrants = [\"wasi:http/*\"]\n{entries}");
        Policy::from_toml(&text).unwrap().plugin("p").network.unwrap()
    }

    fn checked(policy: &NetworkPolicy, method: &str, uri: &str) -> Result<Allowed, String> {
        check(policy, method, &uri.parse().unwrap())
    }

    #[test]
    fn only_requests_matching_an_entry_in_every_part_are_allowed() {
        let p = policy("[[plugins.p.network.allow]]\nurl = \"https://api.example.com/v1/\"\nmethods = [\"GET\"]\n");
        assert!(checked(&p, "GET", "https://api.example.com/v1/things?x=1").is_ok());
        assert!(checked(&p, "GET", "https://API.Example.com./v1/things").is_ok(), "case and a trailing dot do not matter");
        for (method, uri) in [
            ("POST", "https://api.example.com/v1/things"),
            ("GET", "http://api.example.com/v1/things"),
            ("GET", "https://api.example.com:8443/v1/things"),
            ("GET", "https://api.example.com/v2/things"),
            ("GET", "https://other.example.com/v1/things"),
            ("GET", "https://api.example.com.evil.com/v1/things"),
            ("GET", "https://api.example.com/v1/../admin"),
            ("GET", "https://api.example.com/v1/%2e%2e/admin"),
            ("GET", "https://api.example.com/v1/..%2fadmin"),
        ] {
            let err = checked(&p, method, uri).unwrap_err();
            assert!(!err.is_empty(), "{method} {uri}");
        }
    }

    #[test]
    fn addresses_in_any_spelling_never_pass_even_where_the_range_is_named() {
        let p = policy("[[plugins.p.network.allow]]\nurl = \"http://*.example.com/\"\nmethods = [\"GET\"]\naddresses = [\"loopback\", \"private\"]\n");
        for uri in ["http://127.0.0.1/", "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.1/", "http://[::ffff:127.0.0.1]/", "http://[::1]/", "http://127.1/"] {
            let err = checked(&p, "GET", uri).unwrap_err();
            assert!(err.contains("address") || err.contains("DNS"), "{uri}: {err}");
        }
    }

    #[test]
    fn one_address_in_an_unnamed_range_refuses_the_name() {
        let open = policy("[[plugins.p.network.allow]]\nurl = \"http://svc.example.com/\"\nmethods = [\"GET\"]\n");
        let named = policy("[[plugins.p.network.allow]]\nurl = \"http://svc.example.com/\"\nmethods = [\"GET\"]\naddresses = [\"loopback\"]\n");
        let public: SocketAddr = "93.184.216.34:80".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let metadata: SocketAddr = "169.254.169.254:80".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:80".parse().unwrap();
        assert!(check_addresses(&open.allow[0], "svc.example.com", &[public]).is_ok());
        let err = check_addresses(&open.allow[0], "svc.example.com", &[public, loopback]).unwrap_err();
        assert!(err.contains("127.0.0.1") && err.contains("loopback"), "{err}");
        assert!(check_addresses(&open.allow[0], "svc.example.com", &[metadata]).unwrap_err().contains("metadata"));
        assert!(check_addresses(&open.allow[0], "svc.example.com", &[mapped]).unwrap_err().contains("private"));
        assert!(check_addresses(&named.allow[0], "svc.example.com", &[public, loopback]).is_ok());
        assert!(check_addresses(&named.allow[0], "svc.example.com", &[metadata]).is_err(), "naming loopback names nothing else");
        assert!(check_addresses(&open.allow[0], "svc.example.com", &[]).is_err());
    }
}
