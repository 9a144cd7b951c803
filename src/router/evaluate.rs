//! Offline evaluation: sweep the cost weight over labelled prompts and score the router's
//! cost-quality curve against the single models and the oracle (RouterBench AIQ), and for two
//! candidates the RouteLLM metrics (APGR, CPT).

use serde::Serialize;

use super::data::Example;
use super::metrics::{Point, TwoModel, aiq, cost_to_reach, two_model};
use super::utility::{Estimate, Weights, choose, sweep_weights};

/// Predicted qualities for a set of prompts: `qualities[row * models.len() + m]`.
pub struct Predictions<'a> {
    pub models: &'a [String],
    pub qualities: &'a [f32],
}

/// For each sweep point, the index (into `candidates`) chosen for each row.
pub struct Sweep {
    pub knobs: Vec<f64>,
    pub choices: Vec<Vec<usize>>,
}

/// Runs the dial over `points` knob values. `cost[c]` is the predicted cost of candidate `c`, the
/// same for every prompt (the mean per-prompt cost the selector card records).
pub fn sweep(predictions: &Predictions<'_>, rows: usize, candidates: &[usize], cost: &[f64], points: usize) -> Sweep {
    let width = predictions.models.len();
    let mut knobs = Vec::new();
    let mut choices = Vec::new();
    for (knob, weight) in sweep_weights(points) {
        let weights = Weights { cost: weight, latency: 0.0 };
        let picked = (0..rows)
            .map(|row| {
                let estimates: Vec<Estimate> = candidates
                    .iter()
                    .zip(cost)
                    .map(|(&m, &c)| Estimate {
                        quality: f64::from(predictions.qualities[row * width + m]),
                        cost: c,
                        latency: 0.0,
                    })
                    .collect();
                choose(&estimates, weights).unwrap_or(0)
            })
            .collect();
        knobs.push(knob);
        choices.push(picked);
    }
    Sweep { knobs, choices }
}

#[derive(Debug, Serialize)]
pub struct SingleModel {
    pub model: String,
    pub quality: f64,
    pub cost: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub examples: usize,
    pub candidates: Vec<String>,
    pub aiq: f64,
    pub zero_router_aiq: f64,
    pub oracle_aiq: f64,
    pub oracle: Point,
    pub best_single: SingleModel,
    /// The router's least cost (USD per prompt) to reach the best single model's quality.
    pub cost_to_best_quality: Option<f64>,
    /// That cost as a fraction of the best single model's.
    pub cost_to_best_quality_ratio: Option<f64>,
    pub singles: Vec<SingleModel>,
    pub router_points: Vec<(f64, Point)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub two_model: Option<TwoModel>,
}

/// Scores a sweep against the labels of `examples` (every candidate labelled on every example).
pub fn report(examples: &[Example], candidates: &[String], sweep: &Sweep) -> Report {
    let n = examples.len().max(1) as f64;
    let quality = |e: &Example, m: &str| e.quality.get(m).copied().unwrap_or(0.0);
    let cost = |e: &Example, m: &str| e.cost_usd.get(m).copied().unwrap_or(0.0);
    let singles: Vec<SingleModel> = candidates
        .iter()
        .map(|m| SingleModel {
            model: m.clone(),
            quality: examples.iter().map(|e| quality(e, m)).sum::<f64>() / n,
            cost: examples.iter().map(|e| cost(e, m)).sum::<f64>() / n,
        })
        .collect();
    let single_points: Vec<Point> = singles.iter().map(|s| Point { cost: s.cost, quality: s.quality }).collect();
    let lo = single_points.iter().map(|p| p.cost).fold(f64::INFINITY, f64::min);
    let hi = single_points.iter().map(|p| p.cost).fold(0.0, f64::max);

    // Oracle: per prompt, the cheapest of the best-scoring candidates.
    let mut oracle = Point { cost: 0.0, quality: 0.0 };
    for e in examples {
        let best = candidates
            .iter()
            .max_by(|a, b| quality(e, a).total_cmp(&quality(e, b)).then(cost(e, b).total_cmp(&cost(e, a))))
            .map(String::as_str)
            .unwrap_or_default();
        oracle.cost += cost(e, best) / n;
        oracle.quality += quality(e, best) / n;
    }

    let router_points: Vec<(f64, Point)> = sweep
        .knobs
        .iter()
        .zip(&sweep.choices)
        .map(|(&knob, picks)| {
            let mut p = Point { cost: 0.0, quality: 0.0 };
            for (e, &c) in examples.iter().zip(picks) {
                p.cost += cost(e, &candidates[c]) / n;
                p.quality += quality(e, &candidates[c]) / n;
            }
            (knob, p)
        })
        .collect();
    let curve: Vec<Point> = router_points.iter().map(|(_, p)| *p).collect();
    let best_single = singles
        .iter()
        .max_by(|a, b| a.quality.total_cmp(&b.quality).then(b.cost.total_cmp(&a.cost)))
        .map(|s| SingleModel { model: s.model.clone(), quality: s.quality, cost: s.cost })
        .unwrap_or(SingleModel { model: String::new(), quality: 0.0, cost: 0.0 });
    let cost_to_best_quality = cost_to_reach(&curve, best_single.quality - 1e-12);
    let mut with_oracle = single_points.clone();
    with_oracle.push(oracle);

    let two_model = (candidates.len() == 2).then(|| {
        let (strong, weak) = if singles[0].quality >= singles[1].quality { (0, 1) } else { (1, 0) };
        let shares: Vec<(f64, f64)> = sweep
            .choices
            .iter()
            .zip(&curve)
            .map(|(picks, p)| (picks.iter().filter(|&&c| c == strong).count() as f64 / n, p.quality))
            .collect();
        two_model(&shares, singles[weak].quality, singles[strong].quality)
    });

    Report {
        examples: examples.len(),
        candidates: candidates.to_vec(),
        aiq: aiq(&curve, lo, hi),
        zero_router_aiq: aiq(&single_points, lo, hi),
        oracle_aiq: aiq(&with_oracle, lo, hi),
        oracle,
        cost_to_best_quality_ratio: cost_to_best_quality.map(|c| c / best_single.cost),
        cost_to_best_quality,
        best_single,
        singles,
        router_points,
        two_model,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(q: [f64; 2]) -> Example {
        serde_json::from_value(serde_json::json!({
            "id": "x", "prompt": "p",
            "quality": {"big": q[0], "small": q[1]},
            "cost_usd": {"big": 1.0, "small": 0.1},
        }))
        .unwrap()
    }

    #[test]
    fn a_router_that_knows_the_answers_matches_the_oracle() {
        // Half the prompts only the big model solves; the other half both solve.
        let examples: Vec<Example> =
            (0..10).map(|i| example(if i % 2 == 0 { [1.0, 0.0] } else { [1.0, 1.0] })).collect();
        let models = vec!["big".to_owned(), "small".to_owned()];
        let qualities: Vec<f32> =
            examples.iter().flat_map(|e| [e.quality["big"] as f32 * 0.9, e.quality["small"] as f32]).collect();
        let predictions = Predictions { models: &models, qualities: &qualities };
        let s = sweep(&predictions, examples.len(), &[0, 1], &[1.0, 0.1], 11);
        let r = report(&examples, &models, &s);
        assert_eq!(r.best_single.model, "big");
        assert!((r.oracle.quality - 1.0).abs() < 1e-12);
        assert!((r.oracle.cost - 0.55).abs() < 1e-12);
        assert!(r.aiq > r.zero_router_aiq, "{} vs {}", r.aiq, r.zero_router_aiq);
        assert!((r.aiq - r.oracle_aiq).abs() < 1e-9, "{} vs {}", r.aiq, r.oracle_aiq);
        assert!((r.cost_to_best_quality_ratio.unwrap() - 0.55).abs() < 1e-9);
        let two = r.two_model.unwrap();
        assert!(two.apgr > 0.7, "{}", two.apgr);
    }
}
