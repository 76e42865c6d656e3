//! Column header → lead field mapping, so exports from other tools import without editing.
//!
//! Headers are compared case-, space- and punctuation-insensitively (`E-mail`, `Email Address`
//! and `email_address` are one). `--map 'CSV header=field'` overrides; columns that are not
//! recognised become `metadata` entries keyed by [`metadata_key`].

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
    fn bad_override_targets_list_the_valid_ones() {
        let err = "Col=price".parse::<HeaderOverride>().unwrap_err();
        assert!(err.contains("total_spend"), "{err}");
        assert!("nothing".parse::<HeaderOverride>().is_err());
    }
}
