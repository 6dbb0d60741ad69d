//! The cluster file (`ClusterConfig::parse`): what parses names each of its parties and
//! writes back to a file that parses to the same configuration.

use std::path::Path;

use proptest::prelude::*;
use shareflow_runtime::cluster::ClusterConfig;
use shareflow_runtime::RuntimeError;

use crate::mutate::{byte_edits, config, mutated_bytes};

const VALID: &str = r#"ca = "ca.pem"

[parties.server0]
address = "127.0.0.1:4000"
cert = "server0.pem"
key = "server0.key"

[parties."model-owner"]
address = "[::1]:4003"
cert = "/abs/model-owner.pem"
key = "keys/model-owner.key"
"#;

fn check(text: &str) -> Result<(), TestCaseError> {
    let base = Path::new("/cluster");
    match ClusterConfig::parse(text, base) {
        Ok(cfg) => {
            prop_assert!(!cfg.parties.is_empty());
            for name in cfg.parties.keys() {
                prop_assert!(cfg.party(name).is_ok());
            }
            let again = ClusterConfig::parse(&cfg.to_toml().unwrap(), base).unwrap();
            prop_assert_eq!(again, cfg);
        }
        Err(RuntimeError::Config { .. }) => {}
        Err(other) => prop_assert!(false, "not a config error: {other}"),
    }
    Ok(())
}

fn party() -> impl Strategy<Value = String> {
    (
        prop_oneof!["[a-z0-9]{1,8}", "[a-zA-Z0-9._-]{0,12}", ".{0,6}"],
        prop_oneof![
            Just("127.0.0.1:4000".to_string()),
            Just("[::1]:1".to_string()),
            Just(":80".to_string()),
            Just("host:65536".to_string()),
            Just("host:-1".to_string()),
            "[a-z.]{0,10}:[0-9]{0,6}",
            ".{0,12}",
        ],
        ".{0,8}",
    )
        .prop_map(|(name, address, path)| {
            format!("[parties.{name:?}]\naddress = {address:?}\ncert = {path:?}\nkey = \"k\"\n")
        })
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn mutated_files(edits in byte_edits(4)) {
        let bytes = mutated_bytes(VALID.as_bytes(), &edits);
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn generated_files(parties in proptest::collection::vec(party(), 0..4), ca in ".{0,8}") {
        check(&format!("ca = {ca:?}\n{}", parties.concat()))?;
    }

    #[test]
    fn raw_text(text in ".{0,200}") {
        check(&text)?;
    }
}

#[test]
fn the_valid_file_parses() {
    let cfg = ClusterConfig::parse(VALID, Path::new("/cluster")).unwrap();
    assert_eq!(cfg.parties.len(), 2);
    assert!(cfg
        .party("model-owner")
        .unwrap()
        .key
        .ends_with("keys/model-owner.key"));
}
