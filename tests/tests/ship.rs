//! The relay as a site owner gets it: one binary, copied into an empty
//! folder, its operator subcommands (`site create`, `site list`, `check`),
//! its settings file and its log, run as processes.
//!
//! Needs a web build embedded in the binary: `cargo xtask build-web`, then
//! `cargo build -p kefu-relay` (`cargo xtask test` does both).

use std::path::PathBuf;
use std::process::Output;

use anyhow::{Context, Result, bail, ensure};
use kefu_protocol::frame::Body;
use kefu_sdk::Client;
use kefu_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, PATIENCE, Relay, relay_binary, relay_command, spawn_relay};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use tokio::process::Command;

/// An empty folder holding only a copy of the binary.
struct Install {
    dir: tempfile::TempDir,
    binary: PathBuf,
}

impl Install {
    fn new() -> Result<Install> {
        let dir = tempfile::tempdir()?;
        let binary = dir.path().join("kefu-relay");
        std::fs::copy(relay_binary()?, &binary)?;
        Ok(Install { dir, binary })
    }

    /// The copied binary, run from its folder, with no setting from the
    /// environment (a developer's `KEFU_WEB_DIR` would hide what the
    /// binary carries).
    fn command(&self, args: &[&str]) -> Command {
        let mut command = relay_command(&self.binary);
        command.current_dir(self.dir.path()).args(args);
        command
    }

    /// Runs a subcommand to its end.
    async fn run(&self, args: &[&str]) -> Result<Output> {
        self.run_with(args, &[]).await
    }

    /// Runs a subcommand to its end with these environment variables.
    async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        let output = tokio::time::timeout(PATIENCE, command.output()).await.context("subcommand hung")??;
        Ok(output)
    }

    /// Writes a file into the folder and returns its path.
    fn write(&self, name: &str, contents: &str) -> Result<String> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents)?;
        Ok(path.to_str().context("utf-8 path")?.to_owned())
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
async fn the_example_settings_files_name_every_setting() -> Result<()> {
    let install = Install::new()?;
    let help = install.run(&["serve", "--help"]).await?;
    ensure!(help.status.success(), "{}", stderr(&help));
    let help = stdout(&help);
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/kefu.env.example"))?;
    let settings: Vec<&str> = help.split("[env: ").skip(1).filter_map(|rest| rest.split(['=', ']']).next()).collect();
    ensure!(settings.len() > 20, "too few settings in {help}");
    let missing: Vec<&&str> = settings.iter().filter(|name| !example.contains(&format!("#{name}="))).collect();
    ensure!(missing.is_empty(), "dist/kefu.env.example lacks {missing:?}");

    // The TOML example: every flag with a variable is a key, but the one
    // naming the file; and all of it uncommented is a good settings file.
    let toml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/kefu.toml.example"))?;
    let keys = flags_with_variables(&help);
    ensure!(keys.len() == settings.len() - 1, "{keys:?} against {settings:?}");
    let missing: Vec<&String> = keys.iter().filter(|key| !toml.contains(&format!("\n#{key} = "))).collect();
    ensure!(missing.is_empty(), "dist/kefu.toml.example lacks {missing:?}");
    let uncommented: String = toml
        .lines()
        .filter_map(|line| line.strip_prefix('#').filter(|rest| rest.contains(" = ")))
        .map(|line| format!("{line}\n"))
        .collect();
    let file = install.write("all.toml", &uncommented)?;
    let shown = install.run(&["serve", "--config", &file, "--print-config"]).await?;
    ensure!(shown.status.success(), "the uncommented example is refused: {}", stderr(&shown));
    let shown = stdout(&shown);
    for key in &keys {
        ensure!(shown.contains(&format!("\n{key} = ")), "{key} is not printed: {shown}");
    }
    Ok(())
}

/// The long flags of `--help` that have an environment variable, but
/// `--config`: the keys of the settings file.
fn flags_with_variables(help: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut flag = None;
    for line in help.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("--") {
            flag = rest.split([' ', '=']).next().map(str::to_owned);
        }
        if line.contains("[env: ")
            && let Some(name) = flag.take()
            && name != "config"
        {
            keys.push(name);
        }
    }
    keys
}

/// An address nothing listens on now.
async fn free_address() -> Result<String> {
    Ok(tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?.to_string())
}

/// The value a `--print-config` output gives `key`, as written there.
fn printed<'a>(output: &'a str, key: &str) -> Result<&'a str> {
    let prefix = format!("{key} = ");
    output.lines().find_map(|line| line.strip_prefix(&prefix)).with_context(|| format!("no {key} in {output}"))
}

#[tokio::test]
async fn the_settings_file_gives_way_to_the_environment_and_flags() -> Result<()> {
    let install = Install::new()?;
    let listen = free_address().await?;
    let file = install.write(
        "kefu.toml",
        &format!(
            "listen = \"{listen}\"\ndata-dir = \"data\"\nredis_prefix = \"from-file\"\n\
             heartbeat-grace-ms = 1234\ntrusted-proxy = [\"10.0.0.0/8\", \"127.0.0.1\"]\n\
             admin-email = \"{ADMIN_EMAIL}\"\nadmin-password = \"{ADMIN_PASSWORD}\"\n"
        ),
    )?;
    let print = ["serve", "--config", &file, "--print-config"];

    let from_file = install.run(&print).await?;
    ensure!(from_file.status.success(), "{}", stderr(&from_file));
    let out = stdout(&from_file);
    assert_eq!(printed(&out, "listen")?, format!("\"{listen}\""));
    assert_eq!(printed(&out, "redis-prefix")?, "\"from-file\"");
    assert_eq!(printed(&out, "heartbeat-grace-ms")?, "1234");
    assert_eq!(printed(&out, "trusted-proxy")?, "[\"10.0.0.0/8\", \"127.0.0.1\"]");
    assert_eq!(printed(&out, "heartbeat-interval-ms")?, "25000", "a key not in the file keeps its default");

    // The variable beats the file; the flag beats both. KEFU_CONFIG names
    // the file as well as --config does.
    let env = [("KEFU_REDIS_PREFIX", "from-env"), ("KEFU_CONFIG", file.as_str())];
    let from_env = install.run_with(&["serve", "--print-config"], &env).await?;
    ensure!(from_env.status.success(), "{}", stderr(&from_env));
    let out = stdout(&from_env);
    assert_eq!(printed(&out, "redis-prefix")?, "\"from-env\"");
    assert_eq!(printed(&out, "listen")?, format!("\"{listen}\""));
    let from_flag = install.run_with(&["serve", "--print-config", "--redis-prefix", "from-flag"], &env).await?;
    ensure!(from_flag.status.success(), "{}", stderr(&from_flag));
    assert_eq!(printed(&stdout(&from_flag), "redis-prefix")?, "\"from-flag\"");

    // The relay itself listens where the file says, on the store it names.
    let (mut relay, addr) = spawn_relay(install.command(&["serve", "--config", &file])).await?;
    assert_eq!(addr.to_string(), listen);
    let health = reqwest::get(format!("http://{addr}/healthz")).await?;
    ensure!(health.status().is_success(), "{}", health.status());
    let login = kefu_sdk::login(&format!("http://{addr}"), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    ensure!(login.is_ok(), "the file's admin cannot log in: {login:?}");
    relay.kill().await?;

    // A subcommand takes the store from the file, and the keys of serve it
    // lacks are no error there.
    let list = install.run(&["site", "list", "--config", &file]).await?;
    ensure!(list.status.success(), "{}", stderr(&list));
    assert_eq!(stdout(&list), "demo\tDemo site\n");
    ensure!(install.dir.path().join("data").is_dir(), "the store is not in the file's data-dir");
    Ok(())
}

#[tokio::test]
async fn an_unknown_or_bad_setting_is_refused_by_name() -> Result<()> {
    let install = Install::new()?;
    let file = install.write("typo.toml", "listen = \"127.0.0.1:0\"\nlisen = \"0.0.0.0:80\"\n")?;
    let serve = ["serve", "--print-config", "--config", &file];
    for args in [&serve[..], &["site", "list", "--config", &file], &["check", "--config", &file]] {
        let refused = install.run(&[args, &["--data-dir", "data"]].concat()).await?;
        let err = stderr(&refused);
        ensure!(!refused.status.success(), "{args:?} took an unknown key: {}", stdout(&refused));
        ensure!(err.contains("unknown setting `lisen`") && err.contains("typo.toml"), "{args:?}: {err}");
    }
    ensure!(!install.dir.path().join("data").exists(), "a refused start made a store");

    let file = install.write("bad.toml", "heartbeat-grace-ms = \"soon\"\n")?;
    let refused = install.run(&["serve", "--config", &file, "--print-config"]).await?;
    let err = stderr(&refused);
    ensure!(!refused.status.success(), "a bad value was taken: {}", stdout(&refused));
    ensure!(err.contains("bad.toml: `heartbeat-grace-ms` = \"soon\""), "{err}");

    let missing = install.run(&["serve", "--config", "no-such.toml", "--print-config"]).await?;
    ensure!(!missing.status.success() && stderr(&missing).contains("no-such.toml"), "{}", stderr(&missing));
    Ok(())
}

#[tokio::test]
async fn print_config_masks_secrets_and_reads_back_as_itself() -> Result<()> {
    let install = Install::new()?;
    let secrets = [
        "--database-url",
        "postgres://kefu:hunter2@db.internal:5432/kefu?sslmode=disable",
        "--redis-url",
        "redis://:sesame@127.0.0.1:6379",
        "--admin-password",
        "correct horse battery staple",
    ];
    let first = install.run(&[&["serve", "--print-config", "--listen", "127.0.0.1:9"][..], &secrets].concat()).await?;
    ensure!(first.status.success(), "{}", stderr(&first));
    let out = stdout(&first);
    for secret in ["hunter2", "sesame", "correct horse"] {
        ensure!(!out.contains(secret), "{secret} is printed: {out}");
    }
    assert_eq!(printed(&out, "database-url")?, "\"postgres://kefu:********@db.internal:5432/kefu?sslmode=disable\"");
    assert_eq!(printed(&out, "redis-url")?, "\"redis://:********@127.0.0.1:6379\"");
    assert_eq!(printed(&out, "admin-password")?, "\"********\"");
    assert_eq!(printed(&out, "listen")?, "\"127.0.0.1:9\"");

    let file = install.write("printed.toml", &out)?;
    let again = install.run(&["serve", "--print-config", "--config", &file]).await?;
    ensure!(again.status.success(), "the printed settings are no settings file: {}", stderr(&again));
    assert_eq!(stdout(&again), out);
    Ok(())
}

#[tokio::test]
async fn json_logs_say_when_a_visitor_comes_and_goes_but_not_its_secrets() -> Result<()> {
    let install = Install::new()?;
    let log_path = install.dir.path().join("relay.log");
    let log = std::fs::File::create(&log_path)?;
    let mut command = install.command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        "data",
        "--admin-email",
        ADMIN_EMAIL,
        "--admin-password",
        ADMIN_PASSWORD,
        "--log-format",
        "json",
    ]);
    command.env("RUST_LOG", "info");
    let (_relay, addr) = kefu_tests::spawn_relay_logging_to(command, log).await?;

    let (visitor, _events) = Client::visitor(format!("ws://{addr}/ws"), "demo")?;
    let conversation = visitor.conversation().await?;
    visitor.send(conversation, Body::Text("A-PRIVATE-MESSAGE".into())).await?;
    let kefu_protocol::frame::Identity::Visitor { token, .. } = visitor.identity().await? else {
        bail!("not a visitor")
    };
    visitor.stop();

    let lines = tokio::time::timeout(PATIENCE, async {
        loop {
            let text = std::fs::read_to_string(&log_path)?;
            if text.contains("websocket closed") {
                return Ok::<_, anyhow::Error>(text);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .context("no close line in the log")??;

    let mut events = Vec::new();
    for line in lines.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not a JSON line: {line:?}"))?;
        events.push(event);
    }
    let find = |message: &str| {
        events
            .iter()
            .find(|event| event["fields"]["message"] == message)
            .with_context(|| format!("no {message:?} in {lines}"))
    };
    let open = find("websocket open")?;
    assert_eq!(open["level"], "INFO");
    assert_eq!(open["fields"]["role"], "visitor", "{open}");
    assert_eq!(open["fields"]["peer"], "127.0.0.1", "{open}");
    ensure!(open["fields"]["site"].is_string(), "{open}");
    let closed = find("websocket closed")?;
    assert_eq!(closed["fields"]["session"], open["fields"]["session"], "{closed}");
    assert_eq!(closed["fields"]["role"], "visitor", "{closed}");
    assert_eq!(closed["fields"]["reason"], "client left", "{closed}");
    for secret in [token.as_str(), "A-PRIVATE-MESSAGE", ADMIN_PASSWORD] {
        ensure!(!lines.contains(secret), "the log holds {secret:?}: {lines}");
    }
    Ok(())
}
