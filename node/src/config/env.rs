//! `AIRBLOC_*` variables that look like node settings but name none.
//!
//! clap reads the variables declared on [`ConfigArgs`]; a misspelt one (`AIRBLOC_CHAIN_CONFIRMATOINS`)
//! would be silently ignored. Variables under a settings section's prefix must name a setting.
//! Other `AIRBLOC_*` variables — the keystore password, the CLI's `AIRBLOC_RPC_URL` and
//! `AIRBLOC_KEYSTORE_DIR`, test switches — are not the node's to judge.

use super::{ConfigArgs, ConfigError};
use clap::{Args, Command};
use std::ffi::OsString;

/// Sections whose variables are all node settings (`AIRBLOC_<SECTION>_…`). The keystore section
/// is absent: its prefix is shared with the password variable and the CLI's keystore directory.
const SECTIONS: &[&str] = &["CHAIN", "P2P", "API", "METRICS", "LOG", "PROVIDER"];

/// Fails on the first `AIRBLOC_<SECTION>_*` variable in `vars` that names no setting.
pub fn check_environment(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<(), ConfigError> {
    let command = ConfigArgs::augment_args(Command::new("airblocd"));
    let known: Vec<String> =
        command.get_arguments().filter_map(|arg| arg.get_env()).map(|env| env.to_string_lossy().into_owned()).collect();
    for (name, _) in vars {
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("AIRBLOC_") else { continue };
        let Some(section) = SECTIONS.iter().find(|s| rest.strip_prefix(**s).is_some_and(|r| r.starts_with('_'))) else {
            continue;
        };
        if !known.iter().any(|k| k == name) {
            let prefix = format!("AIRBLOC_{section}_");
            let siblings: Vec<&str> = known.iter().filter(|k| k.starts_with(&prefix)).map(String::as_str).collect();
            return Err(ConfigError::UnknownEnv {
                name: name.to_owned(),
                section: section.to_lowercase(),
                known: siblings.join(", "),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vars(names: &[&str]) -> Vec<(OsString, OsString)> {
        names.iter().map(|n| (OsString::from(n), OsString::from("x"))).collect()
    }

    #[test]
    fn declared_and_foreign_variables_pass() {
        let ok = [
            "AIRBLOC_CHAIN_RPC_URL",
            "AIRBLOC_P2P_MAX_CONNECTIONS",
            "AIRBLOC_KEYSTORE_PASSWORD",
            "AIRBLOC_KEYSTORE_DIR",
            "AIRBLOC_RPC_URL",
            "AIRBLOC_CHAINS",
            "AIRBLOC_FOUNDRY_BIN",
            "PATH",
        ];
        check_environment(vars(&ok)).unwrap();
    }

    #[test]
    fn a_misspelt_setting_is_named_with_its_siblings() {
        let err = check_environment(vars(&["AIRBLOC_CHAIN_CONFIRMATOINS"])).unwrap_err().to_string();
        assert!(err.contains("AIRBLOC_CHAIN_CONFIRMATOINS"), "{err}");
        assert!(err.contains("AIRBLOC_CHAIN_CONFIRMATIONS"), "{err}");
        assert!(!err.contains("AIRBLOC_P2P_"), "{err}");
    }
}
