//! `crm config show`: defaults < config file < `CRM_*` environment < flags, and where each
//! value came from.

use crate::common::{Crm, describe, stderr, stdout};
use serde_json::{Value, json};

fn show_json(crm: &Crm, cmd: &mut assert_cmd::Command) -> Value {
    let out = cmd.args(["--json", "config", "show"]).output().expect("run crm");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stderr(&out), "");
    assert!(!crm.store().exists(), "config show must not open the store");
    serde_json::from_slice(&out.stdout).expect("config show --json prints JSON")
}

fn setting(value: &str, source: &str) -> Value {
    json!({ "value": value, "source": source })
}

/// The `worker` settings and `channels` when nothing sets them.
/// `[webhook]` with nothing configured: no public URL, the default stop words.
fn default_webhook() -> Value {
    let words =
        ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "PARAR", "CANCELAR", "SAIR", "BAJA"];
    json!({ "public_url": { "value": null, "source": "default" }, "stop_words": { "value": words, "source": "default" } })
}

/// `[api]` with nothing configured (the secret is never shown, only whether one is set).
fn default_api() -> Value {
    json!({
        "listen": setting("127.0.0.1:8080", "default"),
        "jwt_secret": { "value": null, "source": "default" },
        "cors_origins": { "value": [], "source": "default" },
    })
}

fn default_worker_and_channels() -> (Value, Value) {
    let n = |v: u64| json!({ "value": v, "source": "default" });
    let none = json!({ "value": null, "source": "default" });
    let worker = json!({
        "rate_per_minute": n(30), "concurrency": n(5), "max_attempts": n(5), "backoff_base_ms": n(1000),
        "backoff_cap_ms": n(60000), "breaker_cooldown_ms": n(30000), "lease_ms": n(30000),
        "sim_url": setting("http://127.0.0.1:8089", "default"), "callback_url": none.clone(), "webhook_listen": none,
    });
    let channels = json!({ "sim": {
        "kind": "sim", "url": "http://127.0.0.1:8089", "rate_per_minute": null, "concurrency": null, "settings": {},
    }});
    (worker, channels)
}

#[test]
fn defaults_when_nothing_is_configured() {
    let crm = Crm::new();
    let config = show_json(&crm, &mut crm.bare());
    let default_store = format!("sqlite:{}", crm.path("xdg/data/crm/crm.db").display());
    let (worker, channels) = default_worker_and_channels();
    let expected = json!({
        "store": setting(&default_store, "default"),
        "bus": setting("embedded", "default"),
        "default_region": { "value": null, "source": "default" },
        "worker": worker,
        "api": default_api(),
        "webhook": default_webhook(),
        "channels": channels,
        "config_file": null,
    });
    assert_eq!(config, expected);
}

#[test]
fn flag_beats_env_beats_file() {
    let crm = Crm::new();
    let file = crm.write("crm.toml", "store = \"x.db\"\ndefault_region = \"NG\"\n");
    let file_arg = file.to_str().expect("utf-8");
    let region = json!({ "value": "NG", "source": "file" });

    let config = show_json(&crm, crm.bare().args(["--config", file_arg]));
    let (worker, channels) = default_worker_and_channels();
    let expected = json!({
        "store": setting("x.db", "file"), "bus": setting("embedded", "default"),
        "default_region": region, "worker": worker, "api": default_api(), "webhook": default_webhook(),
        "channels": channels,
        "config_file": file_arg,
    });
    assert_eq!(config, expected);

    let config = show_json(&crm, crm.bare().env("CRM_STORE", "env.db").args(["--config", file_arg]));
    assert_eq!(config["store"], setting("env.db", "env"));
    let config = show_json(&crm, crm.bare().env("CRM_CONFIG", file_arg).env("CRM_DEFAULT_REGION", "gb"));
    assert_eq!((&config["store"], &config["config_file"]), (&setting("x.db", "file"), &json!(file_arg)));
    assert_eq!(config["default_region"], setting("gb", "env"));
    let mut cmd = crm.bare();
    cmd.env("CRM_STORE", "env.db").args(["--config", file_arg, "--store", "flag.db"]);
    assert_eq!(show_json(&crm, &mut cmd)["store"], setting("flag.db", "flag"));
}

#[test]
fn text_output_says_where_each_value_comes_from() {
    let crm = Crm::new();
    let file = crm.write("crm.toml", "store = \"x.db\"\n");
    let out = crm.bare().env("CRM_BUS", "kafka://k:9092").args(["--config", "crm.toml", "config", "show"]).output();
    let out = out.expect("run crm");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "store                       = x.db                                     # from config file",
            "bus                         = kafka://k:9092                           # from environment",
            "default_region              = (none)                                   # from default",
        ]
    );
    assert!(lines.contains(&"worker.rate_per_minute      = 30                                       # from default"));
    assert!(lines.contains(&"channels.sim                = kind=sim url=http://127.0.0.1:8089       # from default"));
    assert_eq!(lines.last(), Some(&"config file                 = crm.toml"), "{text}");
    assert!(file.exists());
}

#[test]
fn the_default_config_file_is_read_when_present() {
    let crm = Crm::new();
    crm.write("xdg/config/crm/config.toml", "default_region = \"GB\"\n");
    let config = show_json(&crm, &mut crm.bare());
    assert_eq!(config["default_region"], setting("GB", "file"));
    let input = crm.write("in.csv", "Email,Phone\nada@example.com,07911 123456\n");
    assert_eq!(crm.import(&input, &[], 0)["accepted"], 1, "the file's region applies to imports");
    assert_eq!(crm.show("+447911123456")["id"], 1);
}

#[test]
fn bad_configuration_exits_2() {
    let crm = Crm::new();
    crm.write("bad.toml", "stor = \"x.db\"\n");
    let fails = |env: &[(&str, &str)], args: &[&str], message: &str| {
        let out = crm.bare().envs(env.iter().copied()).args(args).args(["config", "show"]).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{env:?} {args:?}\n{}", describe(&out));
        assert_eq!(stdout(&out), "");
        let err = stderr(&out);
        assert!(err.starts_with(message) || err.ends_with(message), "{env:?} {args:?}: {err}");
    };
    fails(&[], &["--config", "bad.toml"], "credentials)\n");
    let err = stderr(&crm.bare().args(["--config", "bad.toml", "config", "show"]).output().expect("run"));
    assert!(err.contains("valid keys: store, bus, default_region, [worker] (rate_per_minute"), "{err}");
    fails(&[], &["--config", "nowhere.toml"], "error: cannot read config file nowhere.toml: ");
    fails(&[("CRM_DEFAULT_REGION", "ZZ")], &[], "error: default_region (environment): unknown region 'ZZ'");
    fails(&[("CRM_BUS", "amqp://q")], &[], "error: bus 'amqp://q' (environment): expected 'embedded' or kafka://");
}
