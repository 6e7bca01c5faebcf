//! A PNG of latency percentiles against load, for BENCHMARKS.md.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::report::StepReport;

/// Fonts tried, in order, for the plot's labels.
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
];

fn register_font() -> Result<()> {
    let bytes = FONTS.iter().find_map(|path| std::fs::read(path).ok()).ok_or_else(|| {
        anyhow!("no font for the plot's labels; install fonts-dejavu-core (Debian) or fonts-liberation")
    })?;
    // plotters keeps registered fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("unusable font"))
}

/// One line of the plot: its label, what it shows, its colour.
type Series = (&'static str, fn(&StepReport) -> f64, RGBColor);

/// Draws p50, p90, p99 and p99.9 latency (ms, log scale) against achieved
/// deliveries per second.
pub fn latency_against_load(path: &Path, steps: &[StepReport]) -> Result<()> {
    register_font()?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_x = steps.iter().map(|s| s.achieved_deliveries_per_s).fold(1.0, f64::max) * 1.05;
    let max_y = steps.iter().map(|s| s.latency_ms.p999).fold(1.0, f64::max) * 2.0;
    let min_y = steps.iter().map(|s| s.latency_ms.p50).fold(f64::MAX, f64::min).clamp(0.01, 1.0) / 2.0;
    let transport = steps.first().map_or("", |s| s.transport);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("wtchat latency against load ({transport})"), ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..max_x, (min_y..max_y).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("achieved deliveries per second")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| format!("{:.0}k", x / 1000.0))
        .draw()?;
    let series: [Series; 4] = [
        ("p50", |s| s.latency_ms.p50, RGBColor(31, 119, 180)),
        ("p90", |s| s.latency_ms.p90, RGBColor(44, 160, 44)),
        ("p99", |s| s.latency_ms.p99, RGBColor(255, 127, 14)),
        ("p99.9", |s| s.latency_ms.p999, RGBColor(214, 39, 40)),
    ];
    for (name, value, color) in series {
        let points: Vec<(f64, f64)> =
            steps.iter().map(|s| (s.achieved_deliveries_per_s, value(s).max(min_y))).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
