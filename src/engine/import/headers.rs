//! Column header → lead field mapping, so exports from other tools import without editing.
//!
//! Headers are compared case-, space- and punctuation-insensitively (`E-mail`, `Email Address`
//! and `email_address` are one). `--map 'CSV header=field'` overrides; columns that are not
//! recognised become `metadata` entries keyed by [`metadata_key`].

use crate::engine::field_rules::{self, shown};
use crate::engine::normalize::metadata_key;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Name,
    FirstName,
    LastName,
    Emails,
    Phones,
    TotalSpend,
    Visits,
    LastOrderAt,
    Tags,
    CreatedAt,
    /// Known but not imported: `id` and `updated_at` (the store assigns them).
    Ignore,
    Metadata(String),
}

/// The field names accepted on the right of `--map`, for help and error text.
pub const MAP_TARGETS: &str = "name, first_name, last_name, emails, phones, total_spend, visits, \
    last_order_at, tags, created_at, metadata.KEY, ignore";

impl FromStr for Field {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(key) = s.strip_prefix("metadata.") {
            let key = metadata_key(key);
            return if key.is_empty() { Err("metadata.KEY needs a key".into()) } else { Ok(Field::Metadata(key)) };
        }
        Ok(match s.to_ascii_lowercase().as_str() {
            "name" => Field::Name,
            "first_name" => Field::FirstName,
            "last_name" => Field::LastName,
            "emails" | "email" => Field::Emails,
            "phones" | "phone" => Field::Phones,
            "total_spend" => Field::TotalSpend,
            "visits" => Field::Visits,
            "last_order_at" => Field::LastOrderAt,
            "tags" => Field::Tags,
            "created_at" => Field::CreatedAt,
            "ignore" | "-" => Field::Ignore,
            _ => return Err(format!("unknown field '{s}'; expected one of: {MAP_TARGETS}")),
        })
    }
}

/// One `--map 'CSV header=field'` override.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderOverride {
    pub header: String,
    pub field: Field,
}

impl FromStr for HeaderOverride {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (header, field) = s.rsplit_once('=').ok_or_else(|| format!("'{s}' should look like 'CSV header=field'"))?;
        if header.trim().is_empty() {
            return Err(format!("'{s}' has an empty CSV header"));
        }
        Ok(HeaderOverride { header: header.trim().to_string(), field: field.parse()? })
    }
}

fn squash(header: &str) -> String {
    header.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Recognises a header by its squashed form.
pub fn recognise(header: &str) -> Field {
    if let Some(key) = header.trim().strip_prefix("metadata.") {
        return Field::Metadata(metadata_key(key));
    }
    match squash(header).as_str() {
        "name" | "fullname" | "customername" | "contactname" | "customer" | "contact" | "displayname" => Field::Name,
        "firstname" | "givenname" | "first" | "forename" => Field::FirstName,
        "lastname" | "surname" | "familyname" | "last" => Field::LastName,
        "email" | "emails" | "emailaddress" | "emailaddresses" | "mail" | "workemail" | "personalemail"
        | "primaryemail" | "emailid" => Field::Emails,
        "phone" | "phones" | "phonenumber" | "phonenumbers" | "mobile" | "mobilephone" | "mobilenumber"
        | "mobileno" | "cell" | "cellphone" | "cellnumber" | "telephone" | "tel" | "whatsapp" | "whatsappnumber"
        | "contactnumber" | "msisdn" | "primaryphone" => Field::Phones,
        "totalspend" | "totalspent" | "spend" | "spent" | "totalspending" | "amountspent" | "lifetimevalue" | "ltv"
        | "totalsales" | "totalrevenue" | "totalpurchases" => Field::TotalSpend,
        "visits" | "visitcount" | "numberofvisits" | "totalvisits" | "visitscount" => Field::Visits,
        "lastorderat" | "lastorder" | "lastorderdate" | "lastpurchase" | "lastpurchasedate" | "lastpurchaseat"
        | "lastordered" => Field::LastOrderAt,
        "tags" | "tag" | "labels" | "label" => Field::Tags,
        "createdat" | "created" | "createddate" | "datecreated" | "signupdate" | "signedupat" => Field::CreatedAt,
        "id" | "leadid" | "updatedat" => Field::Ignore,
        _ => Field::Metadata(metadata_key(header)),
    }
}

/// The column `--errors` adds after the original ones. As the last column of a file it is
/// ignored, so a fixed errors file imports without its old messages landing in metadata.
pub const ERROR_COLUMN: &str = "error";

/// The field of every column, overrides first. Unknown overrides (a header not in the file)
/// are returned as errors so a typo in `--map` is not silently ignored.
pub fn map_headers(headers: &[String], overrides: &[HeaderOverride]) -> Result<Vec<Field>, String> {
    for o in overrides {
        if !headers.iter().any(|h| squash(h) == squash(&o.header)) {
            return Err(format!(
                "--map names column '{}', which is not in the file (columns: {})",
                o.header,
                headers.join(", ")
            ));
        }
    }
    let last = headers.len().saturating_sub(1);
    Ok(headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            overrides.iter().find(|o| squash(&o.header) == squash(h)).map(|o| o.field.clone()).unwrap_or_else(|| {
                match recognise(h) {
                    _ if i == last && h.trim() == ERROR_COLUMN => Field::Ignore,
                    Field::Metadata(k) if k.is_empty() => Field::Ignore,
                    f => f,
                }
            })
        })
        .collect())
}

/// Whether the last column is the `error` column an earlier `--errors` file added (ignored
/// on import, and replaced rather than repeated in this import's errors file).
pub fn has_error_column(headers: &[String], fields: &[Field]) -> bool {
    headers.last().is_some_and(|h| h.trim() == ERROR_COLUMN) && fields.last() == Some(&Field::Ignore)
}

/// Problems of the header as a whole, which would otherwise fail every row the same way: no
/// column for emails or phones (often no header row at all, or the wrong separator), metadata
/// keys that are too long, or more metadata columns than a lead can hold.
pub fn check_columns(headers: &[String], fields: &[Field], delimiter: u8) -> Result<(), String> {
    if !fields.iter().any(|f| matches!(f, Field::Emails | Field::Phones)) {
        return Err(no_identity(headers, delimiter));
    }
    let mut metadata = 0;
    for (header, field) in headers.iter().zip(fields) {
        let Field::Metadata(key) = field else { continue };
        metadata += 1;
        if let Err(reason) = field_rules::check_metadata_key(key) {
            return Err(format!(
                "column '{}' would be kept as metadata key '{}', which {reason}: rename the column, or \
                 --map {} (or =ignore)",
                shown(header),
                shown(key),
                shell_quote(&format!("{}=metadata.SHORTER_KEY", header.trim()))
            ));
        }
    }
    if metadata > field_rules::MAX_METADATA_KEYS {
        let example = headers.iter().zip(fields).rev().find(|(_, f)| matches!(f, Field::Metadata(_)));
        return Err(format!(
            "{metadata} columns would be kept as metadata, but a lead holds at most {} metadata keys: \
             --map the columns you do not need to ignore{}",
            field_rules::MAX_METADATA_KEYS,
            example
                .map(|(h, _)| format!(", e.g. --map {}", shell_quote(&format!("{}=ignore", h.trim()))))
                .unwrap_or_default()
        ));
    }
    Ok(())
}

/// The file-level error for a header without an email or phone column.
fn no_identity(headers: &[String], delimiter: u8) -> String {
    let list = headers.iter().map(|h| format!("'{}'", shown(h.trim()))).collect::<Vec<_>>().join(", ");
    if headers.iter().any(|h| looks_like_data(h)) {
        return format!(
            "the file seems to have no header row: its first line ({list}) looks like data, not column names; \
             add a first line naming the columns, e.g. name,email,phone"
        );
    }
    let mut message = format!(
        "no column holds emails or phones, so no row could be imported; the header has {} column{}: {list}.",
        headers.len(),
        if headers.len() == 1 { "" } else { "s" }
    );
    if let [only] = headers {
        let other = [b',', b';', b'\t', b'|'].into_iter().find(|d| *d != delimiter && only.as_bytes().contains(d));
        if let Some(d) = other {
            let name = if d == b'\t' { "tab".to_string() } else { format!("'{}'", d as char) };
            message.push_str(&format!(
                " It is one column holding {}: if they separate the columns, pass --delimiter {name}.",
                super::row::delimiter_name(d)
            ));
        }
    }
    let guess = headers.iter().find(|h| squash(h).contains("mail")).map(|h| (h, "emails")).or_else(|| {
        let phoneish = ["phone", "mobile", "tel", "cell", "number", "whatsapp", "contact"];
        headers.iter().find(|h| phoneish.iter().any(|p| squash(h).contains(p))).map(|h| (h, "phones"))
    });
    match guess {
        Some((h, field)) => message.push_str(&format!(
            " If column '{}' holds {field}, say so: --map {}.",
            shown(h.trim()),
            shell_quote(&format!("{}={field}", h.trim()))
        )),
        None => {
            let h = headers.iter().find(|h| !h.trim().is_empty()).map_or("HEADER", |h| h.trim());
            message.push_str(&format!(
                " If a column holds emails or phones, say which: --map {} or --map {}.",
                shell_quote(&format!("{h}=emails")),
                shell_quote(&format!("{h}=phones"))
            ));
        }
    }
    message
}

/// A header that reads like a value: an email address, or mostly digits (a phone, an amount).
fn looks_like_data(header: &str) -> bool {
    let h = header.trim();
    let digits = h.chars().filter(char::is_ascii_digit).count();
    let visible = h.chars().filter(|c| !c.is_whitespace()).count();
    h.contains('@') || (digits >= 3 && digits * 2 > visible)
}

/// `text` in single quotes for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", shown(text).replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(hs: &[&str]) -> Vec<String> {
        hs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn common_export_headers_are_recognised() {
        let cases = [
            ("Email Address", Field::Emails),
            ("E-mail", Field::Emails),
            ("email_address", Field::Emails),
            ("Phone Number", Field::Phones),
            ("Mobile", Field::Phones),
            ("First Name", Field::FirstName),
            ("LAST NAME", Field::LastName),
            ("Total Spent", Field::TotalSpend),
            ("last_order_at", Field::LastOrderAt),
            ("Tags", Field::Tags),
            ("id", Field::Ignore),
            ("City", Field::Metadata("city".into())),
            ("metadata.Postal Code", Field::Metadata("postal_code".into())),
        ];
        for (header, field) in cases {
            assert_eq!(recognise(header), field, "{header}");
        }
    }

    #[test]
    fn overrides_win_and_typos_are_reported() {
        let headers = names(&["Contact", "Cell", "Spend (GBP)"]);
        let o: HeaderOverride = "Spend (GBP)=total_spend".parse().expect("valid");
        let fields = map_headers(&headers, &[o]).expect("maps");
        assert_eq!(fields, [Field::Name, Field::Phones, Field::TotalSpend]);
        let typo: HeaderOverride = "Spnd=total_spend".parse().expect("valid");
        assert!(map_headers(&headers, &[typo]).unwrap_err().contains("not in the file"));
    }

    #[test]
    fn the_errors_file_column_is_ignored_only_at_the_end() {
        let fields = map_headers(&names(&["Email", "error"]), &[]).expect("maps");
        assert_eq!(fields, [Field::Emails, Field::Ignore]);
        let fields = map_headers(&names(&["error", "Email"]), &[]).expect("maps");
        assert_eq!(fields, [Field::Metadata("error".into()), Field::Emails]);
    }

    #[test]
    fn a_header_without_identity_is_one_clear_error() {
        let check = |hs: &[&str], d: u8| {
            let headers = names(hs);
            let fields = map_headers(&headers, &[]).expect("maps");
            check_columns(&headers, &fields, d)
        };
        assert!(check(&["Name", "Email"], b',').is_ok());
        let e = check(&["Name", "Contact Info", "City"], b',').unwrap_err();
        assert!(e.contains("'Name', 'Contact Info', 'City'") && e.contains("--map 'Contact Info=phones'"), "{e}");
        let e = check(&["Name", "City"], b',').unwrap_err();
        assert!(e.contains("--map 'Name=emails' or --map 'Name=phones'"), "{e}");
        let e = check(&["ada@example.com", "Ada"], b',').unwrap_err();
        assert!(e.starts_with("the file seems to have no header row"), "{e}");
        let e = check(&["+44 7911 123456", "Ada"], b',').unwrap_err();
        assert!(e.starts_with("the file seems to have no header row"), "{e}");
        let e = check(&["Name;Email"], b',').unwrap_err();
        assert!(e.contains("pass --delimiter ';'"), "{e}");
        let e = check(&["O'Brien Mail"], b',').unwrap_err();
        assert!(e.contains(r"--map 'O'\''Brien Mail=emails'"), "{e}");
    }

    #[test]
    fn metadata_columns_are_bounded_at_the_header() {
        let mut hs = vec!["Email".to_string()];
        hs.push("x".repeat(65));
        let fields = map_headers(&hs, &[]).expect("maps");
        assert!(check_columns(&hs, &fields, b',').unwrap_err().contains("65 characters long"));
        let mut hs = vec!["Email".to_string()];
        hs.extend((0..101).map(|i| format!("c{i}")));
        let fields = map_headers(&hs, &[]).expect("maps");
        let e = check_columns(&hs, &fields, b',').unwrap_err();
        assert!(e.starts_with("101 columns would be kept as metadata") && e.contains("--map 'c100=ignore'"), "{e}");
        hs.truncate(101);
        assert!(check_columns(&hs, &map_headers(&hs, &[]).expect("maps"), b',').is_ok());
    }

    #[test]
    fn bad_override_targets_list_the_valid_ones() {
        let err = "Col=price".parse::<HeaderOverride>().unwrap_err();
        assert!(err.contains("total_spend"), "{err}");
        assert!("nothing".parse::<HeaderOverride>().is_err());
    }
}
