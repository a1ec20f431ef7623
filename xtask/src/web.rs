//! `cargo xtask build-web`: the visitor widget, the agent console, the loader
//! and the demo page, built into `target/web` for the relay to serve.
//!
//! The pipeline, in order:
//!
//! 1. `cargo build -p kefu-widget -p kefu-console --target
//!    wasm32-unknown-unknown --profile wasm-release` (cargo keeps this
//!    incremental). Steps 2 to 4 run for each of the two apps.
//! 2. wasm-bindgen (`--target web`, no TypeScript), through the
//!    `wasm-bindgen-cli-support` crate: its version is pinned to the
//!    `wasm-bindgen` in Cargo.lock, and checked below. Then, in the wasm
//!    and the glue alike, the classes the glue exports for dependencies'
//!    types go with the exports only they call ([`drop_exported_classes`]),
//!    and the imports and exports get short names ([`shorten_names`]).
//! 3. `wasm-opt -Oz --converge` from npm `binaryen` (installed in `tools/` by `npm ci`;
//!    Debian's binaryen emits wasm that fails at start-up).
//!
//!    Steps 2 and 3 are skipped when the wasm from step 1 has not changed.
//! 4. Content-hashed names under `assets/`, the widget page written from
//!    `widget/index.html` (the console's, `console.html`, from
//!    `console/index.html`) with those names filled in, `kefu.js` and the
//!    glue (minified by terser from npm, also in `tools/`), the style sheet
//!    (comments and idle whitespace dropped), `demo.html`; each text and
//!    wasm file gets `.br` and `.gz` siblings at the best compression, so
//!    the relay never compresses on the fly.
//! 5. The transfer sizes, printed and written to `target/web/sizes.json`.
//!
//! The new tree is assembled beside the old one and swapped in at the end,
//! so a running relay never serves half a build.
//!
//! Conventions the widget crate follows (see `widget/README.md`): the page
//! template is `widget/index.html` (a minimal page when it is missing); the
//! build puts the stylesheet link, the
//! wasm preload and the module script where the template says
//! `<!-- kefu:assets -->`, or else just before `</head>`. The glue starts the
//! app by itself, so the template has no script of its own (which keeps the
//! page's Content-Security-Policy free of inline scripts). An optional
//! `widget/style.css` becomes `assets/widget-<hash>.css`. The console
//! crate follows the same conventions in `console/`.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

use crate::run;

/// One Leptos app the pipeline builds.
#[derive(Debug, Clone, Copy)]
struct App {
    /// The cargo package.
    package: &'static str,
    /// The file stem its build produces.
    stem: &'static str,
    /// The name the hashed assets carry (`assets/kefu-widget-<hash>.js`).
    asset: &'static str,
    /// The crate's folder (template, style sheet), the prefix of its
    /// style sheet's hashed name, and its page's name (`widget.html`).
    dir: &'static str,
}

const WIDGET: App = App { package: "kefu-widget", stem: "kefu_widget", asset: "kefu-widget", dir: "widget" };
const CONSOLE: App = App { package: "kefu-console", stem: "kefu_console", asset: "kefu-console", dir: "console" };
const APPS: [App; 2] = [WIDGET, CONSOLE];
const WASM_TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "wasm-release";

/// wasm-opt's flags. The features are the ones rustc enables by default for
/// wasm32-unknown-unknown; naming them keeps wasm-opt from either refusing
/// the module or using features browsers lack.
///
/// Measured on the widget's wasm, brotli (2026-11-23): `--converge` (rerun
/// until it stops shrinking) and `--low-memory-unused` take it from 95,757 B
/// to 95,215 B. The latter holds because rust-lld puts the stack first: the
/// low kilobyte is the far end of a 1 MiB stack, never data. `-Os`, a
/// second `-Oz`, `--gufa` and `--zero-filled-memory` gained nothing more.
const WASM_OPT_FLAGS: &[&str] = &[
    "-Oz",
    "--converge",
    "--low-memory-unused",
    "--enable-bulk-memory",
    "--enable-multivalue",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-reference-types",
    "--enable-sign-ext",
    "--strip-debug",
    "--strip-producers",
];

/// Part of the cache stamp of [`bindgen_and_optimize`]: bump it when the
/// steps between cargo and the optimized wasm change, so that a cached
/// result of the old steps is not reused.
const PIPELINE_REVISION: &str = "short-names, no exported classes";

/// The widget page when the crate has no `widget/index.html`: the app
/// mounts on `<body>` and sets `<html lang>` itself.
const DEFAULT_TEMPLATE: &str = "<!doctype html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1, viewport-fit=cover\">
<title>Chat</title>
<!-- kefu:page -->
</head>
<body></body>
</html>
";

/// Where the pipeline reads and writes.
#[derive(Debug)]
struct Paths {
    root: PathBuf,
    target: PathBuf,
}

impl Paths {
    fn new() -> Paths {
        let root = crate::repo_root();
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        Paths { root, target }
    }
    fn tools(&self) -> PathBuf {
        self.root.join("tools")
    }
    fn wasm_opt(&self) -> PathBuf {
        self.tools().join("node_modules/.bin/wasm-opt")
    }
    fn terser(&self) -> PathBuf {
        self.tools().join("node_modules/.bin/terser")
    }
    /// Intermediate results kept between builds (bindgen and wasm-opt output).
    fn cache(&self) -> PathBuf {
        self.target.join("web-build")
    }
    fn web(&self) -> PathBuf {
        self.target.join("web")
    }
}

/// Installs what `build-web` needs beyond cargo: the wasm32 target and the
/// npm tools. Idempotent and quick when nothing is missing.
pub(crate) fn install_tools() -> Result<()> {
    let targets = crate::output("rustup", &["target", "list", "--installed"])
        .context("rustup is needed to add the wasm32 target (https://rustup.rs)")?;
    if !targets.lines().any(|t| t.trim() == WASM_TARGET) {
        run("rustup", &["target", "add", WASM_TARGET])?;
    }
    let paths = Paths::new();
    if npm_tools_current(&paths) {
        return Ok(());
    }
    let npm = Command::new("npm").arg("--version").output();
    if !npm.is_ok_and(|o| o.status.success()) {
        bail!(
            "npm not found: `cargo xtask build-web` installs its tools from npm into tools/ (wasm-opt from \
             binaryen, terser). Install Node.js and npm first (Debian: apt-get install -y nodejs npm)."
        );
    }
    let tools = paths.tools();
    eprintln!("$ (cd {}) npm ci", tools.display());
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&tools)
        .status()
        .context("running npm ci in tools/")?;
    ensure!(status.success(), "`npm ci` in {} failed: {status}", tools.display());
    for tool in [paths.wasm_opt(), paths.terser()] {
        ensure!(tool.exists(), "npm ci succeeded but {} is missing", tool.display());
    }
    Ok(())
}

/// True when `tools/node_modules` was installed from the current lockfile
/// (npm writes `node_modules/.package-lock.json` on every install).
fn npm_tools_current(paths: &Paths) -> bool {
    let modified = |p: PathBuf| fs::metadata(p).and_then(|m| m.modified()).ok();
    let tools = paths.tools();
    match (modified(tools.join("node_modules/.package-lock.json")), modified(tools.join("package-lock.json"))) {
        (Some(installed), Some(locked)) => installed >= locked && paths.wasm_opt().exists() && paths.terser().exists(),
        _ => false,
    }
}

/// Builds everything `target/web` holds and returns that folder. See the
/// module docs.
pub(crate) fn build() -> Result<PathBuf> {
    let started = Instant::now();
    let paths = Paths::new();
    install_tools()?;
    check_bindgen_version(&paths.root)?;

    let raw_wasm = build_apps()?;
    let widget = bindgen_and_optimize(&paths, WIDGET, &raw_wasm[0])?;
    let console = bindgen_and_optimize(&paths, CONSOLE, &raw_wasm[1])?;

    let staging = paths.target.join("web.new");
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    fs::create_dir_all(staging.join("assets"))?;
    let sizes = assemble(&paths, &widget, &staging)?;
    let (console, _) = assemble_app(&paths, CONSOLE, &console, &staging)?;
    swap_in(&staging, &paths.web())?;

    let mut json = sizes.to_json();
    json["console"] = console.to_json();
    fs::write(paths.web().join("sizes.json"), serde_json::to_string_pretty(&json)? + "\n")?;
    sizes.print();
    console.print("agent console");
    eprintln!("web apps built into {} in {:.1}s", paths.web().display(), started.elapsed().as_secs_f64());
    Ok(paths.web())
}

/// `wasm-bindgen-cli-support` must be the very version of `wasm-bindgen`
/// the widget links, or the generated glue does not match the module.
fn check_bindgen_version(root: &Path) -> Result<()> {
    let lock = fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let versions = |name: &str| -> Vec<String> {
        let header = format!("name = \"{name}\"\n");
        lock.split("[[package]]\n")
            .filter_map(|p| p.strip_prefix(&header))
            .filter_map(|p| p.lines().next()?.strip_prefix("version = \"")?.strip_suffix('"').map(str::to_owned))
            .collect()
    };
    let used = versions("wasm-bindgen");
    let support = versions("wasm-bindgen-cli-support");
    match (used.as_slice(), support.as_slice()) {
        ([used], [support]) if used == support => Ok(()),
        ([used], [support]) => bail!(
            "Cargo.lock has wasm-bindgen {used} but the xtask's wasm-bindgen-cli-support is {support}: \
             set `wasm-bindgen-cli-support = \"={used}\"` in xtask/Cargo.toml (or pin the widget's \
             wasm-bindgen to {support})"
        ),
        _ => bail!(
            "expected exactly one wasm-bindgen and one wasm-bindgen-cli-support in Cargo.lock, found {used:?} and \
             {support:?}; pin them to the same version"
        ),
    }
}

/// Builds the apps for wasm32 in one cargo run (their dependencies are
/// shared) and returns the wasm file cargo made for each, in the order of
/// [`APPS`] (a crate may be a binary, `kefu-widget.wasm`, or a cdylib,
/// `kefu_widget.wasm`: cargo says which).
fn build_apps() -> Result<Vec<PathBuf>> {
    let args = [
        "build",
        "--package",
        WIDGET.package,
        "--package",
        CONSOLE.package,
        "--target",
        WASM_TARGET,
        "--profile",
        PROFILE,
        "--message-format=json-render-diagnostics",
    ];
    eprintln!("$ cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo build for the web apps")?;
    ensure!(output.status.success(), "building the web apps for {WASM_TARGET} failed: {}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    APPS.iter()
        .map(|app| {
            let mut wasm = Vec::new();
            for line in stdout.lines() {
                let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                let ours = message["reason"] == "compiler-artifact"
                    && message["target"]["name"].as_str().is_some_and(|n| n.replace('-', "_") == app.stem);
                if ours && let Some(files) = message["filenames"].as_array() {
                    wasm.extend(
                        files.iter().filter_map(|f| f.as_str()).filter(|f| f.ends_with(".wasm")).map(PathBuf::from),
                    );
                }
            }
            match wasm.as_slice() {
                [one] => Ok(one.clone()),
                _ => bail!("expected one .wasm file from building {}, cargo reported {wasm:?}", app.package),
            }
        })
        .collect()
}

/// What bindgen and wasm-opt made of one build of an app.
#[derive(Debug)]
struct Optimized {
    /// The optimized wasm.
    wasm: PathBuf,
    /// The JS glue, still naming `kefu_widget_bg.wasm`.
    glue: PathBuf,
    /// The `snippets/` folder bindgen writes for inline JS, if any.
    snippets: Option<PathBuf>,
}

/// Runs wasm-bindgen then wasm-opt on `raw_wasm`, unless the cache already
/// holds their output for these exact bytes and flags.
fn bindgen_and_optimize(paths: &Paths, app: App, raw_wasm: &Path) -> Result<Optimized> {
    // The widget's cache keeps the folder it always had.
    let cache = if app.dir == WIDGET.dir { paths.cache() } else { paths.cache().join(app.dir) };
    fs::create_dir_all(&cache)?;
    let bindgen_dir = cache.join("bindgen");
    let result = Optimized {
        wasm: cache.join(format!("{}_bg.opt.wasm", app.stem)),
        glue: bindgen_dir.join(format!("{}.js", app.stem)),
        snippets: Some(bindgen_dir.join("snippets")).filter(|s| s.is_dir()),
    };
    let input = fs::read(raw_wasm).with_context(|| format!("reading {}", raw_wasm.display()))?;
    let mut stamp = Sha256::new();
    stamp.update(&input);
    stamp.update(WASM_OPT_FLAGS.join(" "));
    stamp.update(env!("CARGO_PKG_VERSION"));
    stamp.update(PIPELINE_REVISION);
    let stamp = hex::encode(stamp.finalize());
    let stamp_file = cache.join("input.sha256");
    if fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) && result.wasm.exists() && result.glue.exists() {
        eprintln!("wasm unchanged since the last build: reusing bindgen and wasm-opt output");
        return Ok(result);
    }

    let _ = fs::remove_file(&stamp_file);
    if bindgen_dir.exists() {
        fs::remove_dir_all(&bindgen_dir)?;
    }
    let started = Instant::now();
    eprintln!("$ wasm-bindgen --target web --no-typescript {}", raw_wasm.display());
    let mut output = wasm_bindgen_cli_support::Bindgen::new()
        .input_path(raw_wasm)
        .out_name(app.stem)
        .web(true)?
        .typescript(false)
        .remove_name_section(true)
        .remove_producers_section(true)
        .generate_output()
        .context("wasm-bindgen failed")?;
    // The glue as bindgen writes it to disk (`Output::js` is indented
    // differently), which the edits below expect.
    output.emit(&bindgen_dir).context("writing wasm-bindgen's output")?;
    let (glue, unused) = drop_exported_classes(&fs::read_to_string(&result.glue)?)?;
    let exports = &mut output.wasm_mut().exports;
    let unused: Vec<_> =
        exports.iter().filter(|export| unused.contains(&export.name)).map(|export| export.id()).collect();
    for id in unused {
        exports.delete(id);
    }
    let renamed = shorten_names(output.wasm_mut(), app);
    output.emit(&bindgen_dir).context("writing wasm-bindgen's output")?;
    fs::write(&result.glue, renamed.apply_to_glue(&glue)?)?;
    eprintln!("  ({:.1}s)", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let bindgen_wasm = bindgen_dir.join(format!("{}_bg.wasm", app.stem));
    let wasm_opt = paths.wasm_opt();
    ensure!(wasm_opt.exists(), "{} is missing: run `npm ci` in tools/ (cargo xtask install does)", wasm_opt.display());
    let mut args: Vec<&str> = WASM_OPT_FLAGS.to_vec();
    let (input, output) = (bindgen_wasm.to_string_lossy(), result.wasm.to_string_lossy());
    args.extend([input.as_ref(), "-o", output.as_ref()]);
    run(&wasm_opt.to_string_lossy(), &args)?;
    eprintln!("  ({:.1}s)", started.elapsed().as_secs_f64());

    fs::write(&stamp_file, stamp)?;
    Ok(Optimized { snippets: Some(bindgen_dir.join("snippets")).filter(|s| s.is_dir()), ..result })
}

/// `cargo xtask wasm-names`: the widget's wasm as [`build`] ships it, but
/// with its function names kept (`-g` in place of `--strip-debug`), for
/// `twiggy top` / `twiggy dominators` to say what the weight is made of.
/// Returns the file; its code section matches the shipped one to within a
/// few hundred bytes.
pub(crate) fn build_named_widget() -> Result<PathBuf> {
    let paths = Paths::new();
    install_tools()?;
    check_bindgen_version(&paths.root)?;
    let raw_wasm = build_apps()?;
    let dir = paths.cache().join("names");
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&raw_wasm[0])
        .out_name(WIDGET.stem)
        .web(true)?
        .typescript(false)
        .keep_debug(true)
        .generate(&dir)
        .context("wasm-bindgen failed")?;
    let input = dir.join(format!("{}_bg.wasm", WIDGET.stem)).to_string_lossy().into_owned();
    let output = dir.join(format!("{}_bg.names.wasm", WIDGET.stem));
    let output_arg = output.to_string_lossy().into_owned();
    let mut args: Vec<&str> = WASM_OPT_FLAGS.iter().copied().filter(|f| *f != "--strip-debug").collect();
    args.extend(["-g", input.as_str(), "-o", output_arg.as_str()]);
    run(&paths.wasm_opt().to_string_lossy(), &args)?;
    eprintln!("the widget's wasm with names: {}", output.display());
    Ok(output)
}

/// Removes the JavaScript classes the glue exports for Rust types that a
/// dependency marks `#[wasm_bindgen]` (the widget's: wasm-streams'
/// `IntoUnderlyingSource`, `IntoUnderlyingSink`, `IntoUnderlyingByteSource`,
/// which Leptos's server functions link in). The page only ever calls the
/// glue's default export, so nobody can reach them. Returns the glue
/// without them and the wasm exports only they called, which the caller
/// deletes so that wasm-opt drops the code behind them. Relies on
/// bindgen's layout (a class from `export class X {` to the next line
/// `}`, then its `Symbol.dispose` line, and a `const XFinalization`
/// statement) and fails if a removed class is still named anywhere.
fn drop_exported_classes(glue: &str) -> Result<(String, Vec<String>)> {
    let mut kept = Vec::new();
    let mut removed = String::new();
    let mut classes = Vec::new();
    let mut lines = glue.lines();
    while let Some(line) = lines.next() {
        let Some(class) = line.strip_prefix("export class ").and_then(|rest| rest.strip_suffix(" {")) else {
            kept.push(line);
            continue;
        };
        classes.push(class.to_owned());
        removed.push_str(line);
        for line in lines.by_ref() {
            removed.push('\n');
            removed.push_str(line);
            if line == "}" {
                break;
            }
        }
    }
    let mut glue = String::with_capacity(glue.len());
    let mut lines = kept.into_iter();
    while let Some(line) = lines.next() {
        let ours = |prefix: &str| classes.iter().any(|class| line.starts_with(&prefix.replace('X', class)));
        if ours("if (Symbol.dispose) X.prototype") {
            continue;
        }
        if ours("const XFinalization = ") {
            let mut statement = line;
            while !statement.ends_with(';') {
                statement = lines.next().context("the glue ends inside a Finalization statement")?;
                removed.push('\n');
                removed.push_str(statement);
            }
            continue;
        }
        glue.push_str(line);
        glue.push('\n');
    }
    for class in &classes {
        ensure!(!glue.contains(class.as_str()), "the glue still names {class} once its class is removed");
    }
    let used = wasm_uses(&glue);
    let unused = wasm_uses(&removed).into_iter().filter(|name| !used.contains(name)).collect();
    Ok((glue, unused))
}

/// Every `wasm.<export>` the glue names.
fn wasm_uses(glue: &str) -> std::collections::BTreeSet<String> {
    glue.split("wasm.")
        .skip(1)
        .map(|rest| rest.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).next().unwrap_or_default())
        .map(str::to_owned)
        .collect()
}

/// The names [`shorten_names`] gave: (bindgen's name, the short one).
#[derive(Debug, Default)]
struct Renamed {
    /// The glue's import module, `./kefu_widget_bg.js`, and its new name.
    module: (String, String),
    imports: Vec<(String, String)>,
    exports: Vec<(String, String)>,
}

/// Renames the functions the glue and the wasm share, both ways, to one
/// or two letters. bindgen names them after the Rust item plus a 64-bit
/// hash (`__wbg_setAttribute_e8f9a7c3b2d1f0a4`, 170 of them in the
/// widget), written once in the wasm and once in the glue, where neither
/// wasm-opt nor terser may touch them; the hashes alone are random hex
/// that brotli cannot shrink. [`Renamed::apply_to_glue`] makes the same
/// change in the glue. Imports of snippets keep their names.
fn shorten_names(module: &mut walrus::Module, app: App) -> Renamed {
    let own_module = format!("./{}_bg.js", app.stem);
    let mut renamed = Renamed { module: (own_module.clone(), "a".to_owned()), ..Renamed::default() };
    for import in module.imports.iter_mut().filter(|import| import.module == own_module) {
        // One JavaScript function may back several imports.
        let short = match renamed.imports.iter().find(|(name, _)| *name == import.name) {
            Some((_, short)) => short.clone(),
            None => {
                let short = short_name(renamed.imports.len());
                renamed.imports.push((import.name.clone(), short.clone()));
                short
            }
        };
        import.name = short;
        import.module.clone_from(&renamed.module.1);
    }
    for (i, export) in module.exports.iter_mut().enumerate() {
        let short = short_name(i);
        renamed.exports.push((std::mem::replace(&mut export.name, short.clone()), short));
    }
    renamed
}

/// `a` to `Z`, then `aa`, `ab`, ...: valid JavaScript identifiers.
fn short_name(mut i: usize) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut name = String::new();
    loop {
        name.insert(0, char::from(LETTERS[i % LETTERS.len()]));
        i /= LETTERS.len();
        if i == 0 {
            return name;
        }
        i -= 1;
    }
}

impl Renamed {
    /// The glue with the new names: the keys of its import object
    /// (`        __wbg_x_0123: function(`), its module's name, and every
    /// `wasm.<export>`. Fails rather than guess when the glue does not
    /// have exactly the expected shape.
    fn apply_to_glue(&self, glue: &str) -> Result<String> {
        let mut glue = glue.to_owned();
        let (module, short_module) = &self.module;
        let key = format!("\"{module}\": import0,");
        ensure!(glue.matches(&key).count() == 1, "the glue names its import module other than as {key}");
        glue = glue.replacen(&key, &format!("\"{short_module}\": import0,"), 1);
        for (name, short) in &self.imports {
            let key = format!("\n        {name}: function(");
            ensure!(glue.matches(&key).count() == 1, "the glue's import object has no single key {name}");
            glue = glue.replacen(&key, &format!("\n        {short}: function("), 1);
        }
        let exports: std::collections::HashMap<&str, &str> =
            self.exports.iter().map(|(name, short)| (name.as_str(), short.as_str())).collect();
        let mut out = String::with_capacity(glue.len());
        let mut rest = glue.as_str();
        while let Some(at) = rest.find("wasm.") {
            let before = rest[..at].chars().next_back();
            out.push_str(&rest[..at + "wasm.".len()]);
            rest = &rest[at + "wasm.".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '.') {
                continue; // `x.wasm.` or `mywasm.`: not the exports
            }
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).unwrap_or(rest.len());
            let name = &rest[..end];
            let short =
                exports.get(name).with_context(|| format!("the glue uses wasm.{name}, which is not exported"))?;
            out.push_str(short);
            rest = &rest[end..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Writes the servable tree into `out` and returns the widget's transfer
/// sizes (the console is assembled by [`assemble_app`] alone).
fn assemble(paths: &Paths, optimized: &Optimized, out: &Path) -> Result<Sizes> {
    let (app, shell) = assemble_app(paths, WIDGET, optimized, out)?;
    let widget = paths.root.join(WIDGET.dir);
    let loader = minify_js(paths, &widget.join("loader/kefu.js"), &out.join("kefu.js"), false)?;
    let worker = service_worker(&fs::read_to_string(widget.join("sw.js"))?, &shell)?;
    let unminified = paths.cache().join("kefu-sw.js");
    fs::write(&unminified, worker)?;
    minify_js(paths, &unminified, &out.join(SERVICE_WORKER), false)?;
    precompress(&out.join(SERVICE_WORKER))?;
    let demo = paths.root.join("web/demo.html");
    fs::copy(&demo, out.join("demo.html")).with_context(|| format!("copying {}", demo.display()))?;
    precompress(&out.join("demo.html"))?;

    Ok(Sizes { loader_raw: loader, loader_gz: precompress(&out.join("kefu.js"))?.gz, app })
}

/// The widget's service worker, served at `/kefu-sw.js` (see
/// `widget/sw.js`).
const SERVICE_WORKER: &str = "kefu-sw.js";

/// `widget/sw.js` with the shell's files and a version made of their
/// hashed names where it marks them: each build that changes the widget
/// makes a new worker, which replaces the old one and its cache.
fn service_worker(source: &str, shell: &[String]) -> Result<String> {
    const VERSION: &str = "var VERSION = 'dev'; // kefu:version";
    const SHELL: &str = "var SHELL = []; // kefu:shell";
    ensure!(
        source.contains(VERSION) && source.contains(SHELL),
        "widget/sw.js must keep the lines `{VERSION}` and `{SHELL}` for the build to fill in"
    );
    let version = short_hash(Sha256::new_with_prefix(shell.join("\n")));
    let list: Vec<String> = shell.iter().map(|path| format!("'{path}'")).collect();
    Ok(source.replacen(VERSION, &format!("var VERSION = '{version}';"), 1).replacen(
        SHELL,
        &format!("var SHELL = [{}];", list.join(", ")),
        1,
    ))
}

/// Writes one app into `out`: its hashed wasm, glue, snippets and style
/// sheet under `assets/`, and its page (`<dir>.html`) naming them. Returns
/// the sizes and the paths of the files the page needs (`/assets/...`).
fn assemble_app(paths: &Paths, app: App, optimized: &Optimized, out: &Path) -> Result<(AppSizes, Vec<String>)> {
    let dir = paths.root.join(app.dir);
    let wasm = fs::read(&optimized.wasm)?;
    let glue = fs::read_to_string(&optimized.glue)?;
    let snippets = match &optimized.snippets {
        Some(dir) => files_under(dir)?,
        None => Vec::new(),
    };

    // One hash for the glue, the wasm and the snippets: they only work
    // together, so they change names together.
    let mut hasher = Sha256::new();
    hasher.update(&wasm);
    hasher.update(glue.as_bytes());
    for (name, bytes) in &snippets {
        hasher.update(name.as_bytes());
        hasher.update(bytes);
    }
    let hash = short_hash(hasher);
    let base = format!("{}-{hash}", app.asset);
    let assets = out.join("assets");

    let wasm_name = format!("{base}_bg.wasm");
    let glue_name = format!("{base}.js");
    let glue = start_glue(&glue, &wasm_name, &format!("./{base}-snippets/"))?;
    // The widget keeps itself for offline use; the console does not.
    let glue = if app.dir == WIDGET.dir { format!("{glue}{REGISTER_WORKER}") } else { glue };
    let mut shell = vec![format!("/assets/{glue_name}"), format!("/assets/{wasm_name}")];
    fs::write(assets.join(&wasm_name), &wasm)?;
    // The glue as bindgen writes it is readable and commented: a quarter
    // of its brotli size goes in minifying it (the widget's: 7,135 B to
    // 5,381 B; the console's: 7,449 B to 5,729 B).
    let unminified = paths.cache().join(format!("{}.glue.js", app.stem));
    fs::write(&unminified, &glue)?;
    minify_js(paths, &unminified, &assets.join(&glue_name), true)?;
    let mut snippets_br = 0;
    for (name, bytes) in &snippets {
        let path = assets.join(format!("{base}-snippets")).join(name);
        fs::create_dir_all(path.parent().context("snippet path has a parent")?)?;
        fs::write(&path, bytes)?;
        snippets_br += precompress(&path)?.br;
    }

    let mut head = String::new();
    let css = dir.join("style.css");
    let css_br = if css.exists() {
        let bytes = minify_css(&fs::read_to_string(&css)?).into_bytes();
        let name = format!("{}-{}.css", app.dir, short_hash(Sha256::new_with_prefix(&bytes)));
        fs::write(assets.join(&name), &bytes)?;
        head.push_str(&format!("<link rel=\"stylesheet\" href=\"/assets/{name}\">\n"));
        shell.push(format!("/assets/{name}"));
        Some(precompress(&assets.join(&name))?.br)
    } else {
        None
    };
    // The preload lets the wasm download alongside the glue instead of
    // after it; `crossorigin` matches the glue's own fetch so the browser
    // reuses the preloaded response.
    head.push_str(&format!(
        "<link rel=\"preload\" href=\"/assets/{wasm_name}\" as=\"fetch\" type=\"application/wasm\" crossorigin>\n\
         <script type=\"module\" src=\"/assets/{glue_name}\"></script>\n"
    ));
    let template_path = dir.join("index.html");
    let template = if template_path.exists() {
        fs::read_to_string(&template_path).with_context(|| format!("reading {}", template_path.display()))?
    } else {
        DEFAULT_TEMPLATE.to_owned()
    };
    let html = fill_template(&template, &head)?;
    let page = out.join(format!("{}.html", app.dir));
    fs::write(&page, html)?;

    shell.extend(snippets.iter().map(|(name, _)| format!("/assets/{base}-snippets/{name}")));
    let html = precompress(&page)?;
    let sizes = AppSizes {
        // The relay fills the widget's page in per request and sends it
        // as it is: its raw size is what goes over the wire.
        html: if app.dir == WIDGET.dir { fs::metadata(&page)?.len().try_into()? } else { html.br },
        glue_br: precompress(&assets.join(&glue_name))?.br + snippets_br,
        wasm_raw: wasm.len(),
        wasm_br: precompress(&assets.join(&wasm_name))?.br,
        css_br,
    };
    Ok((sizes, shell))
}

/// Appended to the widget's glue: registers the service worker for the
/// page's own kind of path, so it never sees the host site's pages nor
/// the console. A browser without service workers just goes without.
const REGISTER_WORKER: &str = "if ('serviceWorker' in navigator) navigator.serviceWorker.register('/kefu-sw.js', \
     { scope: location.pathname.indexOf('/c/') === 0 ? '/c/' : '/widget' }).catch(() => {});\n";

/// Makes bindgen's `--target web` glue start the app when it loads: it
/// calls its own init function at the end with the hashed wasm file, and
/// imports its snippets from their hashed folder.
fn start_glue(glue: &str, wasm_name: &str, snippets_dir: &str) -> Result<String> {
    ensure!(
        glue.contains("async function __wbg_init(module_or_path)"),
        "the wasm-bindgen glue has no `__wbg_init(module_or_path)` function; update start_glue in xtask/src/web.rs"
    );
    let glue = glue.replace("'./snippets/", &format!("'{snippets_dir}"));
    Ok(format!("{glue}\n__wbg_init({{ module_or_path: new URL('{wasm_name}', import.meta.url) }});\n"))
}

/// Puts `head` where the template marks it, or before `</head>`.
fn fill_template(template: &str, head: &str) -> Result<String> {
    const MARK: &str = "<!-- kefu:assets -->";
    if template.contains(MARK) {
        return Ok(template.replacen(MARK, head.trim_end(), 1));
    }
    let at = template.find("</head>").context("widget/index.html has neither <!-- kefu:assets --> nor </head>")?;
    Ok(format!("{}{head}{}", &template[..at], &template[at..]))
}

/// terser, compress and mangle, ASCII only: the host page's charset
/// decodes the loader. `module` for an ES module (the glue): its top-level
/// names are then private and get mangled too, its exports kept. Returns
/// the minified size in bytes.
fn minify_js(paths: &Paths, source: &Path, out: &Path, module: bool) -> Result<usize> {
    ensure!(source.exists(), "{} is missing", source.display());
    let terser = paths.terser();
    ensure!(terser.exists(), "{} is missing: run `npm ci` in tools/ (cargo xtask install does)", terser.display());
    let (source, out_arg) = (source.to_string_lossy(), out.to_string_lossy());
    let mut args = vec![source.as_ref()];
    if module {
        args.push("--module");
    }
    args.extend(["--compress", "passes=2", "--mangle", "--format", "ascii_only=true", "--output", out_arg.as_ref()]);
    run(&terser.to_string_lossy(), &args)?;
    Ok(fs::metadata(out)?.len().try_into()?)
}

/// Drops comments and the whitespace that carries no meaning (runs become
/// one space; none around `{`, `}`, `;`, `,`), and a block's last `;`.
/// Quoted strings pass untouched. The widget's sheet: 1,907 B brotli to
/// 1,598 B. Spaces next to `:` or `>` stay: in a selector a space before
/// `:` is a descendant combinator.
fn minify_css(css: &str) -> String {
    const TIGHT: &[char] = &['{', '}', ';', ','];
    let mut out = String::with_capacity(css.len());
    let mut chars = css.chars().peekable();
    let mut space = false;
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                space = true;
            }
            c if c.is_whitespace() => space = true,
            '"' | '\'' => {
                if space && !out.is_empty() && !out.ends_with(TIGHT) {
                    out.push(' ');
                }
                space = false;
                out.push(c);
                while let Some(inner) = chars.next() {
                    out.push(inner);
                    if inner == '\\' {
                        out.extend(chars.next());
                    } else if inner == c {
                        break;
                    }
                }
            }
            c => {
                if space && !out.is_empty() && !out.ends_with(TIGHT) && !TIGHT.contains(&c) {
                    out.push(' ');
                }
                space = false;
                if c == '}' && out.ends_with(';') {
                    out.pop();
                }
                out.push(c);
            }
        }
    }
    out
}

fn short_hash(hasher: Sha256) -> String {
    hex::encode(&hasher.finalize()[..4])
}

/// Every file under `dir`, as (path relative to `dir` with `/`, bytes).
fn files_under(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
                files.push((relative, fs::read(&path)?));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Compressed sizes of one file.
#[derive(Debug, Clone, Copy)]
struct Compressed {
    br: usize,
    gz: usize,
}

/// Writes `path.br` and `path.gz` at the best compression.
fn precompress(path: &Path) -> Result<Compressed> {
    let bytes = fs::read(path)?;
    let mut br = Vec::new();
    let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 24, ..Default::default() };
    brotli::BrotliCompress(&mut bytes.as_slice(), &mut br, &params)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes)?;
    let gz = gz.finish()?;
    let sibling = |ext: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(ext);
        PathBuf::from(name)
    };
    fs::write(sibling(".br"), &br)?;
    fs::write(sibling(".gz"), &gz)?;
    Ok(Compressed { br: br.len(), gz: gz.len() })
}

/// Replaces `web` by `staging`; the old tree lives on as `web.old` for the
/// moment between the two renames.
fn swap_in(staging: &Path, web: &Path) -> Result<()> {
    let old = web.with_extension("old");
    if old.exists() {
        fs::remove_dir_all(&old)?;
    }
    if web.exists() {
        fs::rename(web, &old).with_context(|| format!("moving {} aside", web.display()))?;
    }
    fs::rename(staging, web).with_context(|| format!("moving {} to {}", staging.display(), web.display()))?;
    if old.exists() {
        fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// What a visitor downloads, in bytes on the wire.
#[derive(Debug)]
struct Sizes {
    loader_raw: usize,
    /// kefu.js, gzip: every page view of the host site pays this.
    loader_gz: usize,
    /// The widget itself.
    app: AppSizes,
}

/// What one app's first load downloads, in bytes on the wire.
#[derive(Debug)]
struct AppSizes {
    /// The app's page as sent: brotli, or raw for the widget's, which the
    /// relay fills in per request.
    html: usize,
    /// The wasm-bindgen glue (and snippets), brotli.
    glue_br: usize,
    wasm_raw: usize,
    wasm_br: usize,
    css_br: Option<usize>,
}

impl AppSizes {
    /// Everything the first load downloads.
    fn total(&self) -> usize {
        self.html + self.glue_br + self.wasm_br + self.css_br.unwrap_or(0)
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "html": self.html,
            "glue_br": self.glue_br,
            "wasm_raw": self.wasm_raw,
            "wasm_br": self.wasm_br,
            "css_br": self.css_br,
            "total_br": self.total(),
        })
    }

    fn print(&self, name: &str) {
        eprintln!("{name}:");
        eprintln!("  wasm (br)               {}   (raw {})", kb(self.wasm_br), kb(self.wasm_raw).trim());
        eprintln!("  JS glue (br)            {}", kb(self.glue_br));
        if let Some(css) = self.css_br {
            eprintln!("  CSS (br)                {}", kb(css));
        }
        eprintln!("  page                    {}", kb(self.html));
        eprintln!("  first load              {}", kb(self.total()));
    }
}

fn kb(n: usize) -> String {
    format!("{:>7.1} KB", n as f64 / 1024.0)
}

impl Sizes {
    /// What the first open of the chat downloads after the loader.
    fn first_open(&self) -> usize {
        self.app.total()
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "loader_raw": self.loader_raw,
            "loader_gz": self.loader_gz,
            "widget_html": self.app.html,
            "glue_br": self.app.glue_br,
            "wasm_raw": self.app.wasm_raw,
            "wasm_br": self.app.wasm_br,
            "css_br": self.app.css_br,
            "first_open_br": self.first_open(),
            "total": self.loader_gz + self.first_open(),
        })
    }

    fn print(&self) {
        eprintln!("transfer sizes:");
        eprintln!("  kefu.js loader (gzip)   {}   (raw {})", kb(self.loader_gz), kb(self.loader_raw).trim());
        eprintln!("  widget wasm (br)        {}   (raw {})", kb(self.app.wasm_br), kb(self.app.wasm_raw).trim());
        eprintln!("  JS glue (br)            {}", kb(self.app.glue_br));
        if let Some(css) = self.app.css_br {
            eprintln!("  CSS (br)                {}", kb(css));
        }
        eprintln!("  widget page (raw)       {}", kb(self.app.html));
        eprintln!("  first open, after load  {}", kb(self.first_open()));
        eprintln!("  total at first open     {}   (loader + first open)", kb(self.loader_gz + self.first_open()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_gets_assets_at_the_mark_or_before_head_end() {
        let head = "<script></script>\n";
        assert_eq!(fill_template("<head><!-- kefu:assets --></head>", head).unwrap(), "<head><script></script></head>");
        assert_eq!(
            fill_template("<head><title>t</title></head>", head).unwrap(),
            "<head><title>t</title><script></script>\n</head>"
        );
        assert!(fill_template("<body></body>", head).is_err());
    }

    #[test]
    fn css_loses_comments_and_idle_whitespace_but_keeps_meaning() {
        let css = "/* note */\n.a :hover,\n.b > .c {\n  color: red;\n  font-family: \"A  B\", sans-serif;\n}\n\n@media (max-width: 10px) { .d { top: 0 } }\n";
        assert_eq!(
            minify_css(css),
            ".a :hover,.b > .c{color: red;font-family: \"A  B\",sans-serif}@media (max-width: 10px){.d{top: 0}}"
        );
    }

    #[test]
    fn short_names_are_unique_identifiers() {
        let names: Vec<String> = (0..3000).map(short_name).collect();
        assert_eq!(names[..3], ["a", "b", "c"]);
        assert_eq!(names[51..54], ["Z", "aa", "ab"]);
        assert_eq!(names.iter().collect::<std::collections::HashSet<_>>().len(), names.len());
    }

    #[test]
    fn the_glue_gets_the_short_names_and_nothing_else_changes() {
        let renamed = Renamed {
            module: ("./app_bg.js".into(), "a".into()),
            imports: vec![("__wbg_log_0123".into(), "a".into())],
            exports: vec![("__wbindgen_malloc".into(), "a".into()), ("memory".into(), "b".into())],
        };
        let glue = "const import0 = {\n        __wbg_log_0123: function(arg0) { mywasm.memory; },\n    };\n    \
                    return { \"./app_bg.js\": import0, };\nwasm.__wbindgen_malloc(wasm.memory.buffer);";
        assert_eq!(
            renamed.apply_to_glue(glue).unwrap(),
            "const import0 = {\n        a: function(arg0) { mywasm.memory; },\n    };\n    \
             return { \"a\": import0, };\nwasm.a(wasm.b.buffer);"
        );
        assert!(renamed.apply_to_glue(&glue.replace("wasm.memory.buffer", "wasm.table")).is_err());
    }

    #[test]
    fn exported_classes_go_with_the_exports_only_they_call() {
        let glue = "export class Source {\n    free() {\n        wasm.__wbg_source_free(1);\n    }\n    pull() {\n        \
                    wasm.source_pull(this.ptr, wasm.memory);\n    }\n}\n\
                    if (Symbol.dispose) Source.prototype[Symbol.dispose] = Source.prototype.free;\n\
                    function f() { wasm.memory; }\n\
                    const SourceFinalization = (typeof FinalizationRegistry === 'undefined')\n    ? {}\n    \
                    : new FinalizationRegistry(ptr => wasm.__wbg_source_free(ptr, 1));\n\
                    export { f as default };\n";
        let (kept, unused) = drop_exported_classes(glue).unwrap();
        assert_eq!(kept, "function f() { wasm.memory; }\nexport { f as default };\n");
        assert_eq!(unused, ["__wbg_source_free", "source_pull"]);
    }

    #[test]
    fn glue_names_hashed_files_and_starts_itself() {
        let glue = "import x from './snippets/a/inline0.js';\nasync function __wbg_init(module_or_path) {}\nexport default __wbg_init;";
        let started = start_glue(glue, "kefu-widget-0123abcd_bg.wasm", "./kefu-widget-0123abcd-snippets/").unwrap();
        assert!(started.contains("'./kefu-widget-0123abcd-snippets/a/inline0.js'"));
        assert!(started.ends_with(
            "\n__wbg_init({ module_or_path: new URL('kefu-widget-0123abcd_bg.wasm', import.meta.url) });\n"
        ));
        assert!(start_glue("function f() {}", "x", "y").is_err());
    }
}
