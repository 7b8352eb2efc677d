//! Provably fair crash points against an independent implementation and against their
//! advertised distribution.
//!
//! `tests/fixtures/fair_vectors.json` is the output of `tests/fixtures/fair_vectors.py`, a
//! Python implementation written from the specification in docs/fairness.md: if aloft and
//! it disagree, one of them misreads the specification.

use aloft::fair::{FairChain, crash_point_hundredths, sha256_hex};
use serde::Deserialize;

const FIXTURE_JSON: &str = include_str!("../fixtures/fair_vectors.json");

/// Rounds drawn for the distribution test.
const DISTRIBUTION_ROUNDS: u64 = 1_000_000;
/// Allowed distance of an empirical probability from the advertised one, in standard errors.
const DISTRIBUTION_STANDARD_ERRORS_MAX: f64 = 5.0;

#[derive(Deserialize)]
struct Fixture {
    chain: ChainFixture,
    vectors: Vec<Vector>,
    bustabit_float_formula: FloatFormula,
}

#[derive(Deserialize)]
struct ChainFixture {
    seed: String,
    chain_length: u64,
    commitment: String,
    /// Round 1 first.
    round_hashes: Vec<String>,
}

#[derive(Deserialize)]
struct Vector {
    round_hash: String,
    salt: String,
    house_edge_bp: u32,
    crash_hundredths: u64,
    /// Bustabit's float formula on the same draw; present for the 1% edge.
    bustabit_float_hundredths: Option<u64>,
    note: String,
}

#[derive(Deserialize)]
struct FloatFormula {
    vectors_that_differ: usize,
    constructed_divergences: Vec<Divergence>,
}

#[derive(Deserialize)]
struct Divergence {
    draw: u64,
    exact_hundredths: u64,
    float_hundredths: u64,
}

fn fixture() -> Fixture {
    serde_json::from_str(FIXTURE_JSON).expect("fair_vectors.json parses")
}

#[test]
fn chain_matches_the_reference() {
    let reference = fixture().chain;
    let chain = FairChain::generate(&reference.seed, reference.chain_length).unwrap();
    assert_eq!(chain.commitment(), reference.commitment);
    assert_eq!(reference.round_hashes.len() as u64, reference.chain_length);
    for (round, expected) in (1..).zip(&reference.round_hashes) {
        assert_eq!(
            chain.round_hash(round).as_ref(),
            Some(expected),
            "round {round}"
        );
    }
    assert_eq!(sha256_hex(&reference.round_hashes[0]), reference.commitment);
}

#[test]
fn crash_points_match_the_reference() {
    let fixture = fixture();
    assert!(
        fixture.vectors.len() >= 30,
        "the fixture covers enough cases"
    );
    for vector in &fixture.vectors {
        let actual = crash_point_hundredths(&vector.round_hash, &vector.salt, vector.house_edge_bp);
        assert_eq!(
            actual, vector.crash_hundredths,
            "{} (hash {}, salt {:?}, edge {} bp)",
            vector.note, vector.round_hash, vector.salt, vector.house_edge_bp
        );
        if let Some(float_hundredths) = vector.bustabit_float_hundredths {
            assert_eq!(float_hundredths, actual, "Bustabit's formula agrees at 1%");
        }
    }
    let edges: Vec<u32> = fixture.vectors.iter().map(|v| v.house_edge_bp).collect();
    for edge in [0, 100, 500] {
        assert!(edges.contains(&edge), "edge {edge} bp is covered");
    }
    assert!(fixture.vectors.iter().any(|v| v.crash_hundredths == 100));
    assert!(
        fixture
            .vectors
            .iter()
            .any(|v| v.crash_hundredths > 1_000_000)
    );
}

/// The fixture's claim about Bustabit's float formula, re-checked with Rust's f64 (the same
/// IEEE doubles as JavaScript): on the constructed draws the float formula is 0.01x high.
#[test]
fn float_formula_divergences_are_real() {
    let formula = fixture().bustabit_float_formula;
    assert_eq!(formula.vectors_that_differ, 0);
    assert!(!formula.constructed_divergences.is_empty());
    let scale = (1_u64 << 52) as f64;
    for divergence in formula.constructed_divergences {
        let float = (99.0 / (1.0 - divergence.draw as f64 / scale))
            .floor()
            .max(100.0);
        assert_eq!(float as u64, divergence.float_hundredths);
        assert_eq!(divergence.float_hundredths, divergence.exact_hundredths + 1);
    }
}

/// Over a million rounds of a generated chain, P(crash ≥ m) is (1 − edge) / m within
/// five standard errors, and P(crash = 1.00x) is 1 − (1 − edge) / 1.01: the edge plus
/// the draws that floor below 1.01x.
#[test]
fn crash_points_follow_the_advertised_distribution() {
    const SEED: &str = "9883399ddd5122b017c56f79e160e2924453cb30e9dbfd86f39c29b4e53b3efe";
    const SALT: &str = "distribution";
    const HOUSE_EDGE_BP: u32 = 100;
    let thresholds_hundredths = [101_u64, 200, 1_000, 10_000];
    let chain = FairChain::generate(SEED, DISTRIBUTION_ROUNDS).unwrap();
    let mut at_least = [0_u64; 4];
    let mut instant = 0_u64;
    for round in 1..=DISTRIBUTION_ROUNDS {
        let hash = chain.round_hash(round).expect("round within the chain");
        let crash = crash_point_hundredths(&hash, SALT, HOUSE_EDGE_BP);
        instant += u64::from(crash == 100);
        for (count, threshold) in at_least.iter_mut().zip(thresholds_hundredths) {
            *count += u64::from(crash >= threshold);
        }
    }
    let keep = f64::from(10_000 - HOUSE_EDGE_BP) / 10_000.0;
    for (count, threshold) in at_least.into_iter().zip(thresholds_hundredths) {
        let expected = keep * 100.0 / threshold as f64;
        assert_close(count, expected, &format!("P(crash >= {threshold})"));
    }
    assert_close(instant, 1.0 - keep / 1.01, "P(crash = 100)");
}

fn assert_close(count: u64, expected: f64, what: &str) {
    let rounds = DISTRIBUTION_ROUNDS as f64;
    let empirical = count as f64 / rounds;
    let standard_error = (expected * (1.0 - expected) / rounds).sqrt();
    let distance = (empirical - expected).abs() / standard_error;
    assert!(
        distance <= DISTRIBUTION_STANDARD_ERRORS_MAX,
        "{what}: {empirical:.6} vs {expected:.6}, {distance:.1} standard errors"
    );
}
