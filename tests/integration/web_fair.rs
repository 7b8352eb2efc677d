//! The web client's provably-fair arithmetic (`web-client/fair.js`, run by the verify
//! page) against the server's: vectors computed here with the crates the server hashes
//! with (`sha2`, `hmac`) and its own crash-point function, checked by
//! `tests/web_client/fair.mjs` under Node, on both of fair.js's paths (WebCrypto and the
//! pure-JS fallback). Needs `node` (Node.js 20) on the PATH.

use std::path::Path;
use std::process::Command;

use aloft::fair::{FairChain, crash_point_hundredths, sha256_hex};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

/// Lengths of the SHA-256 inputs, in bytes: around the 64-byte block and the 55/56-byte
/// padding boundary, where hand-written padding goes wrong.
const SHA256_LENGTHS: [usize; 12] = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 1000];
/// HMAC key lengths, in bytes: short, the 64-character round hashes the verify page uses,
/// and past the 64-byte block (such keys are hashed first).
const HMAC_KEY_LENGTHS: [usize; 5] = [1, 20, 64, 65, 131];
/// Rounds of the generated chain whose crash points are checked.
const CHAIN_ROUNDS: u64 = 50;
const SALT: &str = "0000000000000000000fa3b65e43e4240d71762a5bf397d5304b2596d116859c";
const HOUSE_EDGES_BP: [u32; 4] = [0, 100, 500, 5_000];

/// A deterministic ASCII text of `length` bytes.
fn text(length: usize, seed: usize) -> String {
    (0..length)
        .map(|i| char::from(b'!' + ((i * 7 + seed * 13) % 94) as u8))
        .collect()
}

fn hmac_hex(key: &str, message: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn vectors() -> Value {
    let mut texts: Vec<String> = SHA256_LENGTHS.iter().map(|&n| text(n, n)).collect();
    texts.push("aloft ✈ crash — é".to_owned()); // UTF-8 beyond ASCII
    let sha256: Vec<Value> = texts
        .iter()
        .map(|text| json!({ "text": text, "sha256_hex": sha256_hex(text) }))
        .collect();
    let hmac: Vec<Value> = HMAC_KEY_LENGTHS
        .iter()
        .flat_map(|&key_length| {
            [0, 5, 64, 200].map(|message_length| {
                let key = text(key_length, 1);
                let message = text(message_length, 2);
                json!({ "key": key, "message": message, "hmac_hex": hmac_hex(&key, &message) })
            })
        })
        .collect();
    let chain = FairChain::generate(&sha256_hex("web client vectors"), CHAIN_ROUNDS).unwrap();
    let crash_points: Vec<Value> = (1..=CHAIN_ROUNDS)
        .flat_map(|round| {
            let hash = chain.round_hash(round).unwrap();
            HOUSE_EDGES_BP.map(|edge| {
                json!({
                    "round_hash": hash,
                    "salt": SALT,
                    "house_edge_bp": edge,
                    "crash_hundredths": crash_point_hundredths(&hash, SALT, edge),
                })
            })
        })
        .collect();
    json!({ "sha256": sha256, "hmac": hmac, "crash_points": crash_points })
}

#[test]
fn fair_js_hashes_and_crash_points_match_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let vectors_path = dir.path().join("vectors.json");
    std::fs::write(&vectors_path, vectors().to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web_client/fair.mjs");
    let output = Command::new("node")
        .arg(&script)
        .arg(&vectors_path)
        .output()
        .unwrap_or_else(|error| panic!("cannot run node (install Node.js 20): {error}"));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "fair.js disagrees with the server:\n{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected_checks = 2 * (SHA256_LENGTHS.len() + 1)
        + 2 * HMAC_KEY_LENGTHS.len() * 4
        + 2 * (CHAIN_ROUNDS as usize) * HOUSE_EDGES_BP.len();
    assert!(
        report.contains(&format!(
            "{expected_checks} of {expected_checks} checks passed"
        )),
        "{report}"
    );
}
