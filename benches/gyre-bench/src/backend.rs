//! `proxy-backend`: a minimal Centrifugo proxy backend for the proxy benchmarks. It answers
//! every request at once, over keep-alive HTTP/1.1 with `Content-Length` bodies (what gyre's
//! proxy client sends): `POST /connect` with `{"result":{"user":"bench-<n>"}}` (n counts the
//! connect calls), `POST /publish` (and any other path ending in `/publish`) with
//! `{"result":{}}`, anything else with 404. Loopback only; it prints `listening addr=HOST:PORT`
//! on stdout once bound, and a count of the calls it answered on stderr every 5 s while they
//! change. It exits after `--max-duration` seconds or on SIGTERM/SIGINT, printing the counts.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::cli::ProxyBackendArgs;

/// Largest request head + body accepted.
const MAX_REQUEST: usize = 1 << 20;

#[derive(Default)]
struct Counts {
    /// TCP connections accepted (few: the caller keeps them alive).
    accepted: AtomicU64,
    connect: AtomicU64,
    publish: AtomicU64,
    other: AtomicU64,
}

pub fn run(args: &ProxyBackendArgs) -> Result<(), String> {
    let ip: std::net::IpAddr = args.bind.parse().map_err(|e| format!("--bind {:?}: {e}", args.bind))?;
    if !ip.is_loopback() {
        return Err(format!("--bind {ip} is not a loopback address"));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let limit = Duration::from_secs(args.max_duration);
    let quiet = args.quiet;
    let port = args.port;
    runtime.block_on(async move {
        let listener = TcpListener::bind((ip, port)).await.map_err(|e| format!("bind {ip}:{port}: {e}"))?;
        let local = listener.local_addr().map_err(|e| format!("local address: {e}"))?;
        println!("proxy-backend listening addr={local}");
        let counts = Arc::new(Counts::default());
        if !quiet {
            tokio::spawn(report_counts(counts.clone()));
        }
        let serve = async {
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        eprintln!("proxy-backend: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                counts.accepted.fetch_add(1, Relaxed);
                tokio::spawn(serve_connection(stream, counts.clone()));
            }
        };
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("SIGTERM handler: {e}"))?;
        let why = tokio::select! {
            _ = tokio::time::timeout(limit, serve) => "--max-duration reached",
            _ = terminate.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        };
        eprintln!("proxy-backend: {why}; {}", counts.describe());
        Ok::<(), String>(())
    })?;
    runtime.shutdown_background();
    Ok(())
}

impl Counts {
    fn describe(&self) -> String {
        format!(
            "answered connect {}, publish {}, other {} on {} TCP connections",
            self.connect.load(Relaxed),
            self.publish.load(Relaxed),
            self.other.load(Relaxed),
            self.accepted.load(Relaxed)
        )
    }
}

async fn report_counts(counts: Arc<Counts>) {
    let mut last = String::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticker.tick().await;
        let now = counts.describe();
        if now != last {
            eprintln!("proxy-backend: {now}");
            last = now;
        }
    }
}

/// Answers requests on one keep-alive connection until the peer closes it.
async fn serve_connection(mut stream: TcpStream, counts: Arc<Counts>) {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let request = loop {
            match parse_request(&buf) {
                Ok(Some(request)) => break request,
                Ok(None) if buf.len() <= MAX_REQUEST => {}
                Ok(None) | Err(_) => {
                    let _ = stream.write_all(&response(400, "{}", false)).await;
                    return;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let reply = answer(&request.path, &counts);
        buf.drain(..request.len);
        if stream.write_all(&reply).await.is_err() || request.close {
            return;
        }
    }
}

/// The response to a request for `path`.
fn answer(path: &str, counts: &Counts) -> Vec<u8> {
    let path = path.split('?').next().unwrap_or_default();
    if path.ends_with("/connect") {
        let n = counts.connect.fetch_add(1, Relaxed);
        response(200, &format!(r#"{{"result":{{"user":"bench-{n}"}}}}"#), true)
    } else if path.ends_with("/publish") {
        counts.publish.fetch_add(1, Relaxed);
        response(200, r#"{"result":{}}"#, true)
    } else {
        counts.other.fetch_add(1, Relaxed);
        response(404, "{}", true)
    }
}

fn response(status: u16, body: &str, keep_alive: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A complete request: its path, its length in bytes (head + body), whether to close after it.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    path: String,
    len: usize,
    close: bool,
}

/// Parses one request from the front of `buf`; `None` while head or body are incomplete.
fn parse_request(buf: &[u8]) -> Result<Option<Request>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed request: {e}")),
    };
    let mut body_len = 0;
    let mut close = request.version == Some(0);
    for header in request.headers.iter() {
        let value = String::from_utf8_lossy(header.value);
        if header.name.eq_ignore_ascii_case("content-length") {
            body_len = value.trim().parse().map_err(|_| format!("bad Content-Length {value:?}"))?;
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked request bodies are not supported".into());
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if buf.len() < head_len + body_len {
        return Ok(None);
    }
    let path = request.path.unwrap_or("/").to_owned();
    Ok(Some(Request { path, len: head_len + body_len, close }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests_with_bodies_back_to_back() {
        let one = b"POST /connect HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_request(&one[..one.len() - 1]).expect("valid"), None);
        let mut two = one.to_vec();
        two.extend_from_slice(b"POST /publish HTTP/1.1\r\ncontent-length: 0\r\nConnection: close\r\n\r\n");
        let first = parse_request(&two).expect("valid").expect("complete");
        assert_eq!(first, Request { path: "/connect".into(), len: one.len(), close: false });
        let second = parse_request(&two[first.len..]).expect("valid").expect("complete");
        assert_eq!((second.path.as_str(), second.close), ("/publish", true));
        assert!(parse_request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
    }

    #[test]
    fn answers_connect_with_a_numbered_user_and_publish_with_an_empty_result() {
        let counts = Counts::default();
        let connect = String::from_utf8(answer("/connect", &counts)).expect("utf-8");
        assert!(connect.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(connect.ends_with(r#"{"result":{"user":"bench-0"}}"#), "{connect}");
        let again = String::from_utf8(answer("/proxy/connect", &counts)).expect("utf-8");
        assert!(again.ends_with(r#"{"result":{"user":"bench-1"}}"#), "{again}");
        let publish = String::from_utf8(answer("/publish", &counts)).expect("utf-8");
        assert!(publish.ends_with(r#"{"result":{}}"#) && publish.contains("Content-Length: 13\r\n"), "{publish}");
        assert!(String::from_utf8(answer("/other", &counts)).expect("utf-8").starts_with("HTTP/1.1 404"));
    }
}
