//! Certificates of a cluster: one self-signed cluster CA and one certificate per party.
//!
//! A party's certificate is signed by the CA and names the party as a DNS subject alternative
//! name (e.g. `server0`); peers identify each other by that name, never by address. Files are
//! PEM: `ca.pem`, `NAME.pem` (certificate) and `NAME.key` (PKCS#8 private key). The CA's private
//! key is not written: nobody needs it after generation.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::RootCertStore;

use crate::{Result, RuntimeError};

/// The file name of the cluster CA certificate.
pub const CA_FILE: &str = "ca.pem";

/// The file name of a party's certificate.
pub fn cert_file(party: &str) -> String {
    format!("{party}.pem")
}

/// The file name of a party's private key.
pub fn key_file(party: &str) -> String {
    format!("{party}.key")
}

fn tls(message: impl Into<String>) -> RuntimeError {
    RuntimeError::Tls(message.into())
}

/// Checks that `name` can be a party name: a DNS name (letters, digits, `-`, `.`), not an IP.
pub fn check_party_name(name: &str) -> Result<()> {
    let ok_chars = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    match ServerName::try_from(name) {
        Ok(ServerName::DnsName(_)) if ok_chars => Ok(()),
        _ => Err(RuntimeError::Config {
            field: format!("party name '{name}'"),
            message: "must be a DNS name such as server0 (letters, digits, '-', '.')".into(),
        }),
    }
}

fn write(path: &Path, contents: &str, private: bool) -> Result<()> {
    let io = |source| RuntimeError::Io {
        context: format!("writing {}", path.display()),
        source,
    };
    std::fs::write(path, contents).map_err(io)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    Ok(())
}

/// Generates a cluster CA and a certificate + key for each party into `out_dir` (created if
/// missing): `ca.pem`, `NAME.pem`, `NAME.key`.
pub fn generate(parties: &[String], out_dir: &Path) -> Result<()> {
    for (i, p) in parties.iter().enumerate() {
        check_party_name(p)?;
        if parties[..i].contains(p) {
            return Err(RuntimeError::Config {
                field: format!("party name '{p}'"),
                message: "appears twice".into(),
            });
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|source| RuntimeError::Io {
        context: format!("creating {}", out_dir.display()),
        source,
    })?;
    let rc = |what: &str, e: rcgen::Error| tls(format!("generating {what}: {e}"));

    let ca_key = KeyPair::generate().map_err(|e| rc("the CA key", e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| rc("CA", e))?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "shareflow cluster CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|e| rc("the CA certificate", e))?;
    let issuer = Issuer::new(ca_params, ca_key);
    write(&out_dir.join(CA_FILE), &ca_cert.pem(), false)?;

    for party in parties {
        let key = KeyPair::generate().map_err(|e| rc(party, e))?;
        let mut params = CertificateParams::new(vec![party.clone()]).map_err(|e| rc(party, e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, party.as_str());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| rc(&format!("the certificate of {party}"), e))?;
        write(&out_dir.join(cert_file(party)), &cert.pem(), false)?;
        write(&out_dir.join(key_file(party)), &key.serialize_pem(), true)?;
    }
    Ok(())
}

fn missing(path: &Path, what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::File {
        path: path.display().to_string(),
        message: format!("cannot read {what}: {e}"),
    }
}

/// Reads the certificates (a chain, leaf first) of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path).map_err(|e| missing(path, "certificate", e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| missing(path, "certificate", e))?;
    if certs.is_empty() {
        return Err(missing(
            path,
            "certificate",
            "no CERTIFICATE block in the file",
        ));
    }
    Ok(certs)
}

/// Reads a private key (PKCS#8, SEC1 or PKCS#1) of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = std::fs::read(path).map_err(|e| missing(path, "private key", e))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| missing(path, "private key", e))
}

/// Reads the cluster CA file into a root store holding only it.
pub fn load_roots(ca_path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca_path)? {
        roots
            .add(cert)
            .map_err(|e| missing(ca_path, "CA certificate", e))?;
    }
    Ok(roots)
}

/// Whether `cert` (DER) names `party` as a DNS subject alternative name.
pub fn names_party(cert: &CertificateDer<'_>, party: &str) -> bool {
    let Ok(parsed) = rustls::server::ParsedCertificate::try_from(cert) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(party) else {
        return false;
    };
    rustls::client::verify_server_name(&parsed, &name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_load_and_name_their_party() {
        let dir = tempfile::tempdir().unwrap();
        let parties = vec!["server0".to_string(), "helper".to_string()];
        generate(&parties, dir.path()).unwrap();
        let roots = load_roots(&dir.path().join(CA_FILE)).unwrap();
        assert_eq!(roots.len(), 1);
        let cert = load_certs(&dir.path().join("server0.pem")).unwrap();
        load_key(&dir.path().join("server0.key")).unwrap();
        assert!(names_party(&cert[0], "server0"));
        assert!(!names_party(&cert[0], "helper"));
        let err = load_certs(&dir.path().join("nobody.pem")).unwrap_err();
        assert!(err.to_string().contains("nobody.pem"), "{err}");
        assert!(generate(&["a/b".to_string()], dir.path()).is_err());
    }
}
