//! A bare WebSocket client that speaks frames by hand: for hostile input
//! and for looking at exactly what the relay sends.

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use kefu_protocol::frame::{Credentials, Hello, Welcome};
use kefu_protocol::ids::SiteKey;
use kefu_protocol::{ClientFrame, DEFAULT_LIMITS, PROTOCOL_VERSION, ServerFrame, codec};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::PATIENCE;

/// One raw connection.
#[derive(Debug)]
pub struct Raw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What the relay did next.
// Frames are read one at a time in tests; boxing them buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum Next {
    Frame(ServerFrame),
    /// A WebSocket close, with its code if any.
    Closed(Option<u16>),
}

impl Raw {
    /// Opens a WebSocket to `url` without saying anything.
    pub async fn connect(url: &str) -> Result<Raw> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Raw { ws })
    }

    /// Opens a WebSocket, or says with which HTTP status the relay
    /// refused the upgrade (429 for an address over its limit).
    pub async fn try_connect(url: &str) -> Result<std::result::Result<Raw, u16>> {
        match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => Ok(Ok(Raw { ws })),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Ok(Err(response.status().as_u16())),
            Err(error) => Err(error.into()),
        }
    }

    /// Opens a WebSocket whose TCP receive buffer is only about `bytes`
    /// large: a client that stops reading then pushes back on the relay
    /// after a few frames rather than after megabytes.
    pub async fn connect_with_receive_buffer(url: &str, bytes: u32) -> Result<Raw> {
        let host = url.strip_prefix("ws://").and_then(|rest| rest.split('/').next()).context("a ws:// url")?;
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(bytes)?;
        let stream = socket.connect(host.parse()?).await?;
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await?;
        Ok(Raw { ws })
    }

    /// Says hello as a new visitor of `site` and reads the welcome.
    pub async fn hello_visitor(&mut self, site: &str) -> Result<Welcome> {
        self.send(&hello(Credentials::Visitor { site: SiteKey::new(site)?, returning: None })).await?;
        match self.next().await? {
            Next::Frame(ServerFrame::Welcome(welcome)) => Ok(welcome),
            other => bail!("expected a welcome, got {other:?}"),
        }
    }

    /// Connects as a new visitor of `site` and reads the welcome.
    pub async fn visitor(url: &str, site: &str) -> Result<(Raw, Welcome)> {
        let mut raw = Raw::connect(url).await?;
        raw.send(&hello(Credentials::Visitor { site: SiteKey::new(site)?, returning: None })).await?;
        match raw.next().await? {
            Next::Frame(ServerFrame::Welcome(welcome)) => Ok((raw, welcome)),
            other => bail!("expected a welcome, got {other:?}"),
        }
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<()> {
        self.send_bytes(codec::encode(frame)).await
    }

    /// Sends any bytes as one binary message.
    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.ws.send(Message::Binary(bytes.into())).await?;
        Ok(())
    }

    /// Sends a text message (the protocol is binary only).
    pub async fn send_text(&mut self, text: &str) -> Result<()> {
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    /// The next frame or the close; fails after [`PATIENCE`].
    pub async fn next(&mut self) -> Result<Next> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                match self.ws.next().await {
                    None => return Ok(Next::Closed(None)),
                    Some(Err(_)) => return Ok(Next::Closed(None)),
                    Some(Ok(Message::Binary(bytes))) => {
                        return Ok(Next::Frame(codec::decode(&bytes, &DEFAULT_LIMITS)?));
                    }
                    Some(Ok(Message::Close(frame))) => return Ok(Next::Closed(frame.map(|f| u16::from(f.code)))),
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .context("no frame from the relay in time")?
    }

    /// Sends a WebSocket ping and waits for its pong: proof that the
    /// relay's task for this connection is running and reading.
    pub async fn ping(&mut self) -> Result<()> {
        self.ws.send(Message::Ping(b"kefu".to_vec().into())).await?;
        tokio::time::timeout(PATIENCE, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Pong(_))) => return Ok(()),
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => bail!("closed before the pong"),
                }
            }
        })
        .await
        .context("no pong from the relay in time")?
    }

    /// Reads until a frame `pick` accepts; fails on close or timeout.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(&ServerFrame) -> Option<T>) -> Result<T> {
        loop {
            match self.next().await? {
                Next::Frame(frame) => {
                    if let Some(found) = pick(&frame) {
                        return Ok(found);
                    }
                }
                Next::Closed(code) => bail!("closed ({code:?}) before the expected frame"),
            }
        }
    }

    /// Reads everything up to the close; returns the frames and the code.
    pub async fn drain_to_close(&mut self) -> Result<(Vec<ServerFrame>, Option<u16>)> {
        let mut frames = Vec::new();
        loop {
            match self.next().await? {
                Next::Frame(frame) => frames.push(frame),
                Next::Closed(code) => return Ok((frames, code)),
            }
        }
    }
}

/// A hello of this protocol version with no resume cursors.
pub fn hello(credentials: Credentials) -> ClientFrame {
    ClientFrame::Hello(Hello { version: PROTOCOL_VERSION, credentials, resume: Vec::new() })
}
