//! TLS for `wss://` and `https://` relays: rustls (with the ring crypto
//! provider), trusting Mozilla's root certificates (`webpki-roots`, so no
//! system store is needed), plus any root a deployment with a private or
//! self-signed certificate hands the application.
//!
//! One [`Tls`] serves both the WebSocket and the SDK's HTTP calls
//! ([`crate::login`]), so a custom root is given once.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::Connector;

use crate::Error;

/// Which certificates a client trusts. Cloning is cheap (the rustls
/// configuration is shared).
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
}

impl Tls {
    /// Trusts the public web's roots and, in addition, every certificate
    /// in `pem` (one or more `-----BEGIN CERTIFICATE-----` blocks): the CA
    /// of a relay whose certificate no public CA signed.
    pub fn with_root_certificates_pem(pem: &[u8]) -> Result<Tls, Error> {
        let mut roots = public_roots();
        let mut added = 0;
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate.map_err(|error| Error::Tls(format!("unreadable PEM: {error}")))?;
            roots.add(certificate).map_err(|error| Error::Tls(format!("not a usable root certificate: {error}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::Tls("no certificate in the PEM".into()));
        }
        Tls::trusting(roots)
    }

    fn trusting(roots: RootCertStore) -> Result<Tls, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| Error::Tls(error.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls { config: Arc::new(config) })
    }

    /// What the WebSocket connects with (used only for `wss://` URLs).
    pub(crate) fn connector(&self) -> Connector {
        Connector::Rustls(Arc::clone(&self.config))
    }

    /// An HTTP client that checks certificates the same way.
    pub(crate) fn http_client(&self) -> Result<reqwest::Client, Error> {
        Ok(reqwest::Client::builder().use_preconfigured_tls(ClientConfig::clone(&self.config)).build()?)
    }
}

impl Default for Tls {
    /// Trusts the public web's roots only.
    fn default() -> Tls {
        // Building from the bundled roots and ring's default protocol
        // versions cannot fail; if it ever did, no TLS would work at all.
        Tls::trusting(public_roots()).expect("a TLS configuration from the bundled roots")
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

fn public_roots() -> RootCertStore {
    RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
}
