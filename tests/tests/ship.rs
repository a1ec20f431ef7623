//! The relay as a site owner gets it: one binary, copied into an empty
//! folder, and its operator subcommands (`site create`, `site list`,
//! `check`), run as processes.
//!
//! Needs a web build embedded in the binary: `cargo xtask build-web`, then
//! `cargo build -p kefu-relay` (`cargo xtask test` does both).

use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{Context, Result, bail, ensure};
use kefu_protocol::frame::Body;
use kefu_sdk::Client;
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, PATIENCE, Relay, spawn_relay};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use tokio::process::Command;

/// The relay binary cargo built, beside this test's executable.
fn built_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("test executable has no parent dir")?;
    let binary = dir.join(format!("kefu-relay{}", std::env::consts::EXE_SUFFIX));
    ensure!(binary.exists(), "{} is missing: build it first (`cargo build -p kefu-relay`)", binary.display());
    Ok(binary)
}

/// An empty folder holding only a copy of the binary.
struct Install {
    dir: tempfile::TempDir,
    binary: PathBuf,
}

impl Install {
    fn new() -> Result<Install> {
        let dir = tempfile::tempdir()?;
        let binary = dir.path().join("kefu-relay");
        std::fs::copy(built_binary()?, &binary)?;
        Ok(Install { dir, binary })
    }

    /// The copied binary, run from its folder, with no setting from the
    /// environment (a developer's `KEFU_WEB_DIR` would hide what the
    /// binary carries).
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.current_dir(self.dir.path()).args(args).env("RUST_LOG", "warn");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KEFU_") {
                command.env_remove(name);
            }
        }
        command.kill_on_drop(true);
        command
    }

    /// Runs a subcommand to its end.
    async fn run(&self, args: &[&str]) -> Result<Output> {
        let output = tokio::time::timeout(PATIENCE, self.command(args).output()).await.context("subcommand hung")??;
        Ok(output)
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_copied_binary_serves_every_web_route_from_itself() -> Result<()> {
    let install = Install::new()?;
    // No --web-dir, and nothing beside the binary but its data dir.
    let (_child, addr) = spawn_relay(install.command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        "data",
        "--admin-email",
        ADMIN_EMAIL,
        "--admin-password",
        ADMIN_PASSWORD,
    ]))
    .await?;
    let entries: Vec<String> = std::fs::read_dir(install.dir.path())?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    ensure!(entries.iter().all(|name| name == "kefu-relay" || name == "data"), "the folder holds {entries:?}");
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let get = |path: &str| http.get(format!("{base}{path}")).send();

    for (path, wanted_type) in [
        ("/kefu.js", "text/javascript"),
        ("/kefu-sw.js", "text/javascript"),
        ("/c/demo", "text/html"),
        ("/widget?site=demo", "text/html"),
        ("/console", "text/html"),
        ("/demo", "text/html"),
    ] {
        let response = get(path).await?;
        let status = response.status();
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body = response.text().await?;
        ensure!(status == StatusCode::OK, "{path}: {status} {body}");
        ensure!(content_type.starts_with(wanted_type), "{path}: content type {content_type:?}");
        ensure!(body.len() > 100, "{path}: a short body {body:?}");
    }

    // The widget page names its hashed assets; each is served, the wasm
    // precompressed when the client takes brotli, and revalidated by ETag.
    let page = get("/c/demo").await?.text().await?;
    ensure!(page.contains("<meta name=\"kefu-site\" content=\"demo\">"), "the relay filled in the page: {page}");
    let assets: Vec<&str> =
        page.split('"').filter(|part| part.starts_with("/assets/") && !part.contains(' ')).collect();
    let wasm = assets.iter().find(|a| a.ends_with(".wasm")).with_context(|| format!("no wasm named in {page}"))?;
    let script = assets.iter().find(|a| a.ends_with(".js")).with_context(|| format!("no script named in {page}"))?;

    let br = http.get(format!("{base}{wasm}")).header(ACCEPT_ENCODING, "br").send().await?;
    ensure!(br.status() == StatusCode::OK, "{wasm}: {}", br.status());
    assert_eq!(br.headers()[CONTENT_TYPE], "application/wasm");
    assert_eq!(br.headers()[CONTENT_ENCODING], "br");
    let etag = br.headers().get(ETAG).context("an ETag")?.clone();
    let again =
        http.get(format!("{base}{wasm}")).header(ACCEPT_ENCODING, "br").header(IF_NONE_MATCH, etag).send().await?;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{wasm} revalidated");

    let plain = http.get(format!("{base}{script}")).header(ACCEPT_ENCODING, "identity").send().await?;
    ensure!(plain.status() == StatusCode::OK, "{script}: {}", plain.status());
    assert!(plain.headers()[CONTENT_TYPE].to_str()?.starts_with("text/javascript"));
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    assert!(!plain.bytes().await?.is_empty());

    assert_eq!(get("/assets/no-such-file.js").await?.status(), StatusCode::NOT_FOUND);
    Ok(())
}

/// The password `site create` printed, from its output.
fn printed_password(output: &str) -> Result<String> {
    output
        .lines()
        .find_map(|line| line.strip_prefix("admin password: "))
        .map(str::to_owned)
        .with_context(|| format!("no password in {output:?}"))
}

#[tokio::test]
async fn site_create_makes_a_tenant_whose_admin_sees_only_their_site() -> Result<()> {
    let relay = Relay::start().await?;
    relay.wait_healthy().await?;
    let install = Install::new()?;
    let data_dir = relay.data_dir().to_str().context("utf-8 path")?;

    // Beside the running relay, on its store.
    let create = ["site", "create", "--key", "acme", "--name", "Acme Ltd", "--admin-email", "boss@acme.test"];
    let created = install.run(&[&create[..], &["--data-dir", data_dir]].concat()).await?;
    ensure!(created.status.success(), "site create failed: {}{}", stdout(&created), stderr(&created));
    let password = printed_password(&stdout(&created))?;
    assert_eq!(password.len(), 20, "a generated password");

    // A taken key is refused, saying so, and changes nothing.
    let again =
        install.run(&[&create[..], &["--data-dir", data_dir, "--admin-password", "another one"]].concat()).await?;
    ensure!(!again.status.success(), "a second `acme` was created: {}", stdout(&again));
    ensure!(stderr(&again).contains("site key \"acme\" is taken"), "{}", stderr(&again));

    // A given password is not printed.
    let given = install
        .run(&[
            "site",
            "create",
            "--key",
            "bolt",
            "--name",
            "Bolt",
            "--admin-email",
            "bo@bolt.test",
            "--admin-password",
            "bolt password",
            "--data-dir",
            data_dir,
        ])
        .await?;
    ensure!(given.status.success(), "{}", stderr(&given));
    ensure!(!stdout(&given).contains("bolt password"), "{}", stdout(&given));

    let list = install.run(&["site", "list", "--data-dir", data_dir]).await?;
    ensure!(list.status.success(), "{}", stderr(&list));
    let lines: Vec<String> = stdout(&list).lines().map(str::to_owned).collect();
    assert_eq!(lines, ["demo\tDemo site", "acme\tAcme Ltd", "bolt\tBolt"]);

    // The demo site has a conversation.
    let (visitor, _events) = Client::visitor(relay.ws_url(), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text("DEMO-ONLY".into())).await?;

    // Acme's admin logs in over HTTP, to the running relay, and sees
    // nothing of it.
    let http = reqwest::Client::new();
    let login = kefu_sdk::login(&relay.http_url(), "boss@acme.test", &password).await?;
    let get = |path: String| http.get(format!("{}{path}", relay.http_url())).bearer_auth(&login.token).send();
    let site = get("/api/site".into()).await?.json::<serde_json::Value>().await?;
    assert_eq!((site["key"].as_str(), site["name"].as_str()), (Some("acme"), Some("Acme Ltd")), "{site}");
    let list = get("/api/conversations".into()).await?;
    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(list.json::<serde_json::Value>().await?, serde_json::json!([]), "acme sees no conversation");
    let messages = get(format!("/api/conversations/{}/messages", conversation.0)).await?;
    let status = messages.status();
    let text = messages.text().await?;
    ensure!(matches!(status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN), "{status} {text}");
    ensure!(!text.contains("DEMO-ONLY"), "{text}");

    // And the demo admin still sees theirs.
    let demo = kefu_sdk::login(&relay.http_url(), ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let demo_list = http
        .get(format!("{}/api/conversations", relay.http_url()))
        .bearer_auth(&demo.token)
        .send()
        .await?
        .json::<serde_json::Value>()
        .await?;
    assert_eq!(demo_list[0]["id"].as_u64(), Some(conversation.0));
    Ok(())
}

/// `check`'s line for `name`, failing when there is none.
fn line<'a>(output: &'a str, name: &str) -> Result<&'a str> {
    match output.lines().find(|line| line.contains(&format!(" {name}: "))) {
        Some(line) => Ok(line),
        None => bail!("no {name} line in {output:?}"),
    }
}

#[tokio::test]
async fn check_passes_here_and_names_what_fails() -> Result<()> {
    let install = Install::new()?;
    let good = install
        .run(&["check", "--data-dir", "data", "--listen", "127.0.0.1:0", "--redis-url", "redis://127.0.0.1:6379"])
        .await?;
    let out = stdout(&good);
    ensure!(good.status.success(), "check failed on a good setup: {out}{}", stderr(&good));
    for name in ["data dir", "store", "redis", "web apps", "listen"] {
        ensure!(line(&out, name)?.starts_with("ok "), "{out}");
    }
    ensure!(line(&out, "web apps")?.contains("embedded"), "{out}");

    // A data dir that cannot be made (root writes anywhere, but not under
    // a file), a taken address, a Redis that does not answer.
    std::fs::write(install.dir.path().join("a-file"), "not a folder")?;
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let taken_addr = taken.local_addr()?.to_string();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let redis_url = format!("redis://{closed}");
    let bad = install
        .run(&[
            "check",
            "--data-dir",
            "a-file/data",
            "--listen",
            &taken_addr,
            "--redis-url",
            &redis_url,
            "--web-dir",
            "no-web",
        ])
        .await?;
    let out = stdout(&bad);
    ensure!(!bad.status.success(), "check passed on a broken setup: {out}");
    assert_eq!(bad.status.code(), Some(1));
    let data = line(&out, "data dir")?;
    ensure!(data.starts_with("FAIL") && data.contains("cannot create a-file/data"), "{out}");
    ensure!(line(&out, "store")?.starts_with("FAIL"), "{out}");
    ensure!(line(&out, "redis")?.starts_with("FAIL"), "{out}");
    let web = line(&out, "web apps")?;
    ensure!(web.starts_with("FAIL") && web.contains("not built"), "{out}");
    let listen = line(&out, "listen")?;
    ensure!(listen.starts_with("FAIL") && listen.contains(&taken_addr), "{out}");
    drop(taken);
    Ok(())
}

#[tokio::test]
async fn the_example_settings_file_names_every_setting() -> Result<()> {
    let install = Install::new()?;
    let help = install.run(&["serve", "--help"]).await?;
    ensure!(help.status.success(), "{}", stderr(&help));
    let help = stdout(&help);
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/kefu.env.example"))?;
    let settings: Vec<&str> = help.split("[env: ").skip(1).filter_map(|rest| rest.split(['=', ']']).next()).collect();
    ensure!(settings.len() > 20, "too few settings in {help}");
    let missing: Vec<&&str> = settings.iter().filter(|name| !example.contains(&format!("#{name}="))).collect();
    ensure!(missing.is_empty(), "dist/kefu.env.example lacks {missing:?}");
    Ok(())
}
