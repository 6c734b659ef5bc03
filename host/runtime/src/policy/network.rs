//! Where a plugin may send HTTP requests: the allow-list of its `network`
//! section, parsed into types, and the bounds its requests run under.
//!
//! ```toml
//! [plugins.registry-http]
//! grants = ["toolshed:runtime/*", "wasi:http/*"]
//!
//! [plugins.registry-http.network]
//! max_requests = 16                              # per call
//! [[plugins.registry-http.network.allow]]
//! url = "https://api.example.com/v1/"            # scheme, host, port and path prefix
//! methods = ["GET", "POST"]
//! header = { name = "Authorization", value = "Bearer {secret}", secret = "PLATFORM_TOKEN" }
//! ```

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

/// The network a plugin may reach, and how much of it.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkPolicy {
    /// The destinations a request may go to; anything else is refused.
    pub allow: Vec<Destination>,
    /// The bounds of its requests.
    pub limits: NetworkLimits,
}

/// How much network a plugin's calls may use.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkLimits {
    /// Requests one call may make.
    pub max_requests: u32,
    /// Connections all of the plugin's calls may hold open at once.
    pub max_connections: u32,
    /// Size of a request body.
    pub max_request_body_bytes: u64,
    /// Size of a response body: a longer one is cut here.
    pub max_response_body_bytes: u64,
    /// Time a request may take to connect, to answer, and between two
    /// pieces of its response; never past the call's deadline.
    pub timeout: Duration,
}

impl Default for NetworkLimits {
    /// 16 requests per call, 4 connections per plugin, 1 MiB request
    /// bodies, 4 MiB response bodies, 30 s per request.
    fn default() -> Self {
        Self {
            max_requests: 16,
            max_connections: 4,
            max_request_body_bytes: 1 << 20,
            max_response_body_bytes: 4 << 20,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A scheme a destination may be reached over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http`
    Http,
    /// `https`
    Https,
}

impl Scheme {
    /// The scheme's name.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// Its port when a URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A host name, exactly or any subdomain of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this name, such as `api.example.com`.
    Exact(String),
    /// Any name ending in `.` and this, such as `*.example.com` (which
    /// matches `a.example.com` and `a.b.example.com`, not `example.com`).
    Subdomain(String),
}

impl HostPattern {
    /// Whether `host` (lower case, without a trailing dot) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host == name,
            HostPattern::Subdomain(suffix) => {
                host.len() > suffix.len() + 1 && host.ends_with(suffix.as_str()) && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Subdomain(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

/// A range of addresses a name may not resolve into unless a destination
/// names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AddressRange {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10 (shared), fc00::/7.
    Private,
    /// 169.254/16 and fe80::/10, apart from the metadata addresses.
    LinkLocal,
    /// The cloud metadata service: 169.254.169.254, fd00:ec2::254.
    Metadata,
    /// Unspecified, broadcast, multicast, documentation and reserved
    /// addresses: never a server's.
    Reserved,
}

impl AddressRange {
    /// Its name in a policy.
    pub fn name(self) -> &'static str {
        match self {
            AddressRange::Loopback => "loopback",
            AddressRange::Private => "private",
            AddressRange::LinkLocal => "link-local",
            AddressRange::Metadata => "metadata",
            AddressRange::Reserved => "reserved",
        }
    }

    fn parse(name: &str) -> Option<AddressRange> {
        [AddressRange::Loopback, AddressRange::Private, AddressRange::LinkLocal, AddressRange::Metadata].into_iter().find(|r| r.name() == name)
    }

    /// The range `ip` is in, or `None` for a public address. An IPv4
    /// address inside an IPv6 one (mapped, compatible, NAT64, 6to4) is
    /// judged as the IPv4 address it carries.
    pub fn of(ip: IpAddr) -> Option<AddressRange> {
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                if v4.is_loopback() {
                    Some(AddressRange::Loopback)
                } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                    Some(AddressRange::Private)
                } else if v4.octets() == [169, 254, 169, 254] {
                    Some(AddressRange::Metadata)
                } else if v4.is_link_local() {
                    Some(AddressRange::LinkLocal)
                } else if a == 0
                    || a >= 224
                    || v4.is_documentation()
                    || (a == 192 && b == 0 && c == 0)
                    || (a == 198 && (b == 18 || b == 19))
                {
                    Some(AddressRange::Reserved)
                } else {
                    None
                }
            }
            IpAddr::V6(v6) => {
                let segments = v6.segments();
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return Self::of(IpAddr::V4(v4));
                }
                if v6.is_loopback() {
                    return Some(AddressRange::Loopback);
                }
                if v6.is_unspecified() || v6.is_multicast() {
                    return Some(AddressRange::Reserved);
                }
                let embedded = |at: usize| std::net::Ipv4Addr::new((segments[at] >> 8) as u8, segments[at] as u8, (segments[at + 1] >> 8) as u8, segments[at + 1] as u8);
                // ::a.b.c.d (compatible), 64:ff9b::a.b.c.d (NAT64), 2002:a.b.c.d:: (6to4).
                if segments[..6].iter().all(|s| *s == 0) || (segments[0] == 0x64 && segments[1] == 0xff9b && segments[2..6].iter().all(|s| *s == 0)) {
                    return Some(Self::of(IpAddr::V4(embedded(6))).unwrap_or(AddressRange::Reserved));
                }
                if segments[0] == 0x2002 {
                    return Self::of(IpAddr::V4(embedded(1)));
                }
                if segments == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254] {
                    return Some(AddressRange::Metadata);
                }
                if segments[0] & 0xfe00 == 0xfc00 {
                    return Some(AddressRange::Private);
                }
                if segments[0] & 0xffc0 == 0xfe80 {
                    return Some(AddressRange::LinkLocal);
                }
                if segments[0] == 0x2001 && segments[1] == 0x0db8 {
                    return Some(AddressRange::Reserved);
                }
                None
            }
        }
    }
}

/// A header the host adds to requests to a destination, its value made
/// from a secret the plugin never sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHeader {
    /// The header's name, such as `authorization`.
    pub name: String,
    /// What comes before the secret in the value, such as `Bearer `.
    pub prefix: String,
    /// What comes after it.
    pub suffix: String,
    /// The secret's name.
    pub secret: String,
}

/// One destination a plugin may send requests to.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The host name.
    pub host: HostPattern,
    /// The port.
    pub port: u16,
    /// The path every request's path starts with, such as `/v1/`.
    pub path_prefix: String,
    /// The methods allowed, upper case.
    pub methods: Vec<String>,
    /// The address ranges the host may resolve into.
    pub ranges: Vec<AddressRange>,
    /// The header the host adds, if any.
    pub header: Option<SecretHeader>,
}

impl Destination {
    /// The destination as a URL pattern, for messages.
    pub fn url(&self) -> String {
        format!("{}://{}:{}{}", self.scheme.name(), self.host, self.port, self.path_prefix)
    }

    /// Whether a request of `method` to `scheme://host:port/path` goes
    /// here. `host` is lower case without a trailing dot; `path` has no
    /// query.
    pub fn allows(&self, method: &str, scheme: Scheme, host: &str, port: u16, path: &str) -> bool {
        self.scheme == scheme
            && self.port == port
            && self.host.matches(host)
            && path.starts_with(&self.path_prefix)
            && self.methods.iter().any(|m| m == method)
    }
}

/// The `network` section of a plugin in a policy file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFile {
    #[serde(default)]
    allow: Vec<DestinationFile>,
    max_requests: Option<u32>,
    max_connections: Option<u32>,
    request_body_kib: Option<u64>,
    response_body_kib: Option<u64>,
    timeout_s: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationFile {
    url: String,
    methods: Vec<String>,
    #[serde(default)]
    addresses: Vec<String>,
    header: Option<HeaderFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderFile {
    name: String,
    #[serde(default = "secret_alone")]
    value: String,
    secret: String,
}

fn secret_alone() -> String {
    "{secret}".into()
}

impl NetworkFile {
    /// The policy this section describes.
    ///
    /// # Errors
    ///
    /// A message naming the entry and what is wrong with it.
    pub fn parse(&self) -> Result<NetworkPolicy, String> {
        let defaults = NetworkLimits::default();
        let limits = NetworkLimits {
            max_requests: self.max_requests.unwrap_or(defaults.max_requests),
            max_connections: self.max_connections.unwrap_or(defaults.max_connections),
            max_request_body_bytes: self.request_body_kib.map_or(defaults.max_request_body_bytes, |k| k << 10),
            max_response_body_bytes: self.response_body_kib.map_or(defaults.max_response_body_bytes, |k| k << 10),
            timeout: self.timeout_s.map_or(defaults.timeout, Duration::from_secs),
        };
        if limits.max_connections == 0 || limits.timeout.is_zero() {
            return Err("network: max_connections and timeout_s must be above 0".into());
        }
        let allow = self.allow.iter().map(DestinationFile::parse).collect::<Result<_, _>>()?;
        Ok(NetworkPolicy { allow, limits })
    }
}

impl DestinationFile {
    fn parse(&self) -> Result<Destination, String> {
        let url = &self.url;
        let bad = |why: &str| format!("network: allow url {url:?}: {why}");
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("write it as scheme://host[:port][/path-prefix]"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if path.contains(['?', '#']) || path.split('/').any(|s| s == "." || s == "..") {
            return Err(bad("the path prefix may hold no query, fragment, or . and .. segments"));
        }
        if authority.contains('@') || authority.starts_with('[') {
            return Err(bad("name a host by its DNS name, without user info; addresses are not hosts here"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad("the port is not a number from 1 to 65535"))?),
            None => (authority, scheme.default_port()),
        };
        if port == 0 {
            return Err(bad("the port is not a number from 1 to 65535"));
        }
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host);
        let (pattern, name) = match host.strip_prefix("*.") {
            Some(suffix) => (HostPattern::Subdomain(suffix.to_string()), suffix),
            None => (HostPattern::Exact(host.to_string()), host),
        };
        if let Some(why) = not_a_host_name(name) {
            return Err(bad(why));
        }
        let methods: Vec<String> = self.methods.iter().map(|m| m.to_ascii_uppercase()).collect();
        if methods.is_empty() || methods.iter().any(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic())) {
            return Err(bad("methods must list at least one method, such as [\"GET\"]"));
        }
        let ranges = self
            .addresses
            .iter()
            .map(|name| AddressRange::parse(name).ok_or_else(|| bad(&format!("unknown address range {name:?}; the ranges are loopback, private, link-local and metadata"))))
            .collect::<Result<_, _>>()?;
        let header = match &self.header {
            None => None,
            Some(h) => {
                let (prefix, suffix) = h.value.split_once("{secret}").ok_or_else(|| bad("the header value must hold {secret} where the secret goes"))?;
                if h.name.is_empty() || !h.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                    return Err(bad("the header name must be a token such as Authorization"));
                }
                if h.secret.is_empty() {
                    return Err(bad("the header names no secret"));
                }
                Some(SecretHeader { name: h.name.to_ascii_lowercase(), prefix: prefix.into(), suffix: suffix.into(), secret: h.secret.clone() })
            }
        };
        Ok(Destination { scheme, host: pattern, port, path_prefix: path.to_string(), methods, ranges, header })
    }
}

/// Why `host` is not a DNS name a destination can be given by, if it is
/// not: addresses in any spelling (`127.0.0.1`, `2130706433`,
/// `0177.0.0.1`, `0x7f.1`) are refused, since a resolver would read them
/// as addresses.
pub fn not_a_host_name(host: &str) -> Option<&'static str> {
    if host.is_empty() || host.len() > 253 {
        return Some("the host name is empty or too long");
    }
    if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
        return Some("the host is an IP address; name it by its DNS name");
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.iter().any(|l| l.is_empty() || l.len() > 63 || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')) {
        return Some("the host is not a DNS name (letters, digits and - in dot-separated labels)");
    }
    let last = labels.last().copied().unwrap_or("");
    let numeric = |l: &str| l.bytes().all(|b| b.is_ascii_digit()) || (l.len() > 2 && l[..2].eq_ignore_ascii_case("0x") && l[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric(last) {
        return Some("the host is an address written as a number; name it by its DNS name");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<NetworkPolicy, String> {
        toml::from_str::<NetworkFile>(toml_text).map_err(|e| e.to_string())?.parse()
    }

    #[test]
    fn a_destination_is_read_from_its_url_methods_ranges_and_header() {
        let policy = parse(
            r#"[[allow]]
url = "https://*.Example.com:8443/v1/"
methods = ["get", "POST"]
addresses = ["loopback"]
header = { name = "Authorization", value = "Bearer {secret}", secret = "TOKEN" }"#,
        )
        .unwrap();
        let d = &policy.allow[0];
        assert_eq!(d.scheme, Scheme::Https);
        assert_eq!(d.host, HostPattern::Subdomain("example.com".into()));
        assert_eq!(d.port, 8443);
        assert_eq!(d.path_prefix, "/v1/");
        assert_eq!(d.methods, ["GET", "POST"]);
        assert_eq!(d.ranges, [AddressRange::Loopback]);
        let header = d.header.as_ref().unwrap();
        assert_eq!((header.name.as_str(), header.prefix.as_str(), header.suffix.as_str(), header.secret.as_str()), ("authorization", "Bearer ", "", "TOKEN"));
        assert!(d.allows("GET", Scheme::Https, "api.example.com", 8443, "/v1/things"));
        assert!(d.allows("POST", Scheme::Https, "a.b.example.com", 8443, "/v1/"));
        assert!(!d.allows("GET", Scheme::Https, "example.com", 8443, "/v1/"), "the wildcard names subdomains only");
        assert!(!d.allows("GET", Scheme::Https, "evilexample.com", 8443, "/v1/"));
        assert!(!d.allows("GET", Scheme::Http, "api.example.com", 8443, "/v1/"), "another scheme");
        assert!(!d.allows("GET", Scheme::Https, "api.example.com", 443, "/v1/"), "another port");
        assert!(!d.allows("GET", Scheme::Https, "api.example.com", 8443, "/v2/"), "another path");
        assert!(!d.allows("DELETE", Scheme::Https, "api.example.com", 8443, "/v1/"), "another method");
        assert_eq!(policy.limits, NetworkLimits::default());
    }

    #[test]
    fn addresses_in_any_spelling_are_refused_as_hosts() {
        for host in ["127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.1", "127.1", "[::ffff:127.0.0.1]", "::1", "10.0.0.1"] {
            let err = parse(&format!("[[allow]]\nurl = \"http://{host}/\"\nmethods = [\"GET\"]")).unwrap_err();
            assert!(err.contains(host) && (err.contains("address") || err.contains("DNS")), "{host}: {err}");
        }
        assert!(not_a_host_name("api.example.com").is_none());
        assert!(not_a_host_name("localhost").is_none());
    }

    #[test]
    fn bad_entries_are_refused_naming_what_is_wrong() {
        let cases = [
            ("url = \"ftp://a.com/\"\nmethods = [\"GET\"]", "scheme"),
            ("url = \"http://a.com:0/\"\nmethods = [\"GET\"]", "port"),
            ("url = \"http://a.com/v1/../admin\"\nmethods = [\"GET\"]", ".."),
            ("url = \"http://a.com/\"\nmethods = []", "methods"),
            ("url = \"http://a.com/\"\nmethods = [\"GET\"]\naddresses = [\"everything\"]", "everything"),
            ("url = \"http://a.com/\"\nmethods = [\"GET\"]\nheader = { name = \"X\", value = \"no placeholder\", secret = \"S\" }", "{secret}"),
            ("url = \"http://user@a.com/\"\nmethods = [\"GET\"]", "user info"),
        ];
        for (entry, named) in cases {
            let err = parse(&format!("[[allow]]\n{entry}")).unwrap_err();
            assert!(err.contains(named), "{entry}: {err}");
        }
    }

    #[test]
    fn every_range_is_recognised_in_both_families_and_inside_ipv6() {
        let range = |text: &str| AddressRange::of(text.parse().unwrap());
        assert_eq!(range("127.0.0.1"), Some(AddressRange::Loopback));
        assert_eq!(range("::1"), Some(AddressRange::Loopback));
        assert_eq!(range("::ffff:127.0.0.1"), Some(AddressRange::Loopback), "IPv4-mapped");
        assert_eq!(range("::127.0.0.1"), Some(AddressRange::Loopback), "IPv4-compatible");
        assert_eq!(range("64:ff9b::a00:1"), Some(AddressRange::Private), "NAT64 of 10.0.0.1");
        assert_eq!(range("2002:a9fe:a9fe::"), Some(AddressRange::Metadata), "6to4 of 169.254.169.254");
        assert_eq!(range("10.1.2.3"), Some(AddressRange::Private));
        assert_eq!(range("172.16.0.1"), Some(AddressRange::Private));
        assert_eq!(range("192.168.1.1"), Some(AddressRange::Private));
        assert_eq!(range("100.64.0.1"), Some(AddressRange::Private));
        assert_eq!(range("fd12::1"), Some(AddressRange::Private));
        assert_eq!(range("169.254.169.254"), Some(AddressRange::Metadata));
        assert_eq!(range("fd00:ec2::254"), Some(AddressRange::Metadata));
        assert_eq!(range("169.254.1.1"), Some(AddressRange::LinkLocal));
        assert_eq!(range("fe80::1"), Some(AddressRange::LinkLocal));
        assert_eq!(range("0.0.0.0"), Some(AddressRange::Reserved));
        assert_eq!(range("::"), Some(AddressRange::Reserved));
        assert_eq!(range("255.255.255.255"), Some(AddressRange::Reserved));
        assert_eq!(range("93.184.216.34"), None);
        assert_eq!(range("2606:2800:220:1:248:1893:25c8:1946"), None);
    }
}
