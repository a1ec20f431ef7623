//! A real headless Chromium, driven over the DevTools protocol (CDP) with
//! the WebSocket client the tests already use: no driver binary, no
//! browser download. Debian's `chromium` package is enough.
//!
//! Only what the widget and console tests need: open a page, run
//! JavaScript in the page or in one of its frames, watch network requests,
//! switch the network off and on, hold chosen requests back for a while,
//! read the chat frames its WebSockets carry, collect the page's uncaught
//! errors, set a phone viewport, take screenshots.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use kefu_protocol::{ClientFrame, DEFAULT_LIMITS, ServerFrame, codec};
use kefu_sdk::Wire;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::PATIENCE;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value>>>>>;
type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<Value>>>>;

/// A headless Chromium with one page.
#[derive(Debug)]
pub struct Browser {
    _child: Child,
    _profile: tempfile::TempDir,
    commands: mpsc::UnboundedSender<Value>,
    pending: Pending,
    next_id: std::sync::atomic::AtomicU64,
    session: String,
    requests: Arc<Mutex<Vec<String>>>,
    loads: Arc<tokio::sync::Notify>,
    subscribers: Subscribers,
    errors: Arc<Mutex<Vec<String>>>,
}

/// Where Debian puts chromium; `KEFU_CHROMIUM` overrides it.
fn chromium() -> PathBuf {
    std::env::var_os("KEFU_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

impl Browser {
    /// Starts Chromium with a fresh profile and opens a blank page.
    pub async fn start() -> Result<Browser> {
        let profile = tempfile::tempdir()?;
        let binary = chromium();
        if !binary.exists() {
            bail!("{} is missing: install Debian's chromium (`.ci/run` does)", binary.display());
        }
        let mut child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting chromium")?;
        let stderr = child.stderr.take().context("chromium stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let url = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Ok(url.trim().to_owned());
                }
            }
            bail!("chromium exited before it listened")
        })
        .await
        .context("chromium did not start in time")??;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let (socket, _) = tokio_tungstenite::connect_async(&url).await?;
        let (mut sink, mut stream) = socket.split();
        let (commands, mut outgoing) = mpsc::unbounded_channel::<Value>();
        tokio::spawn(async move {
            while let Some(command) = outgoing.recv().await {
                if sink.send(Message::Text(command.to_string().into())).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let loads = Arc::new(tokio::sync::Notify::new());
        let subscribers: Subscribers = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        {
            let (pending, requests, loads, subscribers, errors) = (
                Arc::clone(&pending),
                Arc::clone(&requests),
                Arc::clone(&loads),
                Arc::clone(&subscribers),
                Arc::clone(&errors),
            );
            tokio::spawn(async move {
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else { continue };
                    let Ok(value) = serde_json::from_str::<Value>(&text) else { continue };
                    if let Some(id) = value.get("id").and_then(Value::as_u64) {
                        let result = match value.get("error") {
                            Some(error) => Err(anyhow!("CDP error: {error}")),
                            None => Ok(value.get("result").cloned().unwrap_or(Value::Null)),
                        };
                        if let Some(reply) = lock(&pending).remove(&id) {
                            let _ = reply.send(result);
                        }
                        continue;
                    }
                    match value.get("method").and_then(Value::as_str) {
                        Some("Network.requestWillBeSent") => {
                            if let Some(url) = value.pointer("/params/request/url").and_then(Value::as_str) {
                                lock(&requests).push(url.to_owned());
                            }
                        }
                        Some("Page.loadEventFired") => loads.notify_waiters(),
                        Some("Runtime.exceptionThrown") => {
                            let details = &value["params"]["exceptionDetails"];
                            let description = details.pointer("/exception/description").and_then(Value::as_str);
                            let text = description.or_else(|| details["text"].as_str()).unwrap_or("?");
                            lock(&errors).push(format!("uncaught: {text}"));
                        }
                        Some("Runtime.consoleAPICalled") if value["params"]["type"] == "error" => {
                            let args = value["params"]["args"].as_array().cloned().unwrap_or_default();
                            let text: Vec<String> = args
                                .iter()
                                .map(|arg| arg["value"].as_str().map_or_else(|| arg.to_string(), ToOwned::to_owned))
                                .collect();
                            lock(&errors).push(format!("console.error: {}", text.join(" ")));
                        }
                        _ => {}
                    }
                    lock(&subscribers).retain(|subscriber| subscriber.send(value.clone()).is_ok());
                }
            });
        }
        let mut browser = Browser {
            _child: child,
            _profile: profile,
            commands,
            pending,
            next_id: std::sync::atomic::AtomicU64::new(1),
            session: String::new(),
            requests,
            loads,
            subscribers,
            errors,
        };
        let target = browser.call("Target.createTarget", json!({ "url": "about:blank" })).await?;
        let target_id = target["targetId"].as_str().context("targetId")?.to_owned();
        let attached = browser.call("Target.attachToTarget", json!({ "targetId": target_id, "flatten": true })).await?;
        browser.session = attached["sessionId"].as_str().context("sessionId")?.to_owned();
        for domain in ["Page.enable", "Runtime.enable", "Network.enable"] {
            browser.call(domain, json!({})).await?;
        }
        Ok(browser)
    }

    /// Sends one CDP command to the page (or to the browser before a page
    /// is attached) and waits for its result.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (reply, result) = oneshot::channel();
        lock(&self.pending).insert(id, reply);
        let mut command = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            command["sessionId"] = json!(self.session);
        }
        self.commands.send(command).map_err(|_| anyhow!("chromium connection closed"))?;
        tokio::time::timeout(PATIENCE, result).await.with_context(|| format!("{method} timed out"))??
    }

    /// Opens `url` and waits for its load event.
    pub async fn goto(&self, url: &str) -> Result<()> {
        let loaded = self.loads.notified();
        self.call("Page.navigate", json!({ "url": url })).await?;
        tokio::time::timeout(PATIENCE, loaded).await.with_context(|| format!("{url} did not load"))?;
        Ok(())
    }

    /// Reloads the page and waits for its load event.
    pub async fn reload(&self) -> Result<()> {
        let loaded = self.loads.notified();
        self.call("Page.reload", json!({})).await?;
        tokio::time::timeout(PATIENCE, loaded).await.context("reload did not finish")?;
        Ok(())
    }

    /// Evaluates `expression` in the top page; awaits promises; returns
    /// the value as JSON.
    pub async fn eval(&self, expression: &str) -> Result<Value> {
        self.evaluate(expression, None).await
    }

    /// Evaluates `expression` in the first frame whose URL contains
    /// `url_part` (an isolated world: same DOM, separate globals).
    pub async fn eval_in_frame(&self, url_part: &str, expression: &str) -> Result<Value> {
        let frame = self.frame_id(url_part).await?;
        let world = self
            .call(
                "Page.createIsolatedWorld",
                json!({ "frameId": frame, "worldName": "kefu-tests", "grantUniveralAccess": true }),
            )
            .await?;
        let context = world["executionContextId"].as_u64().context("executionContextId")?;
        self.evaluate(expression, Some(context)).await
    }

    async fn evaluate(&self, expression: &str, context: Option<u64>) -> Result<Value> {
        let mut params = json!({ "expression": expression, "awaitPromise": true, "returnByValue": true });
        if let Some(context) = context {
            params["contextId"] = json!(context);
        }
        let result = self.call("Runtime.evaluate", params).await?;
        if let Some(exception) = result.get("exceptionDetails") {
            bail!("JavaScript threw: {exception}");
        }
        Ok(result.pointer("/result/value").cloned().unwrap_or(Value::Null))
    }

    async fn frame_id(&self, url_part: &str) -> Result<String> {
        fn find(node: &Value, url_part: &str) -> Option<String> {
            let frame = node.get("frame")?;
            if frame.get("url").and_then(Value::as_str).is_some_and(|url| url.contains(url_part)) {
                return frame.get("id").and_then(Value::as_str).map(ToOwned::to_owned);
            }
            node.get("childFrames")?.as_array()?.iter().find_map(|child| find(child, url_part))
        }
        let tree = self.call("Page.getFrameTree", json!({})).await?;
        find(&tree["frameTree"], url_part).with_context(|| format!("no frame with {url_part:?} in its URL"))
    }

    /// Polls `expression` in a frame (or the page, for `None`) until it is
    /// truthy; returns its value. Fails after [`PATIENCE`].
    pub async fn wait_for(&self, frame: Option<&str>, expression: &str) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut last = Value::Null;
        while tokio::time::Instant::now() < deadline {
            let value = match frame {
                Some(frame) => self.eval_in_frame(frame, expression).await,
                None => self.eval(expression).await,
            };
            match value {
                Ok(value) if truthy(&value) => return Ok(value),
                Ok(value) => last = value,
                Err(error) => last = json!(error.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("waited {PATIENCE:?} for `{expression}`; last value {last}")
    }

    /// Every CDP event from now on (`{"method": ..., "params": ...}`), for
    /// what this type does not track itself.
    pub fn events(&self) -> mpsc::UnboundedReceiver<Value> {
        let (sender, events) = mpsc::unbounded_channel();
        lock(&self.subscribers).push(sender);
        events
    }

    /// The chat frames the page's WebSockets send and receive from now
    /// on, decoded, in the order they crossed the wire: what the relay
    /// sent before the page's code judged it, as an SDK client's
    /// [`kefu_sdk::Tap`] gives them. Frames that do not decode are
    /// reported as errors of the page ([`Browser::errors`]).
    pub fn websocket_frames(&self) -> mpsc::UnboundedReceiver<Wire> {
        let mut events = self.events();
        let errors = Arc::clone(&self.errors);
        let (sender, frames) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let sent = match event["method"].as_str() {
                    Some("Network.webSocketFrameSent") => true,
                    Some("Network.webSocketFrameReceived") => false,
                    _ => continue,
                };
                let response = &event["params"]["response"];
                // 2: a binary message, which every chat frame is.
                if response["opcode"] != 2 {
                    continue;
                }
                let payload = response["payloadData"].as_str().unwrap_or_default();
                let decoded = base64_decode(payload).and_then(|bytes| {
                    Ok(if sent {
                        Wire::Sent(codec::decode::<ClientFrame>(&bytes, &DEFAULT_LIMITS)?)
                    } else {
                        Wire::Received(codec::decode::<ServerFrame>(&bytes, &DEFAULT_LIMITS)?)
                    })
                });
                match decoded {
                    Ok(wire) => {
                        if sender.send(wire).is_err() {
                            return;
                        }
                    }
                    Err(error) => lock(&errors).push(format!("a WebSocket frame that does not decode: {error}")),
                }
            }
        });
        frames
    }

    /// The page's uncaught exceptions and `console.error` calls so far
    /// (a wasm panic shows as both), oldest first.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.errors).clone()
    }

    /// Holds every request whose URL matches `pattern` (CDP's wildcards:
    /// `*/api/visitors/*`) for `delay` before letting it go to the
    /// network: a slow server, without changing the server. For the rest
    /// of the page's life.
    pub async fn delay_requests(&self, pattern: &str, delay: Duration) -> Result<()> {
        let mut events = self.events();
        let commands = self.commands.clone();
        let session = self.session.clone();
        // Ids far above the ones `call` uses (CDP's are 32-bit); the
        // answers are not awaited.
        let next_id = Arc::new(std::sync::atomic::AtomicU64::new(1 << 30));
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if event["method"] != "Fetch.requestPaused" {
                    continue;
                }
                let Some(request) = event.pointer("/params/requestId").and_then(Value::as_str) else { continue };
                let (commands, session, request) = (commands.clone(), session.clone(), request.to_owned());
                let id = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = commands.send(json!({
                        "id": id,
                        "method": "Fetch.continueRequest",
                        "params": { "requestId": request },
                        "sessionId": session,
                    }));
                });
            }
        });
        self.call("Fetch.enable", json!({ "patterns": [{ "urlPattern": pattern, "requestStage": "Request" }] }))
            .await?;
        Ok(())
    }

    /// Every URL the page requested so far.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.requests).clone()
    }

    /// Moves the mouse to, or clicks at, a point of the viewport.
    pub async fn mouse(&self, kind: &str, x: f64, y: f64) -> Result<()> {
        let mut params = json!({ "type": kind, "x": x, "y": y });
        if kind != "mouseMoved" {
            params["button"] = json!("left");
            params["clickCount"] = json!(1);
        }
        self.call("Input.dispatchMouseEvent", params).await?;
        Ok(())
    }

    /// Clicks at a point of the viewport.
    pub async fn click(&self, x: f64, y: f64) -> Result<()> {
        self.mouse("mouseMoved", x, y).await?;
        self.mouse("mousePressed", x, y).await?;
        self.mouse("mouseReleased", x, y).await
    }

    /// Types text into whatever has focus, as a keyboard would.
    pub async fn type_text(&self, text: &str) -> Result<()> {
        self.call("Input.insertText", json!({ "text": text })).await?;
        Ok(())
    }

    /// Presses Enter in whatever has focus.
    pub async fn press_enter(&self) -> Result<()> {
        for kind in ["keyDown", "keyUp"] {
            let mut params = json!({ "type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13 });
            if kind == "keyDown" {
                params["text"] = json!("\r");
            }
            self.call("Input.dispatchKeyEvent", params).await?;
        }
        Ok(())
    }

    /// Takes the browser offline (and fires the page's `offline` event) or
    /// back online.
    pub async fn set_offline(&self, offline: bool) -> Result<()> {
        self.call(
            "Network.emulateNetworkConditions",
            json!({ "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1 }),
        )
        .await?;
        Ok(())
    }

    /// Emulates a phone screen of `width` x `height` CSS pixels.
    pub async fn phone(&self, width: u32, height: u32) -> Result<()> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 2, "mobile": true }),
        )
        .await?;
        Ok(())
    }

    /// The viewport's size in CSS pixels.
    pub async fn viewport(&self) -> Result<(f64, f64)> {
        let size = self.eval("[window.innerWidth, window.innerHeight]").await?;
        Ok((size[0].as_f64().unwrap_or(0.0), size[1].as_f64().unwrap_or(0.0)))
    }

    /// Saves a PNG of the page to `target/screenshots/<name>.png` and
    /// returns its path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" })).await?;
        let data = shot["data"].as_str().context("screenshot data")?;
        let bytes = base64_decode(data)?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes)?;
        Ok(path)
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Standard base64 (what CDP uses for screenshots).
fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => bail!("not base64"),
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Ok(out)
}
