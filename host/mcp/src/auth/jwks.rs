//! An issuer's key set, kept as fresh as the issuer asks.
//!
//! A key the issuer withdraws must stop being trusted, so the set is
//! fetched again once it is as old as its `Cache-Control: max-age` says,
//! clamped to [`KeyRefresh::shortest`]..[`KeyRefresh::longest`] (a set
//! without the header is kept [`KeyRefresh::unstated`]). A token checked
//! after that waits for the new set; checks made meanwhile share that one
//! fetch. A token naming a key the set lacks may be a new key, so it may
//! fetch the set again, but at most once per [`KeyRefresh::cool_down`]: a
//! flood of tokens with random key ids cannot make the server hammer the
//! issuer. A fetch that fails keeps the set held and is tried again after
//! the cool-down.
//!
//! The key set's URL must be `https`, except on loopback, and a redirect is
//! refused, not followed: the keys come from the address configured or from
//! nowhere.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum Jwks {
    /// A JWKS document at a URL (the issuer's `jwks_uri`).
    Url(String),
    /// A JWKS document in a file, read again on the same schedule.
    File(PathBuf),
}

/// How often a key set is fetched again.
#[derive(Debug, Clone)]
pub struct KeyRefresh {
    /// How long a set without `Cache-Control: max-age` is kept.
    pub unstated: Duration,
    /// The least time a set is kept, whatever its max-age says.
    pub shortest: Duration,
    /// The most time a set is kept, whatever its max-age says: a withdrawn
    /// key is trusted no longer than this.
    pub longest: Duration,
    /// The least time between two fetches made for tokens naming unknown
    /// keys, or after a fetch that failed.
    pub cool_down: Duration,
    /// How long one fetch may take.
    pub timeout: Duration,
}

/// The largest key set read: far above any issuer's, far below harm.
const LARGEST_KEY_SET: usize = 1 << 20;

impl Default for KeyRefresh {
    fn default() -> Self {
        Self {
            unstated: Duration::from_secs(10 * 60),
            shortest: Duration::from_secs(60),
            longest: Duration::from_secs(15 * 60),
            cool_down: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The keys held, and when to fetch them again.
struct Held {
    keys: Arc<JwkSet>,
    /// When the set is due again (its age reached what its max-age says, or
    /// the cool-down after a failed fetch ended).
    due: Instant,
    /// When the last fetch was made, successful or not.
    last_fetch: Instant,
}

/// An issuer's keys, fetched again as [`KeyRefresh`] says.
pub(crate) struct KeySet {
    source: Jwks,
    refresh: KeyRefresh,
    client: reqwest::Client,
    held: RwLock<Held>,
    /// Held while fetching: one fetch at a time, which the waiting checks share.
    fetching: tokio::sync::Mutex<()>,
}

/// Whether `url` may be trusted for keys or as an issuer: `https`, or
/// `http` to a loopback host (a test's issuer, or one beside the server).
///
/// # Errors
///
/// Saying why not.
pub(crate) fn check_trusted_url(what: &str, url: &str) -> anyhow::Result<()> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| anyhow::anyhow!("{what} {url} is not a URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => anyhow::bail!("{what} {url} is plain http beyond loopback: use https"),
        _ => anyhow::bail!("{what} {url} is not an http(s) URL"),
    }
}

impl KeySet {
    /// Fetches the set for the first time.
    ///
    /// # Errors
    ///
    /// When the source is not trusted or the set cannot be had.
    pub(crate) async fn load(source: Jwks, refresh: KeyRefresh) -> anyhow::Result<KeySet> {
        if let Jwks::Url(url) = &source {
            check_trusted_url("the key set", url)?;
            crate::tls::ensure_provider();
        }
        let client = reqwest::Client::builder().timeout(refresh.timeout).redirect(reqwest::redirect::Policy::none()).build()?;
        let (keys, max_age) = fetch(&client, &source).await?;
        let now = Instant::now();
        let held = Held { keys: Arc::new(keys), due: now + refresh.keep_for(max_age), last_fetch: now };
        Ok(KeySet { source, refresh, client, held: RwLock::new(held), fetching: tokio::sync::Mutex::new(()) })
    }

    /// The key `kid` names, from a set no older than it may be.
    pub(crate) async fn key(&self, kid: &str) -> Result<DecodingKey, String> {
        if Instant::now() >= self.read().due {
            self.fetch_if(|held, now| now >= held.due).await;
        }
        if let Some(key) = self.find(kid) {
            return key;
        }
        // A key the set lacks may be one the issuer just added.
        let cool_down = self.refresh.cool_down;
        self.fetch_if(|held, now| now >= held.last_fetch + cool_down).await;
        self.find(kid).unwrap_or_else(|| Err(format!("the token's key {:?} is not one of the issuer's", toolshed_runtime::text::clip(kid, 60))))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Held> {
        self.held.read().unwrap_or_else(|e| e.into_inner())
    }

    fn find(&self, kid: &str) -> Option<Result<DecodingKey, String>> {
        let keys = self.read().keys.clone();
        let jwk = keys.find(kid)?;
        Some(DecodingKey::from_jwk(jwk).map_err(|e| format!("the key {kid} cannot be used: {e}")))
    }

    /// Fetches the set if `due` still holds once this check's turn comes:
    /// checks that queued behind a fetch find it done and fetch nothing.
    async fn fetch_if(&self, due: impl Fn(&Held, Instant) -> bool) {
        let _one_at_a_time = self.fetching.lock().await;
        let now = Instant::now();
        if !due(&self.read(), now) {
            return;
        }
        let fetched = fetch(&self.client, &self.source).await;
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        held.last_fetch = now;
        match fetched {
            Ok((keys, max_age)) => {
                held.keys = Arc::new(keys);
                held.due = now + self.refresh.keep_for(max_age);
            }
            Err(e) => {
                // The issuer may be down for a moment: its keys stay trusted
                // rather than every token failing, and it is asked again
                // after the cool-down.
                tracing::warn!("the issuer's key set could not be fetched again ({e:#}); the keys held stay in use");
                held.due = now + self.refresh.cool_down;
            }
        }
    }
}

impl KeyRefresh {
    /// How long a set is kept, given its max-age.
    fn keep_for(&self, max_age: Option<Duration>) -> Duration {
        max_age.unwrap_or(self.unstated).clamp(self.shortest, self.longest.max(self.shortest))
    }
}

/// The set and its max-age.
async fn fetch(client: &reqwest::Client, source: &Jwks) -> anyhow::Result<(JwkSet, Option<Duration>)> {
    let (bytes, max_age) = match source {
        Jwks::File(path) => (std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?, None),
        Jwks::Url(url) => {
            let mut response = client.get(url).send().await?;
            let status = response.status();
            anyhow::ensure!(!status.is_redirection(), "the key set at {url} answered {status}, a redirect, which is not followed");
            anyhow::ensure!(status.is_success(), "the key set at {url} answered {status}");
            let max_age = response.headers().get(reqwest::header::CACHE_CONTROL).and_then(|v| v.to_str().ok()).and_then(max_age);
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                anyhow::ensure!(bytes.len() + chunk.len() <= LARGEST_KEY_SET, "the key set at {url} is larger than {LARGEST_KEY_SET} bytes");
                bytes.extend_from_slice(&chunk);
            }
            (bytes, max_age)
        }
    };
    let keys = serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("the key set is not a JWKS document: {e}"))?;
    Ok((keys, max_age))
}

/// The max-age a `Cache-Control` value gives, if any; `no-cache` and
/// `no-store` give none left (the set is kept the shortest time).
fn max_age(cache_control: &str) -> Option<Duration> {
    let mut age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        match name.to_ascii_lowercase().as_str() {
            "no-cache" | "no-store" => return Some(Duration::ZERO),
            "max-age" => age = value.trim_matches('"').parse::<u64>().ok().map(Duration::from_secs),
            _ => {}
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_and_clamped() {
        let refresh = KeyRefresh::default();
        assert_eq!(max_age("public, max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(refresh.keep_for(None), refresh.unstated);
        assert_eq!(refresh.keep_for(Some(Duration::ZERO)), refresh.shortest);
        assert_eq!(refresh.keep_for(Some(Duration::from_secs(86_400))), refresh.longest);
    }

    #[test]
    fn only_https_or_loopback_is_trusted() {
        for good in ["https://login.example/jwks.json", "http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]:9/k"] {
            assert!(check_trusted_url("x", good).is_ok(), "{good}");
        }
        for bad in ["http://login.example/jwks.json", "http://127.0.0.1.evil.example/jwks", "http://localhost@evil.example/", "ftp://x/", "login.example"] {
            assert!(check_trusted_url("x", bad).is_err(), "{bad}");
        }
    }
}
