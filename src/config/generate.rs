//! `genconfig`: a minimal config with a fresh HMAC secret and API key, written only to a new
//! file, readable by its owner only.

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rand::RngCore as _;

/// Why a config could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The target exists (never overwritten).
    #[error("config file {0} already exists; remove it or choose another name with -c")]
    Exists(PathBuf),
    /// The extension names no supported format.
    #[error("cannot generate {0}: unsupported file extension; use .json, .yaml, .yml or .toml")]
    Format(PathBuf),
    /// Writing failed.
    #[error("cannot write config file {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The generated file did not load (it has been removed).
    #[error("generated config is invalid: {0}")]
    Invalid(#[from] super::ConfigError),
}

/// Config file formats, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.json`
    Json,
    /// `.yaml`, `.yml`
    Yaml,
    /// `.toml`
    Toml,
}

impl Format {
    /// The format a file name asks for.
    pub fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "yaml" | "yml" => Some(Self::Yaml),
            "toml" => Some(Self::Toml),
            _ => None,
        }
    }
}

/// The generated secrets. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    /// `client.token.hmac_secret_key`.
    pub hmac_secret_key: String,
    /// `http_api.key`.
    pub api_key: String,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl Secrets {
    /// Fresh secrets: 64 random bytes each, base64 URL-safe without padding (86 characters),
    /// as Centrifugo's `genconfig`.
    pub fn random() -> Self {
        Self { hmac_secret_key: random_secret(), api_key: random_secret() }
    }
}

fn random_secret() -> String {
    let mut bytes = [0u8; 64];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The file text. Secrets are base64 URL-safe (`A-Z a-z 0-9 - _`), so quoting them is trivial
/// in every format.
pub fn render(format: Format, secrets: &Secrets) -> String {
    let (hmac, api) = (&secrets.hmac_secret_key, &secrets.api_key);
    match format {
        Format::Json => format!(
            "{{\n  \"client\": {{\n    \"token\": {{\n      \"hmac_secret_key\": \"{hmac}\"\n    }},\n    \
             \"allowed_origins\": []\n  }},\n  \"http_api\": {{\n    \"key\": \"{api}\"\n  }}\n}}\n"
        ),
        Format::Yaml => format!(
            "client:\n  token:\n    hmac_secret_key: \"{hmac}\"\n  allowed_origins: []\nhttp_api:\n  key: \"{api}\"\n"
        ),
        Format::Toml => format!(
            "[client]\nallowed_origins = []\n\n[client.token]\nhmac_secret_key = \"{hmac}\"\n\n[http_api]\nkey = \"{api}\"\n"
        ),
    }
}

/// Writes a new config at `path` (never overwriting; mode 0600 on Unix), then loads and
/// validates it, removing it if that fails.
pub fn genconfig(path: &Path) -> Result<(), GenerateError> {
    let format = Format::of(path).ok_or_else(|| GenerateError::Format(path.to_owned()))?;
    if path.exists() {
        return Err(GenerateError::Exists(path.to_owned()));
    }
    let text = render(format, &Secrets::random());
    let io_error = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::AlreadyExists => GenerateError::Exists(path.to_owned()),
        _ => GenerateError::Io { path: path.to_owned(), reason: e.to_string() },
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_error)?;
    let written = file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(io_error(e));
    }
    if let Err(e) = super::load_with_env(Some(path), &HashMap::new()) {
        let _ = std::fs::remove_file(path);
        return Err(e.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_86_url_safe_characters_and_differ() {
        let a = Secrets::random();
        let b = Secrets::random();
        assert_eq!(a.hmac_secret_key.len(), 86);
        assert!(a.hmac_secret_key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a.hmac_secret_key, a.api_key);
        assert_ne!(a, b);
        assert!(!format!("{a:?}").contains(&a.api_key));
    }

    #[test]
    fn every_format_loads_to_the_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secrets = Secrets { hmac_secret_key: "h-1_x".into(), api_key: "a_2-y".into() };
        for name in ["c.json", "c.yaml", "c.yml", "c.toml"] {
            let path = dir.path().join(name);
            let format = Format::of(&path).expect("format");
            std::fs::write(&path, render(format, &secrets)).expect("write");
            let loaded = super::super::load_with_env(Some(&path), &HashMap::new()).expect(name);
            assert_eq!(loaded.settings.client.token.hmac_secret_key, "h-1_x", "{name}");
            assert_eq!(loaded.settings.http_api.key, "a_2-y", "{name}");
            assert!(loaded.settings.client.allowed_origins.is_empty());
            assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
        }
    }

    #[test]
    fn genconfig_writes_private_new_files_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        genconfig(&path).expect("generate");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let before = std::fs::read_to_string(&path).expect("read");
        assert!(matches!(genconfig(&path), Err(GenerateError::Exists(_))));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), before, "never overwritten");
        assert!(matches!(genconfig(&dir.path().join("config.ini")), Err(GenerateError::Format(_))));
        assert!(!dir.path().join("config.ini").exists());
    }
}
