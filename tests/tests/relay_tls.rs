//! The relay serving TLS itself (`--tls-cert`, `--tls-key`): HTTPS and
//! `wss://` with a certificate from a CA made for the test, plain HTTP
//! refused on that port, a SIGHUP that swaps the certificate for new
//! connections while open WebSockets stay up, a bad file on SIGHUP that
//! changes nothing, and a start that fails naming the bad file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kefu_protocol::frame::Credentials;
use kefu_protocol::ids::{AgentToken, SiteKey};
use kefu_sdk::{Body, Client, Event, SessionConfig, Tls};
use kefu_tests::{
    ADMIN_EMAIL, ADMIN_PASSWORD, PATIENCE, collect, events_until, message, message_saying, relay_binary,
    spawn_relay_logging_to, text,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// A certificate authority made for one test, which nothing else trusts.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A server certificate for `127.0.0.1` and `localhost`, as the relay's
/// two files take it.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new(name: &str) -> Result<Ca> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate()?;
        Ok(Ca { cert: params.self_signed(&key)?, key })
    }

    fn leaf(&self) -> Result<Leaf> {
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?
            .signed_by(&key, &self.cert, &self.key)?;
        Ok(Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().clone() })
    }

    /// A client that trusts this CA and no other.
    fn client_config(&self) -> Result<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone())?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        Ok(ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }

    /// The SDK trusting this CA (besides the public web's roots).
    fn sdk(&self) -> Result<Tls> {
        Ok(Tls::with_root_certificates_pem(self.cert.pem().as_bytes())?)
    }
}

/// A relay child serving TLS from two files in its own folder, with its
/// log in a file there too.
struct TlsRelay {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl TlsRelay {
    async fn start(leaf: &Leaf, extra: &[&str]) -> Result<TlsRelay> {
        let dir = tempfile::tempdir()?;
        install(dir.path(), leaf)?;
        let mut command = relay_command(dir.path())?;
        command
            .arg("--tls-cert")
            .arg(dir.path().join(CERT))
            .arg("--tls-key")
            .arg(dir.path().join(KEY))
            .args(extra)
            .env("RUST_LOG", "kefu_relay=info");
        let log = std::fs::File::create(dir.path().join(LOG))?;
        let (child, addr) = spawn_relay_logging_to(command, log).await?;
        Ok(TlsRelay { child, addr, dir })
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join(CERT)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join(LOG)
    }

    /// Puts `leaf` in place of the two files.
    fn install(&self, leaf: &Leaf) -> Result<()> {
        install(self.dir.path(), leaf)
    }

    fn hangup(&self) -> Result<()> {
        let pid = self.child.id().context("the relay has exited")?;
        let status = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status()?;
        ensure!(status.success(), "kill -HUP failed");
        Ok(())
    }

    fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    fn wss_url(&self) -> String {
        format!("wss://{}/ws", self.addr)
    }

    /// Waits until the relay's log has a line containing `wanted`.
    async fn wait_log(&self, wanted: &str) -> Result<()> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                if std::fs::read_to_string(self.log())?.contains(wanted) {
                    return Ok::<_, anyhow::Error>(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .with_context(|| format!("the relay never logged {wanted:?}"))?
    }
}

/// The relay's files in its folder.
const CERT: &str = "cert.pem";
const KEY: &str = "key.pem";
const LOG: &str = "relay.log";

fn install(dir: &Path, leaf: &Leaf) -> Result<()> {
    std::fs::write(dir.join(CERT), &leaf.cert_pem)?;
    std::fs::write(dir.join(KEY), &leaf.key_pem)?;
    Ok(())
}

/// The relay binary on a fresh port and `data_dir`, with the test admin.
fn relay_command(data_dir: &Path) -> Result<Command> {
    let mut command = Command::new(relay_binary()?);
    command
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.join("data"))
        .args(["--admin-email", ADMIN_EMAIL, "--admin-password", ADMIN_PASSWORD])
        .kill_on_drop(true);
    Ok(command)
}

/// The certificate a new TLS connection to `addr` is offered, by a client
/// trusting `ca` only: an error if the handshake fails.
async fn served_certificate(addr: SocketAddr, ca: &Ca) -> Result<CertificateDer<'static>> {
    let connector = TlsConnector::from(Arc::new(ca.client_config()?));
    let tcp = TcpStream::connect(addr).await?;
    let tls = connector.connect(ServerName::try_from("127.0.0.1")?, tcp).await?;
    let chain = tls.get_ref().1.peer_certificates().context("no certificate offered")?;
    Ok(chain[0].clone().into_owned())
}

/// An HTTP client that trusts `ca` only.
fn https_client(ca: &Ca) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().use_preconfigured_tls(ca.client_config()?).build()?)
}

/// An agent (the admin) and a visitor with its conversation, over
/// `wss://`, trusting what `tls` does.
async fn agent_and_visitor(relay: &TlsRelay, tls: &Tls) -> Result<(Client, kefu_sdk::Events, Client)> {
    let login = kefu_sdk::login_with_tls(&relay.https_url(""), ADMIN_EMAIL, ADMIN_PASSWORD, tls).await?;
    let credentials = Credentials::Agent { token: AgentToken::new(&login.token)? };
    let config = SessionConfig { auto_join: true, ..SessionConfig::default() };
    let (agent, agent_events) = Client::connect_with_tls(relay.wss_url(), credentials, config, tls.clone());
    // Bounded: a wss:// link that never comes up keeps retrying.
    tokio::time::timeout(PATIENCE, agent.identity()).await.context("no welcome over wss://")??;
    let credentials = Credentials::Visitor { site: SiteKey::new("demo")?, returning: None };
    let (visitor, _) = Client::connect_with_tls(relay.wss_url(), credentials, SessionConfig::default(), tls.clone());
    Ok((agent, agent_events, visitor))
}

#[tokio::test]
async fn the_relay_serves_https_and_wss_itself_and_refuses_plain_http() -> Result<()> {
    let ca = Ca::new("Kefu relay test CA")?;
    let relay = TlsRelay::start(&ca.leaf()?, &["--header-read-timeout-ms", "1000"]).await?;
    let https = https_client(&ca)?;

    let health = https.get(relay.https_url("/healthz")).send().await?;
    ensure!(health.status().is_success(), "GET /healthz over https: {}", health.status());

    // The console's login: its cookie must not travel over plain HTTP.
    let login = https
        .post(relay.https_url("/api/login"))
        .json(&serde_json::json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "cookie": true }))
        .send()
        .await?;
    let cookie = login.headers().get("set-cookie").context("no session cookie")?.to_str()?.to_owned();
    ensure!(cookie.contains("; Secure"), "the session cookie over TLS is not Secure: {cookie}");

    let tls = ca.sdk()?;
    let (_agent, mut agent_events, visitor) = agent_and_visitor(&relay, &tls).await?;
    let conversation = tokio::time::timeout(PATIENCE, visitor.conversation()).await??;
    visitor.send(conversation, Body::Text("hello over the relay's own TLS".into())).await?;
    let got = collect(&mut agent_events, 1, |event| message(event).filter(|m| m.conversation == conversation)).await?;
    assert_eq!(text(&got[0]), "hello over the relay's own TLS");

    let plain = reqwest::get(format!("http://{}/healthz", relay.addr)).await;
    ensure!(plain.is_err(), "plain HTTP on the TLS port was answered: {:?}", plain.map(|r| r.status()));

    // A client that opens the connection and never says anything is cut
    // off once the handshake's time (the header read timeout) is up.
    let mut silent = TcpStream::connect(relay.addr).await?;
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut byte)).await;
    ensure!(matches!(read, Ok(Ok(0) | Err(_))), "a silent client still holds its connection: {read:?}");

    // And the relay still serves after all that.
    let health = https.get(relay.https_url("/healthz")).send().await?;
    ensure!(health.status().is_success(), "GET /healthz after: {}", health.status());
    Ok(())
}

#[tokio::test]
async fn sighup_gives_new_connections_the_new_certificate_and_keeps_open_ones() -> Result<()> {
    let first_ca = Ca::new("Kefu first CA")?;
    let second_ca = Ca::new("Kefu second CA")?;
    let first = first_ca.leaf()?;
    let second = second_ca.leaf()?;
    let relay = TlsRelay::start(&first, &[]).await?;
    assert_eq!(served_certificate(relay.addr, &first_ca).await?, first.der);

    // Opened before the reload, trusting the first CA only: if either link
    // dropped, it could not come back on the second certificate.
    let (_agent, mut agent_events, visitor) = agent_and_visitor(&relay, &first_ca.sdk()?).await?;
    let conversation = tokio::time::timeout(PATIENCE, visitor.conversation()).await??;
    visitor.send(conversation, Body::Text("before the reload".into())).await?;
    events_until(&mut agent_events, message_saying("before the reload")).await?;

    relay.install(&second)?;
    relay.hangup()?;
    relay.wait_log("reloaded the TLS certificate").await?;
    let served = served_certificate(relay.addr, &second_ca).await.context("a new connection after the reload")?;
    assert_eq!(served, second.der, "a new connection gets the second certificate");
    ensure!(served_certificate(relay.addr, &first_ca).await.is_err(), "the first certificate is still offered");
    let health = https_client(&second_ca)?.get(relay.https_url("/healthz")).send().await?;
    ensure!(health.status().is_success(), "GET /healthz on the second certificate: {}", health.status());

    // The WebSockets from before are the same links, still working.
    tokio::time::timeout(PATIENCE, visitor.send(conversation, Body::Text("after the reload".into())))
        .await
        .context("the visitor's link opened before the reload no longer sends")??;
    let between = events_until(&mut agent_events, message_saying("after the reload")).await?;
    let links: Vec<&Event> = between.iter().filter(|event| matches!(event, Event::Link(_))).collect();
    ensure!(links.is_empty(), "the agent's link went down and up across the reload: {links:?}");

    // A bad file on the next SIGHUP changes nothing.
    std::fs::write(relay.cert(), "-----BEGIN CERTIFICATE-----\nnot base64 at all\n")?;
    relay.hangup()?;
    relay.wait_log("could not reload the TLS certificate").await?;
    let log = std::fs::read_to_string(relay.log())?;
    ensure!(log.contains(&relay.cert().display().to_string()), "the failed reload does not name the file:\n{log}");
    let served = served_certificate(relay.addr, &second_ca).await.context("a new connection after a bad reload")?;
    assert_eq!(served, second.der, "a bad file on SIGHUP keeps the certificate in use");
    visitor.send(conversation, Body::Text("after the bad reload".into())).await?;
    events_until(&mut agent_events, message_saying("after the bad reload")).await?;
    Ok(())
}

/// Runs the relay with `args` (a start that should fail) and returns its
/// exit status and everything it wrote.
async fn failed_start(dir: &Path, args: &[&str]) -> Result<(std::process::ExitStatus, String)> {
    let mut command = relay_command(dir)?;
    command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let output = tokio::time::timeout(PATIENCE, command.output()).await.context("the relay did not stop")??;
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Ok((output.status, said))
}

#[tokio::test]
async fn a_missing_bad_or_mismatched_key_stops_the_start_naming_the_file() -> Result<()> {
    let ca = Ca::new("Kefu start CA")?;
    let leaf = ca.leaf()?;
    let other = ca.leaf()?;
    let dir = tempfile::tempdir()?;
    let write = |name: &str, contents: &str| -> Result<String> {
        let path = dir.path().join(name);
        std::fs::write(&path, contents)?;
        Ok(path.display().to_string())
    };
    let cert = write("cert.pem", &leaf.cert_pem)?;
    let key = write("key.pem", &leaf.key_pem)?;
    let other_key = write("other-key.pem", &other.key_pem)?;
    let garbage = write("garbage.pem", "this is no certificate\n")?;
    let missing = dir.path().join("missing-key.pem").display().to_string();

    let cases: [(&[&str], &[&str]); 5] = [
        (&["--tls-cert", &cert], &["--tls-cert is set but --tls-key is not"]),
        (&["--tls-key", &key], &["--tls-key is set but --tls-cert is not"]),
        (&["--tls-cert", &cert, "--tls-key", &missing], &["--tls-key", &missing, "cannot read it"]),
        (
            &["--tls-cert", &cert, "--tls-key", &other_key],
            &["--tls-key", &other_key, "not usable with the certificate"],
        ),
        (&["--tls-cert", &garbage, "--tls-key", &key], &["--tls-cert", &garbage, "BEGIN CERTIFICATE"]),
    ];
    for (args, wanted) in cases {
        let (status, said) = failed_start(dir.path(), args).await?;
        ensure!(!status.success(), "the relay started with {args:?}:\n{said}");
        ensure!(!said.contains("listening on"), "with {args:?} the relay said it listens before it failed:\n{said}");
        for part in wanted {
            ensure!(said.contains(part), "with {args:?} the relay does not say {part:?}:\n{said}");
        }
    }

    // `check` finds the same, and passes the right pair.
    let check = |args: &[&str]| -> Result<Command> {
        let mut command = Command::new(relay_binary()?);
        command.arg("check").arg("--data-dir").arg(dir.path().join("data")).args(args).kill_on_drop(true);
        Ok(command)
    };
    let output = check(&["--tls-cert", &cert, "--tls-key", &other_key])?.output().await?;
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(!output.status.success(), "check passed a mismatched key:\n{said}");
    ensure!(said.contains("FAIL  tls: --tls-key") && said.contains(&other_key), "check does not name the key:\n{said}");
    let output = check(&["--tls-cert", &cert, "--tls-key", &key])?.output().await?;
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(said.contains(&format!("ok    tls: {cert}")), "check does not pass the right pair:\n{said}");
    Ok(())
}

/// SIGHUP (`systemctl reload`) to a relay without TLS reloads nothing and
/// ends nothing: without a handler its default action would end the relay.
#[tokio::test]
async fn sighup_without_tls_leaves_the_relay_running() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut command = relay_command(dir.path())?;
    command.env("RUST_LOG", "kefu_relay=info");
    let log_path = dir.path().join(LOG);
    let (child, addr) = spawn_relay_logging_to(command, std::fs::File::create(&log_path)?).await?;
    // Serving: the relay listens for SIGHUP by then.
    let health = reqwest::get(format!("http://{addr}/healthz")).await?;
    ensure!(health.status() == 200, "before SIGHUP: {}", health.status());
    let pid = child.id().context("the relay has exited")?;
    let status = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status()?;
    ensure!(status.success(), "kill -HUP failed");
    tokio::time::timeout(PATIENCE, async {
        loop {
            if std::fs::read_to_string(&log_path)?.contains("nothing to reload") {
                return Ok::<_, anyhow::Error>(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .context("the relay never logged that SIGHUP had nothing to reload")??;
    let health = reqwest::get(format!("http://{addr}/healthz")).await?;
    ensure!(health.status() == 200, "after SIGHUP: {}", health.status());
    Ok(())
}
