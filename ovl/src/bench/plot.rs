//! `--plot`: one row of panels per figure (msgs/s, p99), one column per
//! cell; in each panel a bar per server (the median of the rounds) with a
//! whisker from min to max, colours named in the legend on the right.

use std::path::Path;

use plotters::prelude::*;

use super::report::{Spread, Summaries, Summary};

fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// A figure's name and its spread in a summary.
type Figure = (&'static str, fn(&Summary) -> Spread);

/// Draws the summaries of every cell (named by `cells`) and server.
pub(super) fn draw(
    path: &Path,
    cells: &[String],
    servers: &[String],
    sums: &Summaries,
) -> Result<(), Box<dyn std::error::Error>> {
    let ns = servers.len().max(1);
    let panel_w = (ns as u32 * 26 + 110).max(340);
    let legend_w = 190;
    let w = panel_w * cells.len().max(1) as u32 + legend_w;
    let h = 760;
    let root = SVGBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "ovl bench: medians of the rounds, whiskers min..max",
        ("sans-serif", 20),
    )?;
    let (main, legend) = root.split_horizontally(w - legend_w);
    let panels = main.split_evenly((2, cells.len().max(1)));
    let figures: [Figure; 2] = [("msgs/s", |s| s.rate), ("p99 latency, us", |s| s.p99)];
    for (k, area) in panels.iter().enumerate() {
        let (row, ci) = (k / cells.len().max(1), k % cells.len().max(1));
        let Some(cell) = cells.get(ci) else { continue };
        let (figure, f) = figures[row];
        let bars: Vec<(usize, Spread)> = servers
            .iter()
            .enumerate()
            .filter_map(|(j, name)| sums.get(&(ci, name.clone())).map(|s| (j, f(s))))
            .collect();
        let top = bars.iter().map(|(_, s)| s.hi).fold(0.0, f64::max).max(1.0) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(cell, ("sans-serif", 14))
            .margin(10)
            .x_label_area_size(8)
            .y_label_area_size(66)
            .build_cartesian_2d(0f64..ns as f64, 0f64..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(6)
            .y_label_formatter(&|v| human(*v))
            .y_desc(figure)
            .draw()?;
        chart.draw_series(bars.iter().map(|&(j, Spread { med, .. })| {
            Rectangle::new(
                [(j as f64 + 0.12, 0.0), (j as f64 + 0.88, med)],
                Palette99::pick(j).filled(),
            )
        }))?;
        chart.draw_series(bars.iter().map(|&(j, Spread { lo, hi, .. })| {
            PathElement::new(
                vec![(j as f64 + 0.5, lo), (j as f64 + 0.5, hi)],
                BLACK.stroke_width(2),
            )
        }))?;
    }
    legend.draw(&Text::new("servers", (10, 40), ("sans-serif", 15)))?;
    for (j, name) in servers.iter().enumerate() {
        let y = 66 + j as i32 * 22;
        let any = sums.keys().any(|(_, n)| n == name);
        legend.draw(&Rectangle::new(
            [(10, y), (26, y + 14)],
            Palette99::pick(j).filled(),
        ))?;
        let label = if any {
            name.clone()
        } else {
            format!("{name} (unavailable)")
        };
        legend.draw(&Text::new(label, (32, y), ("sans-serif", 14)))?;
    }
    root.present()?;
    Ok(())
}
