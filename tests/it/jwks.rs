//! `client.token.jwks_public_endpoint` against a JWKS server of the test's own: tokens verified
//! by the key their `kid` names, key rotation (a new kid fetches the set again), and the ways it
//! fails — no kid, an unknown kid, an algorithm the key does not allow, a server that is down or
//! serves garbage — each a 3500 disconnect while the node keeps serving.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse, HttpServer};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::support::*;

const RSA_PRIVATE: &str = include_str!("../../src/auth/testdata/rsa_private.pem");
const EC_PRIVATE: &str = include_str!("../../src/auth/testdata/ec_private.pem");
const RSA_JWK: &str = include_str!("../../src/auth/testdata/rsa_public.jwk.json");
const EC_JWK: &str = include_str!("../../src/auth/testdata/ec_public.jwk.json");

/// What the JWKS server serves (status, body), and how many times it was asked.
#[derive(Clone, Default)]
struct Served {
    answer: Arc<Mutex<(u16, String)>>,
    fetches: Arc<AtomicUsize>,
}

impl Served {
    fn set(&self, status: u16, body: String) {
        *self.answer.lock().unwrap() = (status, body);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A JWKS server on a free port; returns its URL.
fn jwks_server(served: Served) -> String {
    let server = HttpServer::new(move || {
        let served = served.clone();
        App::new().route(
            "/jwks",
            web::get().to(move || {
                let served = served.clone();
                async move {
                    served.fetches.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = served.answer.lock().unwrap().clone();
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .content_type("application/json")
                        .body(body)
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bind the JWKS server");
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    format!("http://{addr}/jwks")
}

fn key_set(keys: &[&str]) -> String {
    format!(r#"{{"keys":[{}]}}"#, keys.join(","))
}

fn signed(alg: Algorithm, kid: Option<&str>, pem: &str, sub: &str) -> String {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    };
    let header = Header { kid: kid.map(str::to_owned), ..Header::new(alg) };
    encode(&header, &json!({"sub": sub, "exp": now() + 3600}), &key).unwrap()
}

/// Connects over a raw WebSocket with `token`; the connect reply, or the close code.
async fn connect(node: &TestNode, token: &str) -> Result<Value, Option<u16>> {
    let mut socket = RawSocket::open(node).await;
    let connect = json!({"id": 1, "connect": {"token": token}}).to_string();
    socket.send_frame(true, TEXT, connect.as_bytes()).await;
    match socket.next_frame().await {
        Some((TEXT, reply)) => Ok(serde_json::from_slice(&reply).expect("JSON reply")),
        Some((CLOSE, payload)) if payload.len() >= 2 => Err(Some(u16::from_be_bytes([payload[0], payload[1]]))),
        _ => Err(None),
    }
}

#[actix_web::test]
async fn tokens_verify_with_the_jwks_key_their_kid_names_and_a_new_kid_fetches_the_set_again() {
    let served = Served::default();
    served.set(200, key_set(&[RSA_JWK]));
    let url = jwks_server(served.clone());
    let node = TestNode::start_with(|s| {
        s.client.token.hmac_secret_key = String::new();
        s.client.token.jwks_public_endpoint = url;
    })
    .await;

    let reply =
        connect(&node, &signed(Algorithm::RS256, Some("rsa-1"), RSA_PRIVATE, "alice")).await.expect("connected");
    assert!(reply["connect"]["client"].is_string(), "{reply}");
    assert_eq!(served.fetches(), 1);
    // Cached: a second token with the same kid fetches nothing.
    connect(&node, &signed(Algorithm::RS256, Some("rsa-1"), RSA_PRIVATE, "bob")).await.expect("connected");
    assert_eq!(served.fetches(), 1);

    // Rotation: the provider now signs with a new key; its first token fetches the set again.
    served.set(200, key_set(&[EC_JWK]));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // at most one fetch a second
    connect(&node, &signed(Algorithm::ES256, Some("ec-1"), EC_PRIVATE, "carol")).await.expect("rotated key");
    assert_eq!(served.fetches(), 2);

    // Refused, each a 3500 disconnect: no kid, a kid no set has, the key's algorithm family
    // mismatching the token's, and an HMAC token (only JWKS verifies once it is configured).
    assert_eq!(connect(&node, &signed(Algorithm::RS256, None, RSA_PRIVATE, "x")).await, Err(Some(3500)));
    assert_eq!(connect(&node, &signed(Algorithm::RS256, Some("nope"), RSA_PRIVATE, "x")).await, Err(Some(3500)));
    assert_eq!(connect(&node, &signed(Algorithm::RS384, Some("rsa-1"), RSA_PRIVATE, "x")).await, Err(Some(3500)));
    assert_eq!(connect(&node, &token(json!({"sub": "x"}))).await, Err(Some(3500)));
    // A flood of unknown kids costs at most one fetch a second (however long the flood takes on
    // a loaded machine), not one per token.
    let before = served.fetches();
    let flood = std::time::Instant::now();
    for n in 0..20 {
        let kid = format!("forged-{n}");
        assert_eq!(connect(&node, &signed(Algorithm::RS256, Some(&kid), RSA_PRIVATE, "x")).await, Err(Some(3500)));
    }
    let allowed = flood.elapsed().as_secs() as usize + 2;
    let fetched = served.fetches() - before;
    assert!(fetched <= allowed && fetched < 20, "{fetched} fetches for 20 unknown kids in {:?}", flood.elapsed());
    // The cached key still works meanwhile.
    connect(&node, &signed(Algorithm::RS256, Some("rsa-1"), RSA_PRIVATE, "dave")).await.expect("still cached");
}

#[actix_web::test]
async fn a_jwks_endpoint_that_is_down_or_serves_garbage_refuses_tokens_with_3500() {
    let served = Served::default();
    let url = jwks_server(served.clone());
    let node = TestNode::start_with(|s| {
        s.client.token.hmac_secret_key = String::new();
        s.client.token.jwks_public_endpoint = url;
    })
    .await;
    let token = || signed(Algorithm::RS256, Some("rsa-1"), RSA_PRIVATE, "erin");
    for (status, body) in [
        (500, "oops".to_owned()),
        (200, "not json".to_owned()),
        (200, key_set(&[r#"{"kty":"RSA","use":"sig","kid":"rsa-1","n":"!!","e":"AQAB"}"#])),
    ] {
        served.set(status, body);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(connect(&node, &token()).await, Err(Some(3500)), "JWKS answer {status}");
    }
    // Once it serves the key again, the same token connects.
    served.set(200, key_set(&[RSA_JWK]));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    connect(&node, &token()).await.expect("connected once the JWKS is back");

    let node = TestNode::start_with(|s| {
        s.client.token.hmac_secret_key = String::new();
        s.client.token.jwks_public_endpoint = "http://127.0.0.1:9/jwks".into();
    })
    .await;
    assert_eq!(connect(&node, &token()).await, Err(Some(3500)), "nothing listens on the JWKS port");
}

/// `gyre checktoken` with a JWKS config fetches the key the token names, as the node does.
#[actix_web::test]
async fn checktoken_fetches_the_jwks_key() {
    let served = Served::default();
    served.set(200, key_set(&[RSA_JWK]));
    let url = jwks_server(served.clone());
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.json");
    std::fs::write(&config, json!({"client": {"token": {"jwks_public_endpoint": url}}}).to_string()).expect("config");
    let run = |token: String| {
        let config = config.clone();
        actix_web::rt::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_gyre"))
                .args(["checktoken", "-c"])
                .arg(&config)
                .arg(token)
                .output()
                .expect("run gyre checktoken")
        })
    };
    let valid = run(signed(Algorithm::RS256, Some("rsa-1"), RSA_PRIVATE, "frank")).await.expect("joined");
    let stdout = String::from_utf8_lossy(&valid.stdout);
    assert!(valid.status.success() && stdout.contains("valid token for user frank"), "{stdout}");
    let unknown = run(signed(Algorithm::RS256, Some("other"), RSA_PRIVATE, "frank")).await.expect("joined");
    assert!(!unknown.status.success());
    assert!(served.fetches() >= 1);
}

/// `client.subscription_token.jwks_public_endpoint`: subscription tokens verified by the JWKS
/// key their kid names (fetched on first use); connection tokens keep their own keys.
#[actix_web::test]
async fn subscription_tokens_verify_with_their_own_jwks() {
    let served = Served::default();
    served.set(200, key_set(&[RSA_JWK]));
    let url = jwks_server(served.clone());
    let node = TestNode::start_with(|s| {
        s.client.subscription_token.enabled = true;
        s.client.subscription_token.token.jwks_public_endpoint = url;
    })
    .await;
    let mut client = node.connect_as("gina").await;
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let header = Header { kid: Some("rsa-1".into()), ..Header::new(Algorithm::RS256) };
    let claims = json!({"sub": "gina", "channel": "$private-room", "exp": now() + 60});
    let sub_token = encode(&header, &claims, &key).unwrap();
    let reply = client.request(2, "subscribe", json!({"channel": "$private-room", "token": sub_token})).await;
    assert!(reply.get("error").is_none(), "{reply}");
    assert!(reply["subscribe"].is_object(), "{reply}");
    assert_eq!(served.fetches(), 1);
}

/// A templated endpoint: the realm in the token's `iss` (a named group of issuer_regex, a
/// plain list of realms) picks the key set; each realm's keys verify only its tokens.
#[actix_web::test]
async fn a_templated_endpoint_takes_the_key_set_of_the_tokens_realm() {
    let fetched: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = fetched.clone();
    let server = HttpServer::new(move || {
        let log = log.clone();
        App::new().route(
            "/{realm}/jwks",
            web::get().to(move |realm: web::Path<String>| {
                let log = log.clone();
                async move {
                    log.lock().unwrap().push(realm.clone());
                    let keys = match realm.as_str() {
                        "acme" => key_set(&[RSA_JWK]),
                        _ => key_set(&[EC_JWK]),
                    };
                    HttpResponse::Ok().content_type("application/json").body(keys)
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    let node = TestNode::start_with(|s| {
        s.client.token.hmac_secret_key = String::new();
        s.client.token.jwks_public_endpoint = format!("http://{addr}/{{{{realm}}}}/jwks");
        s.client.token.issuer_regex = r"^https://id\.example\.com/realms/(?P<realm>acme|globex)$".into();
    })
    .await;
    let with_iss = |alg: Algorithm, kid: &str, pem: &str, realm: &str| {
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        };
        let header = Header { kid: Some(kid.into()), ..Header::new(alg) };
        let claims = json!({"sub": "u", "exp": now() + 60, "iss": format!("https://id.example.com/realms/{realm}")});
        encode(&header, &claims, &key).unwrap()
    };
    connect(&node, &with_iss(Algorithm::RS256, "rsa-1", RSA_PRIVATE, "acme")).await.expect("acme's key");
    connect(&node, &with_iss(Algorithm::ES256, "ec-1", EC_PRIVATE, "globex")).await.expect("globex's key");
    assert_eq!(*fetched.lock().unwrap(), ["acme", "globex"]);
    // globex's key does not verify an acme token, and a realm outside the list is refused
    // before anything is fetched.
    assert_eq!(connect(&node, &with_iss(Algorithm::ES256, "ec-1", EC_PRIVATE, "acme")).await, Err(Some(3500)));
    assert_eq!(connect(&node, &with_iss(Algorithm::RS256, "rsa-1", RSA_PRIVATE, "evil")).await, Err(Some(3500)));
    assert_eq!(fetched.lock().unwrap().iter().filter(|realm| *realm == "evil").count(), 0);
}

const P521_PRIVATE: &str = include_str!("../../src/auth/testdata/ec_p521_private.pem");
const P521_PUBLIC: &str = include_str!("../../src/auth/testdata/ec_p521_public.pem");
const P521_JWK: &str = include_str!("../../src/auth/testdata/ec_p521_public.jwk.json");

/// An ES512 (ECDSA P-521 + SHA-512) token signed with the test P-521 key.
fn es512(kid: Option<&str>, claims: Value) -> String {
    use base64::Engine as _;
    use p521::ecdsa::signature::Signer as _;
    use p521::pkcs8::DecodePrivateKey as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut header = json!({"alg": "ES512", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    let message = format!("{}.{}", b64.encode(header.to_string()), b64.encode(claims.to_string()));
    let secret = p521::SecretKey::from_pkcs8_pem(P521_PRIVATE).unwrap();
    let signature: p521::ecdsa::Signature =
        p521::ecdsa::SigningKey::from_bytes(&secret.to_bytes()).unwrap().sign(message.as_bytes());
    format!("{message}.{}", b64.encode(signature.to_bytes()))
}

/// ES512, as Centrifugo accepts it: by a JWKS key of curve P-521 (by kid), and by a P-521
/// `ecdsa_public_key` for connection and subscription tokens; a P-256 key refuses it (3500 for
/// a connection, 103 for a subscription); expired, it is expired (109).
#[actix_web::test]
async fn es512_tokens_verify_with_p521_jwks_and_pem_keys() {
    let served = Served::default();
    served.set(200, key_set(&[EC_JWK, P521_JWK]));
    let url = jwks_server(served.clone());
    let node = TestNode::start_with(|s| {
        s.client.token.hmac_secret_key = String::new();
        s.client.token.jwks_public_endpoint = url;
    })
    .await;
    let claims = json!({"sub": "hana", "exp": now() + 60});
    let reply = connect(&node, &es512(Some("ec-p521-1"), claims.clone())).await.expect("connected");
    assert!(reply["connect"]["client"].is_string(), "{reply}");
    assert_eq!(connect(&node, &es512(Some("ec-1"), claims.clone())).await, Err(Some(3500)), "a P-256 key");
    assert_eq!(connect(&node, &es512(None, claims.clone())).await, Err(Some(3500)), "no kid");
    let expired = json!({"sub": "hana", "exp": now() - 1});
    let reply = connect(&node, &es512(Some("ec-p521-1"), expired)).await.expect("a reply");
    assert_eq!(reply["error"]["code"], 109, "expired: {reply}");

    let node = TestNode::start_with(|s| {
        s.client.token.ecdsa_public_key = P521_PUBLIC.into();
        s.client.subscription_token.enabled = true;
        s.client.subscription_token.token.ecdsa_public_key =
            include_str!("../../src/auth/testdata/ec_public.pem").into();
    })
    .await;
    let mut client = node.socket().await;
    let reply = client.request(1, "connect", json!({"token": es512(None, claims)})).await;
    assert!(reply["connect"]["client"].is_string(), "{reply}");
    let sub_token = es512(None, json!({"sub": "hana", "channel": "$room"}));
    let reply = client.request(2, "subscribe", json!({"channel": "$room", "token": sub_token})).await;
    assert_eq!(reply["error"]["code"], 103, "ES512 with a P-256 subscription key: {reply}");
}
