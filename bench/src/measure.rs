//! What a run measures: a server's memory and CPU from `/proc`, and
//! latencies from the timestamp each payload carries.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

/// Resident memory of a process, in KiB (`VmRSS` of `/proc/PID/status`).
pub(crate) fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("process {pid}"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
}

/// CPU time a process has used so far (user + system), in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("process {pid}"))?;
    // The command name (field 2) may hold spaces; count fields after it.
    let after_name = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are 12 and 13 after the name.
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

/// CPU use of a set of processes over a window, as % of one core.
#[derive(Debug)]
pub(crate) struct CpuWindow {
    pids: Vec<u32>,
    ticks: u64,
    started: Instant,
}

impl CpuWindow {
    pub(crate) fn start(pids: &[u32]) -> CpuWindow {
        let ticks = pids.iter().filter_map(|&pid| cpu_ticks(pid).ok()).sum();
        CpuWindow { pids: pids.to_vec(), ticks, started: Instant::now() }
    }

    /// % of one core used since `start`.
    pub(crate) fn percent(&self) -> f64 {
        let now: u64 = self.pids.iter().filter_map(|&pid| cpu_ticks(pid).ok()).sum();
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let per_second = rustix::param::clock_ticks_per_second() as f64;
        now.saturating_sub(self.ticks) as f64 / per_second / seconds * 100.0
    }
}

/// Nanoseconds since the UNIX epoch: every process on the machine reads
/// the same clock, so a payload stamped by one is timed by another.
pub(crate) fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// A payload of `size` bytes (at least 24) that starts with its send time,
/// a tag byte (who sent it) and a sequence number, as ASCII so every
/// system carries it as text.
pub(crate) fn payload(size: usize, seq: u64, tag: u8) -> Vec<u8> {
    let mut text = format!("{:020}:{}{seq}:", now_nanos(), char::from(tag));
    while text.len() < size {
        text.push('x');
    }
    text.into_bytes()
}

/// The send time stamped into a payload by [`payload`].
pub(crate) fn stamped(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload.get(..20)?).ok()?.parse().ok()
}

/// Latencies and counts shared by every receiving task. A std mutex: the
/// load runs on one thread, so it is never contended.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    inner: Arc<Mutex<Recorded>>,
}

#[derive(Debug)]
struct Recorded {
    /// Microseconds.
    latency: Histogram<u64>,
    delivered: u64,
    /// Payloads delivered before the window opened or without a stamp.
    ignored: u64,
    window_start: u64,
}

/// A window's figures.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Latency {
    pub(crate) delivered: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        // 1 µs to 2 minutes, 3 significant digits: valid bounds.
        let latency = Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds");
        Recorder { inner: Arc::new(Mutex::new(Recorded { latency, delivered: 0, ignored: 0, window_start: u64::MAX })) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts from now on: payloads stamped earlier (warm-up) are ignored.
    pub(crate) fn open_window(&self) {
        let mut recorded = self.lock();
        recorded.latency.reset();
        recorded.delivered = 0;
        recorded.ignored = 0;
        recorded.window_start = now_nanos();
    }

    /// A payload arrived now.
    pub(crate) fn record(&self, payload: &[u8]) {
        let now = now_nanos();
        let mut recorded = self.lock();
        match stamped(payload) {
            Some(sent) if sent >= recorded.window_start => {
                recorded.delivered += 1;
                let micros = now.saturating_sub(sent) / 1_000;
                recorded.latency.saturating_record(micros.max(1));
            }
            _ => recorded.ignored += 1,
        }
    }

    /// What arrived in the window so far.
    pub(crate) fn latency(&self) -> Latency {
        let recorded = self.lock();
        let ms = |q: f64| recorded.latency.value_at_quantile(q) as f64 / 1_000.0;
        Latency { delivered: recorded.delivered, p50_ms: ms(0.5), p99_ms: ms(0.99), p999_ms: ms(0.999) }
    }
}

/// The median of some runs' values.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) { (sorted[mid - 1] + sorted[mid]) / 2.0 } else { sorted[mid] }
}

/// Waits until `done` holds or `limit` passes; says which.
pub(crate) async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}
