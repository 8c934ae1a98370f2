//! Keys from a JSON Web Key Set (`jwks_public_endpoint`), as Centrifugo verifies tokens of an
//! identity provider (Keycloak, Auth0, Okta): a token names its key by `kid`; keys are cached by
//! kid for an hour after their last use (sliding, as Centrifugo's cache); a kid the cache lacks
//! makes the caller fetch the set again (key rotation) and retry once. Fetches are bounded: 1 s
//! per attempt, two attempts, one fetch at a time, and at most one a second however many
//! tokens name unknown kids, so a flood of forged kids cannot make the node hammer the provider.
//!
//! Verification itself stays synchronous ([`Jwks::key`]); only the fetch is async, and it runs
//! off the session's handler (the session retries when it is done).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::{es512, Alg, VerifyingKey};

/// How long a key stays cached after its last use.
const KEY_TTL: Duration = Duration::from_secs(3600);
/// At most one fetch this often (key rotation needs one; a flood of unknown kids gets no more).
const MIN_FETCH_INTERVAL: Duration = Duration::from_secs(1);
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);
const FETCH_ATTEMPTS: usize = 2;
/// Largest JWKS document read.
const MAX_BODY: usize = 1024 * 1024;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot fetch the JWKS ({0})")]
    Fetch(String),
    #[error("the JWKS is not a JSON Web Key Set ({0})")]
    Malformed(String),
    #[error("JWKS key {kid:?} cannot be used ({reason})")]
    BadKey { kid: String, reason: String },
}

/// A cached key and the algorithms it verifies.
#[derive(Clone)]
struct CachedKey {
    key: VerifyingKey,
    algorithms: Vec<Alg>,
    used: Instant,
}

/// One JWKS endpoint and its key cache.
pub struct Jwks {
    endpoint: String,
    keys: Mutex<HashMap<String, CachedKey>>,
    last_fetch: Mutex<Option<Instant>>,
    /// One fetch at a time; waiters find the keys it brought.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl Jwks {
    pub fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            keys: Mutex::default(),
            last_fetch: Mutex::default(),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The cached key `kid` and the algorithms it verifies (extending its life in the cache).
    pub fn key(&self, kid: &str) -> Option<(VerifyingKey, Vec<Alg>)> {
        let now = Instant::now();
        let mut keys = lock(&self.keys);
        keys.retain(|_, cached| now.duration_since(cached.used) < KEY_TTL);
        let cached = keys.get_mut(kid)?;
        cached.used = now;
        Some((cached.key.clone(), cached.algorithms.clone()))
    }

    /// Fetches the set again (unless another fetch just did) and caches every signing key.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let _only_fetch = self.fetching.lock().await;
        {
            let mut last = lock(&self.last_fetch);
            if last.is_some_and(|at| at.elapsed() < MIN_FETCH_INTERVAL) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let body = self.fetch().await?;
        self.store(&body)
    }

    /// Caches every signing key of a JWKS document.
    pub(super) fn store(&self, body: &[u8]) -> Result<(), JwksError> {
        let keys = parse(body)?;
        let now = Instant::now();
        let mut cache = lock(&self.keys);
        for (kid, key, algorithms) in keys {
            cache.insert(kid, CachedKey { key, algorithms, used: now });
        }
        Ok(())
    }

    async fn fetch(&self) -> Result<bytes::Bytes, JwksError> {
        let mut connector = awc::Connector::new();
        if let Some(tls) = tls_config() {
            connector = connector.rustls_0_23(tls);
        }
        let client = awc::Client::builder().connector(connector).timeout(FETCH_TIMEOUT).finish();
        let mut last = String::new();
        for _ in 0..FETCH_ATTEMPTS {
            match client.get(&self.endpoint).send().await {
                Ok(mut response) if response.status().is_success() => {
                    return response.body().limit(MAX_BODY).await.map_err(|e| JwksError::Fetch(e.to_string()));
                }
                Ok(response) => last = format!("HTTP {}", response.status()),
                Err(error) => last = error.to_string(),
            }
        }
        Err(JwksError::Fetch(last))
    }
}

/// Where a token's key set comes from: one URL, or a URL templated with `{{name}}` placeholders
/// filled from named groups of `issuer_regex` / `audience_regex` (one set, and cache, per URL).
#[derive(Debug)]
pub enum JwksSource {
    Fixed(Arc<Jwks>),
    Templated { template: String, sets: Mutex<HashMap<String, Arc<Jwks>>> },
}

impl JwksSource {
    pub fn new(endpoint: &str) -> Self {
        match endpoint.contains("{{") {
            true => Self::Templated { template: endpoint.to_owned(), sets: Mutex::default() },
            false => Self::Fixed(Arc::new(Jwks::new(endpoint))),
        }
    }

    pub fn is_templated(&self) -> bool {
        matches!(self, Self::Templated { .. })
    }

    /// The key set for a token whose claims gave `vars` (unknown placeholders are empty, as in
    /// Centrifugo). A URL whose path is not already clean (`..`, `.`, `//`) is refused.
    pub fn for_vars(&self, vars: &HashMap<String, String>) -> Result<Arc<Jwks>, String> {
        let (template, sets) = match self {
            Self::Fixed(jwks) => return Ok(jwks.clone()),
            Self::Templated { template, sets } => (template, sets),
        };
        let url = render(template, vars);
        let path = url.splitn(4, '/').nth(3).unwrap_or_default();
        if path.split('/').any(|segment| segment == ".." || segment == ".") || path.contains("//") {
            return Err("the JWKS URL built from the token's claims is not a clean path".into());
        }
        Ok(lock(sets).entry(url.clone()).or_insert_with(|| Arc::new(Jwks::new(&url))).clone())
    }
}

/// The `{{name}}` placeholders of a template.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else { break };
        names.push(rest[start + 2..start + end].trim().to_owned());
        rest = &rest[start + end + 2..];
    }
    names
}

fn render(template: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else { break };
        out.push_str(&rest[..start]);
        let name = rest[start + 2..start + end].trim();
        out.push_str(vars.get(name).map(String::as_str).unwrap_or_default());
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// The `alg` of each key of a set, as written: `jsonwebtoken` knows no ES512, and reads it as
/// an unknown algorithm.
#[derive(serde::Deserialize)]
struct AlgNames {
    keys: Vec<AlgName>,
}

#[derive(serde::Deserialize)]
struct AlgName {
    alg: Option<String>,
}

/// The signing keys of a JWKS document: (kid, key, algorithms). Keys whose `use` is not `sig`
/// are skipped (as Centrifugo's library does); one signing key that cannot be used fails the
/// whole set.
pub fn parse(body: &[u8]) -> Result<Vec<(String, VerifyingKey, Vec<Alg>)>, JwksError> {
    let set: JwkSet = serde_json::from_slice(body).map_err(|e| JwksError::Malformed(e.to_string()))?;
    let names: AlgNames = serde_json::from_slice(body).map_err(|e| JwksError::Malformed(e.to_string()))?;
    let mut keys = Vec::new();
    let signing =
        set.keys.iter().zip(names.keys).filter(|(jwk, _)| jwk.common.public_key_use == Some(PublicKeyUse::Signature));
    for (jwk, name) in signing {
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        let bad = |reason: &str| JwksError::BadKey { kid: kid.clone(), reason: reason.to_owned() };
        if kid.is_empty() {
            return Err(bad("no kid"));
        }
        let algorithms =
            algorithms_of(jwk, name.alg.as_deref()).ok_or_else(|| bad("unsupported key type or algorithm"))?;
        let key = match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P521 => {
                VerifyingKey::P521(es512::key_from_coordinates(&ec.x, &ec.y).map_err(|e| bad(&e))?)
            }
            _ => VerifyingKey::Jwt(DecodingKey::from_jwk(jwk).map_err(|e| bad(&e.to_string()))?),
        };
        keys.push((kid, key, algorithms));
    }
    Ok(keys)
}

/// The key's own `alg` (`alg_name`, as written) if it has one, else its type's family.
fn algorithms_of(jwk: &Jwk, alg_name: Option<&str>) -> Option<Vec<Alg>> {
    use Algorithm::*;
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![ES256],
            EllipticCurve::P384 => vec![ES384],
            EllipticCurve::P521 => {
                return match alg_name {
                    None => Some(vec![Alg::Es512]),
                    Some(name) => (name == es512::NAME).then(|| vec![Alg::Es512]),
                };
            }
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![EdDSA],
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(family.into_iter().map(Alg::Jwt).collect()),
        Some(named) => {
            let algorithm = algorithm_named(named)?;
            family.contains(&algorithm).then(|| vec![Alg::Jwt(algorithm)])
        }
    }
}

fn algorithm_named(named: KeyAlgorithm) -> Option<Algorithm> {
    use Algorithm::*;
    Some(match named {
        KeyAlgorithm::RS256 => RS256,
        KeyAlgorithm::RS384 => RS384,
        KeyAlgorithm::RS512 => RS512,
        KeyAlgorithm::PS256 => PS256,
        KeyAlgorithm::PS384 => PS384,
        KeyAlgorithm::PS512 => PS512,
        KeyAlgorithm::ES256 => ES256,
        KeyAlgorithm::ES384 => ES384,
        KeyAlgorithm::EdDSA => EdDSA,
        _ => return None,
    })
}

/// TLS for https endpoints (JWKS, proxies): the system's root certificates, loaded once per
/// process (`None` if the TLS client cannot be built: https endpoints then fail to connect).
pub(crate) fn tls_config() -> Option<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                tracing::warn!("no system root certificates found; https endpoints (JWKS, proxies) cannot be verified");
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            match rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
                Ok(builder) => Some(Arc::new(builder.with_root_certificates(roots).with_no_client_auth())),
                Err(error) => {
                    tracing::error!(%error, "cannot build the TLS client; https JWKS and proxy endpoints will fail");
                    None
                }
            }
        })
        .clone()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[&str]) -> Vec<u8> {
        format!(r#"{{"keys":[{}]}}"#, keys.join(",")).into_bytes()
    }

    const RSA: &str = include_str!("testdata/rsa_public.jwk.json");
    const EC: &str = include_str!("testdata/ec_public.jwk.json");
    const P521: &str = include_str!("testdata/ec_p521_public.jwk.json");

    #[test]
    fn templated_endpoints_are_filled_from_vars_and_must_stay_clean() {
        let source = JwksSource::new("https://id.example.com/realms/{{realm}}/certs");
        let vars = |realm: &str| HashMap::from([("realm".to_owned(), realm.to_owned())]);
        let acme = source.for_vars(&vars("acme")).expect("clean");
        assert_eq!(acme.endpoint, "https://id.example.com/realms/acme/certs");
        assert!(Arc::ptr_eq(&acme, &source.for_vars(&vars("acme")).unwrap()), "one set per URL");
        assert!(source.for_vars(&vars("..")).is_err());
        assert!(source.for_vars(&HashMap::new()).is_err(), "an empty segment makes //");
        assert_eq!(placeholders("a/{{ x }}/{{y}}"), ["x", "y"]);
    }

    #[test]
    fn signing_keys_are_taken_with_their_algorithms() {
        let keys = parse(&set(&[RSA, EC, P521])).expect("parses");
        let found: Vec<(&str, &Vec<Alg>)> = keys.iter().map(|(kid, _, algs)| (kid.as_str(), algs)).collect();
        assert_eq!(
            found,
            [
                ("rsa-1", &vec![Alg::Jwt(Algorithm::RS256)]),
                ("ec-1", &vec![Alg::Jwt(Algorithm::ES256)]),
                ("ec-p521-1", &vec![Alg::Es512])
            ]
        );
        assert!(matches!(keys[2].1, VerifyingKey::P521(_)));
    }

    #[test]
    fn p521_keys_take_es512_only_and_must_be_points_of_the_curve() {
        let named = P521.replace(r#""use": "sig","#, r#""use": "sig", "alg": "ES512","#);
        assert_eq!(parse(&set(&[&named])).expect("parses")[0].2, [Alg::Es512]);
        for alg in ["ES256", "ES384", "RS256", "XX999"] {
            let wrong = P521.replace(r#""use": "sig","#, &format!(r#""use": "sig", "alg": "{alg}","#));
            assert!(matches!(parse(&set(&[&wrong])), Err(JwksError::BadKey { .. })), "{alg}");
        }
        let es512_on_p256 = EC.replace(r#""use": "sig","#, r#""use": "sig", "alg": "ES512","#);
        assert!(matches!(parse(&set(&[&es512_on_p256])), Err(JwksError::BadKey { .. })));
        let y = P521.split(r#""y": ""#).nth(1).and_then(|rest| rest.split('"').next()).expect("y");
        for bad_y in ["AQ", "!!", "", &format!("AA{y}")] {
            let off_curve = P521.replace(y, bad_y);
            assert!(matches!(parse(&set(&[&off_curve])), Err(JwksError::BadKey { .. })), "{bad_y}");
        }
        let p256_coordinates_on_p521 = EC.replace("P-256", "P-521");
        assert!(matches!(parse(&set(&[&p256_coordinates_on_p521])), Err(JwksError::BadKey { .. })));
    }

    #[test]
    fn keys_not_for_signing_are_skipped_and_a_bad_signing_key_fails_the_set() {
        let encryption = RSA.replace(r#""sig""#, r#""enc""#);
        assert_eq!(parse(&set(&[&encryption, EC])).expect("parses").len(), 1);
        let no_use = RSA.replace(r#""use": "sig","#, "");
        assert_eq!(parse(&set(&[&no_use])).expect("parses").len(), 0, "absent use is skipped, as Centrifugo");
        let no_kid = RSA.replace(r#""kid": "rsa-1","#, "");
        assert!(matches!(parse(&set(&[&no_kid])), Err(JwksError::BadKey { .. })));
        let wrong_alg = RSA.replace(r#""RS256""#, r#""ES256""#);
        assert!(matches!(parse(&set(&[&wrong_alg])), Err(JwksError::BadKey { .. })));
        assert!(matches!(parse(b"[1,2]"), Err(JwksError::Malformed(_))));
        assert!(matches!(parse(b"not json"), Err(JwksError::Malformed(_))));
    }
}
