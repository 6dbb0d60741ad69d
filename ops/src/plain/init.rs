//! Seeded initial values: normal samples from a ChaCha20 stream, reproducible from the seed.

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Samples of `N(0, std^2)` of this shape: the stream of `ChaCha20Rng::seed_from_u64(seed)`,
/// skipping its first `offset` samples, read by Box-Muller (two 32-bit words per sample, the
/// cosine branch only). Variables that take consecutive parts of one stream (`offset` the
/// number of samples before them) get exactly the values of one sequential draw.
pub fn normal(shape: &[usize], std: f32, seed: u64, offset: u64) -> ArrayD<f32> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_word_pos(2 * u128::from(offset));
    ArrayD::from_shape_simple_fn(IxDyn(shape), || sample(&mut rng) * std)
}

/// One standard normal sample by Box-Muller.
fn sample(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_continue_one_stream() {
        let whole = normal(&[7], 1.0, 3, 0);
        let head = normal(&[3], 1.0, 3, 0);
        let tail = normal(&[4], 1.0, 3, 3);
        let joined: Vec<f32> = head.iter().chain(tail.iter()).copied().collect();
        assert_eq!(whole.as_slice().unwrap(), joined.as_slice());
        let scaled = normal(&[3], 0.5, 3, 0);
        assert_eq!(scaled, head.mapv(|v| v * 0.5));
        assert_ne!(normal(&[3], 1.0, 4, 0), head);
    }
}
