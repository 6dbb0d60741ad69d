//! The cluster file: where every party listens and which certificates it uses.
//!
//! ```toml
//! ca = "ca.pem"                 # the cluster CA certificate
//!
//! [parties.server0]
//! address = "127.0.0.1:4000"    # host:port, UDP
//! cert = "server0.pem"
//! key = "server0.key"
//! ```
//!
//! Relative paths resolve against the directory of the cluster file. Only a party's own key has
//! to exist on its machine; files are read when the transport starts.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{keys, Result, RuntimeError};

/// The file name [`ClusterConfig::local`] writes.
pub const CLUSTER_FILE: &str = "cluster.toml";

/// One party of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyConfig {
    /// `host:port` the party's QUIC endpoint binds to and peers dial.
    pub address: String,
    /// The party's certificate (PEM), signed by the cluster CA.
    pub cert: PathBuf,
    /// The party's private key (PEM).
    pub key: PathBuf,
}

/// A parsed cluster file, with paths resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The cluster CA certificate (PEM).
    pub ca: PathBuf,
    /// Every party by name.
    pub parties: BTreeMap<String, PartyConfig>,
}

fn config(field: impl Into<String>, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Config {
        field: field.into(),
        message: message.into(),
    }
}

impl ClusterConfig {
    /// Reads and checks a cluster file; relative paths resolve against its directory.
    pub fn load(path: &Path) -> Result<ClusterConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::File {
            path: path.display().to_string(),
            message: format!("cannot read the cluster file: {e}"),
        })?;
        let mut cfg: ClusterConfig = toml::from_str(&text).map_err(|e| RuntimeError::File {
            path: path.display().to_string(),
            message: format!("invalid cluster file: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve(base);
        cfg.check()?;
        Ok(cfg)
    }

    /// Parses a cluster file's text; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<ClusterConfig> {
        let mut cfg: ClusterConfig =
            toml::from_str(text).map_err(|e| config("cluster file", e.to_string()))?;
        cfg.resolve(base);
        cfg.check()?;
        Ok(cfg)
    }

    fn resolve(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        join(&mut self.ca);
        for party in self.parties.values_mut() {
            join(&mut party.cert);
            join(&mut party.key);
        }
    }

    /// Checks party names and address syntax (without resolving host names).
    pub fn check(&self) -> Result<()> {
        if self.parties.is_empty() {
            return Err(config("parties", "the cluster has no party"));
        }
        for (name, party) in &self.parties {
            keys::check_party_name(name)?;
            let field = format!("parties.{name}.address");
            let Some((host, port)) = party.address.rsplit_once(':') else {
                return Err(config(
                    field,
                    format!("'{}' is not host:port", party.address),
                ));
            };
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(config(
                    field,
                    format!("'{}' is not host:port with a port 0-65535", party.address),
                ));
            }
        }
        Ok(())
    }

    /// The settings of `name`; an error lists the parties the cluster knows.
    pub fn party(&self, name: &str) -> Result<&PartyConfig> {
        self.parties.get(name).ok_or_else(|| {
            config(
                format!("party '{name}'"),
                format!(
                    "unknown party; the cluster file has: {}",
                    self.parties.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    /// Resolves the address of `name` to a socket address.
    pub fn socket_addr(&self, name: &str) -> Result<SocketAddr> {
        let party = self.party(name)?;
        let field = format!("parties.{name}.address");
        let mut addrs = party
            .address
            .to_socket_addrs()
            .map_err(|e| config(&field, format!("cannot resolve '{}': {e}", party.address)))?;
        addrs
            .next()
            .ok_or_else(|| config(&field, format!("'{}' resolves to nothing", party.address)))
    }

    /// The cluster file's text (paths as stored, absolute after loading).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| config("cluster file", e.to_string()))
    }

    /// Writes the cluster file to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_toml()?).map_err(|source| RuntimeError::Io {
            context: format!("writing {}", path.display()),
            source,
        })
    }

    /// A loopback cluster for tests and demos: generates a CA and certificates for `parties`
    /// into `dir`, gives party `i` the address `127.0.0.1:base_port + i` (or, when `base_port`
    /// is 0, a port the OS reports free), writes `dir/cluster.toml` and returns the config.
    /// Refuses to overwrite any file (see [`ClusterConfig::local_with`]).
    pub fn local(parties: &[String], dir: &Path, base_port: u16) -> Result<ClusterConfig> {
        ClusterConfig::local_with(parties, dir, base_port, keys::Existing::Refuse)
    }

    /// [`ClusterConfig::local`], refusing existing files or replacing them all as `existing`
    /// says. Replacing also removes the certificates and keys of parties that the old cluster
    /// file of `dir` lists and `parties` does not: none signed by an old CA is left behind.
    pub fn local_with(
        parties: &[String],
        dir: &Path,
        base_port: u16,
        existing: keys::Existing,
    ) -> Result<ClusterConfig> {
        let mut files = keys::files(parties);
        files.push(CLUSTER_FILE.to_string());
        keys::prepare_dir(dir, &files, existing)?;
        if existing == keys::Existing::Replace {
            remove_stale(parties, dir)?;
        }
        keys::generate(parties, dir, existing)?;
        let ports = if base_port == 0 {
            free_ports(parties.len())?
        } else {
            (0..parties.len())
                .map(|i| {
                    u16::try_from(usize::from(base_port) + i)
                        .map_err(|_| config("base_port", format!("{base_port} + {i} > 65535")))
                })
                .collect::<Result<Vec<_>>>()?
        };
        let cfg = ClusterConfig {
            ca: PathBuf::from(keys::CA_FILE),
            parties: parties
                .iter()
                .zip(ports)
                .map(|(name, port)| {
                    let party = PartyConfig {
                        address: format!("127.0.0.1:{port}"),
                        cert: PathBuf::from(keys::cert_file(name)),
                        key: PathBuf::from(keys::key_file(name)),
                    };
                    (name.clone(), party)
                })
                .collect(),
        };
        let path = dir.join(CLUSTER_FILE);
        keys::write_file(&path, &cfg.to_toml()?, keys::Access::Public, existing)?;
        ClusterConfig::load(&path)
    }
}

/// Removes from `dir` the certificate and key of every party that its cluster file lists and
/// `parties` does not (only files named as [`keys::generate`] names them, in `dir`).
fn remove_stale(parties: &[String], dir: &Path) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(dir.join(CLUSTER_FILE)) else {
        return Ok(());
    };
    let Ok(old) = toml::from_str::<ClusterConfig>(&text) else {
        return Ok(());
    };
    for name in old.parties.keys().filter(|p| !parties.contains(p)) {
        if keys::check_party_name(name).is_err() {
            continue;
        }
        for file in [keys::cert_file(name), keys::key_file(name)] {
            let path = dir.join(file);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(RuntimeError::Io {
                        context: format!("removing the stale {}", path.display()),
                        source: e,
                    })
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// `n` distinct UDP ports on 127.0.0.1 that the OS reports free (held open until all are chosen).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let sockets = (0..n)
        .map(|_| {
            UdpSocket::bind("127.0.0.1:0").map_err(|source| RuntimeError::Io {
                context: "asking the OS for a free UDP port on 127.0.0.1".into(),
                source,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    sockets
        .iter()
        .map(|s| {
            s.local_addr()
                .map(|a| a.port())
                .map_err(|source| RuntimeError::Io {
                    context: "reading a bound UDP port".into(),
                    source,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_cluster_round_trips_and_errors_name_fields() {
        let dir = tempfile::tempdir().unwrap();
        let parties = vec!["server0".to_string(), "server1".to_string()];
        let cfg = ClusterConfig::local(&parties, dir.path(), 0).unwrap();
        assert_eq!(cfg.parties.len(), 2);
        assert!(cfg.ca.is_absolute() && cfg.ca.exists());
        assert_eq!(
            cfg.socket_addr("server1").unwrap().ip().to_string(),
            "127.0.0.1"
        );
        let err = cfg.party("helper").unwrap_err().to_string();
        assert!(err.contains("helper") && err.contains("server0"), "{err}");

        let bad = "ca = \"ca.pem\"\n[parties.server0]\naddress = \"nowhere\"\ncert = \"a\"\nkey = \"b\"\n";
        let err = ClusterConfig::parse(bad, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("parties.server0.address"), "{err}");
        let err = ClusterConfig::parse("ca = \"x\"\n[parties.s0]\naddress = \"h:1\"\n", dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field"), "{err}");
    }
}
