//! The command line (protocol-server.md §2.6, §4).
//!
//! `gyre` (or `gyre serve`) runs the node; `genconfig`, `checkconfig`, `gentoken`,
//! `gensubtoken`, `checktoken`, `checksubtoken` and `version` are Centrifugo's helper commands.
//! Each command computes its output first and the dispatcher prints it, so tests check exact
//! text without a process. Secrets (keys, generated config contents) are never printed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};

use gyre::config::generate::{self, GenerateError};
use gyre::config::{self, duration, ConfigError, Loaded, Override, Settings};

/// Environment variables, passed explicitly so tests never depend on the process environment.
type Env = std::collections::HashMap<String, String>;

/// The default config file, as in Centrifugo.
const DEFAULT_CONFIG: &str = "config.json";

/// gyre: a real-time messaging node compatible with Centrifugo v6.
#[derive(Debug, Parser)]
#[command(name = "gyre", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no sub-command, gyre runs the node with these flags.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node (what plain `gyre` does).
    Serve(Box<ServeArgs>),
    /// Write a new config with a random HMAC secret and API key (never overwrites).
    Genconfig(GenconfigArgs),
    /// Validate a config file.
    Checkconfig(CheckconfigArgs),
    /// Mint an HS256 connection token.
    Gentoken(GentokenArgs),
    /// Mint an HS256 subscription token.
    Gensubtoken(GensubtokenArgs),
    /// Verify a connection token.
    Checktoken(ChecktokenArgs),
    /// Verify a subscription token.
    Checksubtoken(ChecktokenArgs),
    /// Print the version.
    Version,
}

/// Flags of the node. Dotted names are config keys (Centrifugo v6); the v5 spellings are
/// aliases. Flags beat environment variables, which beat the file.
#[derive(Debug, Clone, Default, Args)]
struct ServeArgs {
    /// Config file (JSON, YAML or TOML). Without it, ./config.json is used, and generated first
    /// if it does not exist.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Port to listen on.
    #[arg(short = 'p', long = "http_server.port", visible_alias = "port", value_name = "PORT")]
    port: Option<u16>,
    /// Address to bind (empty: all interfaces).
    #[arg(short = 'a', long = "http_server.address", visible_alias = "address", value_name = "ADDRESS")]
    address: Option<String>,
    /// Address of the internal port.
    #[arg(long = "http_server.internal_address", visible_alias = "internal_address", value_name = "ADDRESS")]
    internal_address: Option<String>,
    /// Separate port for the API, /health and /metrics.
    #[arg(long = "http_server.internal_port", visible_alias = "internal_port", value_name = "PORT")]
    internal_port: Option<String>,
    /// Log level: none, trace, debug, info, warn, error.
    #[arg(long = "log.level", visible_alias = "log_level", value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log file (default: stdout).
    #[arg(long = "log.file", visible_alias = "log_file", value_name = "FILE")]
    log_file: Option<String>,
    /// Engine type (memory).
    #[arg(long = "engine.type", value_name = "TYPE")]
    engine_type: Option<String>,
    /// Use a separate broker.
    #[arg(long = "broker.enabled", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    broker_enabled: Option<String>,
    /// Broker type (memory, nats).
    #[arg(long = "broker.type", value_name = "TYPE")]
    broker_type: Option<String>,
    /// Serve /health.
    #[arg(long = "health.enabled", visible_alias = "health", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    health: Option<String>,
    /// Serve /metrics.
    #[arg(long = "prometheus.enabled", visible_alias = "prometheus", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    prometheus: Option<String>,
    /// Serve the OpenAPI document of the server HTTP API (`/swagger/openapi.json`).
    #[arg(long = "swagger.enabled", visible_alias = "swagger", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    swagger: Option<String>,
    /// Development only: clients connect without tokens and get every permission.
    #[arg(long = "client.insecure", visible_alias = "client_insecure", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    client_insecure: Option<String>,
    /// Development only: the server API needs no key.
    #[arg(long = "http_api.insecure", visible_alias = "api_insecure", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    api_insecure: Option<String>,
    /// Serve the API on the main port even with an internal port.
    #[arg(long = "http_api.external", visible_alias = "api_external", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    api_external: Option<String>,
}

impl ServeArgs {
    /// The flags that were given, as config overrides.
    fn overrides(&self) -> Vec<Override> {
        let flags: [(&str, Option<String>); 15] = [
            ("http_server.port", self.port.map(|p| p.to_string())),
            ("http_server.address", self.address.clone()),
            ("http_server.internal_address", self.internal_address.clone()),
            ("http_server.internal_port", self.internal_port.clone()),
            ("log.level", self.log_level.clone()),
            ("log.file", self.log_file.clone()),
            ("engine.type", self.engine_type.clone()),
            ("broker.enabled", self.broker_enabled.clone()),
            ("broker.type", self.broker_type.clone()),
            ("health.enabled", self.health.clone()),
            ("prometheus.enabled", self.prometheus.clone()),
            ("swagger.enabled", self.swagger.clone()),
            ("client.insecure", self.client_insecure.clone()),
            ("http_api.insecure", self.api_insecure.clone()),
            ("http_api.external", self.api_external.clone()),
        ];
        flags.into_iter().filter_map(|(key, value)| Some(Override::flag(key, key, value?))).collect()
    }
}

#[derive(Debug, Args)]
struct GenconfigArgs {
    /// File to create; the extension picks the format (json, yaml, yml, toml).
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
}

#[derive(Debug, Args)]
struct CheckconfigArgs {
    /// Config file to check.
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Also fail on unknown keys.
    #[arg(short = 's', long = "strict")]
    strict: bool,
}

#[derive(Debug, Args)]
struct GentokenArgs {
    /// Config file (default config.json; without it, only the environment is used).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// User id (`sub`); empty for an anonymous token.
    #[arg(short = 'u', long = "user", value_name = "USER", default_value = "")]
    user: String,
    /// Lifetime in seconds; 0 or less: no `exp` claim.
    #[arg(short = 't', long = "ttl", value_name = "SECONDS", default_value_t = 604_800, allow_negative_numbers = true)]
    ttl: i64,
    /// Print only the token.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
}

#[derive(Debug, Args)]
struct GensubtokenArgs {
    #[command(flatten)]
    token: GentokenArgs,
    /// Channel the token grants.
    #[arg(short = 's', long = "channel", value_name = "CHANNEL", default_value = "")]
    channel: String,
}

#[derive(Debug, Args)]
struct ChecktokenArgs {
    /// Config file (default config.json; without it, only the environment is used).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The token.
    #[arg(value_name = "TOKEN")]
    token: Option<String>,
}

/// What a helper command prints.
#[derive(Debug, Default, PartialEq, Eq)]
struct Output {
    stdout: String,
    stderr: Vec<String>,
}

impl Output {
    fn stdout(text: String) -> Self {
        Self { stdout: text, stderr: Vec::new() }
    }
}

/// A failed command: the whole line for stderr.
#[derive(Debug, PartialEq, Eq)]
struct Failure(String);

impl Failure {
    fn error(message: impl std::fmt::Display) -> Self {
        Self(format!("error: {message}"))
    }
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => return serve(cli.serve),
        Some(Command::Serve(args)) => return serve(*args),
        Some(Command::Genconfig(args)) => genconfig(&args),
        Some(Command::Checkconfig(args)) => checkconfig(&args, &config::process_env()),
        Some(Command::Gentoken(args)) => gentoken(&args, &config::process_env(), now()),
        Some(Command::Gensubtoken(args)) => gensubtoken(&args, &config::process_env(), now()),
        Some(Command::Checktoken(args)) => checktoken(&args, &config::process_env(), now(), false),
        Some(Command::Checksubtoken(args)) => checktoken(&args, &config::process_env(), now(), true),
        Some(Command::Version) => Ok(Output::stdout(format!("{}\n", version_line()))),
    };
    match result {
        Ok(output) => {
            use std::io::Write as _;
            for line in output.stderr {
                eprintln!("{line}");
            }
            let mut stdout = std::io::stdout().lock();
            let written = stdout.write_all(output.stdout.as_bytes()).and_then(|()| stdout.flush());
            if written.is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(Failure(line)) => {
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}

fn version_line() -> String {
    format!("gyre v{} (Centrifugo v6 compatible)", env!("CARGO_PKG_VERSION"))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// serve

/// Picks the config file for `serve`: the given one (which must exist), else `<dir>/config.json`,
/// generated first when missing. Returns the path and notes to log once logging is up.
fn resolve_serve_config(explicit: Option<&Path>, dir: &Path) -> Result<(PathBuf, Vec<String>), Failure> {
    if let Some(path) = explicit {
        if !path.is_file() {
            let shown = path.display();
            return Err(Failure::error(format!(
                "config file {shown} not found; create one with: gyre genconfig -c {shown}"
            )));
        }
        return Ok((path.to_owned(), Vec::new()));
    }
    let path = dir.join(DEFAULT_CONFIG);
    if path.is_file() {
        return Ok((path, Vec::new()));
    }
    match generate::genconfig(&path) {
        Ok(()) => Ok((
            path.clone(),
            vec![format!(
                "no config file given and {} did not exist: generated it with a new HMAC secret \
                 (client.token.hmac_secret_key) and API key (http_api.key); the keys are in that file",
                path.display()
            )],
        )),
        // Created concurrently by someone else: use it.
        Err(GenerateError::Exists(_)) => Ok((path, Vec::new())),
        Err(e) => Err(Failure::error(e)),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let (path, notes) = match resolve_serve_config(args.config.as_deref(), Path::new(".")) {
        Ok(found) => found,
        Err(Failure(line)) => {
            eprintln!("{line}");
            return ExitCode::FAILURE;
        }
    };
    let loaded = match config::load_with(Some(&path), &config::process_env(), &args.overrides()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = gyre::telemetry::init(&loaded.settings.log) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    for note in &notes {
        tracing::info!("{note}");
    }
    tracing::info!(config = %path.display(), version = env!("CARGO_PKG_VERSION"), "config loaded");
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    match gyre::app::run(loaded.settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "node stopped with an error");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// genconfig, checkconfig

fn genconfig(args: &GenconfigArgs) -> Result<Output, Failure> {
    generate::genconfig(&args.config).map_err(Failure::error)?;
    Ok(Output::stdout(format!("generated {}\n", args.config.display())))
}

fn checkconfig(args: &CheckconfigArgs, env: &Env) -> Result<Output, Failure> {
    if !args.config.is_file() {
        return Err(Failure("config file not found".to_owned()));
    }
    let loaded = config::load_with_env(Some(&args.config), env).map_err(|e| {
        let reason = match e {
            ConfigError::Invalid(reason) => reason,
            other => other.to_string(),
        };
        Failure(format!("error validating config: {reason}"))
    })?;
    gyre::auth::TokenVerifier::from_settings(&loaded.settings)
        .map_err(|e| Failure(format!("error validating config: {e}")))?;
    if args.strict && !loaded.unknown_keys.is_empty() {
        return Err(Failure(format!("unknown keys in config: {}", loaded.unknown_keys.join(", "))));
    }
    Ok(Output { stdout: String::new(), stderr: loaded.warnings.iter().map(|w| format!("warning: {w}")).collect() })
}

// ---------------------------------------------------------------------------------------------
// tokens

/// Settings for a helper command: the given file (which must exist), else ./config.json if it
/// exists, else the environment alone.
fn tool_settings(explicit: Option<&Path>, env: &Env) -> Result<Settings, Failure> {
    let loaded: Result<Loaded, ConfigError> = match explicit {
        Some(path) if !path.is_file() => {
            return Err(Failure::error(format!("config file {} not found", path.display())));
        }
        Some(path) => config::load_with_env(Some(path), env),
        None => {
            let default = Path::new(DEFAULT_CONFIG);
            config::load_with_env(default.is_file().then_some(default), env)
        }
    };
    loaded.map(|l| l.settings).map_err(Failure::error)
}

/// The HMAC key and user id claim used to sign, or why there is none.
fn signing_keys(settings: &Settings, subscription: bool) -> Result<&config::TokenSettings, Failure> {
    let (keys, path, command) = if subscription && settings.client.subscription_token.enabled {
        (&settings.client.subscription_token.token, "client.subscription_token.hmac_secret_key", "gensubtoken")
    } else if subscription {
        (&settings.client.token, "client.token.hmac_secret_key", "gensubtoken")
    } else {
        (&settings.client.token, "client.token.hmac_secret_key", "gentoken")
    };
    if keys.hmac_secret_key.is_empty() {
        return Err(Failure::error(format!(
            "{command} only supports generating HMAC-signed tokens (HS256), and {path} is not set; set it in the \
             config file or the environment, or mint tokens with your own RSA/ECDSA private key"
        )));
    }
    Ok(keys)
}

/// Signs an HS256 token with Centrifugo's claim set: `sub` (when not empty), `iat`, `exp` (only
/// when `ttl > 0`), `channel` (subscription tokens), and the user under `user_id_claim`.
fn sign(
    keys: &config::TokenSettings,
    user: &str,
    ttl: i64,
    channel: Option<&str>,
    now: i64,
) -> Result<String, Failure> {
    let mut claims = Map::new();
    if !user.is_empty() {
        claims.insert("sub".into(), Value::from(user));
    }
    claims.insert("iat".into(), Value::from(now));
    if ttl > 0 {
        let exp = now.checked_add(ttl).ok_or_else(|| Failure::error("the TTL is too large"))?;
        claims.insert("exp".into(), Value::from(exp));
    }
    if let Some(channel) = channel {
        claims.insert("channel".into(), Value::from(channel));
    }
    if !keys.user_id_claim.is_empty() {
        claims.insert(keys.user_id_claim.clone(), Value::from(user));
    }
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let key = jsonwebtoken::EncodingKey::from_secret(keys.hmac_secret_key.as_bytes());
    jsonwebtoken::encode(&header, &Value::Object(claims), &key)
        .map_err(|e| Failure::error(format!("cannot sign the token: {e}")))
}

/// `user "alice"` / `anonymous user`, and `with expiration TTL 168h0m0s` / `without expiration`.
fn describe(user: &str, ttl: i64) -> (String, String) {
    let who = if user.is_empty() { "anonymous user".to_owned() } else { format!("user {user:?}") };
    let expiration = if ttl >= 0 {
        format!("with expiration TTL {}", duration::format(Duration::from_secs(ttl.unsigned_abs())))
    } else {
        "without expiration".to_owned()
    };
    (who, expiration)
}

fn gentoken(args: &GentokenArgs, env: &Env, now: i64) -> Result<Output, Failure> {
    let settings = tool_settings(args.config.as_deref(), env)?;
    let keys = signing_keys(&settings, false)?;
    let token = sign(keys, &args.user, args.ttl, None, now)?;
    if args.quiet {
        return Ok(Output::stdout(token));
    }
    let (who, expiration) = describe(&args.user, args.ttl);
    Ok(Output::stdout(format!("HMAC SHA-256 JWT for {who} {expiration}:\n{token}\n")))
}

fn gensubtoken(args: &GensubtokenArgs, env: &Env, now: i64) -> Result<Output, Failure> {
    let settings = tool_settings(args.token.config.as_deref(), env)?;
    if args.channel.is_empty() {
        return Err(Failure::error("channel is required (-s CHANNEL)"));
    }
    let keys = signing_keys(&settings, true)?;
    let token = sign(keys, &args.token.user, args.token.ttl, Some(&args.channel), now)?;
    if args.token.quiet {
        return Ok(Output::stdout(token));
    }
    let (who, expiration) = describe(&args.token.user, args.token.ttl);
    Ok(Output::stdout(format!("HMAC SHA-256 JWT for {who} and channel {:?} {expiration}:\n{token}\n", args.channel)))
}

/// The `alg` header and the raw claims JSON of a token, without verifying it.
fn inspect(token: &str) -> Result<(String, String), Failure> {
    let malformed = || Failure::error("token is malformed: expected a JWT (three base64url parts separated by dots)");
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [header, payload, _signature] = parts.as_slice() else { return Err(malformed()) };
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| malformed())
    };
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|_| malformed())?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("").to_owned();
    let claims = String::from_utf8(decode(payload)?).map_err(|_| malformed())?;
    Ok((alg, claims))
}

fn checktoken(args: &ChecktokenArgs, env: &Env, now: i64, subscription: bool) -> Result<Output, Failure> {
    let settings = tool_settings(args.config.as_deref(), env)?;
    let verifier = gyre::auth::TokenVerifier::from_settings(&settings).map_err(Failure::error)?;
    let command = if subscription { "checksubtoken" } else { "checktoken" };
    let Some(token) = args.token.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Err(Failure::error(format!("provide token to check [gyre {command} <TOKEN>]")));
    };
    let (alg, claims) = inspect(token)?;
    let failed = |e: gyre::auth::TokenError| {
        Failure::error(format!("token with algorithm {alg} and claims {claims} has error: {e}"))
    };
    let token = token.trim();
    if let Some(jwks) = verifier.jwks_to_refresh(token, subscription) {
        // The key comes from the configured JWKS: fetch it first (a one-off runtime for the
        // HTTP client).
        actix_rt::System::new()
            .block_on(async move { jwks.refresh().await })
            .map_err(|error| Failure::error(format!("{error}; check client.token.jwks_public_endpoint")))?;
    }
    if subscription {
        let verified = verifier.verify_subscription(token, now).map_err(failed)?;
        let who =
            if verified.user.is_empty() { "anonymous user".to_owned() } else { format!("user {:?}", verified.user) };
        Ok(Output::stdout(format!(
            "valid subscription token for {who} and channel {:?}\npayload: {claims}\n",
            verified.channel
        )))
    } else {
        let verified = verifier.verify_connection(token, now).map_err(failed)?;
        let who =
            if verified.user.is_empty() { "anonymous user".to_owned() } else { format!("user {}", verified.user) };
        Ok(Output::stdout(format!("valid token for {who}\npayload: {claims}\n")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("gyre").chain(args.iter().copied())).expect("parses")
    }

    fn write_config(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("config.json");
        std::fs::write(&path, text).expect("write");
        path
    }

    fn token_args(config: &Path, user: &str, ttl: i64, quiet: bool) -> GentokenArgs {
        GentokenArgs { config: Some(config.to_owned()), user: user.into(), ttl, quiet }
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn plain_gyre_and_root_flags_run_serve() {
        let cli = parse(&[]);
        assert!(cli.command.is_none());
        let cli = parse(&["--config", "x.yaml", "-p", "9000"]);
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.config, Some(PathBuf::from("x.yaml")));
        assert_eq!(cli.serve.port, Some(9000));
    }

    #[test]
    fn v5_and_v6_flag_spellings_become_overrides() {
        let Some(Command::Serve(args)) = parse(&[
            "serve",
            "--port",
            "0",
            "--address",
            "127.0.0.1",
            "--log_level",
            "debug",
            "--health",
            "--prometheus.enabled=false",
            "--swagger",
            "--client.insecure",
        ])
        .command
        else {
            panic!("serve")
        };
        let overrides = args.overrides();
        let get = |key: &str| overrides.iter().find(|o| o.key == key).map(|o| o.value.as_str());
        assert_eq!(get("http_server.port"), Some("0"));
        assert_eq!(get("http_server.address"), Some("127.0.0.1"));
        assert_eq!(get("log.level"), Some("debug"));
        assert_eq!(get("health.enabled"), Some("true"));
        assert_eq!(get("prometheus.enabled"), Some("false"));
        assert_eq!(get("swagger.enabled"), Some("true"));
        assert_eq!(get("client.insecure"), Some("true"));
        assert_eq!(get("http_api.insecure"), None);
        let Some(Command::Serve(args)) =
            parse(&["serve", "--http_server.port", "9001", "-a", "::1", "--log.level", "warn"]).command
        else {
            panic!("serve")
        };
        assert_eq!(args.port, Some(9001));
        assert_eq!(args.address.as_deref(), Some("::1"));
        assert_eq!(args.log_level.as_deref(), Some("warn"));
    }

    #[test]
    fn flags_beat_env_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_config(&dir, r#"{"http_server": {"port": 8001}}"#);
        let Some(Command::Serve(args)) = parse(&["serve", "-p", "8003"]).command else { panic!("serve") };
        let env: HashMap<String, String> = [("GYRE_HTTP_SERVER__PORT".to_owned(), "8002".to_owned())].into();
        let loaded = config::load_with(Some(&path), &env, &args.overrides()).expect("load");
        assert_eq!(loaded.settings.http_server.port, 8003);
        let Some(Command::Serve(args)) = parse(&["serve", "--health.enabled=maybe"]).command else { panic!("serve") };
        let err = config::load_with(Some(&path), &env, &args.overrides()).unwrap_err().to_string();
        assert!(err.contains("flag --health.enabled: expected true or false"), "{err}");
    }

    #[test]
    fn serve_config_resolution() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.yaml");
        let Failure(line) = resolve_serve_config(Some(&missing), dir.path()).unwrap_err();
        assert_eq!(
            line,
            format!("error: config file {0} not found; create one with: gyre genconfig -c {0}", missing.display())
        );

        let (path, notes) = resolve_serve_config(None, dir.path()).expect("generates config.json");
        assert_eq!(path, dir.path().join("config.json"));
        assert_eq!(notes.len(), 1);
        let text = std::fs::read_to_string(&path).expect("read");
        let generated: Value = serde_json::from_str(&text).expect("json");
        let secret = generated["client"]["token"]["hmac_secret_key"].as_str().expect("secret");
        assert!(!notes[0].contains(secret), "the note never shows keys");

        let (again, notes) = resolve_serve_config(None, dir.path()).expect("reuses config.json");
        assert_eq!(again, path);
        assert!(notes.is_empty());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text, "not regenerated");

        let (explicit, _) = resolve_serve_config(Some(&path), Path::new("/nonexistent")).expect("explicit file");
        assert_eq!(explicit, path);
    }

    #[test]
    fn genconfig_refuses_to_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        let out = genconfig(&GenconfigArgs { config: path.clone() }).expect("generate");
        assert_eq!(out.stdout, format!("generated {}\n", path.display()));
        let Failure(line) = genconfig(&GenconfigArgs { config: path.clone() }).unwrap_err();
        assert!(line.starts_with("error: config file") && line.contains("already exists"), "{line}");
        let Failure(line) = genconfig(&GenconfigArgs { config: dir.path().join("c.ini") }).unwrap_err();
        assert!(line.contains("unsupported file extension"), "{line}");
    }

    #[test]
    fn checkconfig_outcomes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = HashMap::new();
        let check = |path: &Path, strict: bool| checkconfig(&CheckconfigArgs { config: path.to_owned(), strict }, &env);
        assert_eq!(check(&dir.path().join("none.json"), false), Err(Failure("config file not found".into())));

        let bad = write_config(&dir, r#"{"http_server": {"port": "x"}, "log": {"level": "loud"}}"#);
        let Failure(line) = check(&bad, false).unwrap_err();
        assert!(line.starts_with("error validating config: http_server.port: expected"), "{line}");

        let unknown = write_config(&dir, r#"{"colour": 1, "client": {"token": {"hmac_secret_key": "s"}}}"#);
        let out = check(&unknown, false).expect("unknown keys only warn");
        assert!(out.stdout.is_empty());
        assert_eq!(out.stderr.len(), 1);
        assert_eq!(check(&unknown, true), Err(Failure("unknown keys in config: colour".into())));

        let bad_key = write_config(&dir, r#"{"client": {"token": {"rsa_public_key": "not a pem"}}}"#);
        let Failure(line) = check(&bad_key, false).unwrap_err();
        assert!(line.starts_with("error validating config: client.token"), "{line}");

        let good = write_config(&dir, r#"{"client": {"token": {"hmac_secret_key": "s"}}}"#);
        assert_eq!(check(&good, true), Ok(Output::default()));
    }

    #[test]
    fn gentoken_output_and_claims() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_config(&dir, r#"{"client": {"token": {"hmac_secret_key": "secret"}}}"#);
        let out = gentoken(&token_args(&path, "alice", 604_800, false), &Env::new(), NOW).expect("gentoken");
        let (first, rest) = out.stdout.split_once('\n').expect("two lines");
        assert_eq!(first, "HMAC SHA-256 JWT for user \"alice\" with expiration TTL 168h0m0s:");
        let token = rest.strip_suffix('\n').expect("trailing newline");
        let (alg, claims) = inspect(token).expect("inspect");
        assert_eq!(alg, "HS256");
        let claims: Value = serde_json::from_str(&claims).expect("claims");
        assert_eq!(claims, serde_json::json!({"sub": "alice", "iat": NOW, "exp": NOW + 604_800}));

        let quiet = gentoken(&token_args(&path, "", 0, true), &Env::new(), NOW).expect("gentoken");
        assert!(!quiet.stdout.ends_with('\n'));
        let claims: Value = serde_json::from_str(&inspect(&quiet.stdout).expect("inspect").1).expect("claims");
        assert_eq!(claims, serde_json::json!({"iat": NOW}), "anonymous, no exp for ttl 0");

        let out = gentoken(&token_args(&path, "", -1, false), &Env::new(), NOW).expect("gentoken");
        assert!(out.stdout.starts_with("HMAC SHA-256 JWT for anonymous user without expiration:\n"));
        let out = gentoken(&token_args(&path, "bob", 3600, false), &Env::new(), NOW).expect("gentoken");
        assert!(out.stdout.starts_with("HMAC SHA-256 JWT for user \"bob\" with expiration TTL 1h0m0s:\n"));
    }

    #[test]
    fn gentoken_needs_an_hmac_secret_and_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_config(&dir, "{}");
        let Failure(line) = gentoken(&token_args(&path, "u", 10, false), &Env::new(), NOW).unwrap_err();
        assert!(line.starts_with("error: gentoken only supports generating HMAC-signed tokens"), "{line}");
        let Failure(line) =
            gentoken(&token_args(&dir.path().join("missing.json"), "u", 10, false), &Env::new(), NOW).unwrap_err();
        assert!(line.contains("not found"), "{line}");
    }

    #[test]
    fn user_id_claim_carries_the_user() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path =
            write_config(&dir, r#"{"client": {"token": {"hmac_secret_key": "secret", "user_id_claim": "uid"}}}"#);
        let out = gentoken(&token_args(&path, "alice", 10, true), &Env::new(), NOW).expect("gentoken");
        let claims: Value = serde_json::from_str(&inspect(&out.stdout).expect("inspect").1).expect("claims");
        assert_eq!(claims["uid"], "alice");
    }

    #[test]
    fn gensubtoken_uses_subscription_keys_when_enabled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_config(
            &dir,
            r#"{"client": {"token": {"hmac_secret_key": "conn"},
                "subscription_token": {"enabled": true, "hmac_secret_key": "sub"}}}"#,
        );
        let args =
            |channel: &str| GensubtokenArgs { token: token_args(&path, "alice", 60, false), channel: channel.into() };
        let Failure(line) = gensubtoken(&args(""), &Env::new(), NOW).unwrap_err();
        assert!(line.contains("channel is required"), "{line}");
        let out = gensubtoken(&args("news"), &Env::new(), NOW).expect("gensubtoken");
        let (first, rest) = out.stdout.split_once('\n').expect("two lines");
        assert_eq!(first, "HMAC SHA-256 JWT for user \"alice\" and channel \"news\" with expiration TTL 1m0s:");
        let token = rest.trim_end();
        let claims: Value = serde_json::from_str(&inspect(token).expect("inspect").1).expect("claims");
        assert_eq!(claims, serde_json::json!({"sub": "alice", "iat": NOW, "exp": NOW + 60, "channel": "news"}));
        let key = jsonwebtoken::DecodingKey::from_secret(b"sub");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        assert!(jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok(), "signed with the subscription key");
    }

    #[test]
    fn checktoken_round_trips_gentoken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_config(&dir, r#"{"client": {"token": {"hmac_secret_key": "secret"}}}"#);
        let now = now();
        let token = gentoken(&token_args(&path, "alice", 3600, true), &Env::new(), now).expect("gentoken").stdout;
        let args = |token: &str| ChecktokenArgs { config: Some(path.clone()), token: Some(token.into()) };
        let out = checktoken(&args(&token), &Env::new(), now, false).expect("valid");
        let (_, claims) = inspect(&token).expect("inspect");
        assert_eq!(out.stdout, format!("valid token for user alice\npayload: {claims}\n"));

        let anonymous = gentoken(&token_args(&path, "", 0, true), &Env::new(), now).expect("gentoken").stdout;
        let out = checktoken(&args(&anonymous), &Env::new(), now, false).expect("valid");
        assert!(out.stdout.starts_with("valid token for anonymous user\n"), "{}", out.stdout);

        let Failure(line) = checktoken(&args(&token), &Env::new(), now + 7200, false).unwrap_err();
        assert!(
            line.starts_with(&format!("error: token with algorithm HS256 and claims {claims} has error: ")),
            "{line}"
        );

        let Failure(line) = checktoken(&args("garbage"), &Env::new(), now, false).unwrap_err();
        assert!(line.starts_with("error: token is malformed"), "{line}");
        let Failure(line) =
            checktoken(&ChecktokenArgs { config: Some(path.clone()), token: None }, &Env::new(), now, false)
                .unwrap_err();
        assert_eq!(line, "error: provide token to check [gyre checktoken <TOKEN>]");

        let sub = gensubtoken(
            &GensubtokenArgs { token: token_args(&path, "bob", 60, true), channel: "chat:1".into() },
            &Env::new(),
            now,
        )
        .expect("gensubtoken")
        .stdout;
        let out = checktoken(&args(&sub), &Env::new(), now, true).expect("valid");
        let (_, sub_claims) = inspect(&sub).expect("inspect");
        assert_eq!(
            out.stdout,
            format!("valid subscription token for user \"bob\" and channel \"chat:1\"\npayload: {sub_claims}\n")
        );
    }

    #[test]
    fn version_line_names_the_compatibility() {
        assert_eq!(version_line(), format!("gyre v{} (Centrifugo v6 compatible)", env!("CARGO_PKG_VERSION")));
        assert!(matches!(parse(&["version"]).command, Some(Command::Version)));
    }

    #[test]
    fn token_commands_parse_centrifugo_flags() {
        let Some(Command::Gentoken(args)) =
            parse(&["gentoken", "-c", "c.json", "-u", "alice", "-t", "-1", "-q"]).command
        else {
            panic!("gentoken")
        };
        assert_eq!((args.user.as_str(), args.ttl, args.quiet), ("alice", -1, true));
        let Some(Command::Gensubtoken(args)) = parse(&["gensubtoken", "-s", "news", "-u", "bob"]).command else {
            panic!("gensubtoken")
        };
        assert_eq!((args.channel.as_str(), args.token.ttl), ("news", 604_800));
        let Some(Command::Checksubtoken(args)) = parse(&["checksubtoken", "-c", "c.json", "abc.def.ghi"]).command
        else {
            panic!("checksubtoken")
        };
        assert_eq!(args.token.as_deref(), Some("abc.def.ghi"));
        let Some(Command::Checkconfig(args)) = parse(&["checkconfig", "--strict"]).command else {
            panic!("checkconfig")
        };
        assert!(args.strict);
        assert_eq!(args.config, PathBuf::from("config.json"));
    }
}
