//! `router eval --plot FILE.png`: the cost-quality curves of the router (its hull and its points),
//! the single models, and the oracle.

use std::path::Path;

use anyhow::{Context, bail};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::router::evaluate::Report;
use crate::router::metrics::{Point, hull};

/// Fonts are read at run time (no font is compiled in); the first that exists is used.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/Arial.ttf",
];

fn load_font() -> anyhow::Result<()> {
    let path = std::env::var("CHERRYPICK_PLOT_FONT")
        .ok()
        .or_else(|| FONTS.iter().find(|p| Path::new(p).is_file()).map(|p| (*p).to_owned()))
        .context("no TrueType font found for the plot: install fonts-dejavu-core or set CHERRYPICK_PLOT_FONT")?;
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {path}"))?;
    // plotters keeps the font for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    if register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
        bail!("{path} is not a usable TrueType font");
    }
    Ok(())
}

pub fn cost_quality(report: &Report, path: &Path) -> anyhow::Result<()> {
    load_font()?;
    let router: Vec<Point> = report.router_points.iter().map(|(_, p)| *p).collect();
    let singles: Vec<Point> = report.singles.iter().map(|s| Point { cost: s.cost, quality: s.quality }).collect();
    let all = router.iter().chain(&singles).chain(std::iter::once(&report.oracle));
    let (mut lo_q, mut hi_c) = (1.0f64, 0.0f64);
    for p in all {
        lo_q = lo_q.min(p.quality);
        hi_c = hi_c.max(p.cost);
    }
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (1000, 700)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "cost vs quality: router AIQ {:.3}, single models {:.3}, oracle {:.3}",
                    report.aiq, report.zero_router_aiq, report.oracle_aiq
                ),
                ("sans-serif", 22),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..hi_c * 1.05, (lo_q - 0.02).max(0.0)..1.0)?;
        chart
            .configure_mesh()
            .x_desc("mean cost per prompt (USD)")
            .y_desc("mean quality")
            .x_label_formatter(&|c| format!("{c:.4}"))
            .draw()?;
        let line = |points: &[Point]| hull(points).iter().map(|p| (p.cost, p.quality)).collect::<Vec<_>>();
        chart
            .draw_series(LineSeries::new(line(&router), BLUE.stroke_width(2)))?
            .label("router (hull)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
        chart.draw_series(router.iter().map(|p| Circle::new((p.cost, p.quality), 3, BLUE.filled())))?;
        chart
            .draw_series(LineSeries::new(line(&singles), BLACK.stroke_width(1)))?
            .label("single models (hull)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
        for s in &report.singles {
            chart.draw_series(std::iter::once(Circle::new((s.cost, s.quality), 4, BLACK.filled())))?;
            chart.draw_series(std::iter::once(Text::new(s.model.clone(), (s.cost, s.quality), ("sans-serif", 12))))?;
        }
        let mut with_oracle = singles.clone();
        with_oracle.push(report.oracle);
        chart
            .draw_series(LineSeries::new(line(&with_oracle), RED.stroke_width(1)))?
            .label("oracle")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))
}
