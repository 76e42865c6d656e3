//! Phone numbers to E.164, by libphonenumber's rules, fast enough for million-row imports.
//!
//! The `phonenumber` crate implements libphonenumber's parsing and metadata, but every regex use
//! goes through one global, mutex-guarded LRU cache of 100 compiled patterns: with ~250 regions
//! the cache thrashes (a parse costs ~10 µs) and threads serialize on the lock. Most numbers in
//! a CRM export are already international (`+44 7700 900123`). For those we take a fast path that
//! applies exactly the crate's validation logic (region by leading digits, then "general pattern
//! and any number-type pattern match") to a table of regexes compiled once, lock-free. Whenever
//! the crate would rewrite the number (a national prefix or carrier code to strip), or the input
//! is in any other shape, we fall back to the crate itself. `tests::fast_path_agrees_with_crate`
//! checks the two agree on tens of thousands of numbers from every region.

mod written;

use crate::engine::field_rules::MAX_PHONE_CHARS;
use phonenumber::country::Id as RegionId;
use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use regex::{Regex, RegexBuilder};
use std::str::FromStr;
use std::sync::OnceLock;

/// Shortest and longest national significant number the crate accepts.
const MIN_NSN: usize = 2;
const MAX_NSN: usize = 17;

/// Why a phone number was rejected, phrased for the person fixing the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("is empty")]
    Empty,
    #[error("has no country code; write it as +<country code> <number> or pass --default-region (e.g. GB)")]
    NoRegion,
    #[error("is not a phone number")]
    NotANumber,
    #[error("is not a valid number for its country ({0})")]
    Invalid(String),
    #[error(
        "has an extension; extensions are not supported: import the number without it (an extension \
         can go in a column of its own, which is kept as metadata)"
    )]
    Extension,
    #[error("contains letters; write the number in digits (letters are never read as phone keypad digits)")]
    Letters,
    #[error("contains {0}; a phone number is digits, spaces and + - . ( ) only")]
    Control(String),
    #[error("is {0} characters long; a phone number as written has at most {max}", max = MAX_PHONE_CHARS)]
    TooLong(usize),
}

/// A region code such as `GB`, validated against libphonenumber's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(RegionId);

impl FromStr for Region {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RegionId::from_str(&s.trim().to_ascii_uppercase())
            .map(Region)
            .map_err(|_| format!("unknown region '{s}'; expected a two-letter country code such as GB, US, NG, DE"))
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_ref())
    }
}

/// Loads libphonenumber's metadata (~0.2 s, once per process) on a background thread, so a
/// bulk import does not stall its first rows on it.
pub fn warm_up() {
    std::thread::spawn(|| DATABASE.region(&1).is_some());
}

/// Normalizes one phone number to E.164 (`+447700900123`).
///
/// Numbers written with `+` or `00` need no region; national numbers need `region`.
pub fn normalize_phone(raw: &str, region: Option<Region>) -> Result<String, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    written::refuse_unreadable(trimmed)?;
    if let Some(digits) = international_digits(trimmed) {
        if let Some(answer) = fast_table().validate(&digits) {
            return answer;
        }
        return parse_with_crate(&format!("+{digits}"), None);
    }
    match region {
        Some(region) => match national_fast(trimmed, region) {
            Some(answer) => answer,
            None => parse_with_crate(trimmed, Some(region.0)),
        },
        None if trimmed.chars().any(|c| c.is_ascii_digit()) => Err(PhoneError::NoRegion),
        None => Err(PhoneError::NotANumber),
    }
}

/// The digits after `+` (or `00`) when the text is only digits and common separators.
fn international_digits(text: &str) -> Option<String> {
    let rest = text.strip_prefix('+').or_else(|| text.strip_prefix("00"))?;
    only_digits(rest).filter(|d| d.len() > 3)
}

/// The digits of a number written with only digits and common separators.
fn only_digits(text: &str) -> Option<String> {
    let mut digits = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
            _ => return None,
        }
    }
    Some(digits)
}

/// A national number (`07911 123456` in GB) through the fast path, for regions where the
/// crate's only rewrite is dropping the plain national prefix (its prefix-for-parsing pattern,
/// if any, must match exactly that prefix): `None` defers to the crate.
fn national_fast(text: &str, region: Region) -> Option<Result<String, PhoneError>> {
    let meta = DATABASE.by_id(region.0.as_ref())?;
    if meta.national_prefix_transform_rule().is_some() {
        return None;
    }
    let prefix = meta.national_prefix()?;
    let digits = only_digits(text)?;
    let rest = digits.strip_prefix(prefix)?;
    if meta.national_prefix_for_parsing().is_some() {
        let code = meta.country_code();
        let CodeEntry::Ready(patterns) = fast_table().entry(code) else { return None };
        let this = patterns.regions.iter().find(|r| r.id == meta.id())?;
        let strip = this.strip_regex.as_ref()?.find(&digits)?;
        if strip.start() != 0 || strip.end() != prefix.len() {
            return None;
        }
    }
    // The crate keeps the prefix when dropping it leaves a number too short for the region,
    // and drops a second prefix too: leave both cases to it.
    let shortest = meta.descriptors().general().possible_length().first().copied().unwrap_or(0);
    if rest.is_empty() || rest.starts_with(prefix) || (rest.len() as u16) < shortest {
        return None;
    }
    fast_table().validate(&format!("{}{rest}", meta.country_code()))
}

fn parse_with_crate(text: &str, region: Option<RegionId>) -> Result<String, PhoneError> {
    let number = phonenumber::parse(region, text).map_err(|_| PhoneError::NotANumber)?;
    if !number.is_valid() {
        let country = number.country().id().map(|id| id.as_ref().to_string());
        return Err(PhoneError::Invalid(country.unwrap_or_else(|| format!("+{}", number.code().value()))));
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// One region's patterns, compiled once, anchored the way the crate matches them.
struct RegionPatterns {
    id: String,
    leading_digits: Option<Regex>,
    general: Pattern,
    types: Vec<Pattern>,
    /// The crate would strip a prefix from numbers matching this (national prefix or carrier).
    strip_prefix: Option<String>,
    strip_regex: Option<Regex>,
}

/// One number-type pattern, compiled the first time a number of a possible length needs it
/// (NANPA alone has hundreds of patterns; most imports touch a few).
struct Pattern {
    lengths: Vec<u16>,
    source: String,
    regex: OnceLock<Option<Matcher>>,
}

impl Pattern {
    fn new(desc: &Descriptor) -> Pattern {
        Pattern {
            lengths: desc.possible_length().to_vec(),
            source: desc.national_number().as_str().to_string(),
            regex: OnceLock::new(),
        }
    }

    /// The crate's `Descriptor::is_match`: a possible length, and a match starting at 0.
    /// `None` when the pattern does not compile here (the caller defers to the crate).
    fn is_match(&self, national: &str) -> Option<bool> {
        if !self.lengths.is_empty() && !self.lengths.contains(&(national.len() as u16)) {
            return Some(false);
        }
        let matcher = self.regex.get_or_init(|| Matcher::compile(&self.source)).as_ref()?;
        Some(matcher.is_match(national))
    }
}

/// A number-type pattern, as a fully built anchored DFA where it stays small (a 10-digit
/// number is then ~10 table lookups, no cache or pool), else as a `Regex`.
enum Matcher {
    Dfa(Box<regex_automata::dfa::dense::DFA<Vec<u32>>>),
    Regex(Regex),
}

impl Matcher {
    fn compile(source: &str) -> Option<Matcher> {
        use regex_automata::dfa::{StartKind, dense};
        let dfa = dense::Builder::new()
            .configure(dense::Config::new().start_kind(StartKind::Anchored).dfa_size_limit(Some(1 << 20)))
            .syntax(regex_automata::util::syntax::Config::new().unicode(false).utf8(false).ignore_whitespace(true))
            .build(source);
        match dfa {
            Ok(dfa) => Some(Matcher::Dfa(Box::new(dfa))),
            Err(_) => anchored(source).map(Matcher::Regex),
        }
    }

    /// Whether a match starts at 0 (the crate's `find(..).start() == 0`).
    fn is_match(&self, text: &str) -> bool {
        use regex_automata::dfa::Automaton;
        match self {
            Matcher::Dfa(dfa) => {
                let input = regex_automata::Input::new(text).anchored(regex_automata::Anchored::Yes).earliest(true);
                matches!(dfa.try_search_fwd(&input), Ok(Some(_)))
            }
            Matcher::Regex(re) => re.is_match(text),
        }
    }
}

/// Anchored as the crate matches (a match starting at 0). Unicode is off: the input is ASCII
/// digits, and ASCII classes compile an order of magnitude faster than Unicode `\d`.
fn anchored(source: &str) -> Option<Regex> {
    RegexBuilder::new(&format!("^(?:{source})")).ignore_whitespace(true).unicode(false).build().ok()
}

impl RegionPatterns {
    fn compile(meta: &Metadata) -> Option<RegionPatterns> {
        let d = meta.descriptors();
        // Validity is "any type matches", so order is free: the common types go first.
        let optional = [
            d.mobile(),
            d.fixed_line(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ];
        let types = optional.into_iter().flatten().map(Pattern::new).collect();
        Some(RegionPatterns {
            id: meta.id().to_string(),
            leading_digits: match meta.leading_digits() {
                Some(re) => Some(anchored(re.as_str())?),
                None => None,
            },
            general: Pattern::new(d.general()),
            types,
            strip_prefix: meta.national_prefix().map(str::to_string),
            strip_regex: match meta.national_prefix_for_parsing() {
                Some(re) => Some(anchored(re.as_str())?),
                None => None,
            },
        })
    }

    /// The crate's `number_type(meta, n) != Unknown`; `None` when a pattern is unusable here.
    fn is_valid(&self, national: &str) -> Option<bool> {
        if !self.general.is_match(national)? {
            return Some(false);
        }
        for t in &self.types {
            if t.is_match(national)? {
                return Some(true);
            }
        }
        Some(false)
    }
}

/// Country calling code → its regions, in the crate's order (main region first). Each code's
/// patterns are compiled the first time a number with that code is seen.
struct FastTable {
    by_code: [OnceLock<CodeEntry>; 1000],
}

/// What the fast path knows about a country calling code.
enum CodeEntry {
    /// Not a calling code.
    Missing,
    /// A calling code whose patterns this regex engine cannot compile: the crate decides.
    Unusable,
    Ready(CodePatterns),
}

struct CodePatterns {
    regions: Vec<RegionPatterns>,
    non_geographic: bool,
    /// Whether the crate would strip a prefix from a number in any of the regions (a national
    /// prefix, or a match of a prefix-for-parsing pattern): their distinct prefixes, and their
    /// patterns as one alternation — one test where there was one per region (NANPA has 25;
    /// per-region tests were a third of validating a US number).
    strip_prefixes: Vec<String>,
    strip_any: Option<Regex>,
}

fn fast_table() -> &'static FastTable {
    static TABLE: FastTable = FastTable { by_code: [const { OnceLock::new() }; 1000] };
    &TABLE
}

impl CodeEntry {
    fn build(code: u16) -> CodeEntry {
        if DATABASE.region(&code).is_none() {
            return CodeEntry::Missing;
        }
        CodePatterns::build(code).map_or(CodeEntry::Unusable, CodeEntry::Ready)
    }
}

impl CodePatterns {
    fn build(code: u16) -> Option<CodePatterns> {
        let regions = DATABASE.region(&code)?;
        let mut compiled = Vec::new();
        let mut strip_sources: Vec<&str> = Vec::new();
        let mut non_geographic = false;
        for region in &regions {
            let meta = if *region == "001" {
                non_geographic = true;
                DATABASE.by_code(&code).and_then(|m| m.into_iter().next())
            } else {
                DATABASE.by_id(*region)
            };
            // A pattern our regex engine cannot compile leaves this code to the crate.
            let meta = meta?;
            compiled.push(RegionPatterns::compile(meta)?);
            if let Some(re) = meta.national_prefix_for_parsing() {
                if !strip_sources.contains(&re.as_str()) {
                    strip_sources.push(re.as_str());
                }
            }
        }
        let mut strip_prefixes: Vec<String> = compiled.iter().filter_map(|r| r.strip_prefix.clone()).collect();
        strip_prefixes.sort_unstable();
        strip_prefixes.dedup();
        let strip_any = match strip_sources.is_empty() {
            true => None,
            false => Some(anchored(&strip_sources.iter().map(|s| format!("(?:{s})")).collect::<Vec<_>>().join("|"))?),
        };
        Some(CodePatterns { regions: compiled, non_geographic, strip_prefixes, strip_any })
    }

    fn would_strip(&self, national: &str) -> bool {
        self.strip_prefixes.iter().any(|p| national.starts_with(p.as_str()))
            || self.strip_any.as_ref().is_some_and(|re| re.is_match(national))
    }
}

impl FastTable {
    fn entry(&self, code: u16) -> &CodeEntry {
        match self.by_code.get(code as usize) {
            Some(slot) => slot.get_or_init(|| CodeEntry::build(code)),
            None => &CodeEntry::Missing,
        }
    }

    /// `Some(answer)` when the fast path can decide; `None` to defer to the crate.
    fn validate(&self, digits: &str) -> Option<Result<String, PhoneError>> {
        if digits.starts_with('0') {
            return None;
        }
        // Calling codes are prefix-free: the first length naming a code is the code.
        let (entry, code, national) = (1..=3).find_map(|len| {
            let code: u16 = digits.get(..len)?.parse().ok()?;
            match self.by_code[code as usize].get_or_init(|| CodeEntry::build(code)) {
                CodeEntry::Missing => None,
                entry => Some((entry, code, &digits[len..])),
            }
        })?;
        let CodeEntry::Ready(patterns) = entry else { return None };
        let regions = &patterns.regions;
        if national.len() <= MIN_NSN || national.len() > MAX_NSN {
            return None;
        }
        if patterns.would_strip(national) {
            return None;
        }
        let region = if regions.len() == 1 || patterns.non_geographic {
            regions.first()
        } else {
            let mut found = None;
            for r in regions {
                let claims = match &r.leading_digits {
                    Some(re) => re.is_match(national),
                    None => r.is_valid(national)?,
                };
                if claims {
                    found = Some(r);
                    break;
                }
            }
            found
        };
        Some(match region {
            Some(r) if r.is_valid(national)? => Ok(format!("+{code}{national}")),
            Some(r) => Err(PhoneError::Invalid(r.id.clone())),
            None => Err(PhoneError::Invalid(format!("+{code}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gb() -> Option<Region> {
        Some("GB".parse().expect("GB is a region"))
    }

    #[test]
    fn international_numbers_normalize_to_e164() {
        assert_eq!(normalize_phone("+44 7911 123456", None).as_deref(), Ok("+447911123456"));
        assert_eq!(normalize_phone("+1 (415) 555-2671", None).as_deref(), Ok("+14155552671"));
        assert_eq!(normalize_phone("0049 30 901820", None).as_deref(), Ok("+4930901820"));
        assert_eq!(normalize_phone("+234 803 123 4567", None).as_deref(), Ok("+2348031234567"));
    }

    #[test]
    fn national_numbers_need_a_region() {
        assert_eq!(normalize_phone("07911 123456", None), Err(PhoneError::NoRegion));
        assert_eq!(normalize_phone("07911 123456", gb()).as_deref(), Ok("+447911123456"));
    }

    #[test]
    fn invalid_numbers_say_why() {
        assert!(normalize_phone("+44 1", None).is_err());
        assert!(matches!(normalize_phone("+44 7700 9001234567", None), Err(PhoneError::Invalid(_))));
        assert_eq!(normalize_phone("call me", None), Err(PhoneError::NotANumber));
        assert_eq!(normalize_phone("  ", None), Err(PhoneError::Empty));
        assert!(normalize_phone("+999 123456", None).is_err());
    }

    #[test]
    fn regions_parse_case_insensitively() {
        assert!("gb".parse::<Region>().is_ok());
        assert!("XX".parse::<Region>().unwrap_err().contains("two-letter"));
    }

    /// The fast path must give exactly the crate's answer. Numbers come from every region's
    /// example numbers and from deterministic mutations of them (digits changed, added, cut).
    #[test]
    fn fast_path_agrees_with_crate() {
        let mut samples = Vec::new();
        for meta in DATABASE.iter() {
            let d = meta.descriptors();
            let code = meta.country_code();
            for desc in [Some(d.general()), d.fixed_line(), d.mobile(), d.toll_free(), d.voip()].into_iter().flatten() {
                if let Some(example) = desc.example() {
                    samples.push(format!("{code}{example}"));
                }
            }
        }
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let base = samples.clone();
        for s in &base {
            for _ in 0..40 {
                let mut bytes = s.clone().into_bytes();
                let r = next();
                let pos = (r as usize >> 8) % bytes.len();
                match r % 4 {
                    0 => bytes[pos] = b'0' + (r >> 32) as u8 % 10,
                    1 => bytes.insert(pos, b'0' + (r >> 32) as u8 % 10),
                    2 if bytes.len() > 4 => {
                        bytes.remove(pos);
                    }
                    _ => {
                        let last = bytes.len() - 1;
                        bytes[last] = b'0' + (r >> 40) as u8 % 10;
                    }
                }
                samples.push(String::from_utf8(bytes).expect("digits"));
            }
        }
        let mut national_decided = 0;
        for meta in DATABASE.iter() {
            let Ok(region) = meta.id().parse::<Region>() else { continue };
            let Some(prefix) = meta.national_prefix() else { continue };
            let d = meta.descriptors();
            for example in [d.fixed_line(), d.mobile()].into_iter().flatten().filter_map(|x| x.example()) {
                for variant in
                    [format!("{prefix}{example}"), format!("{prefix}{example}1"), format!("{prefix}{}", &example[1..])]
                {
                    if let Some(fast) = national_fast(&variant, region) {
                        national_decided += 1;
                        let slow = parse_with_crate(&variant, Some(region.0));
                        assert_eq!(fast, slow.clone().map_err(|_| fast.clone().unwrap_err()), "{variant} in {region}");
                    }
                }
            }
        }
        assert!(national_decided > 200, "national fast path decided only {national_decided}");
        let mut decided = 0;
        for digits in &samples {
            if let Some(fast) = fast_table().validate(digits) {
                decided += 1;
                let slow = parse_with_crate(&format!("+{digits}"), None);
                assert_eq!(fast.is_ok(), slow.is_ok(), "+{digits}: fast {fast:?}, crate {slow:?}");
                if let (Ok(a), Ok(b)) = (&fast, &slow) {
                    assert_eq!(a, b, "+{digits}");
                }
            }
        }
        assert!(decided > samples.len() / 2, "fast path decided only {decided} of {}", samples.len());
    }
}
