//! Networks written as CIDR blocks (`10.0.0.0/8`, `fd00::/8`) and the set of them whose
//! addresses skip the per-address limits (`limits.exempt_networks`). Parsed once, at
//! configuration load, so a typo fails the start naming the key.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One CIDR block: an address and how many of its leading bits name the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix_bits: u8,
}

/// Why a network could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a CIDR block like 10.0.0.0/8 or fd00::/8: {reason}")]
pub struct NetworkParseError {
    text: String,
    reason: &'static str,
}

impl Network {
    /// Whether `address` lies inside this block. IPv4 addresses mapped into IPv6
    /// (`::ffff:10.1.2.3`, as a dual-stack listener reports them) count as IPv4.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, canonical(address)) {
            (IpAddr::V4(network), IpAddr::V4(address)) => same_prefix(
                network.to_bits().into(),
                address.to_bits().into(),
                32,
                self.prefix_bits,
            ),
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                same_prefix(network.to_bits(), address.to_bits(), 128, self.prefix_bits)
            }
            _ => false,
        }
    }
}

/// Whether the leading `prefix_bits` of two `width`-bit numbers agree.
fn same_prefix(network: u128, address: u128, width: u8, prefix_bits: u8) -> bool {
    let host_bits = u32::from(width - prefix_bits);
    network.checked_shr(host_bits).unwrap_or(0) == address.checked_shr(host_bits).unwrap_or(0)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; others unchanged.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

impl FromStr for Network {
    type Err = NetworkParseError;

    fn from_str(text: &str) -> Result<Network, NetworkParseError> {
        let error = |reason| NetworkParseError {
            text: text.to_owned(),
            reason,
        };
        let (address, prefix) = text.trim().split_once('/').ok_or(error("no /prefix"))?;
        let address: IpAddr = address.parse().map_err(|_| error("not an IP address"))?;
        let width = if address.is_ipv4() { 32 } else { 128 };
        let prefix_bits: u8 = prefix
            .parse()
            .ok()
            .filter(|bits| *bits <= width)
            .ok_or(error("the prefix is not 0..=32 (IPv4) or 0..=128 (IPv6)"))?;
        Ok(Network {
            address,
            prefix_bits,
        })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.address, self.prefix_bits)
    }
}

/// The networks exempt from the per-address limits. Configured as a list of CIDR strings
/// or one comma-separated string (`ALOFT_LIMITS__EXEMPT_NETWORKS=127.0.0.0/8,10.0.0.0/8`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExemptNetworks(Vec<Network>);

impl ExemptNetworks {
    pub fn new(networks: Vec<Network>) -> ExemptNetworks {
        ExemptNetworks(networks)
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(address))
    }

    /// Parses a comma-separated list; empty entries are ignored.
    pub fn parse_list(text: &str) -> Result<ExemptNetworks, NetworkParseError> {
        text.split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(Network::from_str)
            .collect::<Result<_, _>>()
            .map(ExemptNetworks)
    }
}

impl serde::Serialize for ExemptNetworks {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(Network::to_string))
    }
}

impl<'de> serde::Deserialize<'de> for ExemptNetworks {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Written {
            List(Vec<String>),
            CommaSeparated(String),
        }
        let text = match Written::deserialize(deserializer)? {
            Written::List(entries) => entries.join(","),
            Written::CommaSeparated(text) => text,
        };
        ExemptNetworks::parse_list(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn network(text: &str) -> Network {
        text.parse().unwrap()
    }

    #[test]
    fn ipv4_blocks_contain_their_addresses_only() {
        let loopback = network("127.0.0.0/8");
        assert!(loopback.contains(ip("127.0.0.1")));
        assert!(loopback.contains(ip("127.255.255.255")));
        assert!(!loopback.contains(ip("128.0.0.1")));
        assert!(!loopback.contains(ip("::1")));
        assert!(network("10.1.2.3/32").contains(ip("10.1.2.3")));
        assert!(!network("10.1.2.3/32").contains(ip("10.1.2.4")));
        assert!(network("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(network("192.168.0.0/23").contains(ip("192.168.1.200")));
        assert!(!network("192.168.0.0/23").contains(ip("192.168.2.1")));
    }

    #[test]
    fn ipv6_blocks_and_mapped_ipv4_addresses() {
        assert!(network("::1/128").contains(ip("::1")));
        assert!(!network("::1/128").contains(ip("::2")));
        assert!(network("fd00::/8").contains(ip("fd12:3456::1")));
        assert!(!network("fd00::/8").contains(ip("fe80::1")));
        assert!(network("::/0").contains(ip("2001:db8::1")));
        assert!(network("10.0.0.0/8").contains(ip("::ffff:10.9.8.7")));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for text in [
            "10.0.0.0",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/-1",
            "",
        ] {
            assert!(text.parse::<Network>().is_err(), "{text}");
        }
    }

    #[test]
    fn a_comma_separated_list_or_a_list_of_strings() {
        let parsed = ExemptNetworks::parse_list("127.0.0.0/8, 10.0.0.0/8,").unwrap();
        assert!(parsed.contains(ip("10.1.1.1")) && parsed.contains(ip("127.0.0.1")));
        assert!(!parsed.contains(ip("192.0.2.1")));
        assert_eq!(
            ExemptNetworks::parse_list("").unwrap(),
            ExemptNetworks::default()
        );
        let listed: ExemptNetworks = serde_json::from_str(r#"["127.0.0.0/8", "::1/128"]"#).unwrap();
        assert!(listed.contains(ip("::1")));
        assert_eq!(
            serde_json::to_string(&listed).unwrap(),
            r#"["127.0.0.0/8","::1/128"]"#
        );
        assert!(serde_json::from_str::<ExemptNetworks>(r#""127.0.0.1""#).is_err());
    }
}
