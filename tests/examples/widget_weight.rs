//! Widget weight: what a visitor downloads before showing intent (the
//! loader) and at the first open of the chat (the widget page, its wasm, JS
//! glue, CSS and any fonts), raw, gzip and brotli; and how long the widget
//! takes, in a real headless Chromium with a cold cache, from the click on
//! the launcher until its composer accepts input.
//!
//! ```sh
//! cargo run --release -p kefu-tests --example widget_weight -- --out bench/results
//! ```
//!
//! It runs `cargo xtask build-web` and `cargo build --release -p kefu-relay`
//! first (`--no-build` skips both, for a tree built already), starts the
//! relay as the tests do, prints the report and writes it to
//! `<out>/widget-weight.md`. Flags: `--runs N` (5), `--out DIR`.
//!
//! File sizes come from `target/web`, the very files the relay serves
//! (their `.gz` and `.br` siblings are made by the build). The browser's
//! own count (CDP `Network.loadingFinished`, `encodedDataLength`: body as
//! sent plus HTTP headers) cross-checks them; the relay on 127.0.0.1 is a
//! secure context to Chromium, which then asks for brotli as it would on
//! HTTPS.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use kefu_tests::browser::Browser;
use kefu_tests::{PATIENCE, Relay};
use serde_json::json;

const USAGE: &str = "usage: widget_weight [--out DIR] [--runs N] [--no-build]";

/// Published figures of two hosted widgets, for scale.
const CHATWOOT: &str = "Chatwoot widget: about 170 KiB transferred (its GitHub issue #2658)";
const CRISP: &str = "Crisp widget: about 130 KB (its help page)";
const CHATWOOT_BYTES: f64 = 170.0 * 1024.0;
const CRISP_BYTES: f64 = 130.0 * 1000.0;
/// Issue 7's goals.
const LOADER_GOAL_GZ: usize = 3 * 1024;
const FIRST_OPEN_GOAL_BR: usize = 90 * 1024;

#[derive(Debug)]
struct Options {
    out: PathBuf,
    runs: usize,
    build: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = parse(std::env::args().skip(1))?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap_or(root);
    if options.build {
        cargo(&root, &["xtask", "build-web"])?;
        cargo(&root, &["build", "--release", "-p", "kefu-relay"])?;
    }
    let web = std::env::var_os("KEFU_WEB_DIR").map_or_else(|| root.join("target/web"), PathBuf::from);
    ensure!(
        web.join("widget.html").exists() && web.join("kefu.js.gz").exists(),
        "{} holds no built widget: run `cargo xtask build-web` first (or drop --no-build)",
        web.display()
    );
    let files = Files::read(&web)?;

    let relay = Relay::start().await.context("starting the relay (`cargo build --release -p kefu-relay`)")?;
    let mut runs = Vec::with_capacity(options.runs);
    for n in 1..=options.runs {
        let run = measure(&relay).await.with_context(|| format!("browser run {n}"))?;
        eprintln!("run {n}: interactive after {:.0} ms, {} B transferred at first open", run.ms, run.first_open());
        runs.push(run);
    }

    let report = report(&files, &runs);
    print!("{report}");
    std::fs::create_dir_all(&options.out)?;
    let path = options.out.join("widget-weight.md");
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("written to {}", path.display());
    Ok(())
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options> {
    let mut options = Options { out: PathBuf::from("bench/results"), runs: 5, build: true };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--no-build" => options.build = false,
            "--out" => options.out = args.next().context(USAGE)?.into(),
            "--runs" => options.runs = args.next().context(USAGE)?.parse()?,
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    ensure!(options.runs > 0, "--runs must be at least 1");
    Ok(options)
}

/// Runs cargo in the repository, its output going to ours.
fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("$ cargo {}", args.join(" "));
    let status = std::process::Command::new(cargo)
        .args(args)
        .current_dir(root)
        .stdout(Stdio::inherit())
        .status()
        .context("running cargo")?;
    ensure!(status.success(), "`cargo {}` failed: {status}", args.join(" "));
    Ok(())
}

// ---------------------------------------------------------------------------
// Sizes of the built files

/// One served file and its precompressed siblings.
#[derive(Debug, Clone)]
struct File {
    /// What it is, for the report.
    what: &'static str,
    /// Its URL path.
    url: String,
    raw: usize,
    gz: usize,
    br: usize,
}

/// What the build put in `target/web` for a visitor.
#[derive(Debug)]
struct Files {
    loader: File,
    first_open: Vec<File>,
}

impl Files {
    fn read(web: &Path) -> Result<Files> {
        let file = |what: &'static str, url: &str, path: PathBuf| -> Result<File> {
            let size = |ext: &str| -> Result<usize> {
                let mut name = path.clone().into_os_string();
                name.push(ext);
                let meta =
                    std::fs::metadata(&name).with_context(|| format!("{} is missing", Path::new(&name).display()))?;
                Ok(usize::try_from(meta.len())?)
            };
            Ok(File { what, url: url.to_owned(), raw: size("")?, gz: size(".gz")?, br: size(".br")? })
        };
        let loader = file("loader `kefu.js`", "/kefu.js", web.join("kefu.js"))?;
        let page = std::fs::read_to_string(web.join("widget.html"))?;
        let mut first_open = vec![file("widget page", "/widget", web.join("widget.html"))?];
        // The page names every asset it loads: `href="/assets/..."` and
        // `src="/assets/..."`.
        for piece in page.split("/assets/").skip(1) {
            let name = piece.split(['"', '\'']).next().unwrap_or_default();
            let what = match name.rsplit('.').next() {
                Some("wasm") => "widget wasm",
                Some("js") => "JS glue",
                Some("css") => "CSS",
                Some("woff2" | "woff" | "ttf" | "otf") => "font",
                _ => "other asset",
            };
            first_open.push(file(what, &format!("/assets/{name}"), web.join("assets").join(name))?);
        }
        // Snippets the glue imports, and fonts a style sheet names.
        let glue = first_open.iter().find(|f| f.what == "JS glue").map(|f| f.url.clone());
        if let Some(glue) = glue {
            let snippets = web.join(format!("{}-snippets", glue.trim_end_matches(".js").trim_start_matches('/')));
            for path in files_under(&snippets)? {
                let url = format!("/{}", path.strip_prefix(web)?.to_string_lossy());
                first_open.push(file("JS snippet", &url, path)?);
            }
        }
        let sheets: Vec<String> = first_open.iter().filter(|f| f.what == "CSS").map(|f| f.url.clone()).collect();
        for sheet in sheets {
            let css = std::fs::read_to_string(web.join(sheet.trim_start_matches('/')))?;
            for piece in css.split("url(").skip(1) {
                let name = piece.split(')').next().unwrap_or_default().trim_matches(['"', '\'', ' ']);
                if name.starts_with("data:") || name.is_empty() {
                    continue;
                }
                let name = name.trim_start_matches("/assets/").trim_start_matches("./");
                first_open.push(file("font", &format!("/assets/{name}"), web.join("assets").join(name))?);
            }
        }
        Ok(Files { loader, first_open })
    }

    /// The size of the file served at `path` in `encoding`, if it is ours.
    fn sized(&self, path: &str, encoding: &str) -> Option<usize> {
        let file = std::iter::once(&self.loader).chain(&self.first_open).find(|f| f.url == path)?;
        match encoding {
            "br" => Some(file.br),
            "gzip" => Some(file.gz),
            "identity" => Some(file.raw),
            _ => None,
        }
    }

    fn total(&self, pick: impl Fn(&File) -> usize) -> usize {
        self.first_open.iter().map(pick).sum()
    }
}

fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    if !dir.is_dir() {
        return Ok(found);
    }
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let path = entry?.path();
            let name = path.to_string_lossy();
            if path.is_dir() {
                pending.push(path);
            } else if !name.ends_with(".gz") && !name.ends_with(".br") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

// ---------------------------------------------------------------------------
// One cold browser run

/// Runs in every document of the page before its own scripts. On the host
/// page it notes when the pointer first reaches the launcher; in the widget
/// frame (same origin as the demo page) it watches the DOM and tells the
/// host page when the composer is there, visible and enabled: the widget
/// attaches its handlers as it renders, so that is when typing works.
const PROBE: &str = r#"
(() => {
  const now = () => performance.timeOrigin + performance.now();
  if (location.pathname === '/widget') {
    const check = () => {
      const input = document.querySelector('textarea');
      if (!input || input.disabled || input.readOnly || input.getClientRects().length === 0) return false;
      try { window.parent.__kefuReady = now(); } catch (e) {}
      return true;
    };
    const watch = () => {
      if (check()) return;
      const observer = new MutationObserver(() => { if (check()) observer.disconnect(); });
      observer.observe(document, { childList: true, subtree: true, attributes: true });
    };
    if (document.documentElement) watch(); else document.addEventListener('DOMContentLoaded', watch);
  } else {
    const start = () => { if (!window.__kefuT0) window.__kefuT0 = now(); };
    addEventListener('pointerover', start, true);
    addEventListener('pointerdown', start, true);
  }
})();
"#;

/// What one cold run saw.
#[derive(Debug, Default)]
struct Run {
    /// From the pointer reaching the launcher to a usable composer.
    ms: f64,
    /// Bytes the browser received per URL path, before the click.
    before: Vec<(String, u64, String)>,
    /// The same after it.
    after: Vec<(String, u64, String)>,
}

impl Run {
    fn first_open(&self) -> u64 {
        self.after.iter().map(|(_, bytes, _)| bytes).sum()
    }
    fn loader(&self) -> u64 {
        self.before.iter().filter(|(url, ..)| url == "/kefu.js").map(|(_, bytes, _)| bytes).sum()
    }
}

/// A request as the Network domain reported it.
#[derive(Debug, Default, Clone)]
struct Request {
    path: String,
    after_click: bool,
    encoding: String,
    bytes: Option<u64>,
}

async fn measure(relay: &Relay) -> Result<Run> {
    let page = Page::start().await?;
    let browser = &page.browser;
    browser.call("Page.addScriptToEvaluateOnNewDocument", json!({ "source": PROBE })).await?;
    browser.goto(&format!("{}/demo", relay.http_url())).await?;
    page.wait(|| page.finished("/kefu.js")).await.context("the loader did not load")?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    page.clicked();
    let (width, height) = browser.viewport().await?;
    // The launcher: 56 px, 20 px from the bottom right corner.
    browser.click(width - 48.0, height - 48.0).await?;
    let ready = "window.__kefuReady && window.__kefuT0 ? window.__kefuReady - window.__kefuT0 : 0";
    let ms = browser.wait_for(None, ready).await.context("the widget's composer never became usable")?;
    let ms = ms.as_f64().context("a duration")?;
    // Let whatever the open started finish (the wasm is done by now; the
    // page may still fetch an icon or the like).
    page.wait(|| page.all_finished()).await.context("requests still running")?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut run = Run { ms, ..Run::default() };
    for request in lock(&page.requests).values() {
        let Some(bytes) = request.bytes else { continue };
        if request.path == "/demo" {
            continue; // the host's own page
        }
        let row = (request.path.clone(), bytes, request.encoding.clone());
        if request.after_click { run.after.push(row) } else { run.before.push(row) }
    }
    run.before.sort();
    run.after.sort();
    Ok(run)
}

/// A fresh headless Chromium (so every run starts with an empty cache) that
/// also keeps the Network domain's byte counts per request.
struct Page {
    browser: Browser,
    requests: Arc<Mutex<HashMap<String, Request>>>,
    after_click: Arc<std::sync::atomic::AtomicBool>,
}

impl Page {
    async fn start() -> Result<Page> {
        let browser = Browser::start().await?;
        let mut events = browser.events();
        let requests: Arc<Mutex<HashMap<String, Request>>> = Arc::default();
        let after_click = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (into, clicked) = (Arc::clone(&requests), Arc::clone(&after_click));
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let params = &event["params"];
                let id = params["requestId"].as_str().unwrap_or_default().to_owned();
                match event["method"].as_str() {
                    Some("Network.requestWillBeSent") => {
                        let url = params["request"]["url"].as_str().unwrap_or_default();
                        let path = url.split("://").nth(1).and_then(|rest| rest.find('/').map(|at| &rest[at..]));
                        let path = path.unwrap_or(url).split('?').next().unwrap_or_default().to_owned();
                        let after = clicked.load(std::sync::atomic::Ordering::SeqCst);
                        lock(&into).insert(id, Request { path, after_click: after, ..Request::default() });
                    }
                    Some("Network.responseReceived") => {
                        let headers = params["response"]["headers"].as_object();
                        let encoding = headers
                            .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-encoding")))
                            .and_then(|(_, v)| v.as_str())
                            .unwrap_or("identity");
                        if let Some(request) = lock(&into).get_mut(&id) {
                            request.encoding = encoding.to_owned();
                        }
                    }
                    Some("Network.loadingFinished") => {
                        let bytes = params["encodedDataLength"].as_f64().unwrap_or(0.0) as u64;
                        if let Some(request) = lock(&into).get_mut(&id) {
                            request.bytes = Some(bytes);
                        }
                    }
                    Some("Network.loadingFailed") => {
                        lock(&into).remove(&id);
                    }
                    _ => {}
                }
            }
        });
        Ok(Page { browser, requests, after_click })
    }

    async fn wait(&self, done: impl Fn() -> bool) -> Result<()> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !done() {
            ensure!(tokio::time::Instant::now() < deadline, "gave up after {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// From now on, requests count as the first open's.
    fn clicked(&self) {
        self.after_click.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn finished(&self, path: &str) -> bool {
        lock(&self.requests).values().any(|r| r.path == path && r.bytes.is_some())
    }

    /// Every HTTP request has finished (a WebSocket is not one).
    fn all_finished(&self) -> bool {
        lock(&self.requests).values().all(|r| r.bytes.is_some() || !r.path.starts_with('/'))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// The report

fn report(files: &Files, runs: &[Run]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Widget weight\n");
    let _ = writeln!(
        out,
        "Measured by `cargo run --release -p kefu-tests --example widget_weight -- --out bench/results`.\n"
    );
    let row = |out: &mut String, f: &File| {
        let _ = writeln!(out, "| {} | `{}` | {} | {} | {} |", f.what, f.url, n(f.raw), n(f.gz), n(f.br));
    };
    let header = "| what | file | raw | gzip | brotli |\n| --- | --- | ---: | ---: | ---: |";

    let _ = writeln!(out, "## Before intent: every page view of the host site\n\n{header}");
    row(&mut out, &files.loader);
    let loader_ok = if files.loader.gz <= LOADER_GOAL_GZ { "within" } else { "over" };
    let _ = writeln!(
        out,
        "\nGoal: loader <= 3 KB gzip ({} B): {loader_ok}. A browser that takes brotli gets the brotli file.\n",
        n(LOADER_GOAL_GZ)
    );

    let _ = writeln!(out, "## At the first open of the chat\n\n{header}");
    for file in &files.first_open {
        row(&mut out, file);
    }
    if !files.first_open.iter().any(|f| f.what == "font") {
        let _ = writeln!(out, "| fonts | (none: the widget uses the system's) | 0 | 0 | 0 |");
    }
    let (raw, gz, br) = (files.total(|f| f.raw), files.total(|f| f.gz), files.total(|f| f.br));
    let _ = writeln!(out, "| **total at first open** | | **{}** | **{}** | **{}** |", n(raw), n(gz), n(br));
    let open_ok = if br <= FIRST_OPEN_GOAL_BR { "within" } else { "over" };
    let _ = writeln!(
        out,
        "\nGoal: first open <= 90 KB brotli ({} B): {open_ok} ({} B, {:.1} KiB). \
         Loader and first open together: {} B (loader gzip, the rest brotli).\n",
        n(FIRST_OPEN_GOAL_BR),
        n(br),
        br as f64 / 1024.0,
        n(files.loader.gz + br)
    );

    let mut times: Vec<f64> = runs.iter().map(|r| r.ms).collect();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let _ = writeln!(out, "## Time to interactive, headless Chromium\n");
    let _ = writeln!(
        out,
        "From the pointer reaching the launcher (the click follows at once) until the widget's composer is \
         rendered, visible and enabled, in the widget frame; a fresh browser profile (cold cache) per run, \
         the relay on this machine (no network latency: this is fetch, compile and start-up time).\n"
    );
    let list: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.ms)).collect();
    let _ = writeln!(out, "Median of {} runs: **{median:.0} ms** (runs: {} ms).\n", runs.len(), list.join(", "));

    let _ = writeln!(out, "## What the browser counted (first run)\n");
    let _ = writeln!(
        out,
        "CDP `Network.loadingFinished` `encodedDataLength`: the body as sent plus the HTTP response headers, \
         so each is a few hundred bytes above the file.\n"
    );
    let _ = writeln!(
        out,
        "| when | path | encoding | bytes received | file | headers and framing |\n| --- | --- | --- | ---: | ---: | ---: |"
    );
    let first = &runs[0];
    for (when, rows) in [("before intent", &first.before), ("first open", &first.after)] {
        for (path, bytes, encoding) in rows {
            let file = files.sized(path, encoding);
            let (file, extra) = match file {
                Some(size) => (n(size), n((*bytes as usize).saturating_sub(size))),
                None => ("-".to_owned(), "-".to_owned()),
            };
            let _ = writeln!(out, "| {when} | `{path}` | {encoding} | {} | {file} | {extra} |", n(*bytes as usize));
        }
    }
    let medians = |pick: fn(&Run) -> u64| {
        let mut all: Vec<u64> = runs.iter().map(pick).collect();
        all.sort_unstable();
        all[all.len() / 2] as usize
    };
    let (loader_seen, open_seen) = (medians(Run::loader), medians(Run::first_open));
    let _ = writeln!(
        out,
        "\nMedian over the runs: loader {} B received, first open {} B received ({} B of files, brotli, \
         plus {} B of HTTP headers and anything else the open fetched).\n",
        n(loader_seen),
        n(open_seen),
        n(br),
        n(open_seen.saturating_sub(br)),
    );

    let _ = writeln!(out, "## Compared with published figures\n");
    let _ = writeln!(out, "| widget | first open |\n| --- | ---: |");
    let _ = writeln!(out, "| Kefu (files, brotli) | {} B ({:.1} KiB) |", n(br), br as f64 / 1024.0);
    let _ = writeln!(
        out,
        "| Kefu (as the browser received it) | {} B ({:.1} KiB) |",
        n(open_seen),
        open_seen as f64 / 1024.0
    );
    let _ = writeln!(out, "| {CHATWOOT} | {} B |", n(CHATWOOT_BYTES as usize));
    let _ = writeln!(out, "| {CRISP} | {} B |", n(CRISP_BYTES as usize));
    let _ = writeln!(
        out,
        "\nKefu's first open is {:.0}% of Chatwoot's and {:.0}% of Crisp's; before intent a page view costs only the \
         loader.",
        100.0 * open_seen as f64 / CHATWOOT_BYTES,
        100.0 * open_seen as f64 / CRISP_BYTES
    );
    out
}

/// `12345` -> `12,345`.
fn n(value: usize) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
