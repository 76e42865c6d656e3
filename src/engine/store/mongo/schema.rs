//! Setting a database up for crm: its indexes, its id counters, and the schema version in
//! `meta` (`{_id: "schema", version}`), so later opens cost one read.
//!
//! Indexes (all created idempotently with `createIndexes`):
//! - `leads`: `emails` and `phones` unique (multikey: an email or phone belongs to one lead;
//!   partial on `$type: "string"`, so the many leads with no email or no phone do not collide
//!   on an empty array), `total_spend`, `created_at`, `last_order_at` (rules), `name_key`
//!   (sorting by name);
//! - `segments.name_key`, `campaigns.name_key` unique (names ignore case); `campaigns.segment_id`;
//! - `communication_logs`: `_id` is the send id (unique); `{campaign_id, status}` (stats,
//!   completion), `provider_message_id` (status callbacks; partial), `updated_at` (newest first);
//! - `dead_letters {campaign_id, replayed_at}` and `replayed_at` (counting un-replayed ones);
//!   `opt_outs {at, _id}` (the newest first, for dashboards); `replies {lead_id, received_at}`
//!   and `replies.provider_message_id` unique (partial: replies without a vendor id are kept).
//!
//! Version 2 added the `dead_letters.replayed_at` and `opt_outs` indexes: a version 1 database
//! is set up again (idempotently) on its next writable open.

use super::MongoStore;
use super::docs;
use crate::engine::error::{Error, Result};
use crate::engine::store::Access;
use bson::{Document, doc};

/// The schema this crm writes; a database set up by a newer one is refused.
pub(super) const SCHEMA_VERSION: i64 = 2;

/// Counters and the collection whose `_id`s each hands out.
const COUNTERS: [(&str, &str); 5] = [
    ("leads", "leads"),
    ("segments", "segments"),
    ("campaigns", "campaigns"),
    ("dead_letters", "dead_letters"),
    ("replies", "replies"),
];

fn index(name: &str, keys: Document) -> Document {
    doc! { "name": name, "key": keys }
}

fn unique(name: &str, keys: Document) -> Document {
    doc! { "name": name, "key": keys, "unique": true }
}

/// Only documents where `field` holds a string (or an array with one) are indexed.
fn partial(mut index: Document, field: &str) -> Document {
    index.insert("partialFilterExpression", doc! { field: { "$type": "string" } });
    index
}

fn indexes() -> Vec<(&'static str, Vec<Document>)> {
    vec![
        (
            "leads",
            vec![
                partial(unique("emails_unique", doc! { "emails": 1 }), "emails"),
                partial(unique("phones_unique", doc! { "phones": 1 }), "phones"),
                index("total_spend", doc! { "total_spend": 1 }),
                index("created_at", doc! { "created_at": 1 }),
                index("last_order_at", doc! { "last_order_at": 1 }),
                index("name_key", doc! { "name_key": 1 }),
            ],
        ),
        ("segments", vec![unique("name_key_unique", doc! { "name_key": 1 })]),
        (
            "campaigns",
            vec![unique("name_key_unique", doc! { "name_key": 1 }), index("segment_id", doc! { "segment_id": 1 })],
        ),
        (
            "communication_logs",
            vec![
                index("campaign_status", doc! { "campaign_id": 1, "status": 1 }),
                partial(index("provider_message_id", doc! { "provider_message_id": 1 }), "provider_message_id"),
                index("updated_at", doc! { "updated_at": -1 }),
            ],
        ),
        (
            "dead_letters",
            vec![
                index("campaign_replayed", doc! { "campaign_id": 1, "replayed_at": 1 }),
                index("replayed_at", doc! { "replayed_at": 1 }),
            ],
        ),
        ("opt_outs", vec![index("at", doc! { "at": -1, "_id": -1 })]),
        (
            "replies",
            vec![
                index("lead_received", doc! { "lead_id": 1, "received_at": -1 }),
                partial(unique("provider_message_id_unique", doc! { "provider_message_id": 1 }), "provider_message_id"),
            ],
        ),
    ]
}

/// Reads the schema version and, where `access` allows, sets the database up. Returns whether
/// this open set it up, and a notice for a read-only open of a database crm never set up.
pub(super) async fn prepare(store: &MongoStore, access: Access) -> Result<(bool, Option<String>)> {
    let meta = store.coll("meta").find_one(doc! { "_id": "schema" }).await.map_err(store.err())?;
    let version = meta.as_ref().map(|d| docs::int(d, "version"));
    match version {
        Some(v) if v > SCHEMA_VERSION => Err(Error::Usage(format!(
            "{} was set up by a newer crm (schema version {v}); upgrade crm",
            store.describe()
        ))),
        Some(v) if v == SCHEMA_VERSION => Ok((false, None)),
        _ if access == Access::Existing => {
            // Reading needs no indexes, and MongoDB has no file to create: an empty database
            // reads as an empty store. Nothing is written.
            let notice = version.is_none().then(|| {
                format!(
                    "{} holds no crm data yet (nothing was created); import or add leads to start",
                    store.describe()
                )
            });
            Ok((false, notice))
        }
        _ => {
            set_up(store).await?;
            Ok((version.is_none(), None))
        }
    }
}

async fn set_up(store: &MongoStore) -> Result<()> {
    for (collection, list) in indexes() {
        store.db.run_command(doc! { "createIndexes": collection, "indexes": list }).await.map_err(store.err())?;
    }
    // Counters start past any id already present (data restored or written by another tool).
    for (counter, collection) in COUNTERS {
        let newest = store
            .coll(collection)
            .find_one(doc! {})
            .sort(doc! { "_id": -1 })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(store.err())?;
        let max = newest.as_ref().map(|d| docs::int(d, "_id")).unwrap_or(0);
        store
            .coll("counters")
            .update_one(doc! { "_id": counter }, doc! { "$max": { "seq": max } })
            .upsert(true)
            .await
            .map_err(store.err())?;
    }
    store
        .coll("meta")
        .update_one(doc! { "_id": "schema" }, doc! { "$max": { "version": SCHEMA_VERSION } })
        .upsert(true)
        .await
        .map_err(store.err())?;
    Ok(())
}
