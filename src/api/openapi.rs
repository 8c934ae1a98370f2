//! The OpenAPI 3.1 document of the server HTTP API (`docs/openapi.json`, built into the binary),
//! served when `swagger.enabled`: `{swagger.handler_prefix}/openapi.json`, the same document at
//! Centrifugo's `{prefix}/swagger.json`, and at `{prefix}/` a small self-contained page listing
//! the methods (no Swagger UI: nothing is fetched from elsewhere).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::Value;

/// The document as written; its paths use the default prefix `/api`.
const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// The prefix the document's paths are written with.
const DOCUMENT_PREFIX: &str = "/api";

/// What one node serves: the document for its API prefix and version, and the page.
struct Served {
    json: String,
    page: String,
}

/// Mounts the document under `swagger_prefix` (trailing `/` trimmed; empty = the root, as in
/// Centrifugo), its paths rewritten for `api_prefix` (`http_api.handler_prefix`).
pub fn configure(cfg: &mut web::ServiceConfig, swagger_prefix: &str, api_prefix: &str) {
    let prefix = swagger_prefix.trim_end_matches('/').to_owned();
    let document = document(api_prefix);
    let json = serde_json::to_string_pretty(&document).unwrap_or_else(|_| DOCUMENT.to_owned());
    let page = page(&document);
    let served = web::Data::new(Served { json, page });
    for name in ["openapi.json", "swagger.json"] {
        cfg.service(
            web::resource(format!("{prefix}/{name}"))
                .app_data(served.clone())
                .route(web::get().to(serve_json))
                .route(web::head().to(serve_json)),
        );
    }
    for path in [format!("{prefix}/"), format!("{prefix}/index.html")] {
        cfg.service(
            web::resource(path)
                .app_data(served.clone())
                .route(web::get().to(serve_page))
                .route(web::head().to(serve_page)),
        );
    }
    if !prefix.is_empty() {
        // `/swagger` → `/swagger/`, as Go's mux does for a subtree, so the page's relative links work.
        let target = format!("{prefix}/");
        cfg.route(
            &prefix,
            web::route().to(move || {
                let target = target.clone();
                async move { HttpResponse::MovedPermanently().insert_header((header::LOCATION, target)).finish() }
            }),
        );
    }
}

async fn serve_json(served: web::Data<Served>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(served.json.clone())
}

async fn serve_page(served: web::Data<Served>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(served.page.clone())
}

/// The document for a node: paths under `api_prefix`, `info.version` this build's.
fn document(api_prefix: &str) -> Value {
    let mut document: Value = match serde_json::from_str(DOCUMENT) {
        Ok(document) => document,
        Err(error) => {
            // Only a broken build could get here (a unit test parses the document).
            tracing::error!(%error, "the built-in OpenAPI document is not JSON; serving it as written");
            return Value::String(DOCUMENT.to_owned());
        }
    };
    if let Some(version) = document.pointer_mut("/info/version") {
        *version = Value::String(crate::node::VERSION.to_owned());
    }
    let api_prefix = api_prefix.trim_end_matches('/');
    if api_prefix != DOCUMENT_PREFIX {
        if let Some(Value::Object(paths)) = document.get_mut("paths") {
            let rewritten = std::mem::take(paths)
                .into_iter()
                .map(|(path, item)| {
                    let rest = path.strip_prefix(DOCUMENT_PREFIX).unwrap_or(&path);
                    let path = format!("{api_prefix}{rest}");
                    (if path.is_empty() { "/".to_owned() } else { path }, item)
                })
                .collect();
            *paths = rewritten;
        }
    }
    document
}

/// A page listing the document's operations, with links to the document.
fn page(document: &Value) -> String {
    let text = |pointer: &str| document.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
    let mut rows = String::new();
    if let Some(paths) = document.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            let Some(operations) = item.as_object() else { continue };
            for (method, operation) in operations {
                let field = |name: &str| operation.get(name).and_then(Value::as_str).unwrap_or_default();
                let tags: Vec<&str> = operation
                    .get("tags")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                rows.push_str(&format!(
                    "<tr><td><code>{} {}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                    escape(&method.to_uppercase()),
                    escape(path),
                    escape(&tags.join(", ")),
                    escape(field("summary")),
                    escape(field("description")),
                ));
            }
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}</style>\n\
         </head>\n<body>\n<h1>{title} {version}</h1>\n\
         <p>OpenAPI document: <a href=\"openapi.json\">openapi.json</a> (also at <a href=\"swagger.json\">swagger.json</a>); \
         load it into any OpenAPI tool. Every call is <code>POST</code> with a JSON body and the API key in \
         <code>X-API-Key</code>.</p>\n\
         <table>\n<tr><th>Call</th><th>Tag</th><th>Summary</th><th>Notes</th></tr>\n{rows}</table>\n</body>\n</html>\n",
        title = escape(text("/info/title")),
        version = escape(text("/info/version")),
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn paths(document: &Value) -> BTreeSet<String> {
        document["paths"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default()
    }

    #[test]
    fn the_document_has_every_route_the_api_serves_and_no_other() {
        let document: Value = serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON");
        assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let mut served: BTreeSet<String> =
            super::super::methods::KNOWN.iter().chain(&["batch"]).map(|m| format!("/api/{m}")).collect();
        served.insert("/api".to_owned());
        assert_eq!(paths(&document), served);
        for path in &served {
            let operations = document["paths"][path].as_object().expect("path item");
            assert_eq!(operations.keys().collect::<Vec<_>>(), ["post"], "{path}");
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        out.push(target);
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let document: Value = serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON");
        let mut targets = Vec::new();
        refs(&document, &mut targets);
        assert!(!targets.is_empty());
        for target in targets {
            let pointer = target.strip_prefix('#').expect("local reference");
            assert!(document.pointer(pointer).is_some(), "{target} does not resolve");
        }
    }

    #[test]
    fn the_served_document_follows_the_api_prefix() {
        let custom = document("/v1/api/");
        assert!(paths(&custom).contains("/v1/api/publish"));
        assert!(paths(&custom).contains("/v1/api"));
        assert_eq!(custom["info"]["version"], crate::node::VERSION);
        let root = document("");
        assert!(paths(&root).contains("/publish"));
        assert!(paths(&root).contains("/"));
        assert_eq!(paths(&document("/api")), paths(&serde_json::from_str(DOCUMENT).expect("JSON")));
    }

    #[test]
    fn the_page_lists_the_methods_escaped() {
        let page = page(&document("/a<b"));
        assert!(page.contains("<code>POST /a&lt;b/publish</code>"), "{page}");
        assert!(!page.contains("http://") && !page.contains("https://"), "the page loads nothing from elsewhere");
    }
}
