//! The admin web UI's files, served at `{admin.handler_prefix}/`.
//!
//! The UI is built from web/admin (vite) into src/admin/ui/dist, which is committed and embedded
//! here, so `cargo build` alone gives a working UI; web/admin/check.sh rebuilds it and fails when
//! the committed files differ from their sources. The page is `{prefix}/` (the pages are hash
//! routes, `#/nodes` and so on) and its files are under `{prefix}/assets/`; it talks only to the
//! admin endpoints next to it (relative URLs, so any prefix works).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{guard, web, HttpRequest, HttpResponse};

/// One embedded file: its path under dist/, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    etag: &'static str,
}

macro_rules! asset {
    ($path:literal, $content_type:literal) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("ui/dist/", $path)),
            etag: {
                const BODY: &[u8] = include_bytes!(concat!("ui/dist/", $path));
                const HEX: [u8; 18] = etag(BODY);
                match std::str::from_utf8(&HEX) {
                    Ok(s) => s,
                    Err(_) => panic!("etag is ASCII"),
                }
            },
        }
    };
}

/// Every file of src/admin/ui/dist (a unit test checks the list against the directory).
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("assets/index.js", "text/javascript; charset=utf-8"),
    asset!("assets/index.css", "text/css; charset=utf-8"),
];

/// The page may load its own files and call its own node, nothing else; no inline script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A strong ETag (`"` + 16 hex digits of FNV-1a 64 + `"`), computed at compile time.
const fn etag(bytes: &[u8]) -> [u8; 18] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'"'; 18];
    let mut j = 0;
    while j < 16 {
        out[1 + j] = DIGITS[((hash >> (60 - 4 * j)) & 0xf) as usize];
        j += 1;
    }
    out
}

/// Mounts the web UI (its built files are embedded in the binary).
pub fn configure(cfg: &mut web::ServiceConfig, prefix: &str) {
    let prefix = prefix.trim_end_matches('/');
    let get = || web::route().guard(guard::Any(guard::Get()).or(guard::Head()));
    if !prefix.is_empty() {
        // `{prefix}` without the slash: the page's relative URLs need it.
        let to = format!("{prefix}/");
        cfg.route(
            prefix,
            get().to(move || {
                let to = to.clone();
                async move { HttpResponse::PermanentRedirect().insert_header((header::LOCATION, to)).finish() }
            }),
        );
    }
    cfg.route(&format!("{prefix}/"), get().to(|req: HttpRequest| async move { serve(&req, "index.html") }));
    cfg.route(
        &format!("{prefix}/assets/{{file}}"),
        get().to(|req: HttpRequest, file: web::Path<String>| async move { serve(&req, &format!("assets/{file}")) }),
    );
}

/// The embedded file at `path`: 200 (or 304 for a matching `If-None-Match`), 404 if unknown.
/// Files have fixed names, so browsers revalidate them (`no-cache` + ETag) rather than keep them.
fn serve(req: &HttpRequest, path: &str) -> HttpResponse {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body("not found\n");
    };
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag || t.trim() == "*"));
    let mut res = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((header::ETAG, HeaderValue::from_static(asset.etag)))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")));
    if asset.path == "index.html" {
        res.insert_header((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
            .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
            .insert_header((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")));
    }
    if fresh {
        return res.finish();
    }
    res.content_type(asset.content_type).body(asset.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as atest, App};

    fn dist_files(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dist_files(&path, base, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_built_file_is_embedded() {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/admin/ui/dist");
        let mut on_disk = Vec::new();
        dist_files(&base, &base, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "src/admin/ui/dist and ASSETS in src/admin/ui.rs must list the same files");
    }

    #[actix_web::test]
    async fn serves_the_page_its_assets_and_nothing_else() {
        let app = atest::init_service(App::new().configure(|c| configure(c, "/gyre/"))).await;

        let res = atest::call_service(&app, atest::TestRequest::get().uri("/gyre").to_request()).await;
        assert_eq!(res.status(), 308);
        assert_eq!(res.headers().get(header::LOCATION).unwrap(), "/gyre/");

        let res = atest::call_service(&app, atest::TestRequest::get().uri("/gyre/").to_request()).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers().get(header::CONTENT_TYPE).unwrap(), "text/html; charset=utf-8");
        assert_eq!(res.headers().get(header::CACHE_CONTROL).unwrap(), "no-cache");
        assert!(res.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let etag = res.headers().get(header::ETAG).unwrap().clone();
        let body = atest::read_body(res).await;
        assert!(std::str::from_utf8(&body).unwrap().contains("./assets/index.js"));

        let res = atest::call_service(
            &app,
            atest::TestRequest::get().uri("/gyre/").insert_header((header::IF_NONE_MATCH, etag)).to_request(),
        )
        .await;
        assert_eq!(res.status(), 304);

        for (path, ct) in [
            ("/gyre/assets/index.js", "text/javascript; charset=utf-8"),
            ("/gyre/assets/index.css", "text/css; charset=utf-8"),
        ] {
            let res = atest::call_service(&app, atest::TestRequest::get().uri(path).to_request()).await;
            assert_eq!(res.status(), 200, "{path}");
            assert_eq!(res.headers().get(header::CONTENT_TYPE).unwrap(), ct, "{path}");
            assert!(!atest::read_body(res).await.is_empty());
        }

        for path in ["/gyre/assets/nope.js", "/gyre/assets/..%2Findex.html", "/gyre/index.html"] {
            let res = atest::call_service(&app, atest::TestRequest::get().uri(path).to_request()).await;
            assert_eq!(res.status(), 404, "{path}");
        }
        let res = atest::call_service(&app, atest::TestRequest::post().uri("/gyre/").to_request()).await;
        assert_eq!(res.status(), 404);
    }

    #[test]
    fn etags_differ_per_file() {
        let tags: std::collections::HashSet<_> = ASSETS.iter().map(|a| a.etag).collect();
        assert_eq!(tags.len(), ASSETS.len());
        assert!(ASSETS.iter().all(|a| a.etag.len() == 18 && a.etag.starts_with('"') && a.etag.ends_with('"')));
    }
}
