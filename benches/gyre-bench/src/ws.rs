//! WebSocket client connections: a hand-written HTTP/1.1 upgrade over a `TcpStream` bound to a
//! chosen source address, then `fastwebsockets` for framing (8 KiB read buffer per connection,
//! client-side masking, automatic answers to WebSocket ping and close frames).

use std::net::{IpAddr, SocketAddr};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::codec::Protocol;
use crate::target::Target;

pub const PATH: &str = "/connection/websocket";

/// An open WebSocket.
pub struct Ws {
    inner: WebSocket<TcpStream>,
}

/// What `Ws::next` read.
pub enum Received {
    Text(Vec<u8>),
    Closed(String),
}

/// Opens a TCP connection from `source` (bound before connect) to the target.
pub async fn tcp_connect(target: &Target, source: IpAddr) -> Result<TcpStream, String> {
    let socket = match target.addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| format!("socket: {e}"))?;
    socket.bind(SocketAddr::new(source, 0)).map_err(|e| format!("bind {source}: {e}"))?;
    let stream =
        socket.connect(target.addr).await.map_err(|e| format!("connect {} from {source}: {e}", target.addr))?;
    stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
    Ok(stream)
}

impl Ws {
    /// TCP connect from `source`, then the WebSocket upgrade on `/connection/websocket`
    /// (`query` selects the encoding: empty for JSON, `?format=protobuf`).
    pub async fn connect(target: &Target, source: IpAddr, query: &str) -> Result<Ws, String> {
        let mut stream = tcp_connect(target, source).await?;
        let key = STANDARD.encode(rand::random::<[u8; 16]>());
        let request = format!(
            "GET {PATH}{query} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            target.host
        );
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("send upgrade: {e}"))?;
        read_upgrade_response(&mut stream).await?;
        let mut inner = WebSocket::after_handshake(stream, Role::Client);
        inner.set_auto_pong(true);
        inner.set_auto_close(true);
        Ok(Ws { inner })
    }

    /// Sends commands in a text frame (JSON) or a binary one (Protobuf).
    pub async fn send(&mut self, protocol: Protocol, bytes: Vec<u8>) -> Result<(), String> {
        let payload = Payload::Owned(bytes);
        let frame = if protocol.is_protobuf() { Frame::binary(payload) } else { Frame::text(payload) };
        self.inner.write_frame(frame).await.map_err(|e| format!("websocket write: {e}"))
    }

    /// The next text frame (binary frames are returned as text too; ping/pong are handled).
    pub async fn next(&mut self) -> Received {
        loop {
            let frame = match self.inner.read_frame().await {
                Ok(frame) => frame,
                Err(e) => return Received::Closed(format!("websocket read: {e}")),
            };
            match frame.opcode {
                OpCode::Text | OpCode::Binary => return Received::Text(frame.payload.to_vec()),
                OpCode::Close => return Received::Closed(describe_close(&frame.payload)),
                _ => {}
            }
        }
    }
}

/// Reads the upgrade response up to the blank line; anything but 101 is an error.
async fn read_upgrade_response(stream: &mut TcpStream) -> Result<(), String> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read upgrade response: {e}"))?;
        if n == 0 {
            return Err("server closed the connection during the upgrade".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if end + 4 != buf.len() {
                return Err("server sent data before the first command".into());
            }
            break;
        }
        if buf.len() > 8192 {
            return Err("upgrade response headers too long".into());
        }
    }
    let status_line = String::from_utf8_lossy(buf.split(|&b| b == b'\r').next().unwrap_or_default()).into_owned();
    if !status_line.starts_with("HTTP/1.1 101") {
        return Err(format!("upgrade refused: {status_line}"));
    }
    Ok(())
}

fn describe_close(payload: &[u8]) -> String {
    match payload {
        [a, b, reason @ ..] => {
            format!("closed by server: {} {}", u16::from_be_bytes([*a, *b]), String::from_utf8_lossy(reason))
        }
        _ => "closed by server".into(),
    }
}
