//! Randomness comes from the caller: tags, branches and Call-IDs are drawn from an [`Rng`]
//! the application supplies, never from a global generator, so runs are reproducible.
//! [`SeededRng`] is the cryptographically secure one (ChaCha20); see its docs for seeding.

use chacha20::rand_core::{Rng as _, SeedableRng};
use chacha20::ChaCha20Rng;

/// A source of random 64-bit values. Tags, branches and Call-IDs are drawn from it, so an
/// implementation outside tests must be a cryptographically secure generator such as
/// [`SeededRng`] seeded from the operating system.
pub trait Rng {
    /// The next random value.
    fn next_u64(&mut self) -> u64;
}

/// The ChaCha20 stream of [`SeededRng::new`].
const APPLICATION_STREAM: u64 = 0;
/// The ChaCha20 stream of the endpoint's own tokens (branches, tags of the responses it
/// writes).
pub(crate) const ENDPOINT_TOKEN_STREAM: u64 = 1;
/// The ChaCha20 stream of the endpoint's hash keys.
const HASH_KEY_STREAM: u64 = 2;
/// The ChaCha20 stream the endpoint draws its resolver's seed (RFC 2782 weights) and the
/// keep-alive jitter from: nothing drawn there says anything about the tokens or keys.
const RESOLVER_STREAM: u64 = 3;
/// The key of the resolver's table of targets that are down.
pub(crate) const RESOLVER_HASH_STREAM: u64 = 4;

/// A cryptographically secure generator: ChaCha20 (RFC 8439, 20 rounds) keyed with the
/// caller's 32-byte seed. Its output cannot be predicted from earlier output, as RFC 3261
/// asks of tags (section 19.3) and Call-IDs (section 8.1.1.4), as long as the seed is secret
/// and random.
///
/// sip-core never asks the operating system for a seed (it does no I/O). The drivers do, by
/// default, and offer it as `os_seed()`; an application that builds messages on its own
/// reads 32 bytes from the operating system's generator, here with the `getrandom` crate:
///
/// ```
/// let mut seed = [0u8; 32];
/// getrandom::fill(&mut seed)?;
/// let mut rng = sip_core::SeededRng::new(seed);
/// # Ok::<(), getrandom::Error>(())
/// ```
///
/// The same seed gives the same sequence, which only tests want. Give each generator a seed
/// of its own. One seed keys independent ChaCha20 streams (the 64-bit nonce):
/// `SeededRng::new` draws from stream 0; the [`Endpoint`](crate::Endpoint) draws its own
/// tokens from stream 1, the keys of its transaction tables' hashes from stream 2, and its
/// resolver's seed and keep-alive jitter from stream 3, so no token a peer sees says
/// anything about those keys.
pub struct SeededRng {
    chacha: ChaCha20Rng,
}

impl SeededRng {
    /// A generator keyed with `seed`.
    pub fn new(seed: [u8; 32]) -> SeededRng {
        SeededRng::with_stream(seed, APPLICATION_STREAM)
    }

    /// A generator keyed with `seed`, drawing from ChaCha20 stream `stream`.
    pub(crate) fn with_stream(seed: [u8; 32], stream: u64) -> SeededRng {
        let mut chacha = ChaCha20Rng::from_seed(seed);
        chacha.set_stream(stream);
        SeededRng { chacha }
    }
}

// The state is the secret: never print it.
impl std::fmt::Debug for SeededRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeededRng { .. }")
    }
}

impl Rng for SeededRng {
    fn next_u64(&mut self) -> u64 {
        self.chacha.next_u64()
    }
}

/// The two SipHash keys of the endpoint's transaction tables, from a stream of `seed` that
/// no token is drawn from.
pub(crate) fn hash_keys(seed: [u8; 32]) -> (u64, u64) {
    let mut rng = SeededRng::with_stream(seed, HASH_KEY_STREAM);
    (rng.next_u64(), rng.next_u64())
}

/// The seed of the endpoint's resolver and the generator of its keep-alive jitter, from a
/// stream of `seed` that no token or hash key is drawn from.
pub(crate) fn resolver_seed(seed: [u8; 32]) -> ([u8; 32], SeededRng) {
    let mut rng = SeededRng::with_stream(seed, RESOLVER_STREAM);
    let mut out = [0u8; 32];
    for chunk in out.chunks_exact_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    (out, rng)
}

/// The characters of random tokens: lower case and digits (a tag such as `CSeq5WwVeC` made
/// SIPp take its To header for a CSeq and drop the call), 32 of them so that each carries
/// exactly 5 bits, without bias.
const TOKEN_ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// Appends `n` random characters from [`TOKEN_ALPHABET`]: `5 * n` bits of randomness. The
/// builders use 10 for tags (50 bits; section 19.3 asks for at least 32), 16 after the magic
/// cookie for branches (80 bits) and 24 for Call-IDs (120 bits).
pub(crate) fn push_random_token(out: &mut String, rng: &mut dyn Rng, n: usize) {
    let mut bits = 0u64;
    let mut left = 0;
    for _ in 0..n {
        if left == 0 {
            bits = rng.next_u64();
            left = 64 / 5;
        }
        out.push(TOKEN_ALPHABET[(bits & 31) as usize] as char);
        bits >>= 5;
        left -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keystream(rng: &mut SeededRng, bytes: usize) -> Vec<u8> {
        (0..bytes / 8)
            .flat_map(|_| rng.next_u64().to_le_bytes())
            .collect()
    }

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    #[test]
    fn same_seed_same_sequence() {
        // Determinism for tests: a run is reproduced from its seed.
        let mut a = SeededRng::new([1; 32]);
        let mut b = SeededRng::new([1; 32]);
        let mut c = SeededRng::new([2; 32]);
        let (x, y, z) = (
            keystream(&mut a, 64),
            keystream(&mut b, 64),
            keystream(&mut c, 64),
        );
        assert_eq!(x, y);
        assert_ne!(x, z);
        let (mut s, mut t) = (String::new(), String::new());
        push_random_token(&mut s, &mut a, 20);
        push_random_token(&mut t, &mut b, 20);
        assert_eq!(s, t);
    }

    #[test]
    fn generator_is_chacha20_of_rfc_8439() {
        // RFC 8439 A.1, test vectors #1 and #2: all-zero key and nonce, block counters 0
        // and 1; the generator's keystream is ChaCha20's.
        let mut rng = SeededRng::new([0; 32]);
        let expected = hex(
            "76 b8 e0 ad a0 f1 3d 90 40 5d 6a e5 53 86 bd 28 bd d2 19 b8 a0 8d ed 1a a8 36 ef cc
             8b 77 0d c7 da 41 59 7c 51 57 48 8d 77 24 e0 3f b8 d8 4a 37 6a 43 b8 f4 15 18 a1 1c
             c3 87 b6 69 b2 ee 65 86
             9f 07 e7 be 55 51 38 7a 98 ba 97 7c 73 2d 08 0d cb 0f 29 a0 48 e3 65 69 12 c6 53 3e
             32 ee 7a ed 29 b7 21 76 9c e6 4e 43 d5 71 33 b0 74 d8 39 d5 31 ed 1f 28 51 0a fb 45
             ac e1 0a 1f 4b 79 4d 6f",
        );
        assert_eq!(keystream(&mut rng, 128), expected);
    }

    #[test]
    fn streams_are_chacha20_nonces() {
        // RFC 8439 A.1, test vector #5: all-zero key, nonce 00..00 02 (its last 64 bits are
        // the stream number, little-endian), block counter 0.
        let mut rng = SeededRng::with_stream([0; 32], 2 << 56);
        let expected = hex(
            "c2 c6 4d 37 8c d5 36 37 4a e2 04 b9 ef 93 3f cd 1a 8b 22 88 b3 df a4 96 72 ab 76 5b
             54 ee 27 c7 8a 97 0e 0e 95 5c 14 f3 a8 8e 74 1b 97 c2 86 f7 5f 8f c2 99 e8 14 83 62
             fa 19 8a 39 53 1b ed 6d",
        );
        assert_eq!(keystream(&mut rng, 64), expected);
    }

    #[test]
    fn hash_keys_are_not_in_any_token_stream() {
        // RFC 3261 26.1: no token a peer sees may reveal the keys that protect the
        // transaction tables from hash flooding. Under the old generator the keys were the
        // first two outputs of the token sequence.
        for seed in [[0u8; 32], [1; 32], [0xa5; 32]] {
            let (k0, k1) = hash_keys(seed);
            assert_ne!(k0, k1);
            for stream in [APPLICATION_STREAM, ENDPOINT_TOKEN_STREAM] {
                let mut tokens = SeededRng::with_stream(seed, stream);
                let outputs: Vec<u64> = (0..4096).map(|_| tokens.next_u64()).collect();
                assert!(!outputs.contains(&k0) && !outputs.contains(&k1));
                // nor do the streams share output with each other
                let mut other = SeededRng::with_stream(seed, stream ^ 1);
                let first = other.next_u64();
                assert!(!outputs.contains(&first));
            }
        }
    }

    #[test]
    fn token_characters_carry_five_unbiased_bits() {
        // RFC 3261 19.3: tags need at least 32 bits of randomness; each character carries 5.
        // Every value of a character appears equally often over a full cycle of its 5 bits.
        struct Counter(u64);
        impl Rng for Counter {
            fn next_u64(&mut self) -> u64 {
                self.0 += 1;
                self.0 - 1
            }
        }
        let mut s = String::new();
        push_random_token(&mut s, &mut Counter(0), 32 * 12);
        let mut seen = [0usize; 32];
        for b in s.bytes().step_by(12) {
            seen[TOKEN_ALPHABET.iter().position(|&a| a == b).unwrap()] += 1;
        }
        assert_eq!(seen, [1; 32]);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
    }
}
