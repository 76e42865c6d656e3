//! CSV import: stream rows, normalize them on every core, write batches through the store.
//!
//! A reader thread parses the CSV into raw records and normalizes each chunk in parallel
//! (rayon); the async side hands valid rows to the store's [`ImportSession`] a batch at a time
//! while the next chunk is being parsed. Memory stays flat: at most a few chunks are in
//! flight, and only the first [`MAX_REPORTED_ERRORS`] errors are kept (all of them go to the
//! errors file). A bad row is reported with its line, column and reason and never stops the
//! import or costs a good row.

mod decode;
pub mod headers;
mod lines;
#[cfg(test)]
mod proptests;
pub mod row;

use crate::engine::error::{Error, Result};
use crate::engine::export::csv_io_error;
use crate::engine::files::AtomicFile;
use crate::engine::lead::ConflictPolicy;
use crate::engine::phone::Region;
use crate::engine::store::{ImportPlan, PreparedRow, RowOutcome, RowPreparer, Store};
use csv::ByteRecord;
use headers::{HeaderOverride, map_headers};
use lines::LineTracker;
use rayon::prelude::*;
use row::{FieldError, RowReader};
use serde::Serialize;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Rows parsed and normalized together, and written in one store transaction.
const CHUNK_ROWS: usize = 4096;
/// Errors kept in memory for the report; the errors file always has all of them.
pub const MAX_REPORTED_ERRORS: usize = 10_000;

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub policy: ConflictPolicy,
    pub dry_run: bool,
    pub region: Option<Region>,
    pub overrides: Vec<HeaderOverride>,
    /// Where to write rejected rows (original columns plus `error`), if anywhere.
    pub errors_file: Option<PathBuf>,
    /// The field separator; `None` sniffs it from the header line (`,` `;` tab `|`).
    pub delimiter: Option<u8>,
}

pub use decode::parse_delimiter;

/// Where rows come from: a name for messages, the bytes, and their size when known.
pub struct ImportSource {
    pub name: String,
    pub reader: Box<dyn Read + Send>,
    pub size: Option<u64>,
}

/// Told how far the import is, after every chunk.
pub trait Progress: Send + Sync {
    fn update(&self, bytes_read: u64, rows: u64);
}

impl Progress for () {
    fn update(&self, _: u64, _: u64) {}
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RowError {
    /// Line of the file where the row starts (the header is line 1).
    pub line: u64,
    /// The column's header as written in the file; empty when the whole row is at fault.
    pub column: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub accepted: u64,
    pub inserted: u64,
    pub updated: u64,
    pub skipped: u64,
    pub rejected: u64,
    pub errors: Vec<RowError>,
    /// Errors beyond those listed in `errors` (all are in the errors file).
    #[serde(skip_serializing_if = "is_zero")]
    pub errors_omitted: u64,
    pub dry_run: bool,
    pub elapsed_seconds: f64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One parsed row on its way to the store.
struct Parsed {
    line: u64,
    record: ByteRecord,
    result: std::result::Result<Option<PreparedRow>, Vec<FieldError>>,
}

struct Chunk {
    rows: Vec<Parsed>,
    bytes_read: u64,
}

/// A CSV whose encoding, separator and header have been read and checked, ready to import:
/// everything that makes a file wrong as a whole is found by [`open_import`], before any store
/// is touched (a bad file never creates one).
pub struct OpenedImport {
    name: String,
    started: Instant,
    csv: csv::Reader<LineTracker<Box<dyn Read + Send>>>,
    reader: RowReader,
    errors_out: Option<ErrorsFile>,
    bytes_read: Arc<AtomicU64>,
    size: Option<u64>,
    keep_raw: bool,
}

/// Imports a CSV source into `store`.
pub async fn import_csv(
    store: &dyn Store,
    source: ImportSource,
    options: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let opened = open_import(source, options)?;
    run_import(store, opened, options, progress).await
}

/// Reads and checks the file's encoding, separator and header (file-level errors are usage
/// errors naming the file), and creates the errors file.
pub fn open_import(source: ImportSource, options: &ImportOptions) -> Result<OpenedImport> {
    let started = Instant::now();
    crate::engine::phone::warm_up();
    let name = source.name.clone();
    let input_error = |e: std::io::Error| Error::Input { path: name.clone(), source: e };
    // Progress counts the file's own bytes, which transcoding makes differ from the CSV's.
    let bytes_read = Arc::new(AtomicU64::new(0));
    let counted = Box::new(Counting { inner: source.reader, count: bytes_read.clone() });
    let decoded = decode::decode(counted, options.delimiter)
        .map_err(input_error)?
        .map_err(|e| Error::Usage(format!("{name}: {e}")))?;
    let delimiter = decoded.delimiter;
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .delimiter(delimiter)
        .from_reader(LineTracker::new(decoded.reader));
    let headers: Vec<String> = csv
        .byte_headers()
        .map_err(|e| input_error(std::io::Error::other(e.to_string())))?
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    if headers.iter().all(String::is_empty) {
        return Err(Error::Usage(format!("{name}: the file is empty or has no header row")));
    }
    let fields = map_headers(&headers, &options.overrides).map_err(|e| Error::Usage(format!("{name}: {e}")))?;
    headers::check_columns(&headers, &fields, delimiter).map_err(|e| Error::Usage(format!("{name}: {e}")))?;
    let replace_error_column = headers::has_error_column(&headers, &fields);
    let reader = RowReader {
        headers: headers.clone(),
        fields,
        region: options.region,
        from_utf16: decoded.encoding != decode::Encoding::Utf8,
        delimiter,
    };
    let errors_out = match &options.errors_file {
        Some(path) => Some(ErrorsFile::create(path, &headers, replace_error_column)?),
        None => None,
    };
    // Raw rows are kept only while they may still be written to the errors file.
    let keep_raw = options.errors_file.is_some();
    Ok(OpenedImport { name, started, csv, reader, errors_out, bytes_read, size: source.size, keep_raw })
}

/// Imports an opened CSV into `store`.
pub async fn run_import(
    store: &dyn Store,
    opened: OpenedImport,
    options: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let OpenedImport { name, started, csv, reader, mut errors_out, bytes_read, size, keep_raw } = opened;
    let plan = ImportPlan {
        policy: options.policy,
        dry_run: options.dry_run,
        expected_rows: size.map(|bytes| bytes / 64 + 1),
    };
    let mut session = store.begin_import(plan).await?;
    let preparer = session.preparer();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::result::Result<Chunk, Error>>(2);
    let reader_name = name.clone();
    let parser = std::thread::spawn(move || parse_chunks(csv, reader, preparer, keep_raw, reader_name, bytes_read, tx));

    let mut report = ImportReport { dry_run: options.dry_run, ..Default::default() };
    let mut rows_seen = 0u64;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk?;
        rows_seen += chunk.rows.len() as u64;
        let mut drafts = Vec::with_capacity(chunk.rows.len());
        let mut pending = Vec::with_capacity(chunk.rows.len());
        for parsed in chunk.rows {
            match parsed.result {
                Ok(Some(draft)) => {
                    drafts.push(draft);
                    pending.push((parsed.line, parsed.record));
                }
                Ok(None) => {}
                Err(errs) => reject(&mut report, errors_out.as_mut(), parsed.line, &parsed.record, errs)?,
            }
        }
        let outcomes = session.apply(drafts).await?;
        for ((line, record), outcome) in pending.into_iter().zip(outcomes) {
            match outcome {
                RowOutcome::Inserted(_) => report.inserted += 1,
                RowOutcome::Updated(_) => report.updated += 1,
                RowOutcome::Skipped(_) => report.skipped += 1,
                RowOutcome::Conflict(reason) => {
                    let errs = vec![FieldError { column: String::new(), reason }];
                    reject(&mut report, errors_out.as_mut(), line, &record, errs)?;
                    continue;
                }
            }
            report.accepted += 1;
        }
        progress.update(chunk.bytes_read, rows_seen);
    }
    let net_unchanged = session.finish().await?.min(report.updated);
    report.updated -= net_unchanged;
    report.skipped += net_unchanged;
    let _ = parser.join();
    if let Some(out) = errors_out {
        out.finish()?;
    }
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn reject(
    report: &mut ImportReport,
    errors_out: Option<&mut ErrorsFile>,
    line: u64,
    record: &ByteRecord,
    errs: Vec<FieldError>,
) -> Result<()> {
    report.rejected += 1;
    if let Some(out) = errors_out {
        out.write(record, &errs)?;
    }
    for e in errs {
        if report.errors.len() < MAX_REPORTED_ERRORS {
            report.errors.push(RowError { line, column: e.column, reason: e.reason });
        } else {
            report.errors_omitted += 1;
        }
    }
    Ok(())
}

/// Raw records of one chunk, as read, with the byte offset reached.
struct RawChunk {
    rows: Vec<(u64, ByteRecord)>,
    bytes_read: u64,
}

/// Two stages on their own threads, so CSV parsing overlaps normalization: this thread reads
/// raw chunks; a second one normalizes each on the rayon pool, in order, and hands it on.
fn parse_chunks(
    mut csv: csv::Reader<LineTracker<Box<dyn Read + Send>>>,
    reader: RowReader,
    preparer: RowPreparer,
    keep_raw: bool,
    name: String,
    bytes_read: Arc<AtomicU64>,
    tx: tokio::sync::mpsc::Sender<std::result::Result<Chunk, Error>>,
) {
    let (raw_tx, raw_rx) = std::sync::mpsc::sync_channel::<std::result::Result<RawChunk, Error>>(2);
    // Chunks' records go back to this thread to be read into again: no allocation per row for
    // the raw record, and none freed on another thread.
    let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Vec<(u64, ByteRecord)>>();
    let normalizer = std::thread::spawn(move || {
        for raw in raw_rx {
            let chunk = raw.map(|mut raw| {
                let rows = raw
                    .rows
                    .par_iter_mut()
                    .map(|(line, record)| {
                        let result = reader.read(record).map(|draft| draft.map(|d| preparer(d)));
                        let record =
                            if keep_raw || result.is_err() { std::mem::take(record) } else { ByteRecord::new() };
                        Parsed { line: *line, record, result }
                    })
                    .collect();
                let _ = recycle_tx.send(raw.rows);
                Chunk { rows, bytes_read: raw.bytes_read }
            });
            if tx.blocking_send(chunk).is_err() {
                return;
            }
        }
    });
    loop {
        let mut rows = recycle_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK_ROWS));
        let mut failure = None;
        let mut filled = 0;
        while filled < CHUNK_ROWS {
            if filled == rows.len() {
                rows.push((0, ByteRecord::with_capacity(256, 16)));
            }
            let (line, record) = &mut rows[filled];
            match csv.read_byte_record(record) {
                Ok(true) => {
                    let (byte, csv_line) = record.position().map_or((0, 0), |p| (p.byte(), p.line()));
                    *line = csv.get_mut().line_at(byte).unwrap_or(csv_line);
                    filled += 1;
                }
                Ok(false) => break,
                Err(e) => {
                    failure = Some(Error::Input { path: name.clone(), source: std::io::Error::other(e.to_string()) });
                    break;
                }
            }
        }
        rows.truncate(filled);
        let done = rows.len() < CHUNK_ROWS;
        if raw_tx.send(Ok(RawChunk { rows, bytes_read: bytes_read.load(Ordering::Relaxed) })).is_err() {
            break;
        }
        if let Some(e) = failure {
            let _ = raw_tx.send(Err(e));
            break;
        }
        if done {
            break;
        }
    }
    drop(raw_tx);
    let _ = normalizer.join();
}

/// The rejected rows as a CSV that can be fixed and imported again: the original columns
/// (bytes as they were) plus an `error` column. When the input is itself such a file, its
/// `error` column is replaced, not repeated.
struct ErrorsFile {
    path: PathBuf,
    writer: csv::Writer<AtomicFile>,
    /// Columns of the input, without an old `error` column.
    columns: usize,
    replace_error_column: bool,
}

impl ErrorsFile {
    fn create(path: &std::path::Path, headers: &[String], replace_error_column: bool) -> Result<ErrorsFile> {
        let io = |e: std::io::Error| Error::Output { path: path.display().to_string(), source: e };
        // Written beside the target and renamed into place at the end: an interrupted import
        // leaves an earlier errors file as it was.
        let file = AtomicFile::create(path)?;
        let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(file);
        let columns = headers.len() - usize::from(replace_error_column);
        let mut header: Vec<&str> = headers[..columns].iter().map(String::as_str).collect();
        header.push(headers::ERROR_COLUMN);
        writer.write_record(&header).map_err(|e| io(csv_io_error(e)))?;
        Ok(ErrorsFile { path: path.to_path_buf(), writer, columns, replace_error_column })
    }

    fn write(&mut self, record: &ByteRecord, errs: &[FieldError]) -> Result<()> {
        let message =
            errs.iter()
                .map(|e| {
                    if e.column.is_empty() {
                        format!("row {}", e.reason)
                    } else {
                        format!("{}: {}", e.column, e.reason)
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
        // A row of the right length loses its old message; a short or long row is kept whole,
        // so nothing of it is lost (its reason says its length is wrong).
        let keep =
            if self.replace_error_column && record.len() == self.columns + 1 { self.columns } else { record.len() };
        let mut out: ByteRecord = record.iter().take(keep).collect();
        out.push_field(message.as_bytes());
        self.writer
            .write_byte_record(&out)
            .map_err(|e| Error::Output { path: self.path.display().to_string(), source: csv_io_error(e) })
    }

    fn finish(self) -> Result<()> {
        let path = self.path.display().to_string();
        let file = self.writer.into_inner().map_err(|e| Error::Output { path, source: e.into_error() })?;
        file.commit()
    }
}

/// Counts the bytes read through it, for progress.
struct Counting {
    inner: Box<dyn Read + Send>,
    count: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
