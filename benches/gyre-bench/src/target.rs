//! Where the load goes: the server's address (loopback only) and the local source addresses
//! connections are spread over.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// A server under test: its socket address and the `Host` header to send.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
}

impl Target {
    /// Resolves `host:port` and refuses anything that is not a loopback address.
    pub fn parse(spec: &str) -> Result<Target, String> {
        let spec = spec.trim_start_matches("http://").trim_start_matches("ws://").trim_end_matches('/');
        let addr = spec
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {spec:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("{spec:?} resolves to no address"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{spec:?} is {}, not a loopback address: gyre-bench only loads servers on this machine",
                addr.ip()
            ));
        }
        Ok(Target { addr, host: spec.to_owned() })
    }
}

/// Source addresses 127.0.0.2 … 127.0.0.(count+1), used round-robin so that no single
/// (source, destination) pair runs out of ephemeral ports. IPv6 targets use ::1 only.
#[derive(Clone, Debug)]
pub struct Sources {
    ips: Vec<IpAddr>,
}

impl Sources {
    pub fn new(target: &Target, count: usize) -> Sources {
        let ips = match target.addr {
            SocketAddr::V4(_) => {
                (0..count.clamp(1, 250)).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8))).collect()
            }
            SocketAddr::V6(_) => vec![IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)],
        };
        Sources { ips }
    }

    /// The source address of connection number `index`.
    pub fn pick(&self, index: usize) -> IpAddr {
        self.ips[index % self.ips.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_loopback_targets() {
        assert!(Target::parse("127.0.0.1:8000").is_ok());
        assert!(Target::parse("localhost:8000").is_ok());
        assert!(Target::parse("http://127.0.0.1:8000/").is_ok());
        assert!(Target::parse("10.0.0.1:8000").expect_err("refused").contains("not a loopback"));
        assert!(Target::parse("192.168.1.1:80").is_err());
    }

    #[test]
    fn spreads_sources_over_loopback_addresses() {
        let target = Target::parse("127.0.0.1:8000").expect("loopback");
        let sources = Sources::new(&target, 3);
        let picked: Vec<String> = (0..4).map(|i| sources.pick(i).to_string()).collect();
        assert_eq!(picked, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.2"]);
    }
}
