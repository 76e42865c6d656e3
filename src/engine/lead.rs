//! The lead: a customer record, and the merge rules that make imports idempotent.
//!
//! A lead is identified by any of its normalized emails or phones ([`Lead::identity_keys`]).
//! Imports and `leads add` produce a [`LeadDraft`]; [`LeadDraft::apply_to`] folds a draft into
//! an existing lead under a [`ConflictPolicy`] and reports whether anything changed, so that
//! re-running an import changes nothing and bumps no timestamps.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Numeric id assigned by the store, stable for the lead's life.
pub type LeadId = i64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
pub struct Lead {
    #[cfg_attr(feature = "api", schema(value_type = i64))]
    pub id: LeadId,
    pub name: String,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub total_spend: f64,
    pub visits: i64,
    #[serde(with = "opt_time")]
    #[cfg_attr(feature = "api", schema(value_type = Option<String>, format = DateTime))]
    pub last_order_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    #[serde(with = "time")]
    #[cfg_attr(feature = "api", schema(value_type = String, format = DateTime))]
    pub created_at: DateTime<Utc>,
    #[serde(with = "time")]
    #[cfg_attr(feature = "api", schema(value_type = String, format = DateTime))]
    pub updated_at: DateTime<Utc>,
}

/// What to do when an incoming lead matches a stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictPolicy {
    /// Union of emails, phones and tags; the incoming non-empty values replace stored ones.
    #[default]
    Merge,
    /// Keep the stored lead untouched.
    Skip,
    /// Replace the stored lead's fields with the incoming ones (id and created_at are kept).
    Overwrite,
}

/// A lead as it arrives (from a CSV row or `leads add`), already normalized and validated.
/// `None` and empty values mean "not given": they never erase stored data in a merge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadDraft {
    pub name: Option<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub total_spend: Option<f64>,
    pub visits: Option<i64>,
    pub last_order_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// The identity key of an email or a phone, as the stores index them.
pub fn email_key(email: &str) -> String {
    format!("{EMAIL_KEY}{email}")
}
pub fn phone_key(phone: &str) -> String {
    format!("{PHONE_KEY}{phone}")
}
/// What an identity key starts with: an email's, a phone's.
pub const EMAIL_KEY: &str = "e:";
pub const PHONE_KEY: &str = "p:";

impl Lead {
    pub fn identity_keys(&self) -> Vec<String> {
        keys_of(&self.emails, &self.phones)
    }

    /// Whether `key` (an identity key, `e:…` or `p:…`) is one of this lead's.
    pub fn has_identity_key(&self, key: &str) -> bool {
        self.identity_keys().iter().any(|k| k == key)
    }

    /// The first word of the name, for templates and greetings.
    pub fn first_name(&self) -> &str {
        self.name.split_whitespace().next().unwrap_or("")
    }
}

fn keys_of(emails: &[String], phones: &[String]) -> Vec<String> {
    emails.iter().map(|e| email_key(e)).chain(phones.iter().map(|p| phone_key(p))).collect()
}

impl LeadDraft {
    pub fn identity_keys(&self) -> Vec<String> {
        keys_of(&self.emails, &self.phones)
    }

    /// A new lead from this draft.
    pub fn into_lead(self, id: LeadId, now: DateTime<Utc>) -> Lead {
        Lead {
            id,
            name: self.name.unwrap_or_default(),
            emails: self.emails,
            phones: self.phones,
            total_spend: self.total_spend.unwrap_or(0.0),
            visits: self.visits.unwrap_or(0),
            last_order_at: self.last_order_at,
            tags: self.tags,
            metadata: self.metadata,
            created_at: self.created_at.unwrap_or(now),
            updated_at: now,
        }
    }

    /// Folds this draft into `lead` under `policy`. Returns true when the lead changed
    /// (and only then moves `updated_at`).
    pub fn apply_to(&self, lead: &mut Lead, policy: ConflictPolicy, now: DateTime<Utc>) -> bool {
        let before = lead.clone();
        match policy {
            ConflictPolicy::Skip => return false,
            ConflictPolicy::Merge => self.merge_into(lead),
            ConflictPolicy::Overwrite => {
                let kept = (lead.id, lead.created_at);
                *lead = self.clone().into_lead(kept.0, now);
                lead.created_at = kept.1;
            }
        }
        lead.updated_at = before.updated_at;
        let changed = *lead != before;
        if changed {
            lead.updated_at = now;
        }
        changed
    }

    fn merge_into(&self, lead: &mut Lead) {
        if let Some(name) = self.name.as_ref().filter(|n| !n.is_empty()) {
            lead.name.clone_from(name);
        }
        union_into(&mut lead.emails, &self.emails);
        union_into(&mut lead.phones, &self.phones);
        union_into(&mut lead.tags, &self.tags);
        if let Some(v) = self.total_spend {
            lead.total_spend = v;
        }
        if let Some(v) = self.visits {
            lead.visits = v;
        }
        if self.last_order_at.is_some() {
            lead.last_order_at = self.last_order_at;
        }
        for (k, v) in &self.metadata {
            if !v.is_empty() {
                lead.metadata.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Appends the values of `extra` missing from `into`, keeping first-seen order.
pub fn union_into(into: &mut Vec<String>, extra: &[String]) {
    for value in extra {
        if !into.contains(value) {
            into.push(value.clone());
        }
    }
}

/// RFC 3339 timestamps in UTC with millisecond precision at most (`2024-05-01T09:30:00Z`).
pub fn format_time(t: &DateTime<Utc>) -> String {
    // Stores keep milliseconds; a fresh `Utc::now()` has nanoseconds, which `leads add --json`
    // would otherwise print although `leads show` of the same lead never can.
    use chrono::SubsecRound;
    t.trunc_subsecs(3).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

mod time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }
}

mod opt_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format_time(t)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => DateTime::parse_from_rfc3339(&text)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Lead {
        let t = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        LeadDraft {
            name: Some("Ada Lovelace".into()),
            emails: vec!["ada@example.com".into()],
            phones: vec!["+447700900123".into()],
            total_spend: Some(10.0),
            tags: vec!["vip".into()],
            ..Default::default()
        }
        .into_lead(7, t)
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("valid")
    }

    #[test]
    fn merge_unions_lists_and_takes_new_scalars() {
        let mut lead = stored();
        let draft = LeadDraft {
            emails: vec!["ada@work.example".into(), "ada@example.com".into()],
            total_spend: Some(99.5),
            tags: vec!["newsletter".into()],
            ..Default::default()
        };
        assert!(draft.apply_to(&mut lead, ConflictPolicy::Merge, now()));
        assert_eq!(lead.emails, ["ada@example.com", "ada@work.example"]);
        assert_eq!(lead.tags, ["vip", "newsletter"]);
        assert_eq!(lead.total_spend, 99.5);
        assert_eq!(lead.name, "Ada Lovelace", "an absent name never erases");
        assert_eq!(lead.updated_at, now());
    }

    #[test]
    fn merging_the_same_data_changes_nothing() {
        let mut lead = stored();
        let before = lead.clone();
        let draft = LeadDraft {
            name: Some("Ada Lovelace".into()),
            emails: vec!["ada@example.com".into()],
            total_spend: Some(10.0),
            ..Default::default()
        };
        assert!(!draft.apply_to(&mut lead, ConflictPolicy::Merge, now()));
        assert_eq!(lead, before, "updated_at must not move");
    }

    #[test]
    fn overwrite_replaces_but_keeps_id_and_creation() {
        let mut lead = stored();
        let draft = LeadDraft { emails: vec!["ada@example.com".into()], ..Default::default() };
        assert!(draft.apply_to(&mut lead, ConflictPolicy::Overwrite, now()));
        assert_eq!(lead.id, 7);
        assert!(lead.phones.is_empty() && lead.tags.is_empty() && lead.name.is_empty());
        assert_eq!(lead.created_at, stored().created_at);
    }

    #[test]
    fn skip_never_changes() {
        let mut lead = stored();
        let draft = LeadDraft { name: Some("Other".into()), ..Default::default() };
        assert!(!draft.apply_to(&mut lead, ConflictPolicy::Skip, now()));
        assert_eq!(lead, stored());
    }

    #[test]
    fn json_uses_the_documented_field_names() {
        let json = serde_json::to_value(stored()).expect("serializes");
        let keys: Vec<_> = json.as_object().expect("object").keys().cloned().collect();
        for field in [
            "id",
            "name",
            "emails",
            "phones",
            "total_spend",
            "visits",
            "last_order_at",
            "tags",
            "metadata",
            "created_at",
            "updated_at",
        ] {
            assert!(keys.contains(&field.to_string()), "{field} missing from {keys:?}");
        }
        assert_eq!(json["created_at"], "2023-11-14T22:13:20Z");
        let fine = DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("valid");
        assert_eq!(format_time(&fine), "2023-11-14T22:13:20.123Z", "milliseconds at most");
    }
}
