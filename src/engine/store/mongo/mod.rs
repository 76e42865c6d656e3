//! The MongoDB store (feature `mongodb`): both store traits over one database on the official
//! driver, for deployments where several machines share the data.
//!
//! No call relies on multi-document transactions (a standalone `mongod` has none): every
//! change is one atomic single-document write, made conditional where it must not race (a
//! claim is a `findOneAndUpdate` on the log's status, a status change names the status it
//! moves from), and the unique indexes (`emails`, `phones`, names, `_id`) are the backstop for
//! the read-then-write checks that SQLite does inside a transaction. Integer ids come from a
//! `counters` collection (`findOneAndUpdate` with `$inc`), so ids look and sort as on SQLite
//! and are never handed out twice.
//!
//! Driver and server errors never reach the user as they are: [`MongoStore::err`] turns them
//! into a few plain words (the full error goes to the debug log).

mod campaigns;
#[cfg(test)]
mod conformance_tests;
mod docs;
mod import;
mod inbound;
mod leads;
mod logs;
mod operators;
mod schema;
mod segments;
#[cfg(test)]
pub(crate) mod test_server;

use crate::engine::error::{Error, Result};
use crate::engine::store::Access;
use bson::{Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Cursor, Database};
use std::time::Duration;

/// The database a URL without one uses.
pub const DEFAULT_DATABASE: &str = "crm";
/// How long a call waits for a reachable server unless the URL says otherwise
/// (`serverSelectionTimeoutMS`); the driver's 30 s is long for a command line.
const SELECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The server's code for a unique index refusing a value.
pub(super) const DUPLICATE_KEY: i32 = 11000;
/// Statements per write command (the server takes up to 100,000; smaller keeps messages small).
const WRITE_BATCH: usize = 1000;

/// Every client this process opened, for [`shutdown_clients`].
static OPEN_CLIENTS: std::sync::Mutex<Vec<Client>> = std::sync::Mutex::new(Vec::new());

/// Stops the background work of every client this process opened (connection pools, monitors,
/// session cleanup), so nothing is left running when the async runtime goes away at exit: the
/// driver's pool tasks panic (`SendError` in its connection requester) when the runtime
/// drops them while a client still asks for a connection. Call once, at the end, inside the
/// runtime. Does not wait for operations still in flight.
pub async fn shutdown_clients() {
    let clients = std::mem::take(&mut *OPEN_CLIENTS.lock().unwrap_or_else(|e| e.into_inner()));
    for client in clients {
        client.shutdown().immediate(true).await;
    }
}

/// A MongoDB database holding one crm's data. Cheap to clone (the driver's client is shared).
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    describe: String,
}

/// What [`MongoStore::open`] found.
pub struct Opened {
    pub store: MongoStore,
    /// This open set the database up for crm.
    pub created: bool,
    /// Something the user should know (a read-only open of a database without crm data).
    pub notice: Option<String>,
}

impl MongoStore {
    /// Connects to `url` (`mongodb://HOST[:PORT]/DATABASE?OPTIONS`, database `crm` when none is
    /// named) and, when `access` allows, sets the database up (indexes, counters).
    pub async fn open(url: &str, access: Access) -> Result<Opened> {
        let describe = describe_url(url);
        let mut options = ClientOptions::parse(url).await.map_err(|e| match e.kind.as_ref() {
            // A mongodb+srv:// URL is looked up in DNS while it is parsed.
            ErrorKind::DnsResolve { .. } => store_error(&describe, &e),
            _ => {
                tracing::debug!(error = %e, "Invalid MongoDB URL.");
                Error::Usage(format!(
                    "the MongoDB URL {describe} is not valid; expected \
                     mongodb://[USER:PASSWORD@]HOST[:PORT]/DATABASE[?OPTIONS]"
                ))
            }
        })?;
        let name = options.default_database.clone().unwrap_or_else(|| DEFAULT_DATABASE.into());
        check_database_name(&name)?;
        let describe = with_database(&describe, &name);
        if !url.to_ascii_lowercase().contains("serverselectiontimeoutms") {
            options.server_selection_timeout = Some(SELECTION_TIMEOUT);
        }
        options.app_name.get_or_insert_with(|| "crm".into());
        let client = Client::with_options(options).map_err(|e| store_error(&describe, &e))?;
        OPEN_CLIENTS.lock().unwrap_or_else(|e| e.into_inner()).push(client.clone());
        let store = MongoStore { db: client.database(&name), describe };
        let (created, notice) = schema::prepare(&store, access).await?;
        Ok(Opened { store, created, notice })
    }

    pub(super) fn describe(&self) -> String {
        self.describe.clone()
    }

    pub(super) fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    /// Maps a driver error to the engine's store error for this database.
    pub(super) fn err(&self) -> impl Fn(mongodb::error::Error) -> Error + '_ {
        move |e| store_error(&self.describe, &e)
    }

    /// A store error with a message of our own (a document we cannot read, a race lost).
    pub(super) fn fail(&self, message: impl std::fmt::Display) -> Error {
        Error::store(&self.describe, message)
    }

    /// Reserves `n` ids of the `counter` sequence and returns the first (they run to first + n - 1).
    pub(super) async fn reserve_ids(&self, counter: &str, n: u64) -> Result<i64> {
        let n = i64::try_from(n.max(1)).unwrap_or(i64::MAX);
        let found = self
            .coll("counters")
            .find_one_and_update(doc! { "_id": counter }, doc! { "$inc": { "seq": n } })
            .upsert(true)
            .return_document(mongodb::options::ReturnDocument::After)
            .await
            .map_err(self.err())?;
        let seq = found.as_ref().map(|d| docs::int(d, "seq")).unwrap_or(n);
        Ok(seq - n + 1)
    }

    /// The last id the `counter` sequence handed out (0 before the first).
    pub(super) async fn last_id(&self, counter: &str) -> Result<i64> {
        let found = self.coll("counters").find_one(doc! { "_id": counter }).await.map_err(self.err())?;
        Ok(found.as_ref().map(|d| docs::int(d, "seq")).unwrap_or(0))
    }

    /// Gives back the ids after `last_used` of a block ending at `block_last`, if nothing was
    /// reserved since (then they were never handed out, and the next lead gets them).
    pub(super) async fn return_ids(&self, counter: &str, block_last: i64, last_used: i64) -> Result<()> {
        if last_used < block_last {
            self.coll("counters")
                .update_one(doc! { "_id": counter, "seq": block_last }, doc! { "$set": { "seq": last_used } })
                .await
                .map_err(self.err())?;
        }
        Ok(())
    }

    /// Runs write commands (`insert`, `update`) of `statements` under `key` (`documents`,
    /// `updates`), unordered, [`WRITE_BATCH`] at a time; returns the statements refused, as
    /// (index into `statements`, error code).
    pub(super) async fn write_many(
        &self,
        command: &str,
        collection: &str,
        key: &str,
        statements: Vec<Document>,
    ) -> Result<Vec<(usize, i32)>> {
        Ok(self.write_counted(command, collection, key, statements).await?.0)
    }

    /// [`Self::write_many`], also returning how many documents the statements modified.
    pub(super) async fn write_counted(
        &self,
        command: &str,
        collection: &str,
        key: &str,
        statements: Vec<Document>,
    ) -> Result<(Vec<(usize, i32)>, u64)> {
        let (mut refused, mut modified) = (Vec::new(), 0);
        for (chunk_no, chunk) in statements.chunks(WRITE_BATCH).enumerate() {
            let cmd = doc! { command: collection, key: chunk.to_vec(), "ordered": false };
            let reply = self.db.run_command(cmd).await.map_err(self.err())?;
            if reply.get_document("writeConcernError").is_ok() {
                return Err(self.fail("the server could not confirm a write (write concern)"));
            }
            if let Ok(errors) = reply.get_array("writeErrors") {
                for e in errors.iter().filter_map(Bson::as_document) {
                    let index = usize::try_from(docs::int(e, "index")).unwrap_or(0);
                    refused.push((chunk_no * WRITE_BATCH + index, docs::int(e, "code") as i32));
                }
            }
            modified += u64::try_from(docs::int(&reply, "nModified")).unwrap_or(0);
        }
        Ok((refused, modified))
    }
}

/// Every document a cursor yields.
pub(super) async fn collect(mut cursor: Cursor<Document>) -> mongodb::error::Result<Vec<Document>> {
    let mut out = Vec::new();
    while cursor.advance().await? {
        out.push(cursor.deserialize_current()?);
    }
    Ok(out)
}

/// Whether a driver error is a unique index refusing a value.
pub(super) fn is_duplicate(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// A driver error as the engine's store error: a few plain words, never the server's text
/// (which can quote documents and queries). The whole error is logged at debug level.
pub(super) fn store_error(store: &str, e: &mongodb::error::Error) -> Error {
    tracing::debug!(store, error = %e, "MongoDB call failed.");
    Error::store(store, describe_error(e))
}

fn describe_error(e: &mongodb::error::Error) -> String {
    let text = match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. } => "cannot reach the MongoDB server (is it running, and is the URL right?)",
        ErrorKind::Authentication { .. } => "authentication failed (check the user and password in the URL)",
        ErrorKind::DnsResolve { .. } => "cannot resolve the server's host name",
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => "the connection to the server failed",
        ErrorKind::InvalidTlsConfig { .. } => "the TLS settings in the URL are not valid",
        ErrorKind::Command(c) => return command_failure(c.code, &c.code_name),
        ErrorKind::Write(WriteFailure::WriteError(w)) => {
            return command_failure(w.code, w.code_name.as_deref().unwrap_or("write error"));
        }
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => "the server could not confirm a write (write concern)",
        ErrorKind::InsertMany(_) | ErrorKind::BulkWrite(_) => "the server refused a write",
        ErrorKind::BsonDeserialization(_) | ErrorKind::BsonSerialization(_) | ErrorKind::InvalidResponse { .. } => {
            "the server's answer could not be read"
        }
        ErrorKind::IncompatibleServer { .. } => "the server is too old for crm (MongoDB 4.4 or newer is needed)",
        ErrorKind::Shutdown => "the connection was closed",
        _ => "the request to the server failed",
    };
    text.into()
}

/// A server's refusal in words: well-known codes explained, others by the server's code name
/// (a fixed token such as `NamespaceNotFound`, never its message).
fn command_failure(code: i32, name: &str) -> String {
    match code {
        13 => "not authorized (check the user's roles on this database)".into(),
        18 => "authentication failed (check the user and password in the URL)".into(),
        50 => "the query took too long and was stopped".into(),
        DUPLICATE_KEY => "a value that must be unique is already taken".into(),
        2 | 9 => "the server refused the query as invalid (a server without a feature crm needs?)".into(),
        _ if name.chars().all(|c| c.is_ascii_alphanumeric()) && !name.is_empty() => {
            format!("the server refused the request ({name}, code {code})")
        }
        _ => format!("the server refused the request (code {code})"),
    }
}

/// The URL for messages: the scheme and hosts and database, without credentials or options.
fn describe_url(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").unwrap_or(("mongodb", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, hosts)| hosts);
    if path.is_empty() { format!("{scheme}://{hosts}") } else { format!("{scheme}://{hosts}/{path}") }
}

/// `describe` naming `database` (the default one when the URL named none).
fn with_database(describe: &str, database: &str) -> String {
    let (scheme, rest) = describe.split_once("://").unwrap_or(("mongodb", describe));
    let hosts = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{hosts}/{database}")
}

/// MongoDB's rules for database names, checked before the server refuses one.
fn check_database_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 63 || name.chars().any(|c| "/\\. \"$*<>:|?".contains(c) || c.is_control()) {
        return Err(Error::Usage(format!(
            "'{}' cannot be a MongoDB database name (at most 63 bytes, without / \\ . space \" $ * < > : | ?)",
            crate::engine::field_rules::shown(name)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_described_without_credentials_or_options() {
        assert_eq!(
            describe_url("mongodb://ada:s3cret@db1:27017,db2/crm?replicaSet=rs0&authSource=admin"),
            "mongodb://db1:27017,db2/crm"
        );
        assert_eq!(describe_url("mongodb://127.0.0.1:27017/?directConnection=true"), "mongodb://127.0.0.1:27017");
        assert_eq!(
            describe_url("mongodb+srv://u:p@cluster.example.net/sales"),
            "mongodb+srv://cluster.example.net/sales"
        );
        assert_eq!(with_database("mongodb://h:1", "crm"), "mongodb://h:1/crm");
        assert_eq!(with_database("mongodb://h:1/sales", "sales"), "mongodb://h:1/sales");
    }

    #[test]
    fn database_names_follow_mongodb_rules() {
        assert!(check_database_name("crm_test-1").is_ok());
        for bad in ["", "a.b", "a b", "a/b", "a$b", &"x".repeat(64)] {
            assert!(check_database_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_messages_never_show_through() {
        assert_eq!(command_failure(11000, "DuplicateKey"), "a value that must be unique is already taken");
        assert_eq!(
            command_failure(26, "NamespaceNotFound"),
            "the server refused the request (NamespaceNotFound, code 26)"
        );
        assert_eq!(command_failure(7, "some text: { x }"), "the server refused the request (code 7)");
    }
}
