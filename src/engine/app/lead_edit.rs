//! Leads typed by hand: the fields of a new lead ([`NewLeadFields`] → [`LeadDraft`]) and
//! `field=value` changes to a stored one ([`LeadChange`]), validated by the same rules as an
//! import. Errors are [`Error::Invalid`] naming the field (`total_spend`, `metadata.city`), so
//! each front end can name it in its own syntax.

use crate::engine::error::{Error, Result};
use crate::engine::lead::{Lead, LeadDraft, union_into};
use crate::engine::normalize::{
    metadata_key, normalize_email, parse_amount, parse_count, parse_date, parse_tags, split_multi,
};
use crate::engine::phone::{Region, normalize_phone};

/// A new lead's fields as typed, before validation.
#[derive(Debug, Clone, Default)]
pub struct NewLeadFields {
    pub name: Option<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub total_spend: Option<String>,
    pub visits: Option<String>,
    pub last_order_at: Option<String>,
    pub tags: Vec<String>,
    /// `KEY=VALUE` pairs kept in metadata.
    pub meta: Vec<String>,
}

/// The fields a change may set, for messages.
pub const CHANGE_FIELDS: &str = "name, emails, phones, tags, total_spend, visits, last_order_at or metadata.KEY";

impl NewLeadFields {
    /// Validates and normalizes the fields (phones written nationally are read in `region`)
    /// by the rules an import applies, limits included.
    pub fn into_draft(self, region: Option<Region>) -> Result<LeadDraft> {
        let draft = self.normalized(region)?;
        crate::engine::field_rules::check_draft(&draft).map_err(Error::Usage)?;
        Ok(draft)
    }

    fn normalized(self, region: Option<Region>) -> Result<LeadDraft> {
        let name = self.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        let mut draft = LeadDraft { name, ..Default::default() };
        for e in self.emails.iter().flat_map(|e| split_multi(e)) {
            let email = normalize_email(e).map_err(|r| Error::invalid("email", format!("'{e}' {r}")))?;
            union_into(&mut draft.emails, &[email]);
        }
        for p in self.phones.iter().flat_map(|p| split_multi(p)) {
            let phone = normalize_phone(p, region).map_err(|r| Error::invalid("phone", format!("'{p}' {r}")))?;
            union_into(&mut draft.phones, &[phone]);
        }
        if draft.emails.is_empty() && draft.phones.is_empty() {
            return Err(Error::invalid("", "a lead needs at least one email or phone to identify it"));
        }
        draft.total_spend =
            self.total_spend.map(|v| parse_amount(&v)).transpose().map_err(|r| Error::invalid("total_spend", r))?;
        draft.visits = self.visits.map(|v| parse_count(&v)).transpose().map_err(|r| Error::invalid("visits", r))?;
        draft.last_order_at =
            self.last_order_at.map(|v| parse_date(&v)).transpose().map_err(|r| Error::invalid("last_order_at", r))?;
        for tag in self.tags.iter().flat_map(|t| parse_tags(t)) {
            union_into(&mut draft.tags, &[tag]);
        }
        for kv in &self.meta {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| Error::invalid("meta", format!("'{kv}' should look like KEY=VALUE")))?;
            let key = metadata_key(k);
            if key.is_empty() {
                return Err(Error::invalid("meta", format!("'{kv}' has an empty key")));
            }
            draft.metadata.insert(key, v.trim().to_string());
        }
        Ok(draft)
    }
}

/// One `field=value` change to a stored lead.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadChange {
    pub field: String,
    pub value: String,
}

impl LeadChange {
    /// Reads `field=value`.
    pub fn parse(assignment: &str) -> Result<LeadChange> {
        let (field, value) = assignment
            .split_once('=')
            .ok_or_else(|| Error::invalid("", format!("'{assignment}' should look like field=value")))?;
        Ok(LeadChange { field: field.trim().to_string(), value: value.trim().to_string() })
    }

    /// Applies the change to `lead` (phones written nationally are read in `region`).
    pub fn apply(&self, lead: &mut Lead, region: Option<Region>) -> Result<()> {
        let (field, value) = (self.field.as_str(), self.value.as_str());
        let bad = |r: String| Error::invalid(field, r);
        match field {
            "name" => lead.name = value.to_string(),
            "emails" | "email" => {
                lead.emails = split_multi(value)
                    .map(|e| normalize_email(e).map_err(|r| bad(format!("'{e}' {r}"))))
                    .collect::<Result<_>>()?;
                lead.emails.dedup();
            }
            "phones" | "phone" => {
                lead.phones = split_multi(value)
                    .map(|p| normalize_phone(p, region).map_err(|r| bad(format!("'{p}' {r}"))))
                    .collect::<Result<_>>()?;
                lead.phones.dedup();
            }
            "tags" => lead.tags = parse_tags(value),
            "total_spend" => lead.total_spend = parse_amount(value).map_err(bad)?,
            "visits" => lead.visits = parse_count(value).map_err(bad)?,
            "last_order_at" => {
                lead.last_order_at = if value.is_empty() { None } else { Some(parse_date(value).map_err(bad)?) }
            }
            f if f.starts_with("metadata.") => {
                let key = metadata_key(&f["metadata.".len()..]);
                if key.is_empty() {
                    return Err(bad("needs a key, as in metadata.city=Lagos".into()));
                }
                if value.is_empty() {
                    lead.metadata.remove(&key);
                } else {
                    lead.metadata.insert(key, value.to_string());
                }
            }
            other => return Err(Error::invalid("", format!("unknown field '{other}'; expected {CHANGE_FIELDS}"))),
        }
        Ok(())
    }
}
