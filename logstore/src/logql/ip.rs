//! `ip("...")`: the IP address filter of line filters (`|= ip("10.0.0.0/8")`) and label
//! filters (`| addr = ip("10.0.0.0/8")`), with Loki's semantics.
//!
//! A pattern is one address (`192.168.0.1`, `::1`), a CIDR prefix (`192.168.0.0/16`; the
//! address need not be the network's first) or an inclusive range (`192.168.0.1-192.168.0.9`),
//! IPv4 or IPv6; an IPv4 address never matches an IPv6 pattern nor the reverse. A text
//! matches when any address found in it is in the pattern. Addresses are found as Loki finds
//! them, without a regex: at each byte that looks like the start of an IPv4 address (a digit
//! with a `.` among the next three bytes) or an IPv6 one (hex digits then `:`, or `::`), the
//! longest run of address characters is parsed; a run that is not an address, or not in the
//! pattern, is skipped whole.

use std::fmt;
use std::net::IpAddr;

/// Loki's message for a pattern that is none of the three forms.
pub const INVALID_PATTERN: &str = "ip: invalid pattern";
/// Loki's message for `ip()` after a line filter operator other than `|=` and `!=`.
pub const INVALID_OPERATION: &str = "ip: invalid operation";

/// A compiled `ip("...")` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpFilter {
    source: String,
    matcher: IpMatcher,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum IpMatcher {
    Addr(IpAddr),
    Prefix(IpAddr, u8),
    /// Inclusive, same family, `from <= to`.
    Range(IpAddr, IpAddr),
}

impl IpFilter {
    /// Parses a pattern: an address, then a CIDR prefix, then a range, as Loki tries them.
    pub fn parse(pattern: &str) -> Result<IpFilter, String> {
        let matcher = parse_addr(pattern)
            .map(IpMatcher::Addr)
            .or_else(|| parse_prefix(pattern))
            .or_else(|| parse_range(pattern))
            .ok_or_else(|| format!("{INVALID_PATTERN}: {pattern:?}"))?;
        Ok(IpFilter {
            source: pattern.to_string(),
            matcher,
        })
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match self.matcher {
            IpMatcher::Addr(a) => a == ip,
            IpMatcher::Prefix(net, bits) => {
                same_family(net, ip) && masked(net, bits) == masked(ip, bits)
            }
            IpMatcher::Range(from, to) => same_family(from, ip) && from <= ip && ip <= to,
        }
    }

    /// Whether any address found in `text` is in the pattern.
    pub fn matches(&self, text: &str) -> bool {
        let b = text.as_bytes();
        let n = b.len();
        let mut i = 0;
        while i < n {
            let run = if i + 3 < n && ipv4_hint(&b[i..i + 4]) {
                Some(span(&b[i..], |c| c.is_ascii_digit() || c == b'.'))
            } else if i + 4 < n && ipv6_hint(&b[i..i + 5]) {
                Some(span(&b[i..], |c| {
                    c.is_ascii_hexdigit() || c == b':' || c == b'.'
                }))
            } else {
                None
            };
            if let Some(len) = run {
                // The run is ASCII, so these are character boundaries.
                if parse_addr(&text[i..i + len]).is_some_and(|ip| self.contains(ip)) {
                    return true;
                }
                i += len;
            }
            i += 1;
        }
        false
    }
}

impl fmt::Display for IpFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ip({:?})", self.source)
    }
}

fn ipv4_hint(b: &[u8]) -> bool {
    b[0].is_ascii_digit() && (b[1] == b'.' || b[2] == b'.' || b[3] == b'.')
}

fn ipv6_hint(b: &[u8]) -> bool {
    let hex = |i: usize| b[i].is_ascii_hexdigit();
    (b[0] == b':' && b[1] == b':' && hex(2))
        || (hex(0) && b[1] == b':')
        || (hex(0) && hex(1) && b[2] == b':')
        || (hex(0) && hex(1) && hex(2) && b[3] == b':')
        || (hex(0) && hex(1) && hex(2) && hex(3) && b[4] == b':')
}

fn span(b: &[u8], accept: impl Fn(u8) -> bool) -> usize {
    b.iter().position(|c| !accept(*c)).unwrap_or(b.len())
}

/// An address as Go's `netip.ParseAddr` reads one (zones aside): dotted IPv4 without leading
/// zeros, or IPv6.
fn parse_addr(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

fn parse_prefix(s: &str) -> Option<IpMatcher> {
    let (addr, bits) = s.split_once('/')?;
    let addr = parse_addr(addr)?;
    // Go accepts only plain decimal bits: no sign, no leading zero.
    if bits.is_empty()
        || !bits.bytes().all(|c| c.is_ascii_digit())
        || (bits.len() > 1 && bits.starts_with('0'))
    {
        return None;
    }
    let bits: u8 = bits.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some(IpMatcher::Prefix(addr, bits))
}

fn parse_range(s: &str) -> Option<IpMatcher> {
    let (from, to) = s.split_once('-')?;
    let (from, to) = (parse_addr(from)?, parse_addr(to)?);
    (same_family(from, to) && from <= to).then_some(IpMatcher::Range(from, to))
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// The address with all but its first `bits` bits cleared, as a 128-bit number.
fn masked(ip: IpAddr, bits: u8) -> u128 {
    let (value, width) = match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32u32),
        IpAddr::V6(a) => (u128::from(a), 128u32),
    };
    let keep = u32::from(bits).min(width);
    if keep == 0 {
        return 0;
    }
    let shift = width - keep;
    (value >> shift) << shift
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(p: &str) -> IpFilter {
        IpFilter::parse(p).unwrap()
    }

    #[test]
    fn single_address_cidr_and_range() {
        let one = f("192.168.0.1");
        assert!(one.matches("client 192.168.0.1 connected"));
        assert!(
            !one.matches("client 192.168.0.10 connected"),
            "whole runs only"
        );
        let cidr = f("192.168.4.5/16");
        assert!(cidr.matches("from=192.168.255.1"));
        assert!(!cidr.matches("from=192.169.0.1"));
        let range = f("192.168.4.5-192.168.4.20");
        assert!(range.matches("x 192.168.4.5 y"));
        assert!(range.matches("x 192.168.4.20"));
        assert!(!range.matches("x 192.168.4.21 y"));
        assert!(!range.matches("x 192.168.4.4 y"));
        assert!(f("0.0.0.0/0").matches("a 8.8.8.8"));
    }

    #[test]
    fn ipv6_and_families_apart() {
        let v6 = f("2001:db8::/32");
        assert!(v6.matches(r#"{"remote":"2001:db8:1::7"}"#));
        assert!(!v6.matches("2001:db9::1"));
        assert!(f("::1").matches("peer ::1 closed"));
        assert!(!f("0.0.0.0/0").matches("peer ::1 closed"));
        assert!(!f("::/0").matches("peer 10.0.0.1"));
        assert!(f("fe80::1-fe80::ff").matches("link fe80::a0"));
    }

    #[test]
    fn finds_the_address_among_other_runs() {
        let p = f("10.0.0.0/8");
        // The first run is a version number, not an address; the scan goes on.
        assert!(p.matches("v1.2.3 from 10.1.2.3:8080"));
        assert!(p.matches("10.1.2.3"));
        assert!(!p.matches("v1.2.3 from 11.1.2.3"));
        assert!(!p.matches(""));
        assert!(!p.matches("010.1.2.3"), "leading zeros are not an address");
    }

    #[test]
    fn invalid_patterns_are_refused_with_lokis_message() {
        for p in [
            "",
            "abc",
            "10.0.0.0/33",
            "10.0.0.9-10.0.0.1",
            "10.0.0.1-::1",
            "10.0.0.0/+8",
        ] {
            assert_eq!(
                IpFilter::parse(p).unwrap_err(),
                format!("ip: invalid pattern: {p:?}"),
                "{p}"
            );
        }
        assert_eq!(f("10.0.0.0/8").to_string(), r#"ip("10.0.0.0/8")"#);
    }
}
