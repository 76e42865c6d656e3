//! QR codes for the terminal: two modules per character cell with half blocks (`▀ ▄ █`),
//! drawn in explicit colours — black on white, whatever the terminal's theme — so a phone
//! scans them on dark and light themes alike, inside a quiet zone of four modules. When the
//! terminal is too small for the code, a readable fallback says so and how big it must be.

use qrcode::{Color, QrCode};

/// Modules of light margin around the code (the QR standard's quiet zone).
pub const QUIET_ZONE: usize = 4;

const DARK_ON_LIGHT: &str = "\x1b[38;2;0;0;0;48;2;255;255;255m";
const RESET: &str = "\x1b[0m";

/// The module matrix of `payload` with its quiet zone, `true` for dark, row by row.
pub fn modules(payload: &str) -> Result<Vec<Vec<bool>>, String> {
    let code = QrCode::new(payload.as_bytes()).map_err(|e| format!("cannot make a QR code: {e}"))?;
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * QUIET_ZONE;
    let mut grid = vec![vec![false; size]; size];
    for (i, color) in colors.iter().enumerate() {
        grid[i / width + QUIET_ZONE][i % width + QUIET_ZONE] = *color == Color::Dark;
    }
    Ok(grid)
}

/// The columns and rows the rendered code takes.
pub fn rendered_size(grid: &[Vec<bool>]) -> (usize, usize) {
    (grid.len(), grid.len().div_ceil(2))
}

/// The code as lines of half blocks, each line coloured dark-on-light and reset at its end.
pub fn render(grid: &[Vec<bool>]) -> String {
    let mut out = String::new();
    for pair in grid.chunks(2) {
        out.push_str(DARK_ON_LIGHT);
        for x in 0..pair[0].len() {
            let top = pair[0][x];
            let bottom = pair.get(1).is_some_and(|row| row[x]);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push_str(RESET);
        out.push('\n');
    }
    out
}

/// What to print for `payload` in a terminal of `terminal` (columns, rows), if known: the
/// code, or a readable explanation when it does not fit.
pub fn for_terminal(payload: &str, terminal: Option<(usize, usize)>) -> Result<String, String> {
    let grid = modules(payload)?;
    let (cols, rows) = rendered_size(&grid);
    match terminal {
        Some((w, h)) if w < cols || h < rows + 2 => Ok(format!(
            "The terminal is too small for the QR code: it needs {cols}×{} characters, this one has {w}×{h}.\n\
             Enlarge the window (or reduce the font size) and the next code will be shown; or link with a \
             pairing code instead: crm whatsapp login --phone +NUMBER\n",
            rows + 2
        )),
        _ => Ok(render(&grid)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads rendered half blocks back into modules (the inverse of [`render`]).
    fn parse(rendered: &str) -> Vec<Vec<bool>> {
        let mut grid = Vec::new();
        for line in rendered.lines() {
            let text = line.replace(DARK_ON_LIGHT, "").replace(RESET, "");
            let (mut top, mut bottom) = (Vec::new(), Vec::new());
            for c in text.chars() {
                top.push(matches!(c, '█' | '▀'));
                bottom.push(matches!(c, '█' | '▄'));
            }
            grid.push(top);
            grid.push(bottom);
        }
        grid
    }

    /// Decodes a module grid as a camera would see it: scaled up to pixels, light around.
    fn decode(grid: &[Vec<bool>]) -> String {
        const SCALE: usize = 6;
        let size = grid.len() * SCALE;
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(size, size, |x, y| {
            let (gx, gy) = (x / SCALE, y / SCALE);
            let dark = grid.get(gy).and_then(|row| row.get(gx)).copied().unwrap_or(false);
            if dark { 0 } else { 255 }
        });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "one code found");
        let (_, content) = grids[0].decode().expect("decodes");
        content
    }

    const PAYLOAD: &str = "2@Qm9ndXNQYXlsb2Fk,dGVzdGtleQ==,aWRlbnRpdHk=,YWR2U2VjcmV0";

    #[test]
    fn a_rendered_code_decodes_back_to_its_payload() {
        let grid = modules(PAYLOAD).expect("encodes");
        let rendered = render(&grid);
        assert!(rendered.starts_with(DARK_ON_LIGHT) && rendered.lines().all(|l| l.ends_with(RESET)));
        let back = parse(&rendered);
        // An odd number of rows pads a light one at the bottom.
        assert_eq!(&back[..grid.len()], &grid[..]);
        assert_eq!(decode(&back), PAYLOAD);
    }

    #[test]
    fn the_quiet_zone_is_light_and_small_terminals_get_a_readable_fallback() {
        let grid = modules(PAYLOAD).expect("encodes");
        let n = grid.len();
        for q in 0..QUIET_ZONE {
            assert!(grid[q].iter().chain(&grid[n - 1 - q]).all(|dark| !dark), "top and bottom rows light");
            assert!(grid.iter().all(|row| !row[q] && !row[n - 1 - q]), "left and right columns light");
        }
        let (cols, rows) = rendered_size(&grid);
        let small = for_terminal(PAYLOAD, Some((cols - 1, 80))).expect("text");
        assert!(small.contains("too small") && small.contains(&format!("{cols}×")), "{small}");
        assert!(!small.contains('▀'));
        let fits = for_terminal(PAYLOAD, Some((cols, rows + 2))).expect("text");
        assert!(fits.contains('▀') || fits.contains('▄'));
        assert_eq!(for_terminal(PAYLOAD, None).expect("text"), render(&grid), "unknown size: the code");
    }
}
