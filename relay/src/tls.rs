//! TLS at the relay itself, without a proxy in front (`--tls-cert`,
//! `--tls-key`): rustls with the ring provider, the certificate chain and
//! its key read from PEM files.
//!
//! [`Certificates`] holds the configuration every new connection's
//! handshake uses, and can swap it: on SIGHUP both files are read again
//! and, if they make a valid pair, new connections get the new
//! certificate while those already open keep going on the old one. A
//! reload that fails is logged and changes nothing, so a half-written
//! renewal never takes the relay down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::Config;

/// Why the certificate or its key cannot be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One of the pair was given without the other.
    #[error("{given} is set but {missing} is not: TLS needs both the certificate and its key")]
    Half { given: &'static str, missing: &'static str },
    /// Says why in its own words: one line, not a chain of causes.
    #[error("{flag} {}: cannot read it: {error}", path.display())]
    Read { flag: &'static str, path: PathBuf, error: std::io::Error },
    #[error("{flag} {}: {why}", path.display())]
    Unusable { flag: &'static str, path: PathBuf, why: String },
}

/// The two files, as the flags name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Files {
    /// The files `config` names: none, both, or an error naming the
    /// missing one.
    pub fn from_config(config: &Config) -> Result<Option<Files>, Error> {
        match (&config.tls_cert, &config.tls_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(Files { cert: cert.clone(), key: key.clone() })),
            (Some(_), None) => Err(Error::Half { given: "--tls-cert", missing: "--tls-key" }),
            (None, Some(_)) => Err(Error::Half { given: "--tls-key", missing: "--tls-cert" }),
        }
    }

    /// Reads both files into a server configuration: the chain must hold
    /// at least one certificate and the key must be the first one's.
    pub fn load(&self) -> Result<ServerConfig, Error> {
        let chain = read("--tls-cert", &self.cert)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain)
            .collect::<Result<_, _>>()
            .map_err(|error| self.unusable_cert(format!("not a PEM certificate chain: {error}")))?;
        if chain.is_empty() {
            return Err(self.unusable_cert("no `BEGIN CERTIFICATE` block in it".into()));
        }
        let key = read("--tls-key", &self.key)?;
        let key = PrivateKeyDer::from_pem_slice(&key).map_err(|error| Error::Unusable {
            flag: "--tls-key",
            path: self.key.clone(),
            why: format!("no PEM private key in it: {error}"),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| self.unusable_cert(error.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|error| Error::Unusable {
                flag: "--tls-key",
                path: self.key.clone(),
                why: format!("not usable with the certificate in {}: {error}", self.cert.display()),
            })?;
        // The relay speaks HTTP/1.1 only (WebSocket upgrades need it).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    fn unusable_cert(&self, why: String) -> Error {
        Error::Unusable { flag: "--tls-cert", path: self.cert.clone(), why }
    }
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|error| Error::Read { flag, path: path.to_owned(), error })
}

/// The configuration new connections' handshakes use, and the files to
/// read it again from. Cloning is shallow: every clone sees a reload.
#[derive(Debug, Clone)]
pub struct Certificates {
    files: Files,
    /// A std lock: held only to clone or replace the `Arc`, never across
    /// an await.
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl Certificates {
    /// Loads the files `config` names, if it names any.
    pub fn from_config(config: &Config) -> Result<Option<Certificates>, Error> {
        let Some(files) = Files::from_config(config)? else { return Ok(None) };
        let loaded = files.load()?;
        Ok(Some(Certificates { files, current: Arc::new(RwLock::new(Arc::new(loaded))) }))
    }

    /// What to do a new connection's handshake with.
    pub fn acceptor(&self) -> TlsAcceptor {
        let current = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        TlsAcceptor::from(Arc::clone(&current))
    }

    /// Reads both files again and, if they make a usable pair, hands them
    /// to the connections accepted from now on; if not, keeps the old pair.
    pub fn reload(&self) -> Result<(), Error> {
        let loaded = Arc::new(self.files.load()?);
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
        Ok(())
    }

    /// [`Certificates::reload`], logging how it went: what SIGHUP does.
    pub fn reload_logged(&self) {
        match self.reload() {
            Ok(()) => tracing::info!(cert = %self.files.cert.display(), "reloaded the TLS certificate"),
            Err(error) => tracing::error!(%error, "could not reload the TLS certificate; still serving the old one"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cert: Option<&str>, key: Option<&str>) -> Config {
        let mut config = Config::with_data_dir("unused");
        config.tls_cert = cert.map(PathBuf::from);
        config.tls_key = key.map(PathBuf::from);
        config
    }

    #[test]
    fn the_certificate_and_key_come_together_or_not_at_all() {
        assert_eq!(Files::from_config(&config(None, None)).unwrap(), None);
        let both = Files::from_config(&config(Some("c.pem"), Some("k.pem"))).unwrap().unwrap();
        assert_eq!(both, Files { cert: "c.pem".into(), key: "k.pem".into() });
        let error = Files::from_config(&config(Some("c.pem"), None)).unwrap_err().to_string();
        assert!(error.starts_with("--tls-cert is set but --tls-key is not"), "{error}");
        let error = Files::from_config(&config(None, Some("k.pem"))).unwrap_err().to_string();
        assert!(error.starts_with("--tls-key is set but --tls-cert is not"), "{error}");
    }

    #[test]
    fn an_unreadable_or_empty_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let files = Files { cert: cert.clone(), key: key.clone() };
        let error = files.load().unwrap_err().to_string();
        assert!(error.starts_with(&format!("--tls-cert {}: cannot read it", cert.display())), "{error}");
        std::fs::write(&cert, "not a certificate\n").unwrap();
        let error = files.load().unwrap_err().to_string();
        assert!(
            error.contains(&format!("--tls-cert {}", cert.display())) && error.contains("BEGIN CERTIFICATE"),
            "{error}"
        );
    }
}
