//! Mutual TLS between the fleet's services.
//!
//! On first start the platform creates a development CA under the PKI directory and signs one
//! certificate per service with it. Every gRPC server requires a client certificate signed by
//! that CA, and every client presents its own service certificate: a caller without one is
//! refused during the handshake. In production the same files come from cert-manager or a
//! mounted secret; only the creation step is for development.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

/// The DNS name every service certificate carries, and that clients verify.
///
/// Services on loopback are reached by IP; verifying one shared name keeps certificates valid
/// whatever port or address a service was given.
pub const FLEET_DNS_NAME: &str = "localhost";

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PKI file could not be read or written.
    #[error("PKI file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation or parsing failed.
    #[error("certificate for {subject}")]
    Certificate {
        /// The certificate's subject.
        subject: String,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// The service name cannot be used in a file name or certificate.
    #[error("invalid service name {0:?}")]
    InvalidServiceName(String),
    /// A gRPC endpoint could not be configured.
    #[error("endpoint {url}")]
    Endpoint {
        /// The endpoint.
        url: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A directory holding the CA and the service certificates.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

/// One service's certificate, key and the CA it trusts.
#[derive(Clone)]
pub struct ServiceTls {
    service: String,
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for ServiceTls {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTls")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Opens the PKI directory, creating the development CA there if it has none.
    pub fn ensure_dev(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let pki = Self { dir };
        if !pki.ca_cert_path().exists() {
            pki.create_ca()?;
        }
        Ok(pki)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM) that every service trusts.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn ca_key_path(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// Loads the service's certificate, signing a new one with the CA if it has none.
    pub fn service(&self, service: &str) -> Result<ServiceTls> {
        if service.is_empty()
            || !service
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(Error::InvalidServiceName(service.to_owned()));
        }
        let cert_path = self.dir.join(format!("{service}.pem"));
        let key_path = self.dir.join(format!("{service}.key"));
        if !cert_path.exists() || !key_path.exists() {
            self.sign_service(service, &cert_path, &key_path)?;
        }
        Ok(ServiceTls {
            service: service.to_owned(),
            ca_pem: read(&self.ca_cert_path())?,
            cert_pem: read(&cert_path)?,
            key_pem: read(&key_path)?,
        })
    }

    fn create_ca(&self) -> Result<()> {
        let subject = "cap development CA";
        let cert_err = |source| Error::Certificate {
            subject: subject.to_owned(),
            source,
        };
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, subject);
        dn.push(DnType::OrganizationName, "coding-assistant-platform");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(cert_err)?;
        // Key first: a CA certificate without its key on disk would be unusable.
        write_atomic(
            &self.ca_key_path(),
            &key.serialize_pem(),
            /*secret*/ true,
        )?;
        write_atomic(&self.ca_cert_path(), &cert.pem(), /*secret*/ false)?;
        tracing::info!(dir = %self.dir.display(), "created development CA");
        Ok(())
    }

    fn sign_service(&self, service: &str, cert_path: &Path, key_path: &Path) -> Result<()> {
        let cert_err = |source| Error::Certificate {
            subject: service.to_owned(),
            source,
        };
        let ca_key = KeyPair::from_pem(&read(&self.ca_key_path())?).map_err(cert_err)?;
        let issuer =
            Issuer::from_ca_cert_pem(&read(&self.ca_cert_path())?, ca_key).map_err(cert_err)?;
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::new(vec![
            FLEET_DNS_NAME.to_owned(),
            service.to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .map_err(cert_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, service);
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;
        write_atomic(key_path, &key.serialize_pem(), /*secret*/ true)?;
        write_atomic(cert_path, &cert.pem(), /*secret*/ false)?;
        Ok(())
    }
}

impl ServiceTls {
    /// The service this identity belongs to.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Server side: present this service's certificate and require a client certificate
    /// signed by the fleet's CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
    }

    /// Client side: trust only the fleet's CA and present this service's certificate.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(FLEET_DNS_NAME)
    }

    /// A channel to `url` (`https://host:port`) that connects on first use and reconnects
    /// after failures, so services can start in any order.
    pub fn channel(&self, url: &str) -> Result<Channel> {
        let endpoint_err = |source| Error::Endpoint {
            url: url.to_owned(),
            source,
        };
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(endpoint_err)?
            .tls_config(self.client_config())
            .map_err(endpoint_err)?
            .connect_timeout(std::time::Duration::from_secs(5))
            .tcp_nodelay(true);
        Ok(endpoint.connect_lazy())
    }
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes through a temporary file and a rename, so that services starting at the same time
/// never read half a file. Secrets are created with mode 0600.
fn write_atomic(path: &Path, contents: &str, secret: bool) -> Result<()> {
    let io_err = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(&tmp).map_err(io_err)?;
    file.write_all(contents.as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    fs::rename(&tmp, path).map_err(io_err)
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;

/// The fleet service a certificate (DER) was issued to: its subject's common name, which the
/// fleet's CA sets to the service name. `None` when it cannot be read or names no service.
pub fn certificate_service(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let name = cert.subject().iter_common_name().next()?.as_str().ok()?;
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    plain.then(|| name.to_owned())
}

/// The fleet service calling: the common name of the client certificate the TLS handshake
/// verified against the fleet's CA. `None` for a call without one (plain HTTP/2 in tests).
pub fn peer_service<T>(request: &tonic::Request<T>) -> Option<String> {
    let certs = request.peer_certs()?;
    certs.first().and_then(|cert| certificate_service(cert))
}
