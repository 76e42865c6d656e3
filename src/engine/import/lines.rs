//! Line numbers of CSV records as a person counts them in an editor.
//!
//! The csv crate's record positions are not good enough for error messages: it counts a line
//! when it consumes a `\n`, but a CRLF record ends at the `\r`, so every row of a Windows file
//! is reported one line early (BurntSushi/rust-csv#395); and a record's position is taken
//! before the blank lines it skips. [`LineTracker`] sits under the CSV reader, notes where each
//! line with content starts, and maps a record's byte offset to the line its first character
//! is on. Memory stays flat: only lines read ahead of the last lookup are kept.

use std::collections::VecDeque;
use std::io::Read;

pub struct LineTracker<R> {
    inner: R,
    /// Bytes read so far.
    offset: u64,
    /// The 1-based line the next byte is on.
    line: u64,
    /// No content byte yet on the current line (only, perhaps, a `\r`).
    at_line_start: bool,
    /// (byte offset, line) of the first content byte of each line not yet looked up.
    starts: VecDeque<(u64, u64)>,
}

impl<R: Read> LineTracker<R> {
    pub fn new(inner: R) -> LineTracker<R> {
        LineTracker { inner, offset: 0, line: 1, at_line_start: true, starts: VecDeque::new() }
    }

    /// The line of the first content at or after `byte`, the offset where the CSV reader says a
    /// record starts. Offsets must be asked for in increasing order.
    pub fn line_at(&mut self, byte: u64) -> Option<u64> {
        while self.starts.front().is_some_and(|&(start, _)| start < byte) {
            self.starts.pop_front();
        }
        self.starts.front().map(|&(_, line)| line)
    }

    fn scan(&mut self, buf: &[u8]) {
        let mut pos = 0;
        while pos < buf.len() {
            if self.at_line_start {
                match buf[pos] {
                    b'\r' => {
                        pos += 1;
                        continue;
                    }
                    b'\n' => {}
                    _ => {
                        self.starts.push_back((self.offset + pos as u64, self.line));
                        self.at_line_start = false;
                    }
                }
            }
            match memchr::memchr(b'\n', &buf[pos..]) {
                Some(i) => {
                    pos += i + 1;
                    self.line += 1;
                    self.at_line_start = true;
                }
                None => break,
            }
        }
        self.offset += buf.len() as u64;
    }
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.scan(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line the csv reader's record positions map to, for every record after the header.
    fn record_lines(input: &[u8]) -> Vec<u64> {
        let mut csv = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(LineTracker::new(std::io::Cursor::new(input.to_vec())));
        let mut record = csv::ByteRecord::new();
        let mut lines = Vec::new();
        while csv.read_byte_record(&mut record).expect("parses") {
            let byte = record.position().expect("position").byte();
            lines.push(csv.get_mut().line_at(byte).expect("line"));
        }
        lines
    }

    #[test]
    fn lf_crlf_blank_lines_and_quoted_newlines() {
        assert_eq!(record_lines(b"h\na\nb\n"), [2, 3]);
        assert_eq!(record_lines(b"h\r\na\r\nb\r\n"), [2, 3]);
        assert_eq!(record_lines(b"h\r\na\r\n\r\n\r\nb"), [2, 5]);
        assert_eq!(record_lines(b"h,i\n\"x\ny\",1\n\nz,2\n"), [2, 5]);
        assert_eq!(record_lines(b"\xef\xbb\xbfh,i\r\n\"x\r\ny\",1\r\nz,2\r\n"), [2, 4]);
    }

    #[test]
    fn small_reads_change_nothing() {
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let Some((first, rest)) = self.0.split_first() else { return Ok(0) };
                buf[0] = *first;
                self.0 = rest;
                Ok(1)
            }
        }
        let mut t = LineTracker::new(OneByte(b"h\r\n\r\na\r\nb"));
        std::io::copy(&mut t, &mut std::io::sink()).expect("reads");
        assert_eq!(t.line_at(3), Some(3));
        assert_eq!(t.line_at(8), Some(4));
        assert_eq!(t.line_at(10), None);
    }
}
