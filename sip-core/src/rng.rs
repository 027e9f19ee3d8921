//! Randomness comes from the caller: tags, branches and Call-IDs are drawn from an [`Rng`]
//! the application supplies, never from a global generator, so runs are reproducible.

/// A source of random 64-bit values.
pub trait Rng {
    /// The next random value.
    fn next_u64(&mut self) -> u64;
}

/// A small deterministic generator (xoshiro256**) seeded by the caller. Good for
/// identifiers that must be unique and unguessable by off-path peers only when the seed
/// itself is secret and random (RFC 3261 sections 8.1.1.4 and 19.3 ask for global uniqueness
/// and cryptographic randomness for tags and Call-IDs: seed it from the OS).
#[derive(Debug, Clone)]
pub struct SeededRng {
    s: [u64; 4],
}

impl SeededRng {
    /// A generator seeded with 32 bytes.
    pub fn new(seed: [u8; 32]) -> SeededRng {
        let mut s = [0u64; 4];
        for (i, w) in s.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&seed[i * 8..i * 8 + 8]);
            // splitmix64 over each word so that weak seeds (all zero) still give a good state
            *w = splitmix(u64::from_le_bytes(b).wrapping_add(i as u64));
        }
        SeededRng { s }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng for SeededRng {
    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }
}

/// Appends `n` random characters from a token-safe alphabet.
pub(crate) fn push_random_token(out: &mut String, rng: &mut dyn Rng, n: usize) {
    // Lower case and digits only (5.2 bits a character; a 10-character tag carries 51): a
    // tag such as `CSeq5WwVeC` made SIPp take its To header for a CSeq and drop the call.
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut bits = 0u64;
    let mut left = 0;
    for _ in 0..n {
        if left == 0 {
            bits = rng.next_u64();
            left = 12;
        }
        out.push(ALPHABET[(bits % 36) as usize] as char);
        bits /= 36;
        left -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SeededRng::new([1; 32]);
        let mut b = SeededRng::new([1; 32]);
        let mut c = SeededRng::new([2; 32]);
        let (x, y, z) = (a.next_u64(), b.next_u64(), c.next_u64());
        assert_eq!(x, y);
        assert_ne!(x, z);
        let mut s = String::new();
        push_random_token(&mut s, &mut a, 20);
        assert_eq!(s.len(), 20);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
