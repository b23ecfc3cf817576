//! ε-greedy choice among candidates, bounded in cost.
//!
//! With probability ε a uniformly random eligible candidate (exploration); otherwise the
//! eligible candidate with the highest value (exploitation). Up to [`FULL_SCAN_LIMIT`]
//! candidates every one is valued; beyond that [`SAMPLES`] random candidates are, and the
//! best of those wins: Mitzenmacher's power of *d* choices (*The Power of Two Choices in
//! Randomized Load Balancing*, 2001) keeps the decision O(1) (the inference target is
//! ≤ 1 µs on average) while still steering away from the bad candidates with high
//! probability. The scan starts at a random offset, so equal values are broken at
//! random rather than always in favour of the first candidate.
//!
//! Randomness comes only from the caller's RNG (the router's seeded `SmallRng`).

use rand::Rng;

/// Up to this many candidates, every one is valued.
pub const FULL_SCAN_LIMIT: usize = 16;
/// Candidates valued per decision above [`FULL_SCAN_LIMIT`].
pub const SAMPLES: usize = 8;
/// Random probes for an eligible candidate before falling back to a scan.
const PROBES: usize = 16;

/// Chooses among `n` candidates; `value(i)` is `None` for an ineligible candidate.
/// `None` when no candidate is eligible.
pub fn epsilon_greedy<R: Rng + ?Sized>(
    epsilon: f64,
    n: usize,
    mut value: impl FnMut(usize) -> Option<f64>,
    rng: &mut R,
) -> Option<usize> {
    if n == 0 {
        return None;
    }
    if epsilon > 0.0 && rng.random::<f64>() < epsilon {
        return explore(n, &mut value, rng);
    }
    if n > FULL_SCAN_LIMIT {
        let mut best: Option<(usize, f64)> = None;
        let mut valued = 0;
        for _ in 0..PROBES {
            let i = rng.random_range(0..n);
            if let Some(v) = value(i) {
                if best.is_none_or(|(_, b)| v > b) {
                    best = Some((i, v));
                }
                valued += 1;
                if valued == SAMPLES {
                    break;
                }
            }
        }
        if best.is_some() {
            return best.map(|(i, _)| i);
        }
    }
    let start = rng.random_range(0..n);
    let mut best: Option<(usize, f64)> = None;
    for k in 0..n {
        let i = (start + k) % n;
        if let Some(v) = value(i)
            && best.is_none_or(|(_, b)| v > b)
        {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// A uniformly random eligible candidate (probes, then a scan from a random start).
fn explore<R: Rng + ?Sized>(n: usize, value: &mut impl FnMut(usize) -> Option<f64>, rng: &mut R) -> Option<usize> {
    for _ in 0..PROBES.min(4 * n) {
        let i = rng.random_range(0..n);
        if value(i).is_some() {
            return Some(i);
        }
    }
    let start = rng.random_range(0..n);
    (0..n).map(|k| (start + k) % n).find(|&i| value(i).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    /// ε = 0 always takes the best eligible candidate, skipping ineligible ones; with no
    /// eligible candidate there is no choice.
    #[test]
    fn greedy_takes_the_best_eligible() {
        let values = [Some(-3.0), Some(-1.0), None, Some(-2.0)];
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..100 {
            assert_eq!(epsilon_greedy(0.0, 4, |i| values[i], &mut rng), Some(1));
        }
        assert_eq!(epsilon_greedy(0.0, 4, |_| None, &mut rng), None);
        assert_eq!(epsilon_greedy(0.5, 0, |_| Some(1.0), &mut rng), None);
    }

    /// ε = 1 picks every eligible candidate about equally often and never an ineligible one.
    #[test]
    fn exploration_is_uniform_over_eligible() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut counts = [0u32; 5];
        for _ in 0..10_000 {
            let i = epsilon_greedy(1.0, 5, |i| (i != 3).then_some(0.0), &mut rng).unwrap();
            counts[i] += 1;
        }
        assert_eq!(counts[3], 0);
        for (i, c) in counts.iter().enumerate().filter(|(i, _)| *i != 3) {
            assert!((2_200..2_800).contains(c), "candidate {i}: {c}");
        }
    }

    /// Ties are broken at random, not always in favour of the first candidate.
    #[test]
    fn ties_are_spread() {
        let mut rng = SmallRng::seed_from_u64(3);
        let picks: std::collections::HashSet<_> =
            (0..200).map(|_| epsilon_greedy(0.0, 4, |_| Some(1.0), &mut rng).unwrap()).collect();
        assert_eq!(picks.len(), 4);
    }

    /// Above the scan limit only a sample is valued, and the pick is the best of it;
    /// a single eligible candidate among many is still found.
    #[test]
    fn large_sets_are_sampled() {
        let mut rng = SmallRng::seed_from_u64(4);
        let mut valued = 0;
        let pick = epsilon_greedy(
            0.0,
            1_000,
            |i| {
                valued += 1;
                Some(i as f64)
            },
            &mut rng,
        );
        assert!(valued <= SAMPLES, "{valued}");
        assert!(pick.is_some());
        assert_eq!(epsilon_greedy(0.0, 1_000, |i| (i == 777).then_some(0.0), &mut rng), Some(777));
    }
}
