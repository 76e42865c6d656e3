//! What the preparer computes for each row, on all cores, before the writer sees it.

use super::super::keys::key_hash;
use super::super::rows::json_into;
use super::super::search;
use crate::engine::lead::{EMAIL_KEY, LeadDraft, PHONE_KEY};
use smallvec::SmallVec;

/// What the preparer computes for a row, written into one buffer: its identity keys (`e:…`,
/// `p:…`) with their hashes, the column values of a new lead (emails, phones, tags, metadata as
/// JSON) and its search text. One allocation where there were ten: allocating and freeing
/// per-row values was ~20% of a 1,000,000-row import's CPU (2026-12-06 profile), on a
/// machine where every CPU-second shows in the wall time (both cores busy).
pub(super) struct Ready {
    buf: String,
    keys: SmallVec<[(Span, i64); 2]>,
    columns: [Span; 5],
}

/// A stretch of a buffer ([`Ready::buf`], [`State::pending_json`](super::State::pending_json)).
#[derive(Clone, Copy, Default)]
pub(super) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// What `write` appends to `buf`.
    pub(super) fn written(buf: &mut String, write: impl FnOnce(&mut String)) -> Span {
        let start = buf.len() as u32;
        write(buf);
        Span { start, end: buf.len() as u32 }
    }

    /// This stretch of `buf`.
    pub(super) fn of(self, buf: &str) -> &str {
        buf.get(self.start as usize..self.end as usize).unwrap_or_default()
    }
}

/// Indices into [`Ready::columns`]; the first four are the JSON columns, in [`NewRow`](super::NewRow)'s order.
pub(super) const EMAILS: usize = 0;
pub(super) const PHONES: usize = 1;
pub(super) const TAGS: usize = 2;
pub(super) const METADATA: usize = 3;
pub(super) const TEXT: usize = 4;

impl Ready {
    pub(super) fn keys(&self) -> impl Iterator<Item = (&str, i64)> + '_ {
        self.keys.iter().map(|&(span, hash)| (span.of(&self.buf), hash))
    }

    pub(super) fn column(&self, column: usize) -> &str {
        self.columns[column].of(&self.buf)
    }
}

pub(super) fn ready(draft: &LeadDraft) -> Ready {
    let name = draft.name.as_deref().unwrap_or("");
    let lengths = |values: &[String]| values.iter().map(|v| v.len() + 8).sum::<usize>();
    let guess = 3 * lengths(&draft.emails)
        + 3 * lengths(&draft.phones)
        + lengths(&draft.tags)
        + draft.metadata.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>()
        + name.len()
        + 16;
    let mut buf = String::with_capacity(guess);
    let mut keys = SmallVec::new();
    let identity = draft.emails.iter().map(|e| (EMAIL_KEY, e)).chain(draft.phones.iter().map(|p| (PHONE_KEY, p)));
    for (prefix, value) in identity {
        let key = Span::written(&mut buf, |b| {
            b.push_str(prefix);
            b.push_str(value);
        });
        keys.push((key, key_hash(key.of(&buf))));
    }
    let mut columns = [Span::default(); 5];
    columns[EMAILS] = Span::written(&mut buf, |b| json_into(b, &draft.emails));
    columns[PHONES] = Span::written(&mut buf, |b| json_into(b, &draft.phones));
    columns[TAGS] = Span::written(&mut buf, |b| json_into(b, &draft.tags));
    columns[METADATA] = Span::written(&mut buf, |b| json_into(b, &draft.metadata));
    columns[TEXT] = Span::written(&mut buf, |b| search::push_text(b, name, &draft.emails, &draft.phones));
    Ready { buf, keys, columns }
}
