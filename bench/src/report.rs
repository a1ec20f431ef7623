//! The results as markdown (`results.md`, ready for the README) and two
//! SVG plots (`fanout-p99.svg`, `idle-rss.svg`).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::scenarios::{ChatPoint, FanoutPoint, IdlePoint, PAYLOAD_BYTES, StormPoint, System};

/// Everything one run measured, medians of its repeats.
#[derive(Debug, Default)]
pub(crate) struct Results {
    pub(crate) quick: bool,
    pub(crate) repeat: usize,
    pub(crate) idle: Vec<(System, IdlePoint)>,
    pub(crate) fanout: Vec<(System, FanoutPoint)>,
    /// Rooms x members of the fan-out sweep.
    pub(crate) fanout_shape: (usize, usize),
    pub(crate) live_chat: Option<ChatPoint>,
    pub(crate) two_nodes: Vec<ChatPoint>,
    pub(crate) storm: Option<StormPoint>,
    /// What could not be measured, and why.
    pub(crate) notes: Vec<String>,
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Date, cores, CPU model and kernel.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kib| kib.parse::<u64>().ok()))
        .map_or(String::new(), |kib| format!(", {} GiB RAM", kib / 1024 / 1024));
    format!(
        "{}, {} cores ({model}){memory}, Linux {}",
        command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        command_output("nproc", &["--all"]),
        kernel.trim()
    )
}

fn ms(value: f64) -> String {
    if value.is_finite() { format!("{value:.1}") } else { "-".into() }
}

/// `results.md`.
pub(crate) fn markdown(results: &Results) -> String {
    let mut out = String::new();
    let mode = if results.quick { "quick (scaled down)" } else { "full" };
    let _ = writeln!(out, "Measured {}.", machine());
    let _ = writeln!(
        out,
        "Mode: {mode}; each point run {} time(s), medians shown. Server pinned to core 0 (one tokio worker, \
         one nginx worker, one Node thread), load generator on core 1; {PAYLOAD_BYTES}-byte payloads; 127.0.0.1 only.\n",
        results.repeat
    );

    if !results.idle.is_empty() {
        let _ = writeln!(out, "### Idle connections: server memory\n");
        let _ = writeln!(
            out,
            "| system | connections | RSS before (MiB) | RSS after (MiB) | KiB per connection | connect time (s) |"
        );
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: |");
        for (system, p) in &results.idle {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                system.name(),
                p.connections,
                p.before_kib / 1024.0,
                p.after_kib / 1024.0,
                p.per_connection_kib,
                p.connect_seconds
            );
        }
        out.push('\n');
    }

    if !results.fanout.is_empty() {
        let (rooms, members) = results.fanout_shape;
        let _ = writeln!(out, "### Fan-out: {rooms} rooms x {members} members\n");
        let _ = writeln!(
            out,
            "Kefu: a room is a visitor's conversation followed by the visitor and {} agent connections; every \
             message is stored (SQLite, synchronous=FULL, group commit) before it is delivered, and each agent \
             also gets the conversation's new state (not counted as a delivery).\n",
            members.saturating_sub(1)
        );
        let _ = writeln!(
            out,
            "| deliveries/s (target) | system | delivered/s | loss % | p50 ms | p99 ms | p99.9 ms | server CPU % | server RSS (MiB) | load CPU % |"
        );
        let _ = writeln!(out, "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        let mut rows: Vec<&(System, FanoutPoint)> = results.fanout.iter().collect();
        rows.sort_by(|a, b| a.1.target_per_second.total_cmp(&b.1.target_per_second));
        for (system, p) in rows {
            let _ = writeln!(
                out,
                "| {:.0} | {} | {:.0} | {:.2} | {} | {} | {} | {:.0} | {:.1} | {:.0} |",
                p.target_per_second,
                system.name(),
                p.delivered_per_second,
                p.loss_percent,
                ms(p.latency.p50_ms),
                ms(p.latency.p99_ms),
                ms(p.latency.p999_ms),
                p.cpu_percent,
                p.rss_mib,
                p.load_cpu_percent
            );
        }
        out.push('\n');
    }

    for (title, points) in [
        (
            "Live chat (Kefu): visitor + agent per conversation, messages both ways, all stored",
            results.live_chat.as_slice(),
        ),
        (
            "Two nodes (Kefu): PostgreSQL + Redis, visitors on node A, their agents on node B",
            results.two_nodes.as_slice(),
        ),
    ] {
        if !points.is_empty() {
            let _ = writeln!(out, "### {title}\n");
            let _ = writeln!(
                out,
                "| conversations | messages/s (target) | delivered/s | loss % | p50 ms | p99 ms | p99.9 ms | server CPU % | server RSS (MiB) |"
            );
            let _ = writeln!(out, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            for p in points {
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {:.0} | {:.2} | {} | {} | {} | {:.0} | {:.1} |",
                    p.conversations,
                    p.target_per_second,
                    p.delivered_per_second,
                    p.loss_percent,
                    ms(p.latency.p50_ms),
                    ms(p.latency.p99_ms),
                    ms(p.latency.p999_ms),
                    p.cpu_percent,
                    p.rss_mib
                );
            }
            out.push('\n');
        }
    }

    if let Some(p) = &results.storm {
        let _ = writeln!(
            out,
            "### Reconnect storm (Kefu): `kill -9` of the node all visitors are on, while an agent on the other node \
             writes on; restart on the same PostgreSQL\n\n\
             Half the messages come from the visitors (SDK, resent after the restart), half from the agent: those \
             written while the visitors were away reach them by replay. Lost: stored messages a visitor never heard.\n"
        );
        let _ = writeln!(
            out,
            "| clients (SDK) | all back after (s) | replayed share % | acknowledged | lost | duplicated |"
        );
        let _ = writeln!(out, "| ---: | ---: | ---: | ---: | ---: | ---: |");
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.1} | {} | {} | {} |\n",
            p.clients, p.back_seconds, p.replayed_percent, p.acknowledged, p.lost, p.duplicated
        );
    }

    if !results.notes.is_empty() {
        let _ = writeln!(out, "Notes:\n");
        for note in &results.notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

const COLORS: [RGBColor; 3] = [RGBColor(200, 30, 30), RGBColor(30, 90, 200), RGBColor(40, 150, 60)];

fn color(system: System) -> RGBColor {
    match system {
        System::Kefu => COLORS[0],
        System::SocketIo => COLORS[1],
        System::Nchan => COLORS[2],
    }
}

/// One line per system through `(x, y)` points.
fn line_plot(
    path: &Path,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[(System, Vec<(f64, f64)>)],
) -> Result<()> {
    let finite = |v: &f64| v.is_finite();
    let x_max = lines.iter().flat_map(|(_, l)| l.iter().map(|p| p.0)).filter(finite).fold(1.0, f64::max);
    let y_max = lines.iter().flat_map(|(_, l)| l.iter().map(|p| p.1)).filter(finite).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Debug| anyhow!("drawing {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max * 1.05, 0.0..y_max * 1.1)
        .map_err(|e| fail(&e))?;
    chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw().map_err(|e| fail(&e))?;
    for (system, points) in lines {
        let style = color(*system);
        let points: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), style.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(system.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, style.filled()))).map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

fn by_system<P>(points: &[(System, P)], xy: impl Fn(&P) -> (f64, f64)) -> Vec<(System, Vec<(f64, f64)>)> {
    let mut lines: Vec<(System, Vec<(f64, f64)>)> = Vec::new();
    for (system, point) in points {
        match lines.iter_mut().find(|(s, _)| s == system) {
            Some((_, line)) => line.push(xy(point)),
            None => lines.push((*system, vec![xy(point)])),
        }
    }
    for (_, line) in &mut lines {
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    lines
}

/// Writes `results.md`, `fanout-p99.svg` and `idle-rss.svg` into `dir`.
pub(crate) fn write(dir: &Path, results: &Results) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("results.md"), markdown(results))?;
    if !results.fanout.is_empty() {
        let lines = by_system(&results.fanout, |p| (p.target_per_second, p.latency.p99_ms));
        line_plot(
            &dir.join("fanout-p99.svg"),
            "Fan-out: p99 latency, one server core",
            "deliveries/s",
            "p99 latency (ms)",
            &lines,
        )?;
    }
    if !results.idle.is_empty() {
        let lines = by_system(&results.idle, |p| (p.connections as f64, p.after_kib / 1024.0));
        line_plot(&dir.join("idle-rss.svg"), "Idle connections: server RSS", "connections", "RSS (MiB)", &lines)?;
    }
    Ok(())
}
