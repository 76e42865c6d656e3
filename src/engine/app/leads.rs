//! Lead operations: import (progress reported through [`Progress`], never to a terminal), add,
//! update, delete, the one resolver by id / email / phone, list, count and export.

use super::lead_edit::LeadChange;
#[cfg(doc)]
use super::lead_edit::NewLeadFields;
use super::{App, as_id};
use crate::engine::config::Config;
use crate::engine::error::{Error, Result};
use crate::engine::export::export_csv;
use crate::engine::field_rules;
use crate::engine::files::{AtomicFile, check_output};
use crate::engine::import::{self, ImportOptions, ImportReport, ImportSource, OpenedImport, Progress, run_import};
use crate::engine::lead::{Lead, LeadDraft, LeadId, email_key, phone_key};
use crate::engine::normalize::normalize_email;
use crate::engine::phone::{Region, normalize_phone};
use crate::engine::store::campaigns::Reply;
use crate::engine::store::{LeadFilter, LeadQuery, parse_store_url};
use std::io::Write;
use std::path::Path;
use tracing::info;

/// Where an export goes.
pub enum ExportTarget<'a> {
    /// A file, written beside its target and renamed into place when complete.
    File(&'a Path),
    /// An open stream (stdout), named for messages.
    Stream(&'a mut dyn Write, &'a str),
}

/// What `update_lead` did.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadUpdate {
    pub lead: Lead,
    /// False when the lead already had those values (nothing was written).
    pub changed: bool,
}

/// Checks a CSV as a whole (encoding, separator, header) and creates its errors file, before
/// any store is opened: a file that cannot be imported never creates a store. `input` is the
/// file being read (when it is one): the errors file can never be the input or a file of the
/// configured store.
pub fn open_import(
    config: &Config,
    source: ImportSource,
    input: Option<&Path>,
    options: &ImportOptions,
) -> Result<OpenedImport> {
    if let Some(errors) = &options.errors_file {
        let inputs: Vec<&Path> = input.into_iter().collect();
        check_output("the errors file", errors, &inputs, &parse_store_url(&config.store.value)?)?;
    }
    import::open_import(source, options)
}

impl App {
    /// The region for national phone numbers: `given`, or the configured one.
    pub fn region_or_default(&self, given: Option<Region>) -> Result<Option<Region>> {
        Ok(given.or(self.config().region()?))
    }

    /// Imports a CSV checked by [`open_import`].
    pub async fn import_leads(
        &self,
        opened: OpenedImport,
        options: &ImportOptions,
        progress: &dyn Progress,
    ) -> Result<ImportReport> {
        let r = run_import(self.leads_store(), opened, options, progress).await?;
        let (inserted, updated, skipped, rejected) = (r.inserted, r.updated, r.skipped, r.rejected);
        info!(inserted, updated, skipped, rejected, dry_run = r.dry_run, "Import finished.");
        Ok(r)
    }

    /// Adds a lead checked by [`NewLeadFields::into_draft`]; `Error::Conflict` when one of its
    /// emails or phones belongs to another lead.
    pub async fn add_lead(&self, draft: LeadDraft) -> Result<Lead> {
        let lead = self.leads_store().add_lead(draft).await?;
        info!(lead = lead.id, "Lead added.");
        Ok(lead)
    }

    /// Applies `changes` in order to the lead `reference` names, and saves it if anything changed.
    pub async fn update_lead(
        &self,
        reference: &str,
        changes: &[LeadChange],
        region: Option<Region>,
    ) -> Result<LeadUpdate> {
        let region = self.region_or_default(region)?;
        let mut lead = self.resolve_lead(reference).await?;
        let before = lead.clone();
        for change in changes {
            change.apply(&mut lead, region)?;
        }
        if lead.emails.is_empty() && lead.phones.is_empty() {
            return Err(Error::Usage("a lead needs at least one email or phone".into()));
        }
        field_rules::check_update(&before, &lead).map_err(Error::Usage)?;
        let changed = lead != before;
        if changed {
            lead.updated_at = chrono::Utc::now();
            self.leads_store().save_lead(&lead).await?;
        }
        info!(lead = lead.id, changed, "Lead updated.");
        Ok(LeadUpdate { lead, changed })
    }

    /// Deletes the lead `reference` names; returns it as it was.
    pub async fn delete_lead(&self, reference: &str) -> Result<Lead> {
        let lead = self.resolve_lead(reference).await?;
        self.leads_store().delete_lead(lead.id).await?;
        info!(lead = lead.id, "Lead deleted.");
        Ok(lead)
    }

    /// The lead's latest replies (messages it sent back), newest first.
    pub async fn lead_replies(&self, id: LeadId, limit: usize) -> Result<Vec<Reply>> {
        self.campaign_store().list_replies(id, limit).await
    }

    pub async fn get_lead(&self, id: LeadId) -> Result<Option<Lead>> {
        self.leads_store().get_lead(id).await
    }

    /// The lead a person named: its id (digits only), one of its emails, or one of its phones
    /// (normalized as imports do, national numbers in the configured region).
    pub async fn resolve_lead(&self, reference: &str) -> Result<Lead> {
        let reference = reference.trim();
        let store = self.leads_store();
        let region = self.config().region()?;
        let found = if let Some(id) = as_id(reference) {
            match store.get_lead(id).await? {
                Some(lead) => Some(lead),
                // Not one of our ids: perhaps a national phone written without spaces.
                None => match normalize_phone(reference, region) {
                    Ok(phone) => store.find_lead_by_key(&phone_key(&phone)).await?,
                    Err(_) => None,
                },
            }
        } else if reference.contains('@') {
            let email = normalize_email(reference).map_err(|e| Error::Usage(format!("'{reference}' {e}")))?;
            store.find_lead_by_key(&email_key(&email)).await?
        } else {
            let phone = normalize_phone(reference, region)
                .map_err(|e| Error::Usage(format!("'{reference}' is not a lead id, email or phone: the phone {e}")))?;
            store.find_lead_by_key(&phone_key(&phone)).await?
        };
        found.ok_or_else(|| Error::NotFound(format!("no lead matches '{reference}'")))
    }

    pub async fn list_leads(&self, query: &LeadQuery) -> Result<Vec<Lead>> {
        self.leads_store().list_leads(query).await
    }

    pub async fn count_leads(&self, filter: &LeadFilter) -> Result<u64> {
        self.leads_store().count_leads(filter).await
    }

    /// Every metadata key in use, sorted (the extra columns of an export).
    pub async fn metadata_keys(&self) -> Result<Vec<String>> {
        self.leads_store().metadata_keys().await
    }

    /// Writes every lead as CSV in the shape `import` reads back; returns how many.
    pub async fn export_leads(&self, target: ExportTarget<'_>) -> Result<u64> {
        let store = self.leads_store();
        self.write_export(target, async |out: &mut dyn Write, name: &str| export_csv(store, out, name).await).await
    }

    /// Runs `write` against the target: a file is checked (never an input or a store file),
    /// written under a temporary name and renamed into place only when complete.
    pub(crate) async fn write_export(
        &self,
        target: ExportTarget<'_>,
        write: impl AsyncFnOnce(&mut dyn Write, &str) -> Result<u64>,
    ) -> Result<u64> {
        match target {
            ExportTarget::Stream(out, name) => {
                let n = write(out, name).await?;
                info!(leads = n, to = name, "Export finished.");
                Ok(n)
            }
            ExportTarget::File(path) => {
                check_output("the export file", path, &[], self.store_location())?;
                let mut file = AtomicFile::create(path)?;
                let name = path.display().to_string();
                let n = write(&mut file, &name).await?;
                file.commit()?;
                info!(leads = n, to = %name, "Export finished.");
                Ok(n)
            }
        }
    }
}

/// What a bulk add of typed-in leads did: counts, and the leads refused with why.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
pub struct BulkReport {
    pub accepted: u64,
    pub inserted: u64,
    /// Stored leads changed by a row.
    pub modified: u64,
    /// Rows that matched a stored lead (changed or not).
    pub matched: u64,
    pub rejected: u64,
    pub errors: Vec<BulkError>,
}

/// One refused lead of a bulk add: its position in the request and the reason.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
pub struct BulkError {
    pub index: usize,
    /// The field at fault, empty when the whole lead is.
    pub field: String,
    pub message: String,
}

impl App {
    /// Adds leads typed in by a program (the API's bulk endpoint) with the import's rules:
    /// the same validation, dedup by any email or phone (within the batch and against the store)
    /// and merge policy. A lead that fails is reported with its index; the others are kept.
    pub async fn add_leads_bulk(
        &self,
        leads: Vec<super::lead_edit::NewLeadFields>,
        policy: crate::engine::lead::ConflictPolicy,
    ) -> Result<BulkReport> {
        use crate::engine::store::{ImportPlan, RowOutcome};
        let region = self.config().region()?;
        let mut report = BulkReport::default();
        let mut drafts = Vec::new();
        let mut indexes = Vec::new();
        for (index, fields) in leads.into_iter().enumerate() {
            match fields.into_draft(region) {
                Ok(draft) => {
                    drafts.push(draft);
                    indexes.push(index);
                }
                Err(e) => {
                    report.rejected += 1;
                    let (field, message) = match e {
                        Error::Invalid { field, reason } => (field, reason),
                        other => (String::new(), other.to_string()),
                    };
                    report.errors.push(BulkError { index, field, message });
                }
            }
        }
        let plan = ImportPlan { policy, dry_run: false, expected_rows: Some(drafts.len() as u64) };
        let mut session = self.leads_store().begin_import(plan).await?;
        let preparer = session.preparer();
        let rows = drafts.into_iter().map(|d| preparer(d)).collect();
        let outcomes = session.apply(rows).await?;
        let undone = session.finish().await?;
        for (index, outcome) in indexes.into_iter().zip(outcomes) {
            match outcome {
                RowOutcome::Inserted(_) => report.inserted += 1,
                RowOutcome::Updated(_) => {
                    report.modified += 1;
                    report.matched += 1;
                }
                RowOutcome::Skipped(_) => report.matched += 1,
                RowOutcome::Conflict(reason) => {
                    report.rejected += 1;
                    report.errors.push(BulkError { index, field: String::new(), message: reason });
                    continue;
                }
            }
            report.accepted += 1;
        }
        report.modified -= undone.min(report.modified);
        report.errors.sort_by_key(|e| e.index);
        info!(accepted = report.accepted, inserted = report.inserted, rejected = report.rejected, "Bulk add finished.");
        Ok(report)
    }
}
