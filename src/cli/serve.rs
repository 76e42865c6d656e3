//! `crm serve` (the HTTP API) and `crm auth token` (a bearer token for it).

use super::{Context, say};
use crate::api::{self, Auth};
use crate::engine::app::shutdown_signal;
use crate::engine::error::Error;
use crate::engine::store::Access;
use std::sync::Arc;

/// Serve the REST API of the system crm replaces (leads, segments, campaigns, webhooks)
///
/// Every /api/v1 route needs `Authorization: Bearer <token>` (HS256, signed with the secret
/// from CRM_JWT_SECRET or the config file's [api] jwt_secret; mint one with `crm auth token`).
/// GET /health needs none; the webhooks (receipts, Twilio status and inbound replies) check
/// their own signatures. Ctrl-C or SIGTERM stops it gracefully: requests in progress finish.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  export CRM_JWT_SECRET=$(head -c 32 /dev/urandom | base64)\n  \
    crm serve --listen 127.0.0.1:8080 &\n  \
    curl -s -H \"Authorization: Bearer $(crm auth token --user alice)\" localhost:8080/api/v1/leads?limit=5\n  \
    crm serve --insecure-no-auth                 # local experiments only")]
pub struct ServeCmd {
    /// Address to listen on [env: CRM_API_LISTEN; config: [api] listen; default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Serve without authentication (logged loudly; never on a network others reach)
    #[arg(long)]
    pub insecure_no_auth: bool,
}

/// Bearer tokens for `crm serve`
#[derive(Debug, clap::Subcommand)]
pub enum AuthCmd {
    /// Print a token for USER, valid for --ttl (signed with the API's secret)
    #[command(after_help = "Example: crm auth token --user alice --ttl 8h")]
    Token {
        /// Who the token is for (its `sub`)
        #[arg(long, value_name = "NAME")]
        user: String,
        /// How long it is valid: 30m, 24h, 7d …
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = super::parse_duration)]
        ttl: i64,
    },
}

/// `30m`, `24h`, `7d`, `3600s` → seconds.
fn secret(ctx: &Context) -> Result<Vec<u8>, Error> {
    match &ctx.config.api.jwt_secret.value {
        Some(s) if s.len() >= 16 => Ok(s.as_bytes().to_vec()),
        Some(_) => {
            Err(Error::Usage("the API secret (CRM_JWT_SECRET or [api] jwt_secret) needs at least 16 characters".into()))
        }
        None => Err(Error::Usage(
            "no API secret: set CRM_JWT_SECRET (or [api] jwt_secret in the config file), or pass --insecure-no-auth \
             for local use"
                .into(),
        )),
    }
}

impl AuthCmd {
    pub fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let AuthCmd::Token { user, ttl } = self;
        let now = chrono::Utc::now().timestamp();
        let claims = api::auth::Claims { sub: user, iat: now, exp: now + ttl };
        let token = api::auth::mint(&secret(ctx)?, &claims);
        use std::io::Write as _;
        writeln!(std::io::stdout(), "{token}")?;
        Ok(0)
    }
}

impl ServeCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let auth = if self.insecure_no_auth {
            tracing::warn!(
                "Serving WITHOUT authentication (--insecure-no-auth): anyone who reaches it can change data."
            );
            say!("warning: serving without authentication (--insecure-no-auth)");
            Auth::None
        } else {
            Auth::Jwt(Arc::new(secret(ctx)?))
        };
        let addr = ctx.config.api.listen.value.parse().map_err(|_| {
            Error::Usage(format!("listen address '{}': expected HOST:PORT", ctx.config.api.listen.value))
        })?;
        // A server is where a new team's leads first arrive (POST /api/v1/leads/bulk): it may
        // create the store, and says so.
        let app = Arc::new(ctx.app(Access::CreateIfMissing).await?);
        let (trigger, shutdown) = shutdown_signal();
        super::worker::stop_on_signals(trigger);
        let json = ctx.global.json;
        let origins = ctx.config.api.cors_origins.value.clone();
        api::serve(app, auth, addr, &origins, shutdown, move |bound| {
            if json {
                use std::io::Write as _;
                let _ = writeln!(std::io::stdout(), "{}", serde_json::json!({ "listen": bound.to_string() }));
            } else {
                say!("crm serve listening on http://{bound}");
            }
        })
        .await?;
        Ok(0)
    }
}
