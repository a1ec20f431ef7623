//! A real SMTP server for the mail tests: aiosmtpd (Python) as a child
//! process that writes every mail it accepts as a file of its own, so a
//! test reads what was delivered and counts it. It can be stopped and
//! started again on the same port, as an SMTP server that goes down.
//!
//! aiosmtpd comes from PyPI: `cargo xtask test` installs the pinned
//! version when `python3 -c "import aiosmtpd"` fails.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::PATIENCE;

/// The server: each accepted mail is written to a temporary name and then
/// renamed to `<nanoseconds>-<random>.eml`, so a file that is there is
/// whole. The envelope's recipients go first, as an `X-Envelope-To`
/// header line.
const SERVER: &str = r#"
import asyncio, os, sys, time, uuid
from aiosmtpd.smtp import SMTP

folder, port = sys.argv[1], int(sys.argv[2])

class Keep:
    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
        partial = os.path.join(folder, "." + name)
        with open(partial, "wb") as out:
            out.write(b"X-Envelope-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
            out.write(envelope.original_content or envelope.content)
            out.flush()
            os.fsync(out.fileno())
        os.rename(partial, os.path.join(folder, name + ".eml"))
        return "250 OK"

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Keep(), enable_SMTPUTF8=True), "127.0.0.1", port)
    print("listening", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"#;

/// aiosmtpd on a port of its own; killed when dropped.
#[derive(Debug)]
pub struct SmtpServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

/// One delivered mail, parsed.
#[derive(Debug, Clone)]
pub struct Received {
    /// As the server got it, after the `X-Envelope-To` line.
    pub raw: Vec<u8>,
}

impl SmtpServer {
    /// Starts the server on a free port.
    pub async fn start() -> Result<SmtpServer> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("mail"))?;
        std::fs::write(dir.path().join("server.py"), SERVER)?;
        let mut server = SmtpServer { child: None, port: 0, dir };
        server.spawn().await?;
        Ok(server)
    }

    /// `smtp://127.0.0.1:PORT`: plain SMTP, no login.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Kills the server: new connections are refused until [`restart`].
    ///
    /// [`restart`]: SmtpServer::restart
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Starts the server again on the same port.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        // The port was the old process's a moment ago; another process
        // could take it meanwhile, but none in these tests does.
        tokio::time::timeout(PATIENCE, async {
            loop {
                match self.spawn().await {
                    Ok(()) => return Ok(()),
                    Err(error) if format!("{error:#}").contains("in use") => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(error) => return Err(error),
                }
            }
        })
        .await
        .context("the SMTP server did not come back on its port")?
    }

    /// Every mail delivered so far, in the order the server took them.
    pub fn received(&self) -> Result<Vec<Received>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.mail_dir())?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()?;
        names.retain(|path| path.extension().is_some_and(|ext| ext == "eml"));
        names.sort();
        names
            .iter()
            .map(|path| {
                let bytes = std::fs::read(path)?;
                // Past the X-Envelope-To line the fixture put first.
                let start = bytes.windows(2).position(|w| w == b"\r\n").map_or(0, |at| at + 2);
                Ok(Received { raw: bytes[start..].to_vec() })
            })
            .collect()
    }

    /// Waits until at least `count` mails were delivered; returns them all.
    pub async fn wait_for(&self, count: usize) -> Result<Vec<Received>> {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let received = self.received()?;
                if received.len() >= count {
                    return Ok::<_, anyhow::Error>(received);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        match waited {
            Ok(received) => received,
            Err(_) => bail!("{} mails arrived, not {count}", self.received()?.len()),
        }
    }

    /// Waits until a delivered mail matches `is_marker`; returns every mail
    /// delivered until then. A mail queued after the others and seen
    /// arriving says that nothing more is coming from before it.
    pub async fn wait_for_marker(&self, mut is_marker: impl FnMut(&Received) -> bool) -> Result<Vec<Received>> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let received = self.received()?;
                if received.iter().any(&mut is_marker) {
                    return Ok::<_, anyhow::Error>(received);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .context("the marker mail never arrived")?
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    async fn spawn(&mut self) -> Result<()> {
        let script = self.dir.path().join("server.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(self.mail_dir())
            .arg(self.port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting python3")?;
        let stdout = child.stdout.take().context("the SMTP server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(PATIENCE, lines.next_line()).await.context("the SMTP server hung")??;
        let Some(port) = port.as_deref().and_then(|line| line.strip_prefix("listening ")) else {
            let mut why = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut why).await.ok();
            }
            if why.contains("No module named 'aiosmtpd'") {
                bail!("aiosmtpd is missing: `python3 -m pip install --user aiosmtpd` (cargo xtask test does)");
            }
            bail!("the SMTP server did not start: {why}");
        };
        self.port = port.trim().parse()?;
        self.child = Some(child);
        Ok(())
    }
}

impl Received {
    /// The parsed mail.
    pub fn parsed(&self) -> Result<mailparse::ParsedMail<'_>> {
        Ok(mailparse::parse_mail(&self.raw)?)
    }

    /// A header's value, decoded (RFC 2047); `None` if absent.
    pub fn header(&self, name: &str) -> Result<Option<String>> {
        use mailparse::MailHeaderMap;
        Ok(self.parsed()?.headers.get_first_value(name))
    }

    /// The decoded body of the first part of this MIME type.
    pub fn part(&self, mime: &str) -> Result<Option<String>> {
        fn find(mail: &mailparse::ParsedMail<'_>, mime: &str) -> Result<Option<String>> {
            if mail.ctype.mimetype == mime {
                return Ok(Some(mail.get_body()?));
            }
            for sub in &mail.subparts {
                if let Some(body) = find(sub, mime)? {
                    return Ok(Some(body));
                }
            }
            Ok(None)
        }
        find(&self.parsed()?, mime)
    }
}
