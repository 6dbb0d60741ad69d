//! Certificates of a cluster: one self-signed cluster CA and one certificate per party.
//!
//! A party's certificate is signed by the CA and names the party as a DNS subject alternative
//! name (e.g. `server0`); peers identify each other by that name, never by address. Files are
//! PEM: `ca.pem`, `NAME.pem` (certificate) and `NAME.key` (PKCS#8 private key). The CA's private
//! key is not written: nobody needs it after generation.
//!
//! Files are written carefully: a private key is created with mode 0600 from the start (never
//! readable by others, not even for a moment), no file is written through a symbolic link (nor
//! into a directory that is one), and no existing file is overwritten unless asked
//! ([`Existing::Replace`]), in which case the CA and every certificate and key are replaced
//! together, each by renaming a new file over the old one.

use std::io::Write;
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

/// What to do with the files an earlier run left where new ones go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse to overwrite any of them; nothing is written then.
    Refuse,
    /// Replace them all: a new CA and every certificate and key.
    Replace,
}

/// Who may read a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Its owner only (mode 0600): private keys.
    Private,
    /// Everyone may read it (mode 0644 less the umask): certificates, the cluster file.
    Public,
}

fn file_error(path: &Path, message: impl Into<String>) -> RuntimeError {
    RuntimeError::File {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// The files [`generate`] writes for `parties`: the CA's, then every party's certificate and key.
pub fn files(parties: &[String]) -> Vec<String> {
    let mut names = vec![CA_FILE.to_string()];
    for p in parties {
        names.push(cert_file(p));
        names.push(key_file(p));
    }
    names
}

/// Makes `dir` ready for `names`: it must not be a symbolic link (it is created if missing);
/// no file of `names` in it may be a symbolic link or anything but a regular file, and with
/// [`Existing::Refuse`] none may exist at all. Checks them all before anything is written.
pub fn prepare_dir(dir: &Path, names: &[String], existing: Existing) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(file_error(
                dir,
                "is a symbolic link: refusing to write keys through it",
            ))
        }
        Ok(m) if !m.is_dir() => return Err(file_error(dir, "is not a directory")),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(dir)
            .map_err(|source| RuntimeError::Io {
                context: format!("creating {}", dir.display()),
                source,
            })?,
        Err(source) => {
            return Err(RuntimeError::Io {
                context: format!("reading {}", dir.display()),
                source,
            })
        }
    }
    for name in names {
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(file_error(
                    &path,
                    "is a symbolic link: refusing to write through it",
                ))
            }
            Ok(_) if existing == Existing::Refuse => {
                return Err(file_error(
                    &path,
                    "exists already (pass --force to replace the CA and every certificate and \
                     key)",
                ))
            }
            Ok(m) if !m.is_file() => return Err(file_error(&path, "is not a regular file")),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(RuntimeError::Io {
                    context: format!("reading {}", path.display()),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Creates `path` as a new file (never following a symbolic link, never over an existing
/// file), with the mode of `access` from the start.
pub fn create_new(path: &Path, access: Access) -> Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(match access {
            Access::Private => 0o600,
            Access::Public => 0o644,
        });
    }
    #[cfg(not(unix))]
    let _ = access;
    options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => file_error(
            path,
            "exists already (pass --force to replace the CA and every certificate and key)",
        ),
        _ => RuntimeError::Io {
            context: format!("creating {}", path.display()),
            source: e,
        },
    })
}

/// Writes `contents` as the file `path`: a new file ([`create_new`]), or with
/// [`Existing::Replace`] a new file in the same directory renamed over `path` (which replaces
/// a link, never its target).
pub fn write_file(path: &Path, contents: &str, access: Access, existing: Existing) -> Result<()> {
    let io = |source| RuntimeError::Io {
        context: format!("writing {}", path.display()),
        source,
    };
    if existing == Existing::Refuse {
        return create_new(path, access)?
            .write_all(contents.as_bytes())
            .map_err(io);
    }
    // a new file beside it (mode 0600 from the start for a key), then renamed over it
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy());
    let nonce = shareflow_ops::prg::fresh_seed()?;
    let tmp = path.with_file_name(format!(
        ".{name}.{}.tmp",
        crate::transport::hex(&nonce[..8])
    ));
    let written = create_new(&tmp, access).and_then(|mut f| {
        f.write_all(contents.as_bytes()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Generates a cluster CA and a certificate + key for each party into `out_dir` (created if
/// missing): `ca.pem`, `NAME.pem`, `NAME.key`. Existing files are refused or all replaced, as
/// `existing` says; nothing is written through a symbolic link.
pub fn generate(parties: &[String], out_dir: &Path, existing: Existing) -> Result<()> {
    for (i, p) in parties.iter().enumerate() {
        check_party_name(p)?;
        if parties[..i].contains(p) {
            return Err(RuntimeError::Config {
                field: format!("party name '{p}'"),
                message: "appears twice".into(),
            });
        }
    }
    prepare_dir(out_dir, &files(parties), existing)?;
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
    let mut pems = vec![(CA_FILE.to_string(), ca_cert.pem(), Access::Public)];
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
        pems.push((cert_file(party), cert.pem(), Access::Public));
        pems.push((key_file(party), key.serialize_pem(), Access::Private));
    }
    for (name, pem, access) in pems {
        write_file(&out_dir.join(name), &pem, access, existing)?;
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
        generate(&parties, dir.path(), Existing::Refuse).unwrap();
        let roots = load_roots(&dir.path().join(CA_FILE)).unwrap();
        assert_eq!(roots.len(), 1);
        let cert = load_certs(&dir.path().join("server0.pem")).unwrap();
        load_key(&dir.path().join("server0.key")).unwrap();
        assert!(names_party(&cert[0], "server0"));
        assert!(!names_party(&cert[0], "helper"));
        let err = load_certs(&dir.path().join("nobody.pem")).unwrap_err();
        assert!(err.to_string().contains("nobody.pem"), "{err}");
        assert!(generate(&["a/b".to_string()], dir.path(), Existing::Refuse).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_private_file_is_created_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |f: &std::fs::File| f.metadata().unwrap().permissions().mode() & 0o777;
        // before a byte is written, nobody else may read it
        let key = create_new(&dir.path().join("a.key"), Access::Private).unwrap();
        assert_eq!(mode(&key), 0o600);
        // a public file is readable by others (less what the umask takes away)
        let cert = create_new(&dir.path().join("a.pem"), Access::Public).unwrap();
        assert_eq!(mode(&cert) & 0o700, 0o600);
        let e = create_new(&dir.path().join("a.key"), Access::Private)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.key") && e.contains("exists"), "{e}");
        // a replaced private file too
        let path = dir.path().join("b.key");
        write_file(&path, "x", Access::Private, Existing::Replace).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
}
