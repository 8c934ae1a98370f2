//! A small keep-alive HTTP/1.1 client for the publish API: one request at a time per
//! connection, `Content-Length` bodies only (what gyre and Go's net/http send for small replies).

use std::net::IpAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::target::Target;

/// A response: status code and body.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// 200 with no `"error"` object in the body (the API reports most errors in a 200 body).
    pub fn is_ok(&self) -> bool {
        self.status == 200 && !self.body.windows(7).any(|w| w == b"\"error\"")
    }

    pub fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        format!("HTTP {} {}", self.status, body.chars().take(200).collect::<String>())
    }
}

/// One keep-alive connection to the server's HTTP API.
pub struct HttpConn {
    target: Target,
    source: IpAddr,
    api_key: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl HttpConn {
    pub fn new(target: Target, source: IpAddr, api_key: &str) -> HttpConn {
        HttpConn { target, source, api_key: api_key.to_owned(), stream: None, buf: Vec::with_capacity(1024) }
    }

    /// POSTs a JSON body to `path`. A kept-alive connection the server closed while it sat idle
    /// (servers time idle keep-alive connections out) is replaced and the request sent again.
    pub async fn post(&mut self, path: &str, body: &[u8]) -> Result<Response, String> {
        let request = self.request(path, body);
        if let Some(stream) = self.stream.take() {
            if let Ok(response) = self.exchange(stream, &request).await {
                return Ok(response);
            }
        }
        let stream = crate::ws::tcp_connect(&self.target, self.source).await?;
        self.exchange(stream, &request).await
    }

    /// Sends one request and reads its response; keeps the connection if the server allows.
    async fn exchange(&mut self, mut stream: TcpStream, request: &[u8]) -> Result<Response, String> {
        stream.write_all(request).await.map_err(|e| format!("send request: {e}"))?;
        let (response, keep_alive) = self.read_response(&mut stream).await?;
        if keep_alive {
            self.stream = Some(stream);
        }
        Ok(response)
    }

    fn request(&self, path: &str, body: &[u8]) -> Vec<u8> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            self.target.host,
            self.api_key,
            body.len()
        );
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body);
        request
    }

    /// Reads one response; returns it and whether the connection may be reused.
    async fn read_response(&mut self, stream: &mut TcpStream) -> Result<(Response, bool), String> {
        self.buf.clear();
        loop {
            if let Some(parsed) = parse(&self.buf)? {
                let Parsed { status, head_len, body_len, keep_alive } = parsed;
                while self.buf.len() < head_len + body_len {
                    self.read_more(stream).await?;
                }
                let body = self.buf[head_len..head_len + body_len].to_vec();
                return Ok((Response { status, body }, keep_alive));
            }
            self.read_more(stream).await?;
        }
    }

    async fn read_more(&mut self, stream: &mut TcpStream) -> Result<(), String> {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read response: {e}"))?;
        if n == 0 {
            return Err("server closed the API connection".into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

struct Parsed {
    status: u16,
    head_len: usize,
    body_len: usize,
    keep_alive: bool,
}

/// Parses a response head; `None` while it is incomplete.
fn parse(buf: &[u8]) -> Result<Option<Parsed>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed HTTP response: {e}")),
    };
    let status = response.code.unwrap_or(0);
    let mut body_len = None;
    let mut keep_alive = true;
    for header in response.headers.iter() {
        let value = String::from_utf8_lossy(header.value);
        if header.name.eq_ignore_ascii_case("content-length") {
            body_len = Some(value.trim().parse().map_err(|_| format!("bad Content-Length {value:?}"))?);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("unsupported Transfer-Encoding {value:?} (gyre-bench reads Content-Length bodies)"));
        } else if header.name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            keep_alive = false;
        }
    }
    Ok(Some(Parsed { status, head_len, body_len: body_len.unwrap_or(0), keep_alive }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n{\"result\":{}}";
        let parsed = parse(raw).expect("valid").expect("complete");
        assert_eq!((parsed.status, parsed.body_len, parsed.keep_alive), (200, 13, true));
        assert_eq!(&raw[parsed.head_len..], b"{\"result\":{}}");
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-le").expect("valid").is_none());
        let close = parse(b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n").expect("valid").expect("complete");
        assert!(!close.keep_alive);
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
    }

    #[test]
    fn api_errors_in_a_200_body_are_errors() {
        let ok = Response { status: 200, body: b"{\"result\":{}}".to_vec() };
        let refused = Response { status: 200, body: b"{\"error\":{\"code\":102}}".to_vec() };
        assert!(ok.is_ok());
        assert!(!refused.is_ok());
    }
}
