//! The stores' conformance story, written once against [`Store`] and [`CampaignStore`] and run
//! against every backend: each `pub async fn` in the chapter files is one chapter, and
//! [`store_conformance_tests!`] turns them all into `#[tokio::test]`s for a backend's
//! [`StoreFixture`]. SQLite runs it in `sqlite/conformance_tests.rs`; a MongoDB store runs the
//! very same chapters against a server the harness starts.
//!
//! Chapters check behaviour through the traits only (never SQL), with exact expected values.
//! Ids are whatever the backend assigns: chapters remember the ids they are given rather than
//! assume `1, 2, 3`. Relative dates in rules are pinned by passing [`NOW`].
//!
//! - `leads`: identity rules (an email or phone belongs to one lead), listing, paging, cursors.
//! - `import`: bulk import sessions: in-file dedup, policies, conflicts, dry runs, `finish`.
//! - `segments`: saved rules and counting, sampling and scanning what they match.
//! - `campaigns`: campaign records and statuses, stats, audiences, completion, opt-outs,
//!   heartbeats.
//! - `pipeline`: communication logs (insert, claim, release, forward-only updates), dead
//!   letters, and one campaign told end to end.
//! - `inbound`: logs by vendor message id, failover's channel, opt-out sources, replies.
//! - `operators`: resolving uncertain messages, why an account's next send waits.
//! - `recent`: bounded reads for dashboards: dead letters counted, the newest dead letters
//!   and opt-outs.

#![allow(clippy::unwrap_used)]

pub mod campaigns;
pub mod import;
pub mod inbound;
pub mod leads;
pub mod operators;
pub mod pipeline;
pub mod recent;
pub mod segments;

use crate::engine::campaign::{CampaignId, NewCampaign, NewLog, SendIds, send_id};
use crate::engine::error::Error;
use crate::engine::lead::{LeadDraft, LeadId};
use crate::engine::store::Store;
use crate::engine::store::campaigns::{CampaignStore, Claim};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

/// A backend under test. A fixture starts empty; chapters never share one.
#[async_trait]
pub trait StoreFixture: Send + Sync {
    /// A new handle on the fixture's backend, with its own connections (what another process
    /// would open): the lead and segment store and the campaign store, over the same data.
    async fn open(&self) -> (Arc<dyn Store>, Arc<dyn CampaignStore>);
}

/// The `now` every chapter pins relative dates to: 2024-06-15T12:00:00Z, a Saturday.
pub const NOW: &str = "2024-06-15T12:00:00Z";

/// An RFC 3339 time.
fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn now() -> DateTime<Utc> {
    at(NOW)
}

/// The real time, truncated to the millisecond that stores keep (for "between before and
/// after" checks on times a store sets itself).
fn wall_ms() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

#[track_caller]
fn assert_between(t: DateTime<Utc>, before: DateTime<Utc>, after: DateTime<Utc>) {
    assert!(before <= t && t <= after, "{t} is not between {before} and {after}");
}

#[track_caller]
fn assert_conflict<T: Debug>(result: crate::engine::error::Result<T>) {
    match result {
        Err(Error::Conflict(message)) => assert!(!message.is_empty(), "a conflict says why"),
        other => panic!("expected Error::Conflict, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: Debug>(result: crate::engine::error::Result<T>) {
    match result {
        Err(Error::NotFound(message)) => assert!(!message.is_empty(), "a not-found error says what"),
        other => panic!("expected Error::NotFound, got {other:?}"),
    }
}

/// A draft with a name, emails and phones (already normalized, as stores receive them).
fn person(name: &str, emails: &[&str], phones: &[&str]) -> LeadDraft {
    LeadDraft {
        name: (!name.is_empty()).then(|| name.to_string()),
        emails: emails.iter().map(|e| e.to_string()).collect(),
        phones: phones.iter().map(|p| p.to_string()).collect(),
        ..LeadDraft::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn metadata(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A draft campaign named `name` (segment 1 unless a chapter needs a real one).
async fn new_campaign(store: &dyn CampaignStore, name: &str, segment_id: i64) -> crate::engine::campaign::Campaign {
    let new = NewCampaign {
        name: name.into(),
        segment_id,
        message_template: "Hi {{first_name}}".into(),
        channel: "sim".into(),
        created_by: Some("ops".into()),
        send_ids: SendIds::Sequential { salt: 0x5eed },
    };
    store.create_campaign(new).await.unwrap()
}

/// Pending logs of `campaign` for `leads`, with their deterministic send ids.
fn logs_for(campaign: CampaignId, leads: &[LeadId]) -> Vec<NewLog> {
    leads.iter().map(|&lead| NewLog { send_id: send_id(campaign, lead), lead_id: lead, skip_reason: None }).collect()
}

fn send_ids(logs: &[NewLog]) -> Vec<String> {
    logs.iter().map(|l| l.send_id.clone()).collect()
}

/// Inserts pending logs on the `sim` account for `leads` in `campaign`; returns their send ids.
async fn insert_pending(store: &dyn CampaignStore, campaign: CampaignId, leads: &[LeadId]) -> Vec<String> {
    let logs = logs_for(campaign, leads);
    store.insert_logs(campaign, "sim", &logs).await.unwrap();
    send_ids(&logs)
}

/// A claim in words, so chapters compare whole batches exactly without naming fields that a
/// backend may add to `Claim::Claimed`: `claimed 1`, `recovered 2`, `busy`, `settled sent`,
/// `opted out`, `missing`.
fn claim_words(claims: &[Claim]) -> Vec<String> {
    claims
        .iter()
        .map(|c| match c {
            Claim::Claimed { attempt, recovered: false, .. } => format!("claimed {attempt}"),
            Claim::Claimed { attempt, recovered: true, .. } => format!("recovered {attempt}"),
            Claim::Busy { .. } => "busy".into(),
            Claim::Settled(status) => format!("settled {status}"),
            Claim::OptedOut => "opted out".into(),
            Claim::Missing => "missing".into(),
        })
        .collect()
}

/// Generates one `#[tokio::test]` per chapter for a fixture expression (evaluated, and may
/// `.await`, inside each test), in one module per chapter file. A chapter in the list may carry
/// attributes, e.g. `#[ignore = "why"]` while a backend has a known bug.
macro_rules! store_conformance_tests {
    ($fixture:expr) => {
        $crate::engine::store::conformance::store_conformance_tests!(
            $fixture;
            leads: [
                add_and_get_lead,
                add_lead_refuses_keys_of_another_lead,
                save_lead_moves_keys_and_refuses_taken_ones,
                delete_lead_frees_keys_and_ids_are_never_reused,
                list_and_count_filter_sort_and_page,
                scan_leads_is_a_cursor_by_id,
                metadata_keys_are_sorted_and_current,
            ];
            import: [
                import_inserts_and_later_rows_see_earlier_ones,
                import_policies_merge_skip_overwrite,
                import_rows_matching_two_leads_conflict,
                dry_run_reports_outcomes_but_writes_nothing,
                finish_counts_updates_that_later_rows_undid,
                imported_leads_are_complete_and_ids_never_reused,
                rows_with_the_same_keys_update_when_any_value_differs,
            ];
            segments: [
                segments_crud_with_case_insensitive_names,
                segments_in_use_by_campaigns_cannot_be_deleted,
                deleted_segment_ids_are_never_reused,
                count_matching_on_known_people,
                sample_and_scan_matching_page_by_id,
                relative_dates_follow_now,
                explain_matching_describes_count_and_sample,
            ];
            campaigns: [
                campaign_crud_and_unique_names,
                campaign_status_follows_can_become,
                stats_are_counted_from_logs,
                audience_pages_and_leads,
                complete_finished_campaigns_only_when_settled,
                opt_outs_and_opt_ins,
                heartbeats_upsert_per_worker,
                channel_states_keep_the_newest_per_account,
            ];
            pipeline: [
                insert_logs_is_idempotent_and_answers_pending,
                claims_lease_a_log_to_one_sender,
                a_batch_naming_a_log_twice_moves_it_once,
                expired_leases_are_recovered,
                release_counts_or_gives_back_the_try,
                log_updates_move_forward_only,
                dead_letters_and_replay,
                logs_are_listed_newest_first,
                campaign_story,
            ];
            inbound: [
                logs_by_provider_id_and_failover_channel,
                sent_since_counts_an_accounts_messages_over_campaigns,
                opt_outs_record_their_source,
                replies_are_kept_once_newest_first,
            ];
            operators: [
                uncertain_logs_are_resolved_by_an_operator,
                account_waits_keep_the_newest_per_account,
            ];
            recent: [
                dead_letters_are_counted_and_the_newest_listed,
                opt_outs_newest_first,
            ];
        );
    };
    ($fixture:expr; $($file:ident: [$($(#[$attr:meta])* $chapter:ident),+ $(,)?];)+) => {
        $(
            mod $file {
                #[allow(unused_imports)]
                use super::*;
                $(
                    $(#[$attr])*
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $chapter() {
                        let fixture = $fixture;
                        $crate::engine::store::conformance::$file::$chapter(&fixture).await;
                    }
                )+
            }
        )+
    };
}
pub(crate) use store_conformance_tests;
