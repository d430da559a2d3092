//! The TLS listener's server configuration, from PEM files.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// Why the TLS listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate chain file could not be read or holds no certificate.
    #[error("reading the TLS certificate chain {path}: {reason}")]
    CertificateChain {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The private key file could not be read or holds no private key.
    #[error("reading the TLS private key {path}: {reason}")]
    PrivateKey {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The certificate and key do not go together, or are of a kind rustls refuses.
    #[error("the TLS certificate chain {chain} and key {key} cannot be used: {reason}")]
    Unusable {
        /// The certificate chain file.
        chain: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The listening socket could not be bound.
    #[error("listening for MQTT over TLS on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why not.
        source: io::Error,
    },
}

/// Reads the certificate chain and key named by `config` and makes an acceptor of them.
pub(crate) fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let chain = read_chain(&config.certificate_chain_pem)?;
    let key = PrivateKeyDer::from_pem_file(&config.private_key_pem).map_err(|e| {
        TlsError::PrivateKey {
            path: config.private_key_pem.clone(),
            reason: e.to_string(),
        }
    })?;
    let unusable = |e: tokio_rustls::rustls::Error| TlsError::Unusable {
        chain: config.certificate_chain_pem.clone(),
        key: config.private_key_pem.clone(),
        reason: e.to_string(),
    };
    // The provider named, not taken from the process: the workspace builds rustls with
    // aws-lc-rs only, and this keeps working should another crate ever enable ring too.
    let server = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(unusable)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(unusable)?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::CertificateChain {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if chain.is_empty() {
        return Err(error("no certificate in the file".into()));
    }
    Ok(chain)
}
