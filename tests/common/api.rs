//! A running `crm serve` and a client holding a valid token, for the HTTP API tests.

use super::processes::{API_SECRET, Proc, start_serve};
use super::{Crm, describe};
use serde_json::Value;

pub struct Api {
    pub server: Proc,
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn start(crm: &Crm) -> Api {
        Api::start_with(crm, &[])
    }

    /// `crm serve ARGS` and a token from `crm auth token`.
    pub fn start_with(crm: &Crm, args: &[&str]) -> Api {
        let (server, base) = start_serve(crm, args);
        let out = crm.bare().env("CRM_JWT_SECRET", API_SECRET).args(["auth", "token", "--user", "tester"]).output();
        let out = out.expect("run crm auth token");
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Api { server, base, token, client: reqwest::Client::new() }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }
}

/// A store with three leads (ids 1–3).
pub fn three_leads() -> Crm {
    let crm = Crm::new();
    let csv = "Name,Email,Phone,Total Spent,Visits,Tags\n\
               Ada Lovelace,ada@example.com,+447911123456,500,3,vip\n\
               Grace Hopper,grace@navy.example,+12125551234,1500.25,9,vip\n\
               Alan Turing,alan@example.com,+447472178805,50,1,\n";
    crm.import(&crm.write("in.csv", csv), &[], 0);
    crm
}

pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}
