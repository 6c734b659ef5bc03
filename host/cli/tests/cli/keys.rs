//! JWT keys and times as an attacker would probe them: tokens not valid
//! yet, a key the issuer withdrew, floods of made-up key ids, and an
//! issuer's key set that is plain http or redirects elsewhere. The key set
//! is served by the test, on loopback, and the tokens are real RS256 and
//! ES256 JWTs signed with keys made for the run.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use toolshed_mcp::auth::{Auth, Jwks, JwtIssuer, KeyRefresh, Rejection};

use crate::http::{ISSUER, OWNER_A, claims, keys, now, sign};

const AUDIENCE: &str = "toolshed-under-test";
const SCOPE: &str = "toolshed:tools";

/// A key set served on loopback by the test: what it serves can change,
/// and every fetch is counted.
struct KeyServer {
    addr: SocketAddr,
    document: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl KeyServer {
    /// Serves `document` at /jwks with `cache_control`, and a redirect to
    /// it at /moved.
    async fn start(document: Value, cache_control: &'static str) -> KeyServer {
        use axum::http::header;
        let document = Arc::new(Mutex::new(document));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (document.clone(), fetches.clone());
        let app = axum::Router::new()
            .route(
                "/jwks",
                axum::routing::get(move || {
                    let (served, counted) = (served.clone(), counted.clone());
                    async move {
                        counted.fetch_add(1, Ordering::SeqCst);
                        let body = served.lock().unwrap().to_string();
                        ([(header::CACHE_CONTROL, cache_control), (header::CONTENT_TYPE, "application/json")], body)
                    }
                }),
            )
            .route("/moved", axum::routing::get(|| async { (axum::http::StatusCode::FOUND, [(header::LOCATION, "/jwks")]) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        KeyServer { addr, document, fetches }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn auth(issuer: JwtIssuer) -> Auth {
    Auth { tokens: None, jwt: Some(Arc::new(issuer)), required_scope: SCOPE.into() }
}

async fn check(auth: &Auth, token: &str) -> Result<String, Rejection> {
    auth.authenticate(Some(&format!("Bearer {token}"))).await.map(|p| p.owner_id)
}

/// RFC 7519 §4.1.5: a JWT MUST NOT be accepted before its `nbf`. One an
/// hour ahead is refused; one within the 60 s leeway for clock skew, or
/// already valid, is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_refused_before_its_nbf_and_accepted_within_the_leeway() {
    let keys = keys();
    let server = KeyServer::start(keys.jwks.clone(), "max-age=600").await;
    let auth = auth(JwtIssuer::new(ISSUER, AUDIENCE, "org", Jwks::Url(server.url("/jwks"))).await.unwrap());
    let leeway = toolshed_mcp::auth::CLOCK_LEEWAY_SECS;
    let with_nbf = |nbf: u64| {
        let mut claims = claims(OWNER_A, AUDIENCE, now() + 7_200, SCOPE);
        claims["nbf"] = json!(nbf);
        claims
    };
    for (key, alg, kid) in [(&keys.rsa, Algorithm::RS256, "rsa-1"), (&keys.ec, Algorithm::ES256, "ec-1")] {
        let early = sign(key, alg, kid, &with_nbf(now() + 3_600));
        match check(&auth, &early).await {
            Err(Rejection::Invalid(reason)) => assert!(reason.contains("not valid yet"), "{alg:?}: {reason}"),
            other => panic!("{alg:?}: a token valid only in an hour was answered {other:?}"),
        }
        let beyond_leeway = sign(key, alg, kid, &with_nbf(now() + leeway + 30));
        assert!(check(&auth, &beyond_leeway).await.is_err(), "{alg:?}: nbf past the leeway");
        let within_leeway = sign(key, alg, kid, &with_nbf(now() + leeway / 2));
        assert_eq!(check(&auth, &within_leeway).await.as_deref(), Ok(OWNER_A), "{alg:?}: nbf within the leeway");
        let valid = sign(key, alg, kid, &with_nbf(now() - 10));
        assert_eq!(check(&auth, &valid).await.as_deref(), Ok(OWNER_A), "{alg:?}");
    }
}

/// The issuer withdraws a key: tokens signed with it stop working once the
/// key set is as old as its `Cache-Control: max-age` (1 s here, though the
/// server would keep a set without one for a minute), and the set is
/// fetched once for that, not once per token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_key_is_refused_once_the_key_set_is_as_old_as_its_max_age() {
    let keys = keys();
    let server = KeyServer::start(keys.jwks.clone(), "public, max-age=1").await;
    let refresh = KeyRefresh { unstated: Duration::from_secs(60), shortest: Duration::from_millis(100), longest: Duration::from_secs(60), ..KeyRefresh::default() };
    let auth = auth(JwtIssuer::with_refresh(ISSUER, AUDIENCE, "org", Jwks::Url(server.url("/jwks")), refresh).await.unwrap());
    let token = sign(&keys.rsa, Algorithm::RS256, "rsa-1", &claims(OWNER_A, AUDIENCE, now() + 600, SCOPE));
    assert_eq!(check(&auth, &token).await.as_deref(), Ok(OWNER_A));

    let withdrawn_at = Instant::now();
    server.document.lock().unwrap()["keys"].as_array_mut().unwrap().retain(|k| k["kid"] != "rsa-1");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let checks: Vec<_> = (0..50).map(|_| check(&auth, &token)).collect();
    for answer in futures::future::join_all(checks).await {
        match answer {
            Err(Rejection::Invalid(reason)) => assert!(reason.contains("not one of the issuer's"), "{reason}"),
            other => panic!("a withdrawn key was answered {other:?} {} ms after its withdrawal", withdrawn_at.elapsed().as_millis()),
        }
    }
    let ec = sign(&keys.ec, Algorithm::ES256, "ec-1", &claims(OWNER_A, AUDIENCE, now() + 600, SCOPE));
    assert_eq!(check(&auth, &ec).await.as_deref(), Ok(OWNER_A), "the key still published still works");
    // The first load, then one refresh that fifty checks shared (the
    // refused tokens' unknown key fetches nothing within the cool-down).
    assert_eq!(server.fetches(), 2, "fetches of the key set");
}

/// Tokens naming made-up key ids, thousands of them: the key set is fetched
/// again for an unknown key at most once per cool-down (300 ms here), however
/// many such tokens arrive at once or in a stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_key_ids_fetches_the_key_set_at_most_once_per_cool_down() {
    let keys = keys();
    let server = KeyServer::start(keys.jwks.clone(), "max-age=600").await;
    let cool_down = Duration::from_millis(300);
    let refresh = KeyRefresh { cool_down, ..KeyRefresh::default() };
    let auth = Arc::new(auth(JwtIssuer::with_refresh(ISSUER, AUDIENCE, "org", Jwks::Url(server.url("/jwks")), refresh).await.unwrap()));
    let started = Instant::now();
    let forged = |kid: String| sign(&keys.stranger, Algorithm::RS256, &kid, &claims(OWNER_A, AUDIENCE, now() + 600, SCOPE));

    // A burst of 500 at once, after the cool-down of the first load.
    tokio::time::sleep(cool_down).await;
    let burst: Vec<String> = (0..500).map(|_| forged(uuid::Uuid::new_v4().to_string())).collect();
    let answers = futures::future::join_all(burst.iter().map(|t| check(&auth, t))).await;
    assert!(answers.iter().all(|a| matches!(a, Err(Rejection::Invalid(r)) if r.contains("not one of the issuer's"))), "{:?}", &answers[..3]);
    assert_eq!(server.fetches(), 2, "the first load and one fetch shared by the burst");

    // Then a stream for 1.5 s from two tasks.
    let until = Instant::now() + Duration::from_millis(1_500);
    let tokens: Arc<Vec<String>> = Arc::new((0..200).map(|_| forged(uuid::Uuid::new_v4().to_string())).collect());
    let mut streams = Vec::new();
    for _ in 0..2 {
        let (auth, tokens) = (auth.clone(), tokens.clone());
        streams.push(tokio::spawn(async move {
            let mut sent = 0;
            while Instant::now() < until {
                assert!(check(&auth, &tokens[sent % tokens.len()]).await.is_err());
                sent += 1;
            }
            sent
        }));
    }
    let mut sent = 0;
    for stream in streams {
        sent += stream.await.unwrap();
    }
    let elapsed = started.elapsed();
    let allowed = 1 + (elapsed.as_millis() / cool_down.as_millis()) as usize + 1;
    eprintln!("{} tokens with unknown key ids in {} ms: {} fetches of the key set", 500 + sent, elapsed.as_millis(), server.fetches());
    assert!(server.fetches() <= allowed, "{} fetches in {} ms, at most {allowed} allowed", server.fetches(), elapsed.as_millis());
}

/// The issuer and its key set must be https beyond loopback: a plain http
/// one could be answered by anyone on the path, who would then mint tokens.
/// The server refuses to start with either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_issuer_or_key_set_beyond_loopback_is_refused_at_start() {
    let keys = keys();
    let server = KeyServer::start(keys.jwks.clone(), "max-age=600").await;
    let err = JwtIssuer::new("http://login.example", AUDIENCE, "org", Jwks::Url(server.url("/jwks"))).await.err().expect("an http issuer");
    assert!(err.to_string().contains("use https"), "{err}");
    let err = JwtIssuer::new(ISSUER, AUDIENCE, "org", Jwks::Url("http://login.example/jwks".into())).await.err().expect("an http key set");
    assert!(err.to_string().contains("use https"), "{err}");
    assert!(JwtIssuer::new("http://127.0.0.1:9", AUDIENCE, "org", Jwks::Url(server.url("/jwks"))).await.is_ok(), "loopback may be http");
}

/// A key set URL that redirects is refused, not followed: the keys come
/// from the address configured or from nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_set_that_redirects_is_not_followed() {
    let keys = keys();
    let server = KeyServer::start(keys.jwks.clone(), "max-age=600").await;
    let err = JwtIssuer::new(ISSUER, AUDIENCE, "org", Jwks::Url(server.url("/moved"))).await.err().expect("a redirect");
    assert!(err.to_string().contains("redirect"), "{err}");
    assert_eq!(server.fetches(), 0, "the redirect's target was never asked");
}
