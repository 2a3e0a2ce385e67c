//! TLS for backends reached by an `https://` URL: a connection that is a plain mio
//! `TcpStream` or one wrapped in a rustls client session, driven sans-IO
//! (`read_tls`/`process_new_packets`/`reader`/`writer`/`write_tls`) over the non-blocking
//! socket, so the remote backend reads and writes it like the plain socket it replaces.
//!
//! Certificates are checked against the platform's roots (read once per process; they
//! honour `SSL_CERT_FILE` and `SSL_CERT_DIR`) plus a backend's own `ca_file`. A failed
//! handshake becomes a sentence that says what happened and what to do (see
//! [`explain`]), carried in the `io::Error` the read or write returns ([`explained`]
//! finds it again).

use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore};
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

/// Largest `ca_file` read (a system bundle is a few hundred KiB).
pub const MAX_CA_FILE: u64 = 4 * 1024 * 1024;
/// Distinct CA sets whose client configs are kept; more (a config reloaded many times
/// with changing files) drop the oldest.
const MAX_CONFIGS: usize = 32;
/// Room in rustls's buffers beyond the largest request a connection writes (the fixed
/// part of a request head, and TLS record overhead): a request given before the
/// handshake ends waits there whole.
const BUFFER_SLACK: usize = 64 * 1024;

/// A connection to a remote backend: plain TCP, or TCP carrying a TLS session.
///
/// Reads and writes never block: `WouldBlock` means wait for the socket's readiness.
/// A TLS write is taken whole into the session (up to the bound given to
/// [`Stream::tls`]) and its records go out as the socket takes them; what is left is
/// [`Stream::has_pending_output`] and goes out on the next write or
/// [`Stream::flush_pending`]. A read returns `Ok(0)` at the end of the stream (a TLS
/// peer that closes without `close_notify` included: the HTTP framing above says whether
/// an answer was cut).
pub enum Stream {
    /// `http://`: the socket itself.
    Plain(TcpStream),
    /// `https://`: the socket and its TLS session.
    Tls(Box<TlsStream>),
}

/// The socket and rustls session of an `https://` connection.
pub struct TlsStream {
    sock: TcpStream,
    conn: ClientConnection,
    /// The server's name, for errors.
    host: String,
}

impl Stream {
    /// A TLS session over `sock` to `host` (a DNS name or an IP address), checking the
    /// certificate with `config`; `max_write` is the largest request written on it (the
    /// session's buffers are bounded by it).
    ///
    /// # Errors
    ///
    /// When `host` cannot be a TLS server name, or rustls refuses the config.
    pub fn tls(
        sock: TcpStream,
        config: Arc<ClientConfig>,
        host: &str,
        max_write: usize,
    ) -> Result<Stream, String> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| format!("{host:?} is not a name a TLS certificate can be checked against; use the server's DNS name or IP address in the backend's \"url\""))?;
        let mut conn = ClientConnection::new(config, name)
            .map_err(|e| format!("cannot start TLS to {host}: {e}"))?;
        conn.set_buffer_limit(Some(max_write.saturating_add(BUFFER_SLACK)));
        Ok(Stream::Tls(Box::new(TlsStream {
            sock,
            conn,
            host: host.to_string(),
        })))
    }

    /// Whether TLS records wait for the socket to take them (a write or
    /// [`Stream::flush_pending`] sends them).
    pub fn has_pending_output(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(t) => t.conn.wants_write(),
        }
    }

    /// Whether the TLS handshake is still going on (false for a plain socket).
    pub fn is_handshaking(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(t) => t.conn.is_handshaking(),
        }
    }

    /// Sends waiting TLS records; `Ok` when none is left, `WouldBlock` when the socket is
    /// full.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn flush_pending(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(t) => t.flush_tls(),
        }
    }
}

impl TlsStream {
    fn flush_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends what the session has to send, keeping a full socket for later.
    fn flush_some(&mut self) -> io::Result<()> {
        match self.flush_tls() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    if self.conn.is_handshaking() {
                        return Err(failure(format!(
                            "{} closed the connection during the TLS handshake; check that the server speaks https on that port (or use an http:// URL)",
                            self.host
                        )));
                    }
                    return Ok(0);
                }
                Err(e) => return Err(e),
            }
            // Each turn takes bytes from the socket or returns: the loop ends.
            match self.conn.read_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                // The alert telling the server why, if the socket takes it.
                let _ = self.flush_tls();
                return Err(failure(explain(&e, &self.host)));
            }
            // Handshake answers, and a request that waited for the handshake.
            self.flush_some()?;
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.flush_some()?;
        let n = self.conn.writer().write(buf)?;
        self.flush_some()?;
        if n == 0 && !buf.is_empty() {
            // The session's buffer is full: the socket must take records first. (Not
            // reached by a caller that writes no more than the bound given to `tls`
            // per answer, which the remote backend does: before the handshake ends no
            // record can go, and only a read would move things on.)
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_pending()
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.register(r, token, interests),
            Stream::Tls(t) => t.sock.register(r, token, interests),
        }
    }

    fn reregister(&mut self, r: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.reregister(r, token, interests),
            Stream::Tls(t) => t.sock.reregister(r, token, interests),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.deregister(r),
            Stream::Tls(t) => t.sock.deregister(r),
        }
    }
}

/// A TLS failure explained in a sentence; carried inside the `io::Error` a [`Stream`]
/// returns.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

fn failure(text: String) -> io::Error {
    io::Error::other(Failure(text))
}

/// The sentence of a TLS failure, when `e` is one a [`Stream`] returned.
pub fn explained(e: &io::Error) -> Option<&str> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Failure>())
        .map(|f| f.0.as_str())
}

/// What to write in the config to trust a server's CA.
const TRUST_HINT: &str = "set the backend's \"ca_file\" to the PEM file of the CA that signed it (or SSL_CERT_FILE for every program)";

/// A sentence for rustls's error `e` on a connection to `host`: what happened and what
/// to do.
pub fn explain(e: &rustls::Error, host: &str) -> String {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => format!(
                "the certificate of {host} is not signed by a CA gangway trusts: {TRUST_HINT}"
            ),
            CertificateError::NotValidForName => format!(
                "the certificate of {host} is not valid for that name; use a name it was issued for in the backend's \"url\""
            ),
            CertificateError::NotValidForNameContext { presented, .. } => {
                let names = if presented.is_empty() {
                    "no names".to_string()
                } else {
                    let names: Vec<&str> = presented.iter().map(|n| plain_name(n)).collect();
                    names.join(", ")
                };
                format!(
                    "the certificate of {host} is not valid for that name (it is for {names}); use one of those in the backend's \"url\", or give the server a certificate for {host}"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
                "the certificate of {host} has expired; the server needs a renewed certificate (or check this machine's clock)"
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!(
                    "the certificate of {host} is not valid yet; check this machine's clock, or the certificate's start date"
                )
            }
            CertificateError::Revoked => format!(
                "the certificate of {host} has been revoked; the server needs a new certificate"
            ),
            CertificateError::BadSignature => format!(
                "the certificate of {host} has a signature that does not check out; it is forged or broken, do not trust this server until its certificate is fixed"
            ),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                format!(
                    "the certificate of {host} is not issued for TLS servers; the server needs a server certificate"
                )
            }
            other => format!(
                "the certificate of {host} was refused ({other:?}); {TRUST_HINT} if it is signed by a private CA, or fix the server's certificate"
            ),
        },
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => format!(
            "{host} does not answer in TLS (is it a plain http server on that port?); use an http:// URL for it, or the port where it serves https"
        ),
        E::AlertReceived(alert) => format!(
            "{host} refused the TLS handshake (alert: {alert:?}); check the server's TLS settings (a server that wants a client certificate is not supported)"
        ),
        E::PeerIncompatible(why) => format!(
            "{host} and gangway share no TLS version or cipher ({why:?}); gangway speaks TLS 1.2 and 1.3, check the server's TLS settings"
        ),
        E::NoCertificatesPresented => {
            format!("{host} sent no certificate; check the server's TLS settings")
        }
        other => format!("TLS with {host} failed: {other}"),
    }
}

/// A name as webpki shows it (`DnsName("a.example")`, `IpAddress(...)`), without the
/// wrapping.
fn plain_name(shown: &str) -> &str {
    let inner = ["DnsName(", "IpAddress("]
        .iter()
        .find_map(|p| shown.strip_prefix(p).and_then(|s| s.strip_suffix(')')));
    inner.map_or(shown, |s| s.trim_matches('"'))
}

/// Platform roots, read once per process.
fn platform_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            log::warn!("reading the platform's CA certificates: {e}");
        }
        if found.certs.is_empty() {
            log::warn!(
                "no CA certificates found on this machine: https backends need a \"ca_file\" (or set SSL_CERT_FILE)"
            );
        }
        found.certs
    })
}

/// The client config trusting the platform roots and `extra` (a backend's `ca_file`),
/// built once per distinct `extra` and shared.
///
/// # Errors
///
/// When rustls refuses the protocol versions (a build without TLS 1.2 or 1.3 support).
pub fn client_config(extra: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, String> {
    type Cache = Mutex<Vec<(Vec<CertificateDer<'static>>, Arc<ClientConfig>)>>;
    static CONFIGS: OnceLock<Cache> = OnceLock::new();
    let cache = CONFIGS.get_or_init(|| Mutex::new(Vec::new()));
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, config)) = cache.iter().find(|(certs, _)| certs.as_slice() == extra) {
        return Ok(Arc::clone(config));
    }
    let config = Arc::new(build_config(platform_roots(), extra)?);
    if cache.len() >= MAX_CONFIGS {
        cache.remove(0);
    }
    cache.push((extra.to_vec(), Arc::clone(&config)));
    Ok(config)
}

fn build_config(
    platform: &[CertificateDer<'static>],
    extra: &[CertificateDer<'static>],
) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    // A platform certificate webpki cannot read is skipped; the bundle's others work.
    roots.add_parsable_certificates(platform.iter().cloned());
    // `extra` was checked by `read_ca_file`.
    roots.add_parsable_certificates(extra.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The certificates of the PEM file `path` (a `ca_file`), each checked to be a usable
/// trust anchor.
///
/// # Errors
///
/// A sentence fragment (for a config error at the `ca_file` key) when the file cannot
/// be read, is over [`MAX_CA_FILE`] bytes, holds no PEM certificate or a broken one.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| {
        format!("cannot read {shown}: {e}; point it at the PEM file of the CA that signed the server's certificate")
    })?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE + 1)
        .read_to_end(&mut pem)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if pem.len() as u64 > MAX_CA_FILE {
        return Err(format!(
            "{shown} is over {MAX_CA_FILE} bytes, too large for a CA bundle; point it at the CA's PEM file"
        ));
    }
    parse_ca_pem(&pem).map_err(|why| format!("{shown} {why}"))
}

/// The certificates of a PEM text, checked; the error completes "FILE ...".
fn parse_ca_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    for (i, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(|e| {
            format!(
                "has a broken PEM section (certificate {}: {e}); export the CA certificate again in PEM form",
                i + 1
            )
        })?;
        let mut store = RootCertStore::empty();
        store.add(cert.clone()).map_err(|e| {
            format!(
                "holds a certificate gangway cannot use as a CA (certificate {}: {e}); export the CA certificate again in PEM form",
                i + 1
            )
        })?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(
            "holds no PEM certificate (a \"-----BEGIN CERTIFICATE-----\" section); point it at the CA's certificate in PEM form"
                .to_string(),
        );
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_ca() -> (String, CertificateDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), cert.der().clone())
    }

    #[test]
    fn a_ca_file_gives_its_certificates() {
        let (pem, der) = test_ca();
        let two = format!("# a comment\n{pem}\n{pem}");
        assert_eq!(
            parse_ca_pem(two.as_bytes()).unwrap(),
            vec![der.clone(), der]
        );
    }

    #[test]
    fn a_ca_file_without_certificates_says_what_it_should_hold() {
        let why = parse_ca_pem(b"just text\n").unwrap_err();
        assert!(why.contains("no PEM certificate"), "{why}");
        let key_only = "-----BEGIN PRIVATE KEY-----\nMC4CAQA=\n-----END PRIVATE KEY-----\n";
        assert!(parse_ca_pem(key_only.as_bytes())
            .unwrap_err()
            .contains("no PEM certificate"));
    }

    #[test]
    fn a_garbled_ca_file_is_refused() {
        let garbled =
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
        let why = parse_ca_pem(garbled.as_bytes()).unwrap_err();
        assert!(why.contains("certificate 1"), "{why}");
        // Valid base64, but not a certificate.
        let junk = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
        let why = parse_ca_pem(junk.as_bytes()).unwrap_err();
        assert!(why.contains("cannot use as a CA"), "{why}");
    }

    #[test]
    fn a_missing_ca_file_names_it() {
        let why = read_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(why.contains("/nonexistent/ca.pem"), "{why}");
        assert!(why.contains("PEM file of the CA"), "{why}");
    }

    #[test]
    fn configs_are_shared_per_ca_set() {
        let (_, der) = test_ca();
        let a = client_config(std::slice::from_ref(&der)).unwrap();
        let b = client_config(std::slice::from_ref(&der)).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "the same CA set shares one config");
        let plain = client_config(&[]).unwrap();
        assert!(!Arc::ptr_eq(&a, &plain));
        // Built without the platform roots, the extra CA is the only one.
        let only = build_config(&[], std::slice::from_ref(&der)).unwrap();
        assert!(only.alpn_protocols.is_empty());
    }

    #[test]
    fn certificate_errors_say_what_to_do() {
        let unknown = explain(
            &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            "api.example",
        );
        assert!(unknown.contains("api.example"), "{unknown}");
        assert!(
            unknown.contains("not signed by a CA gangway trusts"),
            "{unknown}"
        );
        assert!(unknown.contains("\"ca_file\""), "{unknown}");
        let name = explain(
            &rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("api.example").unwrap(),
                presented: vec!["DnsName(\"other.example\")".to_string()],
            }),
            "api.example",
        );
        assert!(name.contains("(it is for other.example)"), "{name}");
        let expired = explain(
            &rustls::Error::InvalidCertificate(CertificateError::Expired),
            "h",
        );
        assert!(expired.contains("expired"), "{expired}");
        let plain = explain(
            &rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
            "h",
        );
        assert!(plain.contains("plain http server"), "{plain}");
        assert!(plain.contains("http://"), "{plain}");
    }

    #[test]
    fn the_sentence_survives_the_io_error() {
        let e = failure("what happened; what to do".to_string());
        assert_eq!(explained(&e), Some("what happened; what to do"));
        assert_eq!(explained(&io::Error::from(io::ErrorKind::BrokenPipe)), None);
    }

    #[test]
    fn a_host_that_cannot_be_a_server_name_is_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let config = client_config(&[]).unwrap();
        let why = match Stream::tls(sock, config, "bad name!", 1024) {
            Err(why) => why,
            Ok(_) => panic!("a name with a space and ! is not a server name"),
        };
        assert!(why.contains("\"url\""), "{why}");
    }
}
