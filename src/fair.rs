//! Provably fair crash points.
//!
//! Owns the hash chain, the crash-point formula and the chain's persisted seed.
//!
//! A chain of `chain_length + 1` SHA-256 hashes is generated from a secret seed:
//! `link[0] = seed`, `link[k+1] = sha256_hex(link[k])` (each hash is taken over the
//! 64-character lowercase hex text of the previous one, as Bustabit does, so anyone can
//! check it with `sha256sum`). The last link is the *commitment*, published before play.
//! Rounds consume the chain backwards: round 1 uses `link[chain_length - 1]`, round 2
//! `link[chain_length - 2]`, … so that `sha256_hex(hash of round n)` equals the hash of
//! round n-1, and `sha256_hex(hash of round 1)` equals the commitment. Revealing a round's
//! hash at its crash therefore proves it was fixed before the chain was published, and
//! reveals nothing about the rounds to come.
//!
//! The crash point of a round is Bustabit's formula with integer arithmetic:
//! `h = HMAC-SHA256(key = round hash hex, message = salt)`; `r` = the first 52 bits of `h`;
//! `crash = max(100, floor((10000 - house_edge_bp) · 2^52 / (100 · (2^52 - r))))`
//! hundredths. With the default 1% edge that is Bustabit's `floor(99 / (1 - r/2^52))`,
//! and P(crash ≥ m) = (1 - edge) / m.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Bits of the HMAC used as the uniform draw (exactly representable, as in Bustabit).
const DRAW_BITS: u32 = 52;

/// Largest accepted house edge, in basis points (50%).
pub const HOUSE_EDGE_BP_MAX: u32 = 5_000;

/// Longest chain a process will generate (memory: 32 bytes a link).
pub const CHAIN_LENGTH_MAX: u64 = 10_000_000;

/// SHA-256 of `text`, as 64 lowercase hex characters.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The crash point, in hundredths, of the round whose hash is `round_hash_hex`.
pub fn crash_point_hundredths(round_hash_hex: &str, salt: &str, house_edge_bp: u32) -> u64 {
    assert!(
        house_edge_bp <= HOUSE_EDGE_BP_MAX,
        "house edge out of range"
    );
    let mut mac =
        Hmac::<Sha256>::new_from_slice(round_hash_hex.as_bytes()).expect("HMAC takes any key");
    mac.update(salt.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut first8 = [0u8; 8];
    first8.copy_from_slice(&digest[..8]);
    let draw = u64::from_be_bytes(first8) >> (64 - DRAW_BITS);
    let scale: u128 = 1 << DRAW_BITS;
    let numerator = u128::from(10_000 - house_edge_bp) * scale;
    let denominator = 100 * (scale - u128::from(draw));
    let crash = (numerator / denominator).max(100);
    u64::try_from(crash).expect("crash point fits u64: denominator is at least 100")
}

/// A generated hash chain, held in memory for the process's life.
pub struct FairChain {
    /// `links[k]` is `link[k]` of the chain as described in the module doc, k = 0..=len.
    links: Vec<[u8; 32]>,
    /// The round number that uses the chain's first hash. A room's first chain starts at
    /// round 1; a chain that replaces an exhausted one starts where the old one ended.
    first_round: u64,
}

/// Why a chain could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum FairError {
    /// The data directory is not writable or the seed file is unreadable.
    #[error("cannot read or write the fairness seed at {path}: {source}")]
    Seed {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The seed file does not hold 64 hex characters and a first round number: restore it
    /// from backup; never replace it while rounds of its chain are still to be played.
    #[error("the fairness seed at {path} is not 64 hex characters then a round number")]
    BadSeed { path: String },
    /// `fair.chain_length` is 0 or above the maximum.
    #[error("fair.chain_length must be 1..={CHAIN_LENGTH_MAX}, got {0}")]
    BadLength(u64),
}

impl FairChain {
    /// Generates the chain of `chain_length` round hashes from `seed_hex`.
    pub fn generate(seed_hex: &str, chain_length: u64) -> Result<FairChain, FairError> {
        if chain_length == 0 || chain_length > CHAIN_LENGTH_MAX {
            return Err(FairError::BadLength(chain_length));
        }
        let length = usize::try_from(chain_length).expect("bounded by CHAIN_LENGTH_MAX");
        let mut links = Vec::with_capacity(length + 1);
        let mut link = decode_link(seed_hex).ok_or_else(|| FairError::BadSeed {
            path: "<memory>".into(),
        })?;
        links.push(link);
        let mut text = [0u8; 64];
        for _ in 0..length {
            hex::encode_to_slice(link, &mut text).expect("64 bytes hold 32 in hex");
            link = Sha256::digest(text).into();
            links.push(link);
        }
        Ok(FairChain {
            links,
            first_round: 1,
        })
    }

    /// The same chain, serving rounds from `first_round` on.
    pub fn starting_at(self, first_round: u64) -> FairChain {
        assert!(first_round >= 1, "rounds are numbered from 1");
        FairChain {
            first_round,
            ..self
        }
    }

    /// Loads a room's chain from `seed_path` (`<seed hex>` then `<first round>` on the
    /// next line), creating it on first run with a random seed that starts at
    /// `next_round`: the round the room plays next. Archiving an exhausted seed file
    /// therefore starts a new chain exactly where the old one ended.
    pub fn load_or_create(
        seed_path: &Path,
        chain_length: u64,
        next_round: u64,
    ) -> Result<FairChain, FairError> {
        let path_text = seed_path.display().to_string();
        let seed_error = |source| FairError::Seed {
            path: path_text.clone(),
            source,
        };
        let text = match std::fs::read_to_string(seed_path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let text = format!(
                    "{}\n{next_round}\n",
                    hex::encode(rand::random::<[u8; 32]>())
                );
                if let Some(parent) = seed_path.parent() {
                    std::fs::create_dir_all(parent).map_err(seed_error)?;
                }
                write_private(seed_path, &text).map_err(seed_error)?;
                text
            }
            Err(error) => return Err(seed_error(error)),
        };
        let mut lines = text.lines().map(str::trim);
        let seed_hex = lines.next().unwrap_or_default();
        let first_round = lines.next().and_then(|line| line.parse::<u64>().ok());
        let (Some(first_round), Some(_)) = (first_round.filter(|n| *n >= 1), decode_link(seed_hex))
        else {
            return Err(FairError::BadSeed { path: path_text });
        };
        Ok(FairChain::generate(seed_hex, chain_length)?.starting_at(first_round))
    }

    /// The chain that serves `round` in a cluster: chains follow one another every
    /// `chain_length` rounds (the k-th serves rounds `k·len + 1 ..= (k+1)·len`), each
    /// seeded with `HMAC-SHA256(chain_secret, "aloft chain <room> <first round>")`. Every
    /// engine holding the secret therefore plays the same hashes, with nothing to share
    /// but the secret, and a standby that takes a room over continues its chain.
    pub fn derive(
        chain_secret_hex: &str,
        room: &str,
        round: u64,
        chain_length: u64,
    ) -> Result<FairChain, FairError> {
        if chain_length == 0 || chain_length > CHAIN_LENGTH_MAX {
            return Err(FairError::BadLength(chain_length));
        }
        assert!(round >= 1, "rounds are numbered from 1");
        let secret = hex::decode(chain_secret_hex).map_err(|_| FairError::BadSeed {
            path: "fair.chain_secret".into(),
        })?;
        let first_round = (round - 1) / chain_length * chain_length + 1;
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("HMAC takes any key");
        mac.update(format!("aloft chain {room} {first_round}").as_bytes());
        let seed_hex = hex::encode(mac.finalize().into_bytes());
        Ok(FairChain::generate(&seed_hex, chain_length)?.starting_at(first_round))
    }

    /// How many rounds the chain can serve.
    pub fn len(&self) -> u64 {
        (self.links.len() - 1) as u64
    }

    /// Always false: a chain holds at least one round.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The published end of the chain: `sha256_hex` of round 1's hash.
    pub fn commitment(&self) -> String {
        hex::encode(self.links[self.links.len() - 1])
    }

    /// The round that uses the chain's first hash.
    pub fn first_round(&self) -> u64 {
        self.first_round
    }

    /// The hash of round `round`, or `None` outside the rounds this chain serves.
    pub fn round_hash(&self, round: u64) -> Option<String> {
        let position = round.checked_sub(self.first_round)? + 1;
        if position > self.len() {
            return None;
        }
        let index = usize::try_from(self.len() - position).expect("index below chain length");
        Some(hex::encode(self.links[index]))
    }
}

fn decode_link(text: &str) -> Option<[u8; 32]> {
    let mut link = [0u8; 32];
    hex::decode_to_slice(text, &mut link).ok()?;
    Some(link)
}

/// Reads a secret kept in a file, or creates it (32 random bytes as 64 hex characters,
/// readable by the owner only) on first run.
pub fn load_or_create_hex_secret(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secret = hex::encode(rand::random::<[u8; 32]>());
            write_private(path, &secret)?;
            Ok(secret)
        }
        Err(error) => Err(error),
    }
}

/// Writes a secret file readable by the owner only.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "0000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn rounds_walk_the_chain_backwards_to_the_commitment() {
        let chain = FairChain::generate(SEED, 5).unwrap();
        assert_eq!(
            sha256_hex(&chain.round_hash(1).unwrap()),
            chain.commitment()
        );
        for round in 2..=5 {
            assert_eq!(
                sha256_hex(&chain.round_hash(round).unwrap()),
                chain.round_hash(round - 1).unwrap()
            );
        }
        assert_eq!(chain.round_hash(5).unwrap(), SEED);
        assert_eq!(chain.round_hash(6), None);
        assert_eq!(chain.round_hash(0), None);
    }

    #[test]
    fn a_replacement_chain_serves_the_rounds_after_the_old_one() {
        let chain = FairChain::generate(SEED, 5).unwrap().starting_at(11);
        assert_eq!(chain.round_hash(10), None);
        assert_eq!(
            sha256_hex(&chain.round_hash(11).unwrap()),
            chain.commitment()
        );
        assert_eq!(chain.round_hash(15).unwrap(), SEED);
        assert_eq!(chain.round_hash(16), None);
    }

    #[test]
    fn seed_file_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fair/main.seed");
        let created = FairChain::load_or_create(&path, 20, 7).unwrap();
        let loaded = FairChain::load_or_create(&path, 20, 99).unwrap();
        assert_eq!(created.commitment(), loaded.commitment());
        assert_eq!(loaded.first_round(), 7);
        std::fs::write(dir.path().join("bad.seed"), "zz\n1\n").unwrap();
        assert!(FairChain::load_or_create(&dir.path().join("bad.seed"), 20, 1).is_err());
    }

    #[test]
    fn derived_chains_are_the_same_everywhere_and_follow_one_another() {
        let secret = "ab".repeat(32);
        let chain = FairChain::derive(&secret, "main", 7, 5).unwrap();
        assert_eq!(chain.first_round(), 6);
        assert_eq!(chain.round_hash(10), chain.round_hash(10));
        let again = FairChain::derive(&secret, "main", 10, 5).unwrap();
        assert_eq!(again.commitment(), chain.commitment());
        let next = FairChain::derive(&secret, "main", 11, 5).unwrap();
        assert_eq!(next.first_round(), 11);
        assert_ne!(next.commitment(), chain.commitment());
        let other_room = FairChain::derive(&secret, "side", 7, 5).unwrap();
        assert_ne!(other_room.commitment(), chain.commitment());
        let other_secret = FairChain::derive(&"cd".repeat(32), "main", 7, 5).unwrap();
        assert_ne!(other_secret.commitment(), chain.commitment());
        assert!(FairChain::derive("not hex", "main", 1, 5).is_err());
    }

    #[test]
    fn crash_point_is_at_least_one_and_edge_lowers_it() {
        let hash = sha256_hex("x");
        let no_edge = crash_point_hundredths(&hash, "salt", 0);
        let edge = crash_point_hundredths(&hash, "salt", 100);
        assert!(edge >= 100);
        assert!(edge <= no_edge);
    }
}
