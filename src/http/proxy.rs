//! Behind a load balancer: the PROXY protocol (HAProxy's specification,
//! versions 1 and 2) that carries the client's address in front of the
//! first request, and which hops are trusted to say who the client is.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An address block (`10.0.0.0/8`, `::1/128`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { net: addr, bits })
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        let prefix = |a: u128, b: u128, width: u32| {
            let shift = width - self.bits as u32;
            self.bits == 0 || (a >> shift) == (b >> shift)
        };
        match (self.net, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix(u32::from(n) as u128, u32::from(a) as u128, 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix(u128::from(n), u128::from(a), 128),
            _ => false,
        }
    }
}

/// `--trusted-proxy` values and the config file's `trusted_proxies`, parsed
/// once at start-up (requests only compare).
impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        Cidr::parse(s).ok_or_else(|| format!("{s}: not an address or CIDR (10.0.0.0/8, ::1/128)"))
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The version 2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A version 1 line is at most 107 bytes, CRLF included.
const V1_LINE_MAX: usize = 107;

/// What a PROXY header said.
#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// The client's address (the connection's source as the proxy saw it).
    Proxied(SocketAddr),
    /// A connection the proxy made itself (health checks: v2 LOCAL, v1
    /// UNKNOWN): the socket's own address stands.
    Local,
}

/// Parses a PROXY header at the start of `buf`: `Ok(None)` while more
/// bytes are needed, `Ok(Some((header, length)))`, or `Err` for anything
/// that is not a valid header (the connection is then closed unanswered).
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, &'static str> {
    if buf.len() < V2_SIGNATURE.len() {
        let sig_prefix = V2_SIGNATURE.starts_with(buf);
        let v1_prefix = b"PROXY ".starts_with(&buf[..buf.len().min(6)]);
        return if sig_prefix || v1_prefix { Ok(None) } else { Err("no PROXY header") };
    }
    if buf.starts_with(V2_SIGNATURE) {
        return parse_v2(buf);
    }
    if !buf.starts_with(b"PROXY ") {
        return Err("no PROXY header");
    }
    let Some(end) = buf.windows(2).take(V1_LINE_MAX - 1).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_LINE_MAX { Err("PROXY v1 line too long") } else { Ok(None) };
    };
    let line = std::str::from_utf8(&buf[6..end]).map_err(|_| "PROXY v1 line is not ASCII")?;
    let fields: Vec<&str> = line.split(' ').collect();
    let header = match fields.as_slice() {
        ["UNKNOWN", ..] => Header::Local,
        [proto @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: IpAddr = src.parse().map_err(|_| "PROXY v1 source address")?;
            if ip.is_ipv4() != (*proto == "TCP4") {
                return Err("PROXY v1 address family");
            }
            Header::Proxied(SocketAddr::new(ip, sport.parse().map_err(|_| "PROXY v1 source port")?))
        }
        _ => return Err("PROXY v1 line malformed"),
    };
    Ok(Some((header, end + 2)))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, &'static str> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let (ver_cmd, family) = (buf[12], buf[13]);
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if ver_cmd >> 4 != 2 {
        return Err("PROXY v2 version");
    }
    if buf.len() < 16 + len {
        return Ok(None);
    }
    let body = &buf[16..16 + len];
    let header = match (ver_cmd & 0x0f, family >> 4) {
        (0, _) => Header::Local,
        // PROXY over an unspecified family: the socket address stands.
        (1, 0) => Header::Local,
        (1, 1) if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Header::Proxied(SocketAddr::new(ip.into(), u16::from_be_bytes([body[8], body[9]])))
        }
        (1, 2) if body.len() >= 36 => {
            let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&body[..16]).expect("16 bytes"));
            Header::Proxied(SocketAddr::new(ip.into(), u16::from_be_bytes([body[32], body[33]])))
        }
        // Unix sockets and the like carry no IP address.
        (1, 3) => Header::Local,
        _ => return Err("PROXY v2 command or address block"),
    };
    Ok(Some((header, 16 + len)))
}

/// The client behind an `X-Forwarded-For` chain sent by a trusted hop: the
/// rightmost address that is not itself a trusted proxy (addresses to its
/// left were written by the client and prove nothing).
pub fn forwarded_client(xff: &str, trusted: impl Fn(IpAddr) -> bool) -> Option<IpAddr> {
    let mut last = None;
    for a in xff.rsplit(',').map(str::trim) {
        let ip = a.parse::<IpAddr>().ok().or_else(|| a.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
        last = Some(ip);
        if !trusted(ip) {
            return Some(ip);
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains("127.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("::/0").unwrap().contains("2001:db8::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("192.0.2.1".parse().unwrap()));
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("nope"), None);
    }

    #[test]
    fn v1_headers() {
        let h = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 9000\r\nGET / HTTP/1.1\r\n";
        let (got, n) = parse(h).unwrap().unwrap();
        assert_eq!(got, Header::Proxied("192.0.2.7:56324".parse().unwrap()));
        assert_eq!(&h[n..n + 3], b"GET");
        assert_eq!(
            parse(b"PROXY TCP6 2001:db8::5 ::1 1 2\r\n").unwrap().unwrap().0,
            Header::Proxied("[2001:db8::5]:1".parse().unwrap())
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().0, Header::Local);
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4 5.6").unwrap(), None);
        assert_eq!(parse(b"PRO").unwrap(), None);
        assert!(parse(b"GET / HTTP/1.1\r\n\r\n").is_err());
        assert!(parse(b"PROXY TCP4 2001:db8::5 ::1 1 2\r\n").is_err());
        assert!(parse(&[b'P'; 200]).is_err());
    }

    #[test]
    fn v2_headers() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0, 12, 198, 51, 100, 9, 10, 0, 0, 1, 0x1f, 0x90, 0x23, 0x28]);
        h.extend_from_slice(b"GET");
        let (got, n) = parse(&h).unwrap().unwrap();
        assert_eq!(got, Header::Proxied("198.51.100.9:8080".parse().unwrap()));
        assert_eq!(&h[n..], b"GET");
        assert_eq!(parse(&h[..20]).unwrap(), None);
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap().unwrap(), (Header::Local, 16));
        let mut bad = V2_SIGNATURE.to_vec();
        bad.extend_from_slice(&[0x11, 0x11, 0, 0]);
        assert!(parse(&bad).is_err());
    }

    #[test]
    fn forwarded_for_takes_the_first_untrusted_hop_from_the_right() {
        let trusted = |ip: IpAddr| ip.to_string().starts_with("10.");
        assert_eq!(forwarded_client("6.6.6.6, 203.0.113.4, 10.0.0.2", trusted), "203.0.113.4".parse().ok());
        assert_eq!(forwarded_client("203.0.113.4", trusted), "203.0.113.4".parse().ok());
        assert_eq!(forwarded_client("garbage", trusted), None);
    }
}
