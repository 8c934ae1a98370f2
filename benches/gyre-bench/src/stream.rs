//! Emulated bidirectional connections over HTTP (Centrifugo's `http_stream` and `sse`
//! transports, JSON): the connect command opens a streamed response that carries every reply
//! and push; later commands (subscribe, pong) are posted to `/emulation` with the session and
//! node ids the connect reply gave, each on a connection of its own. A hand-written HTTP/1.1
//! client, so the loader holds one socket and one read buffer per stream, as with WebSocket.

use std::net::IpAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::target::Target;
use crate::ws::{tcp_connect, Received};

/// Which emulated transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    Websocket,
    #[value(name = "http_stream")]
    HttpStream,
    Sse,
}

/// An emulated connection: the stream once opened, and the ids `/emulation` needs.
pub struct HttpStream {
    target: Target,
    source: IpAddr,
    sse: bool,
    stream: Option<TcpStream>,
    /// Response bytes after the head, still chunk-encoded.
    raw: Vec<u8>,
    /// Payload of the chunk being read still to come.
    chunk_left: usize,
    /// The body decoded from its chunks, not returned yet.
    body: Vec<u8>,
    session: Option<(String, String)>,
}

impl HttpStream {
    pub fn new(target: &Target, source: IpAddr, transport: Transport) -> HttpStream {
        HttpStream {
            target: target.clone(),
            source,
            sse: transport == Transport::Sse,
            stream: None,
            raw: Vec::new(),
            chunk_left: 0,
            body: Vec::new(),
            session: None,
        }
    }

    /// The first command opens the stream; later ones go through `/emulation`.
    pub async fn send(&mut self, command: Vec<u8>) -> Result<(), String> {
        if self.stream.is_none() {
            return self.open(command).await;
        }
        let Some((session, node)) = self.session.clone() else {
            return Err("a command before the connect reply gave a session".into());
        };
        let text = String::from_utf8(command).map_err(|_| "commands must be JSON".to_owned())?;
        let body = serde_json::json!({"session": session, "node": node, "data": text}).to_string();
        let mut stream = tcp_connect(&self.target, self.source).await?;
        let request = format!(
            "POST /emulation HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            self.target.host,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("send /emulation: {e}"))?;
        let head = read_head(&mut stream).await?;
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.1 204") {
            return Err(format!("/emulation answered {}", head.lines().next().unwrap_or_default()));
        }
        Ok(())
    }

    async fn open(&mut self, connect: Vec<u8>) -> Result<(), String> {
        let mut stream = tcp_connect(&self.target, self.source).await?;
        let host = &self.target.host;
        let request = if self.sse {
            let query = encode_query(&String::from_utf8_lossy(&connect));
            format!(
                "GET /connection/sse?cf_connect={query} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
            )
        } else {
            let body = String::from_utf8_lossy(&connect);
            format!(
                "POST /connection/http_stream HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("send stream request: {e}"))?;
        let (head, rest) = read_head_keep_rest(&mut stream).await?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("stream refused: {}", head.lines().next().unwrap_or_default()));
        }
        if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            return Err("stream response is not chunked".into());
        }
        self.raw = rest;
        self.stream = Some(stream);
        Ok(())
    }

    /// The next message (a JSON line, or an SSE event's data).
    pub async fn next(&mut self) -> Received {
        loop {
            if let Some(message) = self.take_message() {
                if self.session.is_none() {
                    self.session = session_of(&message);
                }
                return Received::Text(message);
            }
            if let Err(why) = self.read_more().await {
                return Received::Closed(why);
            }
        }
    }

    /// One message out of the body read so far, if a whole one arrived.
    fn take_message(&mut self) -> Option<Vec<u8>> {
        self.dechunk();
        let (separator, prefix): (&[u8], &[u8]) = if self.sse { (b"\n\n", b"data: ") } else { (b"\n", b"") };
        loop {
            let end = self.body.windows(separator.len()).position(|w| w == separator)?;
            let line = self.body[..end].trim_ascii_start();
            let message = line.strip_prefix(prefix).unwrap_or(line).to_vec();
            self.body.drain(..end + separator.len());
            // SSE's opening line break is trimmed above; an empty event is skipped.
            if !message.iter().all(u8::is_ascii_whitespace) {
                return Some(message);
            }
        }
    }

    /// Moves whole chunk payloads from `raw` to `body`.
    fn dechunk(&mut self) {
        loop {
            if self.chunk_left > 0 {
                let take = self.chunk_left.min(self.raw.len());
                self.body.extend(self.raw.drain(..take));
                self.chunk_left -= take;
                if self.chunk_left > 0 {
                    return;
                }
                continue;
            }
            // A chunk header ("<hex size>\r\n"), preceded by the previous chunk's "\r\n".
            while self.raw.starts_with(b"\r\n") {
                self.raw.drain(..2);
            }
            let Some(end) = self.raw.windows(2).position(|w| w == b"\r\n") else { return };
            let size =
                std::str::from_utf8(&self.raw[..end]).ok().and_then(|hex| usize::from_str_radix(hex.trim(), 16).ok());
            self.raw.drain(..end + 2);
            match size {
                Some(size) if size > 0 => self.chunk_left = size,
                _ => return,
            }
        }
    }

    async fn read_more(&mut self) -> Result<(), String> {
        let Some(stream) = self.stream.as_mut() else { return Err("not open".into()) };
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) => Err("the server ended the stream".into()),
            Ok(n) => {
                self.raw.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("stream read: {e}")),
        }
    }
}

/// The session and node ids of a connect reply.
fn session_of(message: &[u8]) -> Option<(String, String)> {
    let reply: serde_json::Value = serde_json::from_slice(message).ok()?;
    let connect = reply.get("connect")?;
    Some((connect.get("session")?.as_str()?.to_owned(), connect.get("node")?.as_str()?.to_owned()))
}

/// Percent-encodes a query value.
fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reads a response head; anything after it is dropped.
async fn read_head(stream: &mut TcpStream) -> Result<String, String> {
    read_head_keep_rest(stream).await.map(|(head, _)| head)
}

/// Reads a response head and returns it with the bytes read past it.
async fn read_head_keep_rest(stream: &mut TcpStream) -> Result<(String, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read response: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection before answering".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Ok((head, buf[end + 4..].to_vec()));
        }
        if buf.len() > 16 * 1024 {
            return Err("response head too long".into());
        }
    }
}
