//! A TLS endpoint in front of a relay, as a real deployment has one (nginx,
//! a load balancer): a tokio-rustls acceptor on 127.0.0.1 that terminates
//! TLS and forwards the bytes to the relay. Its certificate is signed by a
//! CA made with rcgen when the proxy starts, which no system trusts: a
//! client gets through only if it is handed [`TlsProxy::ca_pem`].

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Terminates TLS for `127.0.0.1:port` and forwards to the relay; stops
/// when dropped.
#[derive(Debug)]
pub struct TlsProxy {
    addr: SocketAddr,
    ca_pem: String,
    accepting: AbortHandle,
}

impl TlsProxy {
    /// A proxy forwarding to `upstream`, with a fresh CA and a certificate
    /// for `127.0.0.1` signed by it.
    pub async fn start(upstream: SocketAddr) -> Result<TlsProxy> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name.push(DnType::CommonName, "Kefu test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;

        let leaf_key = KeyPair::generate()?;
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&leaf_key, &ca, &ca_key)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(acceptor.clone(), client, upstream));
            }
        })
        .abort_handle();
        Ok(TlsProxy { addr, ca_pem: ca.pem(), accepting })
    }

    /// `https://127.0.0.1:port`.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `wss://127.0.0.1:port/ws`.
    pub fn wss_url(&self) -> String {
        format!("wss://{}/ws", self.addr)
    }

    /// The CA that signed the proxy's certificate, as PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn forward(acceptor: TlsAcceptor, client: TcpStream, upstream: SocketAddr) {
    // A client that does not trust the CA aborts the handshake: nothing to forward.
    let Ok(mut client) = acceptor.accept(client).await else { return };
    if let Ok(mut relay) = TcpStream::connect(upstream).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut relay).await;
    }
}
