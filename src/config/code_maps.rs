//! Centrifugo's code translations for unidirectional connects:
//! `client.connect_code_to_unidirectional_disconnect` (an error code of a refused connect → the
//! disconnect a unidirectional client gets) and `uni_sse` / `uni_http_stream`
//! `.connect_code_to_http_response` (a refused connect answered with an HTTP status instead of
//! a stream).

use serde::{Deserialize, Serialize};

/// `client.connect_code_to_unidirectional_disconnect`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CodeToDisconnect {
    pub enabled: bool,
    pub transforms: Vec<DisconnectTransform>,
}

/// One translation: error `code` → disconnect `to`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DisconnectTransform {
    pub code: u32,
    pub to: DisconnectTo,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DisconnectTo {
    pub code: u16,
    pub reason: String,
}

impl CodeToDisconnect {
    /// The disconnect configured for error `code`, when translations are on.
    pub fn for_code(&self, code: u32) -> Option<&DisconnectTo> {
        self.enabled.then(|| self.transforms.iter().find(|t| t.code == code).map(|t| &t.to)).flatten()
    }
}

/// `uni_sse.connect_code_to_http_response` and `uni_http_stream.connect_code_to_http_response`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CodeToHttpResponse {
    pub enabled: bool,
    pub transforms: Vec<HttpTransform>,
}

/// One translation: error or disconnect `code` → HTTP answer `to`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpTransform {
    pub code: u32,
    pub to: HttpResponseTo,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpResponseTo {
    pub status_code: u16,
    /// Empty: the error message or disconnect reason.
    pub body: String,
}

impl CodeToHttpResponse {
    /// The HTTP answer for a connect refused with `code` and `text` (its message or reason):
    /// the configured one, else 500 with the text (as Centrifugo answers untranslated codes).
    pub fn answer(&self, code: u32, text: &str) -> (u16, String) {
        match self.transforms.iter().find(|t| t.code == code) {
            Some(t) => (t.to.status_code, if t.to.body.is_empty() { text.to_owned() } else { t.to.body.clone() }),
            None => (500, text.to_owned()),
        }
    }
}

/// Config errors of the translation tables.
pub fn validate(client: &CodeToDisconnect, http: &[(&str, &CodeToHttpResponse)], errors: &mut Vec<String>) {
    for (i, transform) in client.transforms.iter().enumerate() {
        if !(3000..=4999).contains(&transform.to.code) {
            errors.push(format!(
                "client.connect_code_to_unidirectional_disconnect.transforms[{i}].to.code: {} is not a disconnect code; use 3000 to 4999",
                transform.to.code
            ));
        }
    }
    for (section, table) in http {
        for (i, transform) in table.transforms.iter().enumerate() {
            if !(100..=599).contains(&transform.to.status_code) {
                errors.push(format!(
                    "{section}.connect_code_to_http_response.transforms[{i}].to.status_code: {} is not an HTTP status; use 100 to 599",
                    transform.to.status_code
                ));
            }
        }
    }
}
