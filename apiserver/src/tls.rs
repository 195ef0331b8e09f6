//! The cluster CA and the API server's serving certificate, made on first start and kept in
//! the data dir (keys 0600), so kubeconfigs written once stay valid across restarts.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Why the certificates could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Generating a key or certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A stored certificate or key does not parse.
    #[error("{path}: not a valid PEM certificate or key")]
    BadPem {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The PEM files of the cluster's PKI.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate clients trust.
    pub ca_pem: String,
    /// The serving certificate (signed by the CA).
    pub cert_pem: String,
    /// The serving key.
    pub key_pem: String,
    /// The CA key, to sign node agents' certificates.
    pub ca_key_pem: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `contents` to `path` with mode 0600.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    file.write_all(contents).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Load the PKI from `dir`, or make it when absent. `hosts` are the names and addresses the
/// serving certificate must cover. A kept PKI whose serving certificate does not cover every
/// one of `hosts` (the server now listens on another address) gets a new serving certificate
/// from the same CA, for the old names and the new ones, so clients' kubeconfigs stay good.
pub fn load_or_create(dir: &Path, hosts: &[String]) -> Result<Pki, TlsError> {
    let files = ["ca.crt", "ca.key", "apiserver.crt", "apiserver.key"].map(|f| dir.join(f));
    // The names the serving certificate covers, one a line (absent before this file existed).
    let hosts_file = dir.join("apiserver.hosts");
    if files.iter().all(|f| f.is_file()) {
        let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(io(p));
        let mut pki = Pki {
            ca_pem: read(&files[0])?,
            ca_key_pem: read(&files[1])?,
            cert_pem: read(&files[2])?,
            key_pem: read(&files[3])?,
        };
        let mut covered: Vec<String> = std::fs::read_to_string(&hosts_file)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if !hosts.iter().all(|h| covered.contains(h)) {
            covered.extend(hosts.iter().cloned());
            covered.sort();
            covered.dedup();
            let issuer = Issuer::new(ca_params()?, KeyPair::from_pem(&pki.ca_key_pem)?);
            let (cert_pem, key_pem) = sign_leaf(&issuer, "kube-apiserver", &covered, Usage::Both)?;
            write_private(&files[3], key_pem.as_bytes())?;
            write_private(&files[2], cert_pem.as_bytes())?;
            write_private(&hosts_file, covered.join("\n").as_bytes())?;
            pki.cert_pem = cert_pem;
            pki.key_pem = key_pem;
        }
        return Ok(pki);
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let pki = generate(hosts)?;
    write_private(&files[1], pki.ca_key_pem.as_bytes())?;
    write_private(&files[3], pki.key_pem.as_bytes())?;
    write_private(&files[2], pki.cert_pem.as_bytes())?;
    write_private(&hosts_file, hosts.join("\n").as_bytes())?;
    write_private(&files[0], pki.ca_pem.as_bytes())?;
    Ok(pki)
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "tugboat-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    Ok(params)
}

/// A fresh CA and a serving certificate for `hosts`.
pub fn generate(hosts: &[String]) -> Result<Pki, TlsError> {
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params()?.self_signed(&ca_key)?;
    let ca_pem = ca_cert.pem();
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca_params()?, ca_key);

    let (cert_pem, key_pem) = sign_leaf(&issuer, "kube-apiserver", hosts, Usage::Both)?;
    Ok(Pki {
        ca_pem,
        cert_pem,
        key_pem,
        ca_key_pem,
    })
}

/// What a leaf certificate may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Usage {
    /// The API server: it serves, and it is a client of the node agents.
    Both,
    /// A node agent's server: it cannot pass as a client of another agent.
    Server,
    /// A client only.
    Client,
}

fn sign_leaf(
    issuer: &Issuer<'_, KeyPair>,
    common_name: &str,
    hosts: &[String],
    usage: Usage,
) -> Result<(String, String), TlsError> {
    let mut params = CertificateParams::new(hosts.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = match usage {
        Usage::Both => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.not_after = rcgen::date_time_ymd(2035, 12, 31);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The cluster CA alone (certificate and key): what a node agent in another process needs to
/// sign its serving certificate, read from a copy of the API server's `pki/ca.crt` and
/// `pki/ca.key`.
#[derive(Debug, Clone)]
pub struct ClusterCa {
    /// The CA certificate.
    pub ca_pem: String,
    ca_key_pem: String,
}

impl ClusterCa {
    /// Read `ca.crt` and `ca.key` from `dir`.
    pub fn load(dir: &Path) -> Result<ClusterCa, TlsError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(io(&path))
        };
        let ca = ClusterCa {
            ca_pem: read("ca.crt")?,
            ca_key_pem: read("ca.key")?,
        };
        // A wrong file is named now, not at the first signature.
        KeyPair::from_pem(&ca.ca_key_pem).map_err(|_| TlsError::BadPem {
            path: dir.join("ca.key"),
        })?;
        Ok(ca)
    }

    /// A client certificate for user `common_name` (CN), in `group` (O) if given, as
    /// kube-apiserver's x509 authenticator reads them; e.g. for `kubectl --client-certificate`.
    /// (rcgen writes one O at most; certificates from other tools may carry several.)
    pub fn sign_user(
        &self,
        common_name: &str,
        group: Option<&str>,
    ) -> Result<(String, String), TlsError> {
        let ca_key = KeyPair::from_pem(&self.ca_key_pem)?;
        let issuer = Issuer::new(ca_params()?, ca_key);
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        if let Some(group) = group {
            params
                .distinguished_name
                .push(DnType::OrganizationName, group);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_after = rcgen::date_time_ymd(2035, 12, 31);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A certificate and key for another server of the cluster (a node agent), signed by the
    /// CA. It is good for serving only: node agents accept clients with the client-auth
    /// usage, so one agent cannot call another.
    pub fn sign_server(
        &self,
        common_name: &str,
        hosts: &[String],
    ) -> Result<(String, String), TlsError> {
        let ca_key = KeyPair::from_pem(&self.ca_key_pem)?;
        let issuer = Issuer::new(ca_params()?, ca_key);
        sign_leaf(&issuer, common_name, hosts, Usage::Server)
    }
}

impl Pki {
    /// The CA part, to sign node agents' serving certificates.
    pub fn cluster_ca(&self) -> ClusterCa {
        ClusterCa {
            ca_pem: self.ca_pem.clone(),
            ca_key_pem: self.ca_key_pem.clone(),
        }
    }

    /// A serving certificate for a node agent: see [`ClusterCa::sign_server`].
    pub fn sign_server(
        &self,
        common_name: &str,
        hosts: &[String],
    ) -> Result<(String, String), TlsError> {
        self.cluster_ca().sign_server(common_name, hosts)
    }

    /// A client certificate and key signed by the CA (the API server's, for the node agents).
    pub fn sign_client(&self, common_name: &str) -> Result<(String, String), TlsError> {
        let ca_key = KeyPair::from_pem(&self.ca_key_pem)?;
        let issuer = Issuer::new(ca_params()?, ca_key);
        sign_leaf(&issuer, common_name, &[], Usage::Client)
    }

    /// The rustls client configuration the API server uses to reach node agents: it trusts
    /// only the cluster CA and presents a fresh `kube-apiserver-kubelet-client` certificate.
    pub fn agent_client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let (cert_pem, key_pem) = self.sign_client("kube-apiserver-kubelet-client")?;
        let bad = |what: &str| TlsError::BadPem { path: what.into() };
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut self.ca_pem.as_bytes()) {
            roots
                .add(cert.map_err(|_| bad("ca.crt"))?)
                .map_err(|_| bad("ca.crt"))?;
        }
        let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| bad("kubelet client certificate"))?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .ok()
            .flatten()
            .ok_or_else(|| bad("kubelet client key"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)?;
        // Upgrades (exec, port-forward) need HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The rustls server configuration for the serving certificate (HTTP/2 and HTTP/1.1).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let certs: Vec<_> = rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| TlsError::BadPem {
                path: "apiserver.crt".into(),
            })?;
        let key = rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .ok()
            .flatten()
            .ok_or_else(|| TlsError::BadPem {
                path: "apiserver.key".into(),
            })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Ask for a client certificate signed by the cluster CA, but let clients without one
        // in (bearer tokens), as kube-apiserver's --client-ca-file does.
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut self.ca_pem.as_bytes()) {
            let bad = || TlsError::BadPem {
                path: "ca.crt".into(),
            };
            roots.add(cert.map_err(|_| bad())?).map_err(|_| bad())?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|err| rustls::Error::General(err.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The user a verified client certificate names: its first CN, and its O entries as groups
/// (kube-apiserver's x509 authenticator). `None` when the subject has no CN.
pub fn certificate_user(der: &[u8]) -> Option<(String, Vec<String>)> {
    const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];
    let (_, certificate, _) = der_read(der).filter(|(tag, _, _)| *tag == 0x30)?;
    let (_, tbs, _) = der_read(certificate).filter(|(tag, _, _)| *tag == 0x30)?;
    // version [0] (optional), serialNumber, signature, issuer, validity, subject.
    let mut rest = tbs;
    let mut fields = Vec::new();
    while fields.len() < 6 && !rest.is_empty() {
        let (tag, content, after) = der_read(rest)?;
        if !(fields.is_empty() && tag == 0xa0) {
            fields.push(content);
        }
        rest = after;
    }
    let mut subject = *fields.get(4)?;
    let mut name = None;
    let mut groups = Vec::new();
    while !subject.is_empty() {
        let (_, set, after) = der_read(subject)?;
        subject = after;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (_, attribute, after) = der_read(attributes)?;
            attributes = after;
            let (oid_tag, oid, value) = der_read(attribute)?;
            let (_, value, _) = der_read(value)?;
            let value = std::str::from_utf8(value).ok()?.to_owned();
            match (oid_tag, oid) {
                (0x06, COMMON_NAME) if name.is_none() => name = Some(value),
                (0x06, ORGANIZATION) => groups.push(value),
                _ => {}
            }
        }
    }
    Some((name.filter(|n| !n.is_empty())?, groups))
}

/// One DER element: its tag, its contents and what follows it.
fn der_read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let (bytes, after) = input.split_at(count);
        input = after;
        bytes
            .iter()
            .fold(0usize, |length, byte| (length << 8) | usize::from(*byte))
    };
    (input.len() >= length).then(|| {
        let (content, rest) = input.split_at(length);
        (tag, content, rest)
    })
}

/// The names and addresses the serving certificate covers for a server listening on `ip`.
pub fn serving_hosts(ip: IpAddr, api_service_ip: IpAddr) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "kubernetes".to_owned(),
        "kubernetes.default".to_owned(),
        "kubernetes.default.svc".to_owned(),
        "kubernetes.default.svc.cluster.local".to_owned(),
        api_service_ip.to_string(),
    ];
    if ip.is_unspecified() {
        // Listening everywhere: other machines may come in on any of this host's addresses.
        let fib_trie = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
        hosts.extend(
            local_ipv4_addresses(&fib_trie)
                .iter()
                .map(IpAddr::to_string),
        );
    } else if !ip.is_loopback() {
        hosts.push(ip.to_string());
    }
    if let Ok(name) = std::fs::read_to_string("/etc/hostname") {
        let name = name.trim();
        if !name.is_empty() {
            hosts.push(name.to_owned());
        }
    }
    hosts.sort();
    hosts.dedup();
    hosts
}

/// The host's own non-loopback IPv4 addresses, from `/proc/net/fib_trie` (each is a leaf
/// followed by `/32 host LOCAL`).
fn local_ipv4_addresses(fib_trie: &str) -> Vec<IpAddr> {
    let mut addresses = Vec::new();
    let mut leaf: Option<IpAddr> = None;
    for line in fib_trie.lines() {
        let line = line.trim();
        if let Some(address) = line.strip_prefix("|-- ") {
            leaf = address.trim().parse().ok();
        } else if line.starts_with("/32 host LOCAL")
            && let Some(address) = leaf
            && !address.is_loopback()
            && !addresses.contains(&address)
        {
            addresses.push(address);
        }
    }
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificates_name_their_user_and_groups() {
        let pki = generate(&["localhost".to_owned()]).unwrap();
        let (pem, _) = pki.cluster_ca().sign_user("carol", Some("devs")).unwrap();
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            certificate_user(der.as_ref()),
            Some(("carol".to_owned(), vec!["devs".to_owned()]))
        );
        // The server's own certificate names kube-apiserver, in no group.
        let der = rustls_pemfile::certs(&mut pki.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            certificate_user(der.as_ref()),
            Some(("kube-apiserver".to_owned(), Vec::new()))
        );
        assert_eq!(certificate_user(b"\x30\x03garbage"), None);
        assert_eq!(certificate_user(&[]), None);
    }

    #[test]
    fn listening_everywhere_covers_the_hosts_own_addresses() {
        let fib_trie = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.0.2.0/24 2 0 2
        |-- 10.0.2.0
           /24 link UNICAST
        |-- 10.0.2.15
           /32 host LOCAL
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
        |-- 10.0.2.15
           /32 host LOCAL
        |-- 192.0.2.11
           /32 host LOCAL
";
        assert_eq!(
            local_ipv4_addresses(fib_trie),
            [
                "10.0.2.15".parse::<IpAddr>().unwrap(),
                "192.0.2.11".parse().unwrap()
            ]
        );
        let hosts = serving_hosts("0.0.0.0".parse().unwrap(), "10.96.0.1".parse().unwrap());
        assert!(hosts.contains(&"127.0.0.1".to_owned()), "{hosts:?}");
        assert!(!hosts.contains(&"0.0.0.0".to_owned()), "{hosts:?}");
    }

    #[test]
    fn made_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let first = load_or_create(dir.path(), &hosts).unwrap();
        let second = load_or_create(dir.path(), &hosts).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem);
        assert_eq!(first.cert_pem, second.cert_pem);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        first.server_config().unwrap();
        first.sign_server("node", &hosts).unwrap();
        first.agent_client_config().unwrap();
    }

    /// Whether a client trusting `ca_pem` accepts `cert_pem` for `name`.
    fn trusted_for(ca_pem: &str, cert_pem: &str, name: &str) -> bool {
        use rustls::client::danger::ServerCertVerifier as _;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        let cert = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        verifier
            .verify_server_cert(&cert, &[], &name, &[], rustls::pki_types::UnixTime::now())
            .is_ok()
    }

    #[test]
    fn a_new_listen_address_gets_a_serving_certificate_from_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), &["127.0.0.1".to_owned()]).unwrap();
        assert!(!trusted_for(&first.ca_pem, &first.cert_pem, "10.0.0.1"));
        let hosts = ["127.0.0.1".to_owned(), "10.0.0.1".to_owned()];
        let second = load_or_create(dir.path(), &hosts).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem);
        assert!(trusted_for(&second.ca_pem, &second.cert_pem, "10.0.0.1"));
        assert!(trusted_for(&second.ca_pem, &second.cert_pem, "127.0.0.1"));
        // Back on loopback only: the certificate still covers both, and is not made again.
        let third = load_or_create(dir.path(), &["127.0.0.1".to_owned()]).unwrap();
        assert_eq!(third.cert_pem, second.cert_pem);
        // What was written is what is loaded.
        let again = load_or_create(dir.path(), &hosts).unwrap();
        assert_eq!(again.cert_pem, second.cert_pem);
    }

    #[test]
    fn a_copy_of_the_ca_signs_certificates_the_cluster_trusts() {
        let dir = tempfile::tempdir().unwrap();
        let pki = load_or_create(dir.path(), &["127.0.0.1".to_owned()]).unwrap();
        let copy = tempfile::tempdir().unwrap();
        for file in ["ca.crt", "ca.key"] {
            std::fs::copy(dir.path().join(file), copy.path().join(file)).unwrap();
        }
        let ca = ClusterCa::load(copy.path()).unwrap();
        let (cert_pem, _key) = ca.sign_server("agent", &["10.0.0.2".to_owned()]).unwrap();

        assert!(trusted_for(&pki.ca_pem, &cert_pem, "10.0.0.2"));
        assert!(!trusted_for(&pki.ca_pem, &cert_pem, "10.0.0.3"));

        // A missing or wrong key is named.
        std::fs::write(copy.path().join("ca.key"), "not a key").unwrap();
        let err = ClusterCa::load(copy.path()).unwrap_err().to_string();
        assert!(err.contains("ca.key"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = ClusterCa::load(empty.path()).unwrap_err().to_string();
        assert!(err.contains("ca.crt"), "{err}");
    }
}
