//! Routing-quality metrics, computed from cost-quality points.
//!
//! - AIQ (RouterBench, Hu et al. 2024): the area under the non-decreasing upper convex hull of a
//!   router's (cost, quality) points over the cost range of the single models, divided by that range.
//!   Mixing two operating points at random reaches every point on the segment between them, which is
//!   why the hull (not the raw points) is what a router can deliver.
//! - APGR and CPT (RouteLLM, Ong et al. 2024), for a strong and a weak model: the performance gap
//!   recovered as a function of the share of calls sent to the strong model.

use serde::Serialize;

/// One operating point: mean cost per prompt (USD) and mean quality.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub cost: f64,
    pub quality: f64,
}

/// The non-decreasing upper convex hull of `points`, sorted by cost.
pub fn hull(points: &[Point]) -> Vec<Point> {
    let mut sorted: Vec<Point> =
        points.iter().copied().filter(|p| p.cost.is_finite() && p.quality.is_finite()).collect();
    sorted.sort_by(|a, b| a.cost.total_cmp(&b.cost).then(b.quality.total_cmp(&a.quality)));
    let mut upper: Vec<Point> = Vec::with_capacity(sorted.len());
    for p in sorted {
        // A point that costs more but is no better than the best so far is never worth choosing.
        if upper.last().is_some_and(|last| p.quality <= last.quality) {
            continue;
        }
        while upper.len() >= 2 {
            let (a, b) = (upper[upper.len() - 2], upper[upper.len() - 1]);
            // Drop b when it lies on or below the segment a → p.
            let cross = (b.cost - a.cost) * (p.quality - a.quality) - (b.quality - a.quality) * (p.cost - a.cost);
            if cross >= 0.0 {
                upper.pop()
            } else {
                break;
            };
        }
        upper.push(p);
    }
    upper
}

/// The hull's quality at `cost`: flat left of its first point and right of its last.
pub fn hull_quality_at(hull: &[Point], cost: f64) -> f64 {
    let Some(first) = hull.first() else { return f64::NAN };
    if cost <= first.cost {
        return first.quality;
    }
    for w in hull.windows(2) {
        let (a, b) = (w[0], w[1]);
        if cost <= b.cost {
            let t = (cost - a.cost) / (b.cost - a.cost);
            return a.quality + t * (b.quality - a.quality);
        }
    }
    hull[hull.len() - 1].quality
}

/// Area under the hull of `points` over `[lo, hi]`, divided by `hi - lo`.
pub fn aiq(points: &[Point], lo: f64, hi: f64) -> f64 {
    let h = hull(points);
    if h.is_empty() || hi <= lo {
        return h.first().map_or(f64::NAN, |p| p.quality);
    }
    // The hull is piecewise linear: integrate exactly between its breakpoints.
    let mut xs: Vec<f64> = h.iter().map(|p| p.cost).filter(|&c| c > lo && c < hi).collect();
    xs.insert(0, lo);
    xs.push(hi);
    let area: f64 =
        xs.windows(2).map(|w| (w[1] - w[0]) * (hull_quality_at(&h, w[0]) + hull_quality_at(&h, w[1])) / 2.0).sum();
    area / (hi - lo)
}

/// The least cost at which the hull of `points` reaches `quality`, if it does.
pub fn cost_to_reach(points: &[Point], quality: f64) -> Option<f64> {
    let h = hull(points);
    let first = h.first()?;
    if first.quality >= quality {
        return Some(first.cost);
    }
    h.windows(2).find(|w| w[1].quality >= quality).map(|w| {
        let (a, b) = (w[0], w[1]);
        a.cost + (quality - a.quality) / (b.quality - a.quality) * (b.cost - a.cost)
    })
}

/// Two-model metrics: each point is (share of calls to the strong model, mean quality).
#[derive(Debug, Clone, Serialize)]
pub struct TwoModel {
    pub apgr: f64,
    pub cpt50: Option<f64>,
    pub cpt80: Option<f64>,
}

/// APGR: the area under performance-gap-recovered against strong-call share, with the endpoints
/// (all weak, all strong) added; CPT(x): the least strong-call share that recovers x of the gap.
pub fn two_model(points: &[(f64, f64)], weak_quality: f64, strong_quality: f64) -> TwoModel {
    let gap = strong_quality - weak_quality;
    let pgr = |q: f64| if gap.abs() < f64::EPSILON { 1.0 } else { (q - weak_quality) / gap };
    let mut curve: Vec<(f64, f64)> = points.iter().map(|&(share, q)| (share, pgr(q))).collect();
    curve.push((0.0, 0.0));
    curve.push((1.0, 1.0));
    curve.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    // For each share keep the best quality seen at that share.
    curve.dedup_by(|later, earlier| {
        if later.0 == earlier.0 {
            earlier.1 = earlier.1.max(later.1);
            true
        } else {
            false
        }
    });
    let apgr = curve.windows(2).map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0).sum();
    // The tolerance keeps a share that recovers exactly the target from losing to rounding.
    let cpt = |target: f64| curve.iter().find(|&&(_, p)| p >= target - 1e-9).map(|&(share, _)| share);
    TwoModel { apgr, cpt50: cpt(0.5), cpt80: cpt(0.8) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(cost: f64, quality: f64) -> Point {
        Point { cost, quality }
    }

    #[test]
    fn hull_drops_dominated_and_concave_points() {
        let h = hull(&[p(1.0, 0.5), p(2.0, 0.55), p(3.0, 0.9), p(4.0, 0.8), p(0.5, 0.2)]);
        assert_eq!(h, vec![p(0.5, 0.2), p(1.0, 0.5), p(3.0, 0.9)]);
    }

    #[test]
    fn aiq_of_two_single_models_is_the_trapezoid() {
        // Linear from 0.5 to 0.9 over [1, 3]: mean 0.7.
        let points = [p(1.0, 0.5), p(3.0, 0.9)];
        assert!((aiq(&points, 1.0, 3.0) - 0.7).abs() < 1e-12);
        // A router that reaches 0.9 at cost 2 is worth more: 0.5*(0.7) + 0.5*(0.9) = 0.8.
        let router = [p(1.0, 0.5), p(2.0, 0.9), p(3.0, 0.9)];
        assert!((aiq(&router, 1.0, 3.0) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn flat_beyond_the_last_point() {
        let points = [p(1.0, 0.6), p(1.5, 0.8)];
        // [1, 1.5]: mean 0.7 over 0.5; [1.5, 3]: 0.8 over 1.5 → (0.35 + 1.2) / 2.
        assert!((aiq(&points, 1.0, 3.0) - 0.775).abs() < 1e-12);
    }

    #[test]
    fn cost_to_reach_interpolates_on_the_hull() {
        let points = [p(1.0, 0.5), p(3.0, 0.9)];
        assert!((cost_to_reach(&points, 0.7).unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(cost_to_reach(&points, 0.95), None);
        assert_eq!(cost_to_reach(&points, 0.1), Some(1.0));
    }

    #[test]
    fn random_routing_has_apgr_one_half() {
        let points: Vec<(f64, f64)> = (0..=10).map(|i| (i as f64 / 10.0, 0.5 + 0.3 * i as f64 / 10.0)).collect();
        let m = two_model(&points, 0.5, 0.8);
        assert!((m.apgr - 0.5).abs() < 1e-9, "{}", m.apgr);
        assert!((m.cpt50.unwrap() - 0.5).abs() < 1e-9);
        assert!((m.cpt80.unwrap() - 0.8).abs() < 1e-9);
    }

    #[test]
    fn a_perfect_router_recovers_the_gap_early() {
        let m = two_model(&[(0.2, 0.8)], 0.5, 0.8);
        assert!((m.apgr - 0.9).abs() < 1e-9, "{}", m.apgr);
        assert_eq!(m.cpt50, Some(0.2));
    }
}
