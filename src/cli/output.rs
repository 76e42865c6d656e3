//! Presenting results: aligned tables that fit the terminal, JSON, and CSV.
//!
//! Everything goes through [`Out`], which buffers stdout. A closed pipe (`crm leads list |
//! head -1`) surfaces as [`std::io::ErrorKind::BrokenPipe`] and is turned into a quiet,
//! successful exit by `cli::main`.

use std::io::{self, IsTerminal, Write};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

pub struct Out {
    inner: io::BufWriter<io::Stdout>,
    width: Option<usize>,
}

impl Default for Out {
    fn default() -> Self {
        Out::new()
    }
}

impl Out {
    pub fn new() -> Out {
        let stdout = io::stdout();
        let width = if stdout.is_terminal() {
            terminal_size::terminal_size().map(|(w, _)| w.0 as usize)
        } else {
            std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok())
        };
        Out { inner: io::BufWriter::new(stdout), width }
    }

    pub fn line(&mut self, text: impl AsRef<str>) -> io::Result<()> {
        writeln!(self.inner, "{}", text.as_ref())
    }

    pub fn json(&mut self, value: &impl serde::Serialize) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut self.inner, value)?;
        writeln!(self.inner)
    }

    pub fn table(&mut self, table: &Table) -> io::Result<()> {
        for line in table.render(self.width) {
            writeln!(self.inner, "{}", line.trim_end())?;
        }
        Ok(())
    }

    pub fn writer(&mut self) -> &mut dyn Write {
        &mut self.inner
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Replaces control characters so a cell cannot move the cursor or break the layout.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The widest a cell is printed when the terminal width is unknown.
pub const MAX_CELL_WIDTH: usize = 80;

/// A column: its header and whether it may be cut to fit (otherwise it keeps its width).
pub struct Column {
    pub header: &'static str,
    pub flexible: bool,
    pub right: bool,
}

pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: Vec<Column>) -> Table {
        Table { columns, rows: Vec::new() }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row.iter().map(|c| escape_controls(c)).collect());
    }

    /// The lines of the table; with `width`, flexible columns are cut (with `…`) to fit.
    /// Without one (stdout is not a terminal), a cell is cut at [`MAX_CELL_WIDTH`] columns, so a
    /// 10 MB name prints as one short line; `--json` and `--csv` carry full values.
    pub fn render(&self, width: Option<usize>) -> Vec<String> {
        let cap = width.unwrap_or(MAX_CELL_WIDTH);
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.header.width()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.width().min(cap));
            }
        }
        if let Some(limit) = width {
            shrink_to_fit(&mut widths, &self.columns, limit);
        }
        let header: Vec<String> = self.columns.iter().map(|c| c.header.to_string()).collect();
        std::iter::once(&header)
            .chain(&self.rows)
            .map(|row| {
                row.iter()
                    .zip(&widths)
                    .zip(&self.columns)
                    .map(|((cell, w), col)| pad(&truncate(cell, *w), *w, col.right))
                    .collect::<Vec<_>>()
                    .join("  ")
            })
            .collect()
    }
}

fn shrink_to_fit(widths: &mut [usize], columns: &[Column], limit: usize) {
    let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
    while total(widths) > limit {
        // Cut the widest flexible column by one, down to a floor of 6.
        let widest = widths
            .iter()
            .enumerate()
            .filter(|(i, w)| columns[*i].flexible && **w > 6)
            .max_by_key(|(_, w)| **w)
            .map(|(i, _)| i);
        match widest {
            Some(i) => widths[i] -= 1,
            None => break,
        }
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

fn pad(text: &str, width: usize, right: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(text.width()));
    if right { format!("{fill}{text}") } else { format!("{text}{fill}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new(vec![
            Column { header: "ID", flexible: false, right: true },
            Column { header: "NAME", flexible: true, right: false },
        ]);
        t.push(vec!["1".into(), "A very long name indeed\x1b[31m".into()]);
        t
    }

    #[test]
    fn tables_fit_the_width_and_escape_controls() {
        let lines = table().render(Some(16));
        assert!(lines.iter().all(|l| l.width() <= 16), "{lines:?}");
        assert!(lines[1].ends_with('…'));
        let full = table().render(None);
        assert!(full[1].contains("\\u{1b}[31m"), "{full:?}");
        assert!(!full[1].contains('\x1b'));
    }

    #[test]
    fn cells_are_capped_without_a_terminal() {
        let mut t = table();
        t.push(vec!["2".into(), "n".repeat(1_000_000)]);
        let lines = t.render(None);
        assert_eq!(lines[2].width(), 2 + 2 + MAX_CELL_WIDTH, "{}", &lines[2][..100]);
        assert!(lines[2].ends_with('…'));
        assert!(t.render(Some(40)).iter().all(|l| l.width() <= 40));
    }

    #[test]
    fn wide_characters_count_double() {
        assert_eq!(truncate("日本語テキスト", 7), "日本語…");
    }
}
