//! Generates realistic lead CSVs for the README tour and for benchmarks.
//!
//! ```text
//! cargo run --release --example gen_leads -- 1000000 /tmp/leads-1m.csv
//! cargo run --example gen_leads -- 300 examples/leads.csv --messy
//! ```
//!
//! Rows are deterministic for a given count and `--seed`: names, emails and phone numbers
//! from several countries (every phone valid by libphonenumber's rules, most written
//! internationally, some nationally for GB), spend, visits, last order dates, tags and a city.
//! About 2% of rows repeat an earlier customer (with a new email) so dedup has work to do.
//! `--messy` adds the bad rows an operator meets in real exports: broken emails, impossible
//! phone numbers, bad numbers and dates, rows without contact details, quoted commas and
//! newlines, a non-UTF-8 byte and a row with too few fields.

use crm::engine::phone::normalize_phone;
use std::io::{BufWriter, Write};

const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Chidi", "Ngozi", "Tunde", "Amara", "Hannah", "Lukas", "Sofia", "Mateo", "Priya", "Arjun",
    "Aisha", "Omar", "Mei", "Kenji", "Olivia", "Liam", "Emma", "Noah", "Zoë", "Björn", "José", "Chloé", "Fatima",
    "Yusuf", "Ana", "João", "Ines", "Kwame", "Efua", "Ravi", "Ananya", "Carlos", "Lucía",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Okafor",
    "Adeyemi",
    "Bello",
    "Müller",
    "Schmidt",
    "García",
    "Rossi",
    "Sharma",
    "Patel",
    "Khan",
    "Chen",
    "Tanaka",
    "Smith",
    "Jones",
    "Brown",
    "O'Brien",
    "Silva",
    "Santos",
    "Mensah",
    "Boateng",
    "Iyer",
    "Fernández",
    "Dubois",
    "Nowak",
    "Andersson",
];
const DOMAINS: &[&str] =
    &["gmail.com", "yahoo.com", "outlook.com", "proton.me", "example.co.uk", "mail.de", "yahoo.com.ng", "icloud.com"];
const TAGS: &[&str] = &["vip", "newsletter", "churn-risk", "wholesale", "first-order", "loyalty", "b2b"];

/// Country, city and a phone plan: (country code, national prefix digits, free digits).
const PLACES: &[(&str, &str, &str, &str, u32)] = &[
    ("GB", "London", "44", "79", 8),
    ("GB", "Manchester", "44", "74", 8),
    ("NG", "Lagos", "234", "803", 7),
    ("NG", "Abuja", "234", "806", 7),
    ("DE", "Berlin", "49", "151", 8),
    ("DE", "Munich", "49", "170", 7),
    ("US", "New York", "1", "212", 7),
    ("US", "San Francisco", "1", "415", 7),
    ("IN", "Mumbai", "91", "98", 8),
    ("BR", "São Paulo", "55", "119", 8),
    ("ES", "Madrid", "34", "6", 8),
    ("KE", "Nairobi", "254", "7", 8),
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A valid number for `place`, unique for each `index` (digits are a bijection of it).
fn phone(rng: &mut Rng, place: &(&str, &str, &str, &str, u32), index: u64) -> String {
    let (_, _, cc, prefix, free) = *place;
    let modulus = 10u64.pow(free);
    for attempt in 0..50u64 {
        let subscriber = (index.wrapping_mul(2_654_435_761).wrapping_add(attempt * 7_919)) % modulus;
        let mut national = format!("{prefix}{subscriber:0width$}", width = free as usize);
        if cc == "1" && national.as_bytes()[3] < b'2' {
            national.replace_range(3..4, "5");
        }
        let e164 = format!("+{cc}{national}");
        if normalize_phone(&e164, None).is_ok() {
            return match rng.below(10) {
                0..=4 => e164,
                5..=7 => format!("+{cc} {} {}", &national[..3], &national[3..]),
                8 if cc == "1" => format!("+1 ({}) {}-{}", &national[..3], &national[3..6], &national[6..]),
                8 | 9 if cc == "44" => format!("0{} {}", &national[..4], &national[4..]),
                _ => format!("00{cc} {national}"),
            };
        }
    }
    format!("+{cc}{prefix}{}", "0".repeat(free as usize))
}

fn date(rng: &mut Rng) -> String {
    let days = rng.below(3 * 365) as i64;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap_or_default() - chrono::Duration::days(days);
    if rng.below(4) == 0 { format!("{day}T{:02}:{:02}:00Z", rng.below(24), rng.below(60)) } else { day.to_string() }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: gen_leads ROWS OUT.csv [--messy] [--seed N]";
    let rows: u64 = args.first().and_then(|a| a.parse().ok()).ok_or_else(|| std::io::Error::other(usage))?;
    let out = args.get(1).ok_or_else(|| std::io::Error::other(usage))?;
    let messy = args.iter().any(|a| a == "--messy");
    let seed = args.iter().position(|a| a == "--seed").and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok());
    let mut rng = Rng(seed.unwrap_or(0x5EED_1234_ABCD_0001) | 1);
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    writeln!(w, "First Name,Last Name,Email Address,Phone Number,Total Spent,Visits,Last Order,Tags,City,Country")?;
    for i in 0..rows {
        if messy && i % 20 == 7 {
            write_bad_row(&mut w, i)?;
            continue;
        }
        let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
        // ~2% of rows are a returning customer: the same phone as 50 rows earlier.
        let person = if i > 50 && rng.below(50) == 0 { i - 50 } else { i };
        let user = format!("{}.{}{}", first.to_lowercase(), last.to_lowercase().replace('\'', ""), i);
        let email = format!("{user}@{}", rng.pick(DOMAINS));
        let mut prng = Rng(person.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        // Country and phone come from the person, so a returning customer keeps them.
        let place = &PLACES[prng.below(PLACES.len() as u64) as usize];
        let phone = phone(&mut prng, place, person);
        let spend = format!("{}.{:02}", rng.below(2000), rng.below(100));
        let tags: Vec<&str> = (0..rng.below(3)).map(|_| rng.pick(TAGS)).collect();
        let last_order = if rng.below(10) == 0 { String::new() } else { date(&mut rng) };
        writeln!(
            w,
            "{first},{last},{email},{phone},{spend},{},{last_order},{},{},{}",
            rng.below(40),
            tags.join(";"),
            place.1,
            place.0
        )?;
    }
    w.flush()
}

/// One of the kinds of bad row found in real exports, in turn.
fn write_bad_row(w: &mut impl Write, i: u64) -> std::io::Result<()> {
    match (i / 20) % 10 {
        0 => writeln!(w, "Broken,Email,broken.email{i}.example.com,+447911{:06},10.00,1,2025-01-01,,London,GB", i),
        1 => writeln!(w, "Short,Phone,short.phone{i}@example.com,+44 12,10.00,1,2025-01-01,,London,GB"),
        2 => writeln!(w, "Bad,Spend,bad.spend{i}@example.com,,\"1,234.50\",1,2025-01-01,,Berlin,DE"),
        3 => writeln!(w, "Bad,Date,bad.date{i}@example.com,,10.00,1,31/12/2024,,Lagos,NG"),
        4 => writeln!(w, "No,Contact,,,10.00,1,2025-01-01,vip,Madrid,ES"),
        5 => writeln!(w, "Bad,Visits,bad.visits{i}@example.com,,10.00,many,2025-01-01,,Mumbai,IN"),
        6 => writeln!(w, "Too,Few,too.few{i}@example.com,+447911123456"),
        7 => {
            w.write_all(
                format!("Jos\u{e9}-in-latin1,N\u{fa}\u{f1}ez,latin{i}@example.com,,1.00,1,,,Madrid,ES\n").as_bytes(),
            )?;
            // The same name in Latin-1 bytes: not UTF-8.
            w.write_all(b"Jos\xe9,N\xfa\xf1ez,")?;
            writeln!(w, "latin1.{i}@example.com,,1.00,1,,,Madrid,ES")
        }
        8 => writeln!(
            w,
            "\"Quoted, Comma\",Multiline,quoted{i}@example.com,+1 415 555 2671,5.50,2,2025-06-01,\"vip;b2b\",\"San Francisco,\nCA\",US"
        ),
        _ => writeln!(w, "National,NoRegion,national{i}@example.com,0803 123 4567,3.00,1,2025-02-02,,Lagos,NG"),
    }
}
