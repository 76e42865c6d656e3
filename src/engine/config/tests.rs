use super::*;

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
}

#[test]
fn layering_is_defaults_file_env_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "store = \"file.db\"\nbus = \"kafka://k:9092\"\ndefault_region = \"NG\"\n").expect("write");
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
fn worker_settings_layer_like_every_other_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[worker]\nrate_per_minute = 120\nconcurrency = 8\nwebhook_listen = \"127.0.0.1:8090\"\n\
         [channels.sim]\nurl = \"http://sim.local:9000\"\n",
    )
    .expect("write");
    let flags = FlagConfig { config_file: Some(file), ..Default::default() };
    let c = Config::load(&flags, &env_of(&[])).expect("loads");
    assert_eq!(c.worker.rate_per_minute, Setting { value: 120, source: Source::File });
    assert_eq!(c.worker.concurrency.value, 8);
    assert_eq!(c.worker.max_attempts, Setting { value: 5, source: Source::Default });
    assert_eq!(c.worker.sim_url, Setting { value: "http://sim.local:9000".to_string(), source: Source::File });
    assert_eq!(c.webhook_listen(), "127.0.0.1:8090".parse().ok());
    let env = env_of(&[("CRM_RATE_PER_MINUTE", "0"), ("CRM_SIM_URL", "http://env:1")]);
    let c = Config::load(&flags, &env).expect("loads");
    assert_eq!(c.worker.rate_per_minute, Setting { value: 0, source: Source::Env });
    assert_eq!(c.worker.sim_url.source, Source::Env);
    let flags = FlagConfig { worker: WorkerFlags { rate_per_minute: Some(7), ..Default::default() }, ..flags };
    let c = Config::load(&flags, &env).expect("loads");
    assert_eq!(c.worker.rate_per_minute, Setting { value: 7, source: Source::Flag });
}

#[test]
fn bad_files_and_values_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "stor = 1\n").expect("write");
    let flags = FlagConfig { config_file: Some(file.clone()), ..Default::default() };
    let err = Config::load(&flags, &env_of(&[])).unwrap_err().to_string();
    assert!(err.contains("valid keys"), "{err}");
    let err = Config::load(&FlagConfig::default(), &env_of(&[("CRM_DEFAULT_REGION", "ZZ")])).unwrap_err();
    assert!(err.to_string().contains("environment"), "{err}");
    let err = Config::load(&FlagConfig::default(), &env_of(&[("CRM_CONCURRENCY", "many")])).unwrap_err();
    assert!(err.to_string().contains("CRM_CONCURRENCY"), "{err}");
    let missing = FlagConfig { config_file: Some("/nonexistent/c.toml".into()), ..Default::default() };
    assert!(Config::load(&missing, &env_of(&[])).is_err());
    std::fs::write(&file, "[channels.shop]\nurl = \"http://x\"\n").expect("write");
    let err = Config::load(&flags, &env_of(&[])).unwrap_err().to_string();
    assert!(err.contains("needs kind"), "{err}");
    std::fs::write(&file, "[worker]\nwebhook_listen = \"nowhere\"\n").expect("write");
    let err = Config::load(&flags, &env_of(&[])).unwrap_err().to_string();
    assert!(err.contains("HOST:PORT"), "{err}");
}

#[test]
fn secrets_are_redacted() {
    assert_eq!(redact("mongodb://app:hunter2@db:27017/crm"), "mongodb://app:***@db:27017/crm");
    assert_eq!(redact("sqlite:/tmp/x.db"), "sqlite:/tmp/x.db");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[channels.backup]\nkind = \"twilio\"\naccount_sid = \"AC1\"\nauth_token = \"hunter2\"\n")
        .expect("write");
    let flags = FlagConfig { config_file: Some(file), ..Default::default() };
    let c = Config::load(&flags, &env_of(&[])).expect("loads");
    let shown = format!("{:?} {}", c.rows(), c.to_redacted_json());
    assert!(!shown.contains("hunter2") && !shown.contains("AC1"), "{shown}");
    assert!(shown.contains("auth_token=***"), "{shown}");
}

#[test]
fn webhook_settings_and_twilio_credentials_layer_and_stay_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[webhook]\npublic_url = \"https://crm.example.com\"\nstop_words = [\"stop\", \"baixa\"]\n\
         [channels.wa]\nkind = \"whatsapp\"\nfallback = \"twilio\"\nbreaker_failures = 2\n",
    )
    .expect("write");
    let flags = FlagConfig { config_file: Some(file.clone()), ..Default::default() };
    let c = Config::load(&flags, &env_of(&[])).expect("loads");
    assert_eq!(c.webhook.public_url, Setting { value: Some("https://crm.example.com".into()), source: Source::File });
    assert_eq!(c.webhook.stop_words.value, ["stop", "baixa"]);
    assert!(!c.channels.contains_key("twilio"), "no twilio account unless configured");
    let shown = format!("{:?}", c.rows());
    assert!(shown.contains("fallback=twilio") && shown.contains("breaker_failures=2"), "{shown}");
    assert!(shown.contains("webhook.public_url") && shown.contains("webhook.stop_words"), "{shown}");

    let env = env_of(&[
        ("CRM_WEBHOOK_PUBLIC_URL", "https://env.example.com"),
        ("CRM_STOP_WORDS", "STOP, Parar ,,"),
        ("CRM_TWILIO_ACCOUNT_SID", "AC-secret-sid"),
        ("CRM_TWILIO_AUTH_TOKEN", "hunter2"),
        ("CRM_TWILIO_FROM", "whatsapp:+14155238886"),
        ("CRM_TWILIO_API_BASE", "http://127.0.0.1:9"),
    ]);
    let c = Config::load(&flags, &env).expect("loads");
    assert_eq!(c.webhook.public_url.source, Source::Env);
    assert_eq!(c.webhook.stop_words.value, ["STOP", "Parar"]);
    let twilio = c.channels.get("twilio").expect("the variables create the twilio account");
    assert_eq!(twilio.kind(), ChannelKind::Twilio);
    assert_eq!(
        (twilio.setting("auth_token"), twilio.setting("api_base")),
        (Some("hunter2"), Some("http://127.0.0.1:9"))
    );
    let shown = format!("{:?} {}", c.rows(), c.to_redacted_json());
    assert!(
        !shown.contains("hunter2") && !shown.contains("AC-secret-sid") && !shown.contains("+14155238886"),
        "{shown}"
    );
    assert!(shown.contains("api_base=http://127.0.0.1:9"), "{shown}");
    let registry = crate::engine::channel::ChannelRegistry::from_config(&c).expect("builds");
    assert_eq!(registry.require("twilio").map(|a| a.channel.max_length()).ok(), Some(1_600));
    assert_eq!(registry.fallback_for("wa"), Some("twilio"));
    assert_eq!(registry.twilio_accounts().count(), 1);

    std::fs::write(&file, "[webhook]\npublic_url = \"crm.example.com\"\n").expect("write");
    let err = Config::load(&flags, &env_of(&[])).unwrap_err().to_string();
    assert!(err.contains("public_url"), "{err}");
    std::fs::write(&file, "[channels.wa]\nkind = \"whatsapp\"\nfallback = \"nowhere\"\n").expect("write");
    let c = Config::load(&flags, &env_of(&[])).expect("loads");
    let err = crate::engine::channel::ChannelRegistry::from_config(&c).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("fallback"), "{err}");
    std::fs::write(&file, "[channels.twilio]\nauth_token = \"t\"\n").expect("write");
    let c = Config::load(&flags, &env_of(&[])).expect("loads");
    let err = crate::engine::channel::ChannelRegistry::from_config(&c).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("account_sid") && !err.contains("\"t\""), "{err}");
}
