//! The first bytes of an import file decide how the rest is read: its encoding (a byte-order
//! mark) and its field separator (sniffed from the header line).
//!
//! A file that is wrong as a whole must fail once, at the start, with the fix, rather than as
//! one "has no email or phone" per row. So UTF-16 with a BOM (what Excel writes as "Unicode
//! Text") is transcoded to UTF-8 as it streams; a UTF-8 BOM is dropped; UTF-32, and UTF-16
//! without a BOM (NUL bytes in the header line), are refused with what to save instead.
//! Transcoding happens below the line tracker, so line numbers count the file's own lines.

use std::io::{Cursor, Read};

/// The separators we sniff and accept, in order of preference on a tie.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];
/// How far we look for the end of the header line.
const MAX_HEADER_BYTES: usize = 1 << 20;

/// Parses `--delimiter`: one of `,` `;` `|`, or a tab (`tab`, `\t`, or a tab character).
pub fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "," => Ok(b','),
        ";" => Ok(b';'),
        "|" => Ok(b'|'),
        "\t" | "\\t" => Ok(b'\t'),
        t if t.eq_ignore_ascii_case("tab") => Ok(b'\t'),
        t if t.eq_ignore_ascii_case("comma") => Ok(b','),
        t if t.eq_ignore_ascii_case("semicolon") => Ok(b';'),
        t if t.eq_ignore_ascii_case("pipe") => Ok(b'|'),
        other => Err(format!(
            "'{}' is not a supported delimiter; use one of , ; | or tab",
            crate::engine::field_rules::shown(other)
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16Le,
    Utf16Be,
}

/// An import file ready for the CSV reader: UTF-8 bytes, and the separator to split on.
pub struct Decoded {
    pub reader: Box<dyn Read + Send>,
    pub encoding: Encoding,
    pub delimiter: u8,
}

/// Reads the byte-order mark and the header line of `input`; `delimiter` overrides the sniff.
/// `Err` is a file-level problem, phrased for the person fixing the file.
pub fn decode(mut input: Box<dyn Read + Send>, delimiter: Option<u8>) -> std::io::Result<Result<Decoded, String>> {
    let mut start = Vec::with_capacity(4);
    (&mut input).take(4).read_to_end(&mut start)?;
    let (encoding, skip) = match start.as_slice() {
        [0xFF, 0xFE, 0, 0, ..] | [0, 0, 0xFE, 0xFF, ..] => {
            return Ok(Err("the file is UTF-32, which is not supported; save it as CSV UTF-8".into()));
        }
        [0xEF, 0xBB, 0xBF, ..] => (Encoding::Utf8, 3),
        [0xFF, 0xFE, ..] => (Encoding::Utf16Le, 2),
        [0xFE, 0xFF, ..] => (Encoding::Utf16Be, 2),
        _ => (Encoding::Utf8, 0),
    };
    let rest: Box<dyn Read + Send> = Box::new(Cursor::new(start.split_off(skip)).chain(input));
    let mut text: Box<dyn Read + Send> = match encoding {
        Encoding::Utf8 => rest,
        Encoding::Utf16Le => Box::new(Utf16ToUtf8::new(rest, true)),
        Encoding::Utf16Be => Box::new(Utf16ToUtf8::new(rest, false)),
    };
    let (head, header_end) = read_header_line(&mut text)?;
    if head[..header_end].contains(&0) {
        return Ok(Err("the header line contains NUL bytes: the file looks like UTF-16 saved without a byte-order \
                       mark; save it as CSV UTF-8 (or UTF-16 with a BOM)"
            .into()));
    }
    let delimiter = delimiter.unwrap_or_else(|| sniff(&head));
    Ok(Ok(Decoded { reader: Box::new(Cursor::new(head).chain(text)), encoding, delimiter }))
}

/// Bytes read from the start of `input` until the first line break outside quotes (or a
/// bound, or the end), and where the header line in them ends.
fn read_header_line(input: &mut dyn Read) -> std::io::Result<(Vec<u8>, usize)> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let mut quoted = false;
    let mut scanned = 0;
    while head.len() < MAX_HEADER_BYTES {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        for (i, &b) in head.iter().enumerate().skip(scanned) {
            match b {
                b'"' => quoted = !quoted,
                b'\n' if !quoted => return Ok((head, i)),
                _ => {}
            }
        }
        scanned = head.len();
    }
    let end = head.len();
    Ok((head, end))
}

/// The separator used most often outside quotes on the first line; a comma when none is.
fn sniff(head: &[u8]) -> u8 {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for &b in head {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            _ if !quoted => {
                if let Some(i) = DELIMITERS.iter().position(|d| *d == b) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    // `max_by_key` keeps the last of equal counts; scanning in reverse makes it the first.
    let best = (0..DELIMITERS.len()).rev().max_by_key(|&i| counts[i]).unwrap_or(0);
    if counts[best] == 0 { b',' } else { DELIMITERS[best] }
}

/// Streams UTF-16 as UTF-8, a buffer at a time. A code unit that does not decode (an
/// unpaired surrogate, or a last odd byte) becomes the byte 0xFF, which is never UTF-8: the row
/// holding it is rejected with its line and column rather than the text being altered.
struct Utf16ToUtf8<R> {
    inner: R,
    little_endian: bool,
    raw: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    /// A high surrogate waiting for its low half.
    high: Option<u16>,
    eof: bool,
}

impl<R: Read> Utf16ToUtf8<R> {
    fn new(inner: R, little_endian: bool) -> Self {
        Utf16ToUtf8 { inner, little_endian, raw: Vec::new(), out: Vec::new(), out_pos: 0, high: None, eof: false }
    }

    fn push_char(&mut self, c: char) {
        let mut buf = [0u8; 4];
        self.out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }

    fn unit(&mut self, u: u16) {
        match (self.high.take(), u) {
            (Some(h), 0xDC00..=0xDFFF) => {
                let c = 0x10000 + ((u32::from(h) - 0xD800) << 10) + (u32::from(u) - 0xDC00);
                match char::from_u32(c) {
                    Some(c) => self.push_char(c),
                    None => self.out.push(0xFF),
                }
                return;
            }
            (Some(_), _) => self.out.push(0xFF),
            (None, _) => {}
        }
        match u {
            0xD800..=0xDBFF => self.high = Some(u),
            0xDC00..=0xDFFF => self.out.push(0xFF),
            _ => match char::from_u32(u32::from(u)) {
                Some(c) => self.push_char(c),
                None => self.out.push(0xFF),
            },
        }
    }

    /// Decodes the next buffer of input into `out`; false at the end.
    fn fill(&mut self) -> std::io::Result<bool> {
        self.out.clear();
        self.out_pos = 0;
        while self.out.is_empty() {
            if self.eof {
                if self.high.take().is_some() || !self.raw.is_empty() {
                    self.raw.clear();
                    self.out.push(0xFF);
                    return Ok(true);
                }
                return Ok(false);
            }
            let mut buf = [0u8; 8192];
            let n = self.inner.read(&mut buf)?;
            if n == 0 {
                self.eof = true;
                continue;
            }
            self.raw.extend_from_slice(&buf[..n]);
            let whole = self.raw.len() / 2 * 2;
            let units: Vec<u16> = self.raw[..whole]
                .chunks_exact(2)
                .map(|p| {
                    if self.little_endian { u16::from_le_bytes([p[0], p[1]]) } else { u16::from_be_bytes([p[0], p[1]]) }
                })
                .collect();
            self.raw.drain(..whole);
            for u in units {
                self.unit(u);
            }
        }
        Ok(true)
    }
}

impl<R: Read> Read for Utf16ToUtf8<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.out_pos == self.out.len() && !self.fill()? {
            return Ok(0);
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(bytes: &[u8], delimiter: Option<u8>) -> Result<(Vec<u8>, Encoding, u8), String> {
        let d = decode(Box::new(Cursor::new(bytes.to_vec())), delimiter).expect("reads")?;
        let mut text = Vec::new();
        let mut reader = d.reader;
        reader.read_to_end(&mut text).expect("reads");
        Ok((text, d.encoding, d.delimiter))
    }

    fn utf16(text: &str, little: bool) -> Vec<u8> {
        let mut out = if little { vec![0xFF, 0xFE] } else { vec![0xFE, 0xFF] };
        for u in text.encode_utf16() {
            out.extend_from_slice(&if little { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        out
    }

    #[test]
    fn delimiters_are_sniffed_from_the_header_line() {
        assert_eq!(sniff(b"Name,Email\n"), b',');
        assert_eq!(sniff(b"Name;Email;Phone\na,b,c,d,e\n"), b';', "only the header line counts");
        assert_eq!(sniff(b"Name\tEmail\n"), b'\t');
        assert_eq!(sniff(b"Name|Email\n"), b'|');
        assert_eq!(sniff(b"\"Last, First\";Email\n"), b';', "quoted separators do not count");
        assert_eq!(sniff(b"Email\n"), b',');
        assert_eq!(sniff(b"a,b;c\n"), b',', "a tie goes to the comma");
    }

    #[test]
    fn boms_are_handled() {
        let (text, enc, delim) = decoded(b"\xef\xbb\xbfEmail;Name\r\na@x.com;A\r\n", None).expect("utf-8");
        assert_eq!((text.as_slice(), enc, delim), (&b"Email;Name\r\na@x.com;A\r\n"[..], Encoding::Utf8, b';'));
        for little in [true, false] {
            let (text, enc, delim) = decoded(&utf16("Email\tName\r\nü@x.com\t😀\r\n", little), None).expect("utf-16");
            assert_eq!(String::from_utf8(text).expect("utf-8"), "Email\tName\r\nü@x.com\t😀\r\n");
            assert_eq!((enc, delim), (if little { Encoding::Utf16Le } else { Encoding::Utf16Be }, b'\t'));
        }
        assert!(decoded(b"\xff\xfe\0\0E\0\0\0", None).unwrap_err().contains("UTF-32"));
        assert!(decoded(b"E\0m\0a\0i\0l\0\n\0", None).unwrap_err().contains("without a byte-order mark"));
        assert_eq!(decoded(b"", None).expect("empty").0, b"");
        assert!(decoded(b"Email\nx@example.com,\0\n", None).is_ok(), "only the header line is checked");
    }

    #[test]
    fn undecodable_utf16_is_marked_not_altered() {
        let mut bytes = utf16("Email\na", true);
        bytes.extend_from_slice(&0xD800u16.to_le_bytes());
        bytes.extend_from_slice(&utf16("b\n", true)[2..]);
        bytes.push(b'x');
        let (text, _, _) = decoded(&bytes, None).expect("decodes");
        assert_eq!(text, b"Email\na\xffb\n\xff");
    }

    #[test]
    fn small_reads_split_surrogate_pairs_safely() {
        struct OneByte(Vec<u8>, usize);
        impl Read for OneByte {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let Some(b) = self.0.get(self.1) else { return Ok(0) };
                buf[0] = *b;
                self.1 += 1;
                Ok(1)
            }
        }
        let d = decode(Box::new(OneByte(utf16("E\n😀é\n", false), 0)), None).expect("reads").expect("decodes");
        let mut text = String::new();
        let mut reader = d.reader;
        reader.read_to_string(&mut text).expect("utf-8");
        assert_eq!(text, "E\n😀é\n");
    }

    #[test]
    fn delimiter_flag_values() {
        for (text, d) in [(",", b','), (";", b';'), ("|", b'|'), ("tab", b'\t'), ("\\t", b'\t'), ("\t", b'\t')] {
            assert_eq!(parse_delimiter(text), Ok(d), "{text}");
        }
        assert!(parse_delimiter(":").unwrap_err().contains("one of , ; | or tab"));
    }
}
