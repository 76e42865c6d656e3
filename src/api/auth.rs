//! Bearer tokens for the API: JWT with HS256 (`{"alg":"HS256","typ":"JWT"}`), the claims `sub`
//! (the user), `iat` and `exp` (seconds since the epoch), signed with the configured secret.
//! Verification checks the header, the signature (in constant time) and `exp`; any other
//! shape is refused. Implemented on `hmac` + `sha2` rather than a JWT crate: this is the whole
//! of what the API needs, and it keeps algorithm confusion (`alg: none`, RS/HS swaps) out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
}

/// Why a token was refused (the API answers 401 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a JWT (three base64url parts)")]
    Malformed,
    #[error("the token is not signed with HS256")]
    Algorithm,
    #[error("the token's signature is wrong")]
    Signature,
    #[error("the token expired")]
    Expired,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts any key length"),
    }
}

/// Signs `claims` with `secret`.
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(payload));
    let mut mac = mac(secret);
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Checks a token against `secret` at time `now` (seconds).
pub fn verify(secret: &[u8], token: &str, now: i64) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed);
    let header: serde_json::Value = serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(TokenError::Algorithm);
    }
    let mut mac = mac(secret);
    mac.update(&token.as_bytes()[..token.rfind('.').unwrap_or(0)]);
    mac.verify_slice(&decode(signature)?).map_err(|_| TokenError::Signature)?;
    let claims: Claims = serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims { sub: "alice".into(), iat: 1_000, exp }
    }

    #[test]
    fn a_minted_token_verifies_until_it_expires() {
        let token = mint(b"s3cret", &claims(2_000));
        assert_eq!(verify(b"s3cret", &token, 1_500), Ok(claims(2_000)));
        assert_eq!(verify(b"s3cret", &token, 2_000), Err(TokenError::Expired));
        assert_eq!(verify(b"other", &token, 1_500), Err(TokenError::Signature));
    }

    #[test]
    fn tampered_and_foreign_tokens_are_refused() {
        let token = mint(b"k", &claims(2_000));
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory","iat":1000,"exp":9999999999}"#);
        assert_eq!(verify(b"k", &parts.join("."), 1_500), Err(TokenError::Signature));
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), parts[1]);
        assert_eq!(verify(b"k", &none, 1_500), Err(TokenError::Algorithm));
        for junk in ["", "a.b", "a.b.c.d", "!!.??.**"] {
            assert_eq!(verify(b"k", junk, 1_500), Err(TokenError::Malformed), "{junk}");
        }
    }

    #[test]
    fn matches_a_token_made_by_another_implementation() {
        // Made with Python's hmac + base64 from jwt.io's example claims plus an `exp`.
        let expected = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
            eyJzdWIiOiIxMjM0NTY3ODkwIiwiaWF0IjoxNTE2MjM5MDIyLCJleHAiOjQxMDI0NDQ4MDB9.\
            MaZ3n48Tr8Aw2-JTkMn1OY_maLwd1n5AJzxg67lQWFg";
        let secret = b"your-256-bit-secret";
        let claims = Claims { sub: "1234567890".into(), iat: 1_516_239_022, exp: 4_102_444_800 };
        assert_eq!(mint(secret, &claims), expected);
        assert_eq!(verify(secret, expected, 1_600_000_000), Ok(claims));
    }
}
