//! Authentication for every endpoint but `/healthz`: a bearer token, basic-auth users with
//! bcrypt hashes, or both (either credential is then accepted).
//!
//! bcrypt costs tens of milliseconds by design, too much to pay on every scrape: a verified
//! user and password is remembered by the SHA-256 of both (never the password itself), in a set
//! of at most [`MAX_VERIFIED`] entries. A wrong password is not remembered and costs a bcrypt
//! run every time, on the blocking pool, at most [`BCRYPT_CONCURRENCY`] at once. An unknown user
//! costs a bcrypt run too, against a dummy hash of the same cost, so response times do not tell
//! which users exist. Comparisons of secrets are constant-time.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::AppState;
use crate::config::WebConfig;

/// Verified credentials remembered at most; the set is emptied when full. A scrape config uses
/// one or two, so this bound only matters against someone cycling through valid passwords.
const MAX_VERIFIED: usize = 1024;
/// bcrypt runs at once: each takes a blocking thread and tens of milliseconds of CPU.
const BCRYPT_CONCURRENCY: usize = 2;
/// The password hashed into the dummy hash unknown users are checked against.
const DUMMY_PASSWORD: &str = "warden: no such user";

/// Checks the `Authorization` header against the configured credentials.
#[derive(Debug)]
pub struct Authenticator {
    bearer: Option<SecretString>,
    users: BTreeMap<String, SecretString>,
    /// SHA-256 of (user, password) pairs bcrypt has accepted.
    verified: Mutex<HashSet<[u8; 32]>>,
    bcrypt_permits: Semaphore,
    /// The hash unknown users are verified against, made on first use with the users' cost.
    dummy_hash: Arc<OnceLock<String>>,
    dummy_cost: u32,
    /// bcrypt runs so far: what the cache saves, and the tests' view of it.
    bcrypt_runs: AtomicU64,
}

impl Authenticator {
    /// The credentials of the `web` section.
    pub fn new(web: &WebConfig) -> Self {
        let dummy_cost = web
            .basic_auth_users
            .values()
            .filter_map(|hash| hash.expose_secret().parse::<bcrypt::HashParts>().ok())
            .map(|parts| parts.get_cost())
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        Authenticator {
            bearer: web.bearer_token.clone(),
            users: web.basic_auth_users.clone(),
            verified: Mutex::new(HashSet::new()),
            bcrypt_permits: Semaphore::new(BCRYPT_CONCURRENCY),
            dummy_hash: Arc::new(OnceLock::new()),
            dummy_cost,
            bcrypt_runs: AtomicU64::new(0),
        }
    }

    /// Whether any credential is required.
    pub fn is_enabled(&self) -> bool {
        self.bearer.is_some() || !self.users.is_empty()
    }

    /// How many times bcrypt has run.
    #[cfg(test)]
    pub fn bcrypt_runs(&self) -> u64 {
        self.bcrypt_runs.load(Ordering::Relaxed)
    }

    /// Whether the request's `Authorization` header carries a configured credential.
    pub async fn accepts(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.bearer.as_ref().is_some_and(|expected| {
                constant_time_eq(credentials.as_bytes(), expected.expose_secret().as_bytes())
            });
        }
        if scheme.eq_ignore_ascii_case("basic") && !self.users.is_empty() {
            let Some((user, password)) = decode_basic(credentials) else {
                return false;
            };
            return self.verify_user(&user, password).await;
        }
        false
    }

    async fn verify_user(&self, user: &str, password: SecretString) -> bool {
        let key = cache_key(user, &password);
        if self.lock_verified().contains(&key) {
            return true;
        }
        let known = self.users.get(user).cloned();
        let Ok(_permit) = self.bcrypt_permits.acquire().await else {
            return false;
        };
        self.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
        let dummy = Arc::clone(&self.dummy_hash);
        let cost = self.dummy_cost;
        let exists = known.is_some();
        let verified = tokio::task::spawn_blocking(move || {
            let hash = match &known {
                Some(hash) => hash.expose_secret().to_owned(),
                None => dummy
                    .get_or_init(|| {
                        bcrypt::hash(DUMMY_PASSWORD, cost).unwrap_or_else(|_| String::new())
                    })
                    .clone(),
            };
            bcrypt::verify(password.expose_secret(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let accepted = verified && exists;
        if accepted {
            let mut set = self.lock_verified();
            if set.len() >= MAX_VERIFIED {
                set.clear();
            }
            set.insert(key);
        }
        accepted
    }

    fn lock_verified(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        // The set holds digests only; a panic elsewhere cannot leave it inconsistent.
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// 401 with the challenges for the configured schemes.
    fn challenge(&self) -> Response {
        let mut response = (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
        let headers = response.headers_mut();
        if !self.users.is_empty() {
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"warden\""),
            );
        }
        if self.bearer.is_some() {
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"warden\""),
            );
        }
        response
    }
}

/// The user and password of a `Basic` credential.
fn decode_basic(credentials: &str) -> Option<(String, SecretString)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), SecretString::from(password.to_owned())))
}

/// SHA-256 over the user's length, the user and the password: no two pairs share a key.
fn cache_key(user: &str, password: &SecretString) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((user.len() as u64).to_be_bytes());
    hasher.update(user.as_bytes());
    hasher.update(password.expose_secret().as_bytes());
    hasher.finalize().into()
}

/// Lets the request through when no credential is configured or a configured one is presented.
pub async fn require_auth(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let auth = &state.auth;
    if !auth.is_enabled() || auth.accepts(request.headers()).await {
        next.run(request).await
    } else {
        // A refused webhook notification is counted with the others it would have joined.
        if request.uri().path() == "/alerts"
            && let Some(actions) = &state.actions
        {
            actions
                .metrics()
                .notification(crate::act::metrics::NotificationResult::Unauthorized);
        }
        auth.challenge()
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_whole_strings() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        headers
    }

    fn authenticator() -> Authenticator {
        let mut web = crate::config::Config::default().web;
        web.basic_auth_users.insert(
            "alice".to_owned(),
            SecretString::from(bcrypt::hash("wonderland", 4).unwrap()),
        );
        Authenticator::new(&web)
    }

    #[tokio::test]
    async fn a_verified_password_is_not_hashed_again() {
        let auth = authenticator();
        assert!(auth.accepts(&basic("alice", "wonderland")).await);
        assert_eq!(auth.bcrypt_runs(), 1);
        assert!(auth.accepts(&basic("alice", "wonderland")).await);
        assert_eq!(auth.bcrypt_runs(), 1, "the second check ran bcrypt");
    }

    #[tokio::test]
    async fn wrong_passwords_and_unknown_users_always_cost_a_bcrypt_run() {
        let auth = authenticator();
        for _ in 0..2 {
            assert!(!auth.accepts(&basic("alice", "mirror")).await);
            assert!(!auth.accepts(&basic("bob", "wonderland")).await);
        }
        assert_eq!(auth.bcrypt_runs(), 4);
        // The dummy hash has the users' cost, so an unknown user takes as long as a known one.
        let dummy = auth.dummy_hash.get().unwrap();
        assert_eq!(dummy.parse::<bcrypt::HashParts>().unwrap().get_cost(), 4);
    }

    #[test]
    fn cache_keys_do_not_collide_across_the_separator() {
        let a = cache_key("ab", &SecretString::from("c".to_owned()));
        let b = cache_key("a", &SecretString::from("bc".to_owned()));
        assert_ne!(a, b);
    }

    #[test]
    fn malformed_basic_credentials_are_refused() {
        assert!(decode_basic("not base64!").is_none());
        let no_colon = base64::engine::general_purpose::STANDARD.encode("alice");
        assert!(decode_basic(&no_colon).is_none());
        let (user, password) =
            decode_basic(&base64::engine::general_purpose::STANDARD.encode("alice:a:b")).unwrap();
        assert_eq!(user, "alice");
        assert_eq!(password.expose_secret(), "a:b");
    }
}
