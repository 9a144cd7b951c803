//! The one rule that picks a model: utility = quality − cost_weight × cost − latency_weight × latency,
//! with cost and latency in units of the most expensive and the slowest candidate, so a weight means
//! the same whatever the prices: at cost weight 0.1, paying the most expensive candidate's price is
//! worth 0.1 of quality.

/// A point on the cost-quality dial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub cost: f64,
    pub latency: f64,
}

/// What is known of one candidate for one prompt.
#[derive(Debug, Clone, Copy)]
pub struct Estimate {
    pub quality: f64,
    pub cost: f64,
    pub latency: f64,
}

/// Each candidate's utility.
pub fn utilities(estimates: &[Estimate], weights: Weights) -> Vec<f64> {
    let max_cost = estimates.iter().map(|e| e.cost).fold(0.0, f64::max);
    let max_latency = estimates.iter().map(|e| e.latency).fold(0.0, f64::max);
    let scaled = |value: f64, max: f64| if max > 0.0 { value / max } else { 0.0 };
    estimates
        .iter()
        .map(|e| e.quality - weights.cost * scaled(e.cost, max_cost) - weights.latency * scaled(e.latency, max_latency))
        .collect()
}

/// The index of the best candidate; among equal utilities the cheaper one.
pub fn choose(estimates: &[Estimate], weights: Weights) -> Option<usize> {
    best(estimates, &utilities(estimates, weights))
}

/// The index of the highest of already computed `utilities`; among equals the cheaper candidate.
pub fn best(estimates: &[Estimate], utilities: &[f64]) -> Option<usize> {
    let u = utilities;
    (0..estimates.len()).max_by(|&a, &b| u[a].total_cmp(&u[b]).then(estimates[b].cost.total_cmp(&estimates[a].cost)))
}

/// Cost weights for a sweep of `points` knob values, from the cheapest choice (knob 0) to the best
/// (knob 1): 0 at the top, a weight no quality difference can outweigh at the bottom, geometric between.
pub fn sweep_weights(points: usize) -> Vec<(f64, f64)> {
    let points = points.max(2);
    (0..points)
        .map(|i| {
            let knob = i as f64 / (points - 1) as f64;
            let weight = if i == 0 {
                1e6
            } else if i == points - 1 {
                0.0
            } else {
                // 10 (cheap) … 1e-4 (nearly best) on a log scale.
                10f64.powf(1.0 - 5.0 * knob)
            };
            (knob, weight)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(quality: f64, cost: f64) -> Estimate {
        Estimate { quality, cost, latency: 0.0 }
    }

    #[test]
    fn the_dial_moves_from_cheap_to_best() {
        let c = [e(0.9, 10.0), e(0.8, 1.0), e(0.5, 0.1)];
        let at = |cost| choose(&c, Weights { cost, latency: 0.0 });
        assert_eq!(at(0.0), Some(0));
        assert_eq!(at(0.2), Some(1)); // 0.9 - 0.2 < 0.8 - 0.02 (costs relative to the dearest)
        assert_eq!(at(1e6), Some(2));
    }

    #[test]
    fn ties_go_to_the_cheaper_model() {
        assert_eq!(choose(&[e(0.7, 2.0), e(0.7, 1.0)], Weights { cost: 0.0, latency: 0.0 }), Some(1));
    }

    #[test]
    fn latency_counts_when_weighted() {
        let c =
            [Estimate { quality: 0.8, cost: 1.0, latency: 2.0 }, Estimate { quality: 0.75, cost: 1.0, latency: 0.5 }];
        assert_eq!(choose(&c, Weights { cost: 0.0, latency: 0.0 }), Some(0));
        assert_eq!(choose(&c, Weights { cost: 0.0, latency: 0.1 }), Some(1));
    }

    #[test]
    fn sweep_spans_the_dial() {
        let w = sweep_weights(11);
        assert_eq!(w.len(), 11);
        assert_eq!(w[0], (0.0, 1e6));
        assert_eq!(w[10], (1.0, 0.0));
        assert!(w.windows(2).all(|p| p[0].1 > p[1].1));
    }
}
