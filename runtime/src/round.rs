//! Round numbers as they travel: a serving session runs its setup and its predictions over one
//! transport, run `k` (setup is 0, prediction `i` is run `i + 1`) in rounds
//! `k * RUN_ROUNDS ..`. [`Round`] shows such a number in its parts, so that an error says
//! "round 3 of prediction 90" rather than "round 5898243".

use std::fmt;

/// Round numbers of one run of a serving session: run `k` uses `k * RUN_ROUNDS ..`.
pub const RUN_ROUNDS: u32 = shareflow_compiler::limits::MAX_ROUNDS;

/// A round number on the wire, displayed in its parts: `round 3` for a round of a single
/// program (or of a serving session's setup), `round 3 of prediction 90 (wire round
/// 5898243)` for a round of a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Round(pub u32);

impl Round {
    /// The run (0: a single program or a serving session's setup; `i + 1`: prediction `i`).
    pub fn run(self) -> u32 {
        self.0 / RUN_ROUNDS
    }

    /// The round within its run.
    pub fn within(self) -> u32 {
        self.0 % RUN_ROUNDS
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.run() {
            0 => write!(f, "round {}", self.0),
            run => write!(
                f,
                "round {} of prediction {} (wire round {})",
                self.within(),
                run - 1,
                self.0
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_show_their_prediction() {
        assert_eq!(Round(5).to_string(), "round 5");
        assert_eq!(
            Round(5_963_776).to_string(),
            "round 0 of prediction 90 (wire round 5963776)"
        );
        assert_eq!(
            Round(RUN_ROUNDS + 3).to_string(),
            "round 3 of prediction 0 (wire round 65539)"
        );
    }
}
