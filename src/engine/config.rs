//! Configuration in one layering: defaults < config file < `CRM_*` environment < flags.
//!
//! [`Config::load`] records where each value came from, so `crm config show` can say why a
//! setting has the value it has. Secrets inside URLs are redacted when shown.

use crate::engine::error::{Error, Result};
use crate::engine::phone::Region;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Settings as written in the config file (TOML); every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    store: Option<String>,
    bus: Option<String>,
    default_region: Option<String>,
}

/// Values given on the command line (already merged by clap; `None` when absent).
#[derive(Debug, Clone, Default)]
pub struct FlagConfig {
    pub store: Option<String>,
    pub bus: Option<String>,
    pub config_file: Option<PathBuf>,
}

/// Where a value came from.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Default,
    File,
    Env,
    Flag,
}

#[derive(Debug, Clone, Serialize)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Store URL: a path, `sqlite:PATH`, or `mongodb://…`.
    pub store: Setting<String>,
    /// Bus URL: `embedded` or `kafka://host:port,…`.
    pub bus: Setting<String>,
    /// Region for phone numbers written without a country code.
    pub default_region: Setting<Option<String>>,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
}

/// The default data file: `crm.db` in the platform data directory.
pub fn default_store_path() -> PathBuf {
    directories::ProjectDirs::from("", "", "crm")
        .map(|d| d.data_dir().join("crm.db"))
        .unwrap_or_else(|| PathBuf::from("crm.db"))
}

/// The config file read when `--config`/`CRM_CONFIG` is not given (used only if it exists).
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "crm").map(|d| d.config_dir().join("config.toml"))
}

impl Config {
    /// Loads the effective configuration. `env` is the process environment (a parameter so
    /// tests can give their own).
    pub fn load(flags: &FlagConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let mut config = Config {
            store: Setting { value: format!("sqlite:{}", default_store_path().display()), source: Source::Default },
            bus: Setting { value: "embedded".into(), source: Source::Default },
            default_region: Setting { value: None, source: Source::Default },
            config_file: None,
        };
        let explicit = flags.config_file.clone().or_else(|| env("CRM_CONFIG").map(PathBuf::from));
        let file_path = match explicit {
            Some(path) => Some(path),
            None => default_config_path().filter(|p| p.exists()),
        };
        if let Some(path) = file_path {
            let file = read_file(&path)?;
            set(&mut config.store, file.store, Source::File);
            set(&mut config.bus, file.bus, Source::File);
            if let Some(r) = file.default_region {
                config.default_region = Setting { value: Some(r), source: Source::File };
            }
            config.config_file = Some(path);
        }
        set(&mut config.store, env("CRM_STORE").filter(|s| !s.is_empty()), Source::Env);
        set(&mut config.bus, env("CRM_BUS").filter(|s| !s.is_empty()), Source::Env);
        if let Some(r) = env("CRM_DEFAULT_REGION").filter(|s| !s.is_empty()) {
            config.default_region = Setting { value: Some(r), source: Source::Env };
        }
        set(&mut config.store, flags.store.clone(), Source::Flag);
        set(&mut config.bus, flags.bus.clone(), Source::Flag);
        config.region()?;
        if config.bus.value != "embedded" && !config.bus.value.starts_with("kafka://") {
            return Err(Error::Usage(format!(
                "bus '{}' ({}): expected 'embedded' or kafka://HOST:PORT",
                config.bus.value,
                source_name(&config.bus.source)
            )));
        }
        Ok(config)
    }

    /// The default region, validated.
    pub fn region(&self) -> Result<Option<Region>> {
        match &self.default_region.value {
            None => Ok(None),
            Some(r) => r.parse().map(Some).map_err(|e| {
                Error::Usage(format!("default_region ({}): {e}", source_name(&self.default_region.source)))
            }),
        }
    }
}

fn set(setting: &mut Setting<String>, value: Option<String>, source: Source) {
    if let Some(value) = value {
        *setting = Setting { value, source };
    }
}

fn source_name(source: &Source) -> &'static str {
    match source {
        Source::Default => "default",
        Source::File => "config file",
        Source::Env => "environment",
        Source::Flag => "command line",
    }
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        Error::Usage(format!("config file {}: {e}\nvalid keys: store, bus, default_region", path.display()))
    })
}

/// `mongodb://user:secret@host` → `mongodb://user:***@host`.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((auth, host)) = rest.split_once('@') {
            if let Some((user, _)) = auth.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_string()
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(source_name(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn layering_is_defaults_file_env_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "store = \"file.db\"\nbus = \"kafka://k:9092\"\ndefault_region = \"NG\"\n")
            .expect("write");
        let flags = FlagConfig { config_file: Some(file.clone()), ..Default::default() };
        let c = Config::load(&flags, &env_of(&[])).expect("loads");
        assert_eq!((c.store.value.as_str(), &c.store.source), ("file.db", &Source::File));
        let c = Config::load(&flags, &env_of(&[("CRM_STORE", "env.db")])).expect("loads");
        assert_eq!((c.store.value.as_str(), &c.store.source), ("env.db", &Source::Env));
        assert_eq!(c.bus.source, Source::File);
        let flags = FlagConfig { store: Some("flag.db".into()), ..flags };
        let c = Config::load(&flags, &env_of(&[("CRM_STORE", "env.db")])).expect("loads");
        assert_eq!((c.store.value.as_str(), &c.store.source), ("flag.db", &Source::Flag));
        assert_eq!(c.region().expect("valid").map(|r| r.to_string()).as_deref(), Some("NG"));
    }

    #[test]
    fn bad_files_and_values_are_usage_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "stor = 1\n").expect("write");
        let flags = FlagConfig { config_file: Some(file), ..Default::default() };
        let err = Config::load(&flags, &env_of(&[])).unwrap_err().to_string();
        assert!(err.contains("valid keys"), "{err}");
        let err = Config::load(&FlagConfig::default(), &env_of(&[("CRM_DEFAULT_REGION", "ZZ")])).unwrap_err();
        assert!(err.to_string().contains("environment"), "{err}");
        let missing = FlagConfig { config_file: Some("/nonexistent/c.toml".into()), ..Default::default() };
        assert!(Config::load(&missing, &env_of(&[])).is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(redact("mongodb://app:hunter2@db:27017/crm"), "mongodb://app:***@db:27017/crm");
        assert_eq!(redact("sqlite:/tmp/x.db"), "sqlite:/tmp/x.db");
    }
}
