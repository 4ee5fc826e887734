//! A report as pictures (SVG, by `plotters`): per scenario, the utilisation
//! of every DC under every policy, the mean distance of every policy beside
//! the optimum's, and a world map of which DC each client holds at the end.
//! A DC has the same colour in all three.

use std::error::Error;
use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::Report;

/// A drawing step's error (plotters' errors are generic over the backend).
type Drawn = Result<(), Box<dyn Error>>;

/// A drawing area of an SVG file.
type Area<'b> = DrawingArea<SVGBackend<'b>, Shift>;

/// Draws one plot of a report.
type Plot = fn(&Report, &Area) -> Drawn;

/// A chart with `f64` axes on the SVG backend.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// DC colours: Tableau 10, by the DC's index in the zone.
const DC_COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Policy colours (Okabe–Ito), apart from the DCs' so the distance plot is
/// not read as one line per DC.
const POLICY_COLOURS: [RGBColor; 7] = [
    RGBColor(0, 0, 0),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(213, 94, 0),
    RGBColor(0, 114, 178),
];

/// Grey of reference lines (capacity, events, graticule).
const GUIDE: RGBColor = RGBColor(150, 150, 150);

/// The colour of DC `i`.
fn dc_colour(i: usize) -> RGBColor {
    DC_COLOURS[i % DC_COLOURS.len()]
}

/// The colour of the `k`th policy of a run list.
fn policy_colour(k: usize) -> RGBColor {
    POLICY_COLOURS[k % POLICY_COLOURS.len()]
}

/// Writes `<scenario>-utilisation.svg`, `-distance.svg` and `-map.svg` into
/// `dir` (created if missing). An error names the file it happened in.
pub fn write_plots(report: &Report, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let name = &report.scenario.name;
    let panels = report.runs.len().max(1) as u32;
    let plots: [(&str, (u32, u32), Plot); 3] = [
        ("utilisation", (900, 80 + 220 * panels), utilisation),
        ("distance", (900, 460), distance),
        ("map", (1000, 580), map),
    ];
    let mut written = Vec::new();
    for (what, size, draw) in plots {
        let path = dir.join(format!("{name}-{what}.svg"));
        let result = {
            let root = SVGBackend::new(&path, size).into_drawing_area();
            root.fill(&WHITE)
                .map_err(Box::from)
                .and_then(|()| draw(report, &root))
                .and_then(|()| root.present().map_err(Box::from))
        };
        result.map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

/// One panel per policy: each DC's utilisation over the intervals, with
/// capacity (1.0), the policy's target (dashed) and the scenario's events.
fn utilisation(report: &Report, root: &Area) -> Drawn {
    let top = report
        .runs
        .iter()
        .flat_map(|r| &r.series)
        .flat_map(|i| &i.dcs)
        .map(|s| s.utilisation())
        .fold(1.1_f64, f64::max)
        * 1.05;
    let mut keys = dc_keys(report);
    keys.push(Key::solid("capacity", GUIDE.stroke_width(2)));
    keys.push(Key::dashed("target", BLACK.stroke_width(1)));
    keys.push(Key::dashed("event", GUIDE.stroke_width(1)));
    let title = format!("{}: utilisation per DC", report.scenario.name);
    let body = header(root, &title, &keys)?;
    let panels = body.split_evenly((report.runs.len().max(1), 1));
    for (run, area) in report.runs.iter().zip(&panels) {
        let caption = match run.target_utilisation {
            Some(t) => format!("{} (target {t:.2})", run.policy),
            None => format!("{} (no prices)", run.policy),
        };
        let mut chart = time_chart(report, area, &caption, 0.0..top, "utilisation")?;
        hline(report, &mut chart, 1.0, &keys[report.dcs.len()])?;
        if let Some(t) = run.target_utilisation {
            hline(report, &mut chart, t, &keys[report.dcs.len() + 1])?;
        }
        for (d, key) in keys.iter().take(report.dcs.len()).enumerate() {
            let points = run
                .series
                .iter()
                .map(|i| (f64::from(i.n), i.dcs[d].utilisation()));
            chart.draw_series(LineSeries::new(points, key.style))?;
        }
    }
    Ok(())
}

/// Mean distance over the intervals, one line per policy, and the
/// optimum's per window (dashed).
fn distance(report: &Report, root: &Area) -> Drawn {
    let top = report
        .runs
        .iter()
        .flat_map(|r| r.series.iter().map(|i| i.mean_km))
        .chain(report.summary.iter().filter_map(|w| w.optimum_km))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let mut keys: Vec<Key> = report
        .runs
        .iter()
        .enumerate()
        .map(|(k, r)| Key::solid(&r.policy, policy_colour(k).stroke_width(2)))
        .collect();
    keys.push(Key::dashed("optimum", BLACK.stroke_width(1)));
    keys.push(Key::dashed("event", GUIDE.stroke_width(1)));
    let title = format!("{}: mean distance from client to DC", report.scenario.name);
    let body = header(root, &title, &keys)?;
    let mut chart = time_chart(report, &body, "", 0.0..top, "km")?;
    for (run, key) in report.runs.iter().zip(&keys) {
        let points = run.series.iter().map(|i| (f64::from(i.n), i.mean_km));
        chart.draw_series(LineSeries::new(points, key.style))?;
    }
    // The optimum is the same for every policy: take the first one's windows.
    let first = report.runs.first().map(|r| r.policy.as_str());
    let windows: Vec<_> = report
        .summary
        .iter()
        .filter(|w| Some(w.policy.as_str()) == first)
        .collect();
    for (k, w) in windows.iter().enumerate() {
        let Some(o) = w.optimum_km else { continue };
        let end = windows
            .get(k + 1)
            .map_or(report.scenario.intervals, |n| n.start);
        let segment = [(f64::from(w.start), o), (f64::from(end), o)];
        chart.draw_series(DashedLineSeries::new(
            segment,
            6,
            4,
            keys[report.runs.len()].style,
        ))?;
    }
    Ok(())
}

/// The clients on an equirectangular world, coloured by the DC the last
/// policy left them on (grey: none), and the DCs as labelled markers.
fn map(report: &Report, root: &Area) -> Drawn {
    let Some(run) = report.runs.last() else {
        return Ok(());
    };
    let title = format!(
        "{}: the DC each client holds at the end ({})",
        report.scenario.name, run.policy
    );
    let body = header(root, &title, &dc_keys(report))?;
    let mut chart = ChartBuilder::on(&body)
        .margin(10)
        .build_cartesian_2d(-180.0..180.0, -90.0..90.0)?;
    let graticule = GUIDE.mix(0.4);
    let label = ("sans-serif", 11).into_font().color(&GUIDE);
    for lon in (-180..180).step_by(30) {
        let x = f64::from(lon);
        chart.draw_series(LineSeries::new([(x, -90.0), (x, 90.0)], graticule))?;
        let text = degrees(lon, 'E', 'W');
        chart.draw_series([Text::new(text, (x + 1.0, -84.0), label.clone())])?;
    }
    for lat in (-60..=60).step_by(30) {
        let y = f64::from(lat);
        chart.draw_series(LineSeries::new([(-180.0, y), (180.0, y)], graticule))?;
        let text = degrees(lat, 'N', 'S');
        chart.draw_series([Text::new(text, (-179.0, y - 1.0), label.clone())])?;
    }
    chart.draw_series([Rectangle::new([(-180.0, -90.0), (180.0, 90.0)], GUIDE)])?;
    // Clients on one pixel and one DC are one dot.
    let mut dots: Vec<_> = report
        .clients
        .iter()
        .zip(&run.last_dc)
        .map(|(c, &dc)| {
            let at = (c.location.lon, c.location.lat);
            (chart.backend_coord(&at), dc, at)
        })
        .collect();
    dots.sort_unstable_by_key(|&(pixel, dc, _)| (pixel, dc));
    dots.dedup_by_key(|&mut (pixel, dc, _)| (pixel, dc));
    chart.draw_series(
        (dots.iter()).map(|&(_, dc, at)| Circle::new(at, 2, dc.map_or(GUIDE, dc_colour).filled())),
    )?;
    for (d, (name, at)) in report.dcs.iter().zip(&report.dc_locations).enumerate() {
        let marker = EmptyElement::at((at.lon, at.lat))
            + Circle::new((0, 0), 8, dc_colour(d).filled())
            + Circle::new((0, 0), 8, BLACK.stroke_width(2))
            + Text::new(name.clone(), (10, -18), ("sans-serif", 16).into_font());
        chart.draw_series([marker])?;
    }
    Ok(())
}

/// `v` degrees with its hemisphere: `30°E`, `0°`, `60°S`.
fn degrees(v: i32, pos: char, neg: char) -> String {
    match v {
        0 => "0°".into(),
        v if v > 0 => format!("{v}°{pos}"),
        v => format!("{}°{neg}", -v),
    }
}

/// One entry of a legend: a name and how its line is drawn.
struct Key {
    name: String,
    style: ShapeStyle,
    dashed: bool,
}

impl Key {
    fn solid(name: &str, style: ShapeStyle) -> Key {
        Key {
            name: name.into(),
            style,
            dashed: false,
        }
    }

    fn dashed(name: &str, style: ShapeStyle) -> Key {
        Key {
            dashed: true,
            ..Key::solid(name, style)
        }
    }
}

/// The DCs' legend entries, in the zone's order.
fn dc_keys(report: &Report) -> Vec<Key> {
    (report.dcs.iter().enumerate())
        .map(|(d, name)| Key::solid(name, dc_colour(d).stroke_width(2)))
        .collect()
}

/// Draws the title and, under it, the legend in one row; returns the
/// area left for the plot.
fn header<'b>(root: &Area<'b>, title: &str, keys: &[Key]) -> Result<Area<'b>, Box<dyn Error>> {
    let body = root.titled(title, ("sans-serif", 22))?;
    let (row, body) = body.split_vertically(30);
    let font = TextStyle::from(("sans-serif", 14).into_font());
    let mut x = 60;
    let y = 12;
    for k in keys {
        let dashes: &[(i32, i32)] = if k.dashed {
            &[(0, 6), (10, 16), (20, 24)]
        } else {
            &[(0, 24)]
        };
        for &(a, b) in dashes {
            row.draw(&PathElement::new([(x + a, y), (x + b, y)], k.style))?;
        }
        row.draw(&Text::new(k.name.clone(), (x + 30, y - 7), font.clone()))?;
        let (w, _) = row.estimate_text_size(&k.name, &font)?;
        x += 30 + w as i32 + 24;
    }
    Ok(body)
}

/// A chart over the scenario's intervals, `y` its vertical range, with
/// the scenario's events as dashed vertical lines.
fn time_chart<'a, 'b>(
    report: &Report,
    area: &'a Area<'b>,
    caption: &str,
    y: Range<f64>,
    y_desc: &str,
) -> Result<Chart<'a, 'b>, Box<dyn Error>> {
    let mut builder = ChartBuilder::on(area);
    if !caption.is_empty() {
        builder.caption(caption, ("sans-serif", 16));
    }
    let mut chart = builder
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..f64::from(report.scenario.intervals.max(1)), y.clone())?;
    // Kilometres in whole numbers, utilisation to a tenth.
    let digits = if y.end > 10.0 { 0 } else { 1 };
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|v| format!("{v:.digits$}"))
        .x_desc("interval")
        .y_desc(y_desc)
        .draw()?;
    for e in &report.scenario.events {
        let x = f64::from(e.at);
        let line = [(x, y.start), (x, y.end)];
        chart.draw_series(DashedLineSeries::new(line, 4, 4, GUIDE.stroke_width(1)))?;
    }
    Ok(chart)
}

/// A horizontal line across the chart at `y`, drawn as `key` says.
fn hline(report: &Report, chart: &mut Chart<'_, '_>, y: f64, key: &Key) -> Drawn {
    let line = [(0.0, y), (f64::from(report.scenario.intervals), y)];
    if key.dashed {
        chart.draw_series(DashedLineSeries::new(line, 6, 4, key.style))?;
    } else {
        chart.draw_series(LineSeries::new(line, key.style))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Options, Policy, Scenario};

    /// The bundled world, few clients and intervals, a drain in the middle:
    /// every plot is written, is SVG and shows what it should.
    #[test]
    fn writes_the_three_plots() {
        let world = concat!(env!("CARGO_MANIFEST_DIR"), "/../../simulate/");
        let opts = Options {
            zone: format!("{world}world.toml").into(),
            geoip: format!("{world}world.mmdb").into(),
            clients: 300,
            networks: None,
            demand: 20000.0,
            seed: 1,
            policies: vec![Policy::Nearest, Policy::Zone],
        };
        let scenario = Scenario::parse(
            "test.toml",
            "name = \"t\"\nintervals = 12\n[[events]]\nat = 6\nkind = \"drain\"\ndc = \"gru\"\n",
        )
        .unwrap();
        let clients = crate::clients(&opts).unwrap();
        let report = crate::simulate(&opts, &scenario, &clients, |_, _| {}).unwrap();
        assert_eq!(report.runs[0].target_utilisation, None);
        assert_eq!(report.runs[1].target_utilisation, Some(0.97));

        let dir = tempfile::tempdir().unwrap();
        let files = write_plots(&report, dir.path()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["t-utilisation.svg", "t-distance.svg", "t-map.svg"]);
        let read = |f: &PathBuf| std::fs::read_to_string(f).unwrap();
        // The SVG backend writes a text's content on a line of its own.
        let text = |s: &str| format!(">\n{s}\n</text>");
        let (util, dist, map) = (read(&files[0]), read(&files[1]), read(&files[2]));
        for svg in [&util, &dist, &map] {
            assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
            assert!(svg.contains("<text"));
        }
        assert_eq!(report.dcs.len(), 5);
        for dc in &report.dcs {
            assert!(util.contains(&text(dc)), "legend of {dc}");
            // The legend and the marker.
            assert_eq!(map.matches(&text(dc)).count(), 2, "{dc} on the map");
        }
        assert!(util.contains("<polyline"));
        for label in [
            "capacity",
            "target",
            "nearest (no prices)",
            "balance (target 0.97)",
        ] {
            assert!(util.contains(&text(label)), "{label}");
        }
        assert!(dist.contains("<polyline"));
        for label in ["nearest", "balance", "optimum", "event"] {
            assert!(dist.contains(&text(label)), "{label}");
        }
        assert!(map.contains("<circle") && map.contains("(balance)"));
        assert!(map.contains(&text("30°N")) && map.contains(&text("150°W")));
    }

    /// A file that cannot be written is an error naming it, not a panic.
    #[test]
    fn an_unwritable_file_is_an_error_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let report = Report {
            scenario: Scenario::parse("x.toml", "name = \"x\"\nintervals = 2\n").unwrap(),
            dcs: vec![],
            dc_locations: vec![],
            clients: vec![],
            runs: vec![],
            summary: vec![],
        };
        // A directory where the file should go.
        std::fs::create_dir(dir.path().join("x-utilisation.svg")).unwrap();
        let e = write_plots(&report, dir.path()).unwrap_err();
        assert!(e.to_string().contains("x-utilisation.svg"), "{e}");
    }
}
