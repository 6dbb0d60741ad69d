//! The public dropout masks of a training step: drawn from the training run's public seed
//! and the step number, so that every party (both servers, the plaintext reference) gives the
//! graph the same masks without exchanging them. They depend on no data.

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use shareflow_graphs::network::DropoutMask;

/// Separates the masks' stream from the other streams of a training seed.
const DOMAIN: u64 = 0xd50_0f5e_ed00;

/// The masks of step `step` (0-based) of a run seeded with `seed`: each value 0 with
/// probability `rate`, else `1 / (1 - rate)`.
pub fn dropout_masks(
    masks: &[DropoutMask],
    seed: u64,
    step: usize,
) -> HashMap<String, ArrayD<f32>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ DOMAIN);
    rng.set_stream(step as u64);
    masks
        .iter()
        .map(|m| {
            let keep = 1.0 / (1.0 - m.rate);
            let n: usize = m.shape.iter().product();
            let values: Vec<f32> = (0..n)
                .map(|_| {
                    if rng.random::<f32>() < m.rate {
                        0.0
                    } else {
                        keep
                    }
                })
                .collect();
            let array = ArrayD::from_shape_vec(IxDyn(&m.shape), values)
                .unwrap_or_else(|_| ArrayD::zeros(IxDyn(&m.shape)));
            (m.name.clone(), array)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_reproducible_per_step_and_drop_about_the_rate() {
        let m = [DropoutMask {
            name: "drop/mask".into(),
            shape: vec![100, 100],
            rate: 0.25,
        }];
        let a = dropout_masks(&m, 7, 3);
        assert_eq!(a, dropout_masks(&m, 7, 3));
        assert_ne!(a, dropout_masks(&m, 7, 4));
        let mask = &a["drop/mask"];
        let dropped = mask.iter().filter(|&&v| v == 0.0).count();
        assert!(
            (2300..2700).contains(&dropped),
            "{dropped} of 10000 dropped"
        );
        assert!(mask
            .iter()
            .all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
    }
}
