//! The admin web UI's files, served at `{admin.handler_prefix}/`.

use actix_web::web;

/// Mounts the web UI (its built files are embedded in the binary).
pub fn configure(_cfg: &mut web::ServiceConfig, _prefix: &str) {}
