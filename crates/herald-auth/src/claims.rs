//! The claims of a verified token, and the checks on them (`exp`, `nbf`,
//! `iss`, `aud`, `sub`, permissions).

use crate::error::{AuthError, AuthErrorKind, excerpt};
use crate::permission::Permissions;
use serde_json::{Map, Value};

/// Longest `sub` accepted, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 256;

/// Who a verified token speaks for and what it grants.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// The subject (`sub`): non-empty, at most 256 bytes, no control
    /// characters.
    pub sub: String,
    /// When the token expires (`exp`, unix seconds).
    pub expires_at: Option<u64>,
    /// The permissions claim; none when the token has no such claim.
    pub permissions: Permissions,
    /// Every claim of the token, for row-rule substitution
    /// ([`RowRule::instantiate`](crate::RowRule::instantiate)).
    pub raw: Map<String, Value>,
}

/// What the checks compare against; borrowed from the verifier.
pub(crate) struct Expectations<'a> {
    pub(crate) now: u64,
    pub(crate) leeway: u64,
    pub(crate) issuer: Option<&'a str>,
    pub(crate) audience: Option<&'a str>,
    pub(crate) permissions_claim: &'a str,
}

/// Checks `raw` (the payload of a token whose signature verified) and
/// builds its [`Claims`].
pub(crate) fn check(
    raw: Map<String, Value>,
    expect: &Expectations<'_>,
) -> Result<Claims, AuthError> {
    let exp = time_claim(&raw, "exp")?
        .ok_or_else(|| AuthError::new(AuthErrorKind::MissingClaim, "the token has no exp claim"))?;
    // RFC 7519: the token is valid only *before* exp.
    if expect.now >= exp.saturating_add(expect.leeway) {
        return Err(AuthError::new(
            AuthErrorKind::Expired,
            format!("the token expired at {exp} (unix seconds)"),
        ));
    }
    if let Some(nbf) = time_claim(&raw, "nbf")?
        && expect.now.saturating_add(expect.leeway) < nbf
    {
        return Err(AuthError::new(
            AuthErrorKind::NotYetValid,
            format!("the token is not valid before {nbf} (unix seconds)"),
        ));
    }
    if let Some(issuer) = expect.issuer {
        match raw.get("iss") {
            None => return Err(missing("iss")),
            Some(Value::String(iss)) if iss == issuer => {}
            Some(_) => {
                return Err(AuthError::new(
                    AuthErrorKind::WrongIssuer,
                    "the token's issuer (iss) is not the configured one",
                ));
            }
        }
    }
    if let Some(audience) = expect.audience {
        let ok = match raw.get("aud") {
            None => return Err(missing("aud")),
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
            Some(_) => false,
        };
        if !ok {
            return Err(AuthError::new(
                AuthErrorKind::WrongAudience,
                "the token's audience (aud) does not include this server",
            ));
        }
    }
    let sub = subject(&raw)?;
    let permissions = permissions(raw.get(expect.permissions_claim), expect.permissions_claim)?;
    Ok(Claims {
        sub,
        expires_at: Some(exp),
        permissions,
        raw,
    })
}

fn missing(claim: &str) -> AuthError {
    AuthError::new(
        AuthErrorKind::MissingClaim,
        format!("the token has no {claim} claim"),
    )
}

fn invalid(message: String) -> AuthError {
    AuthError::new(AuthErrorKind::InvalidClaim, message)
}

/// A NumericDate claim (RFC 7519 §2): a non-negative number of seconds;
/// fractions are dropped.
fn time_claim(raw: &Map<String, Value>, name: &str) -> Result<Option<u64>, AuthError> {
    let Some(value) = raw.get(name) else {
        return Ok(None);
    };
    if let Some(n) = value.as_u64() {
        return Ok(Some(n));
    }
    match value.as_f64() {
        // `as` saturates at u64::MAX, which is "never" for exp and nbf alike.
        Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
        _ => Err(invalid(format!(
            "the {name} claim is not a non-negative number of seconds"
        ))),
    }
}

fn subject(raw: &Map<String, Value>) -> Result<String, AuthError> {
    match raw.get("sub") {
        None => Err(missing("sub")),
        Some(Value::String(sub)) if sub.is_empty() => Err(invalid("the sub claim is empty".into())),
        Some(Value::String(sub)) if sub.len() > MAX_SUBJECT_BYTES => Err(invalid(format!(
            "the sub claim is {} bytes; the limit is {MAX_SUBJECT_BYTES}",
            sub.len()
        ))),
        Some(Value::String(sub)) if sub.chars().any(char::is_control) => {
            Err(invalid("the sub claim contains control characters".into()))
        }
        Some(Value::String(sub)) => Ok(sub.clone()),
        Some(_) => Err(invalid("the sub claim is not a string".into())),
    }
}

/// The permissions claim: an array of strings, or one string of
/// space-separated permissions (the OAuth `scope` style).
fn permissions(value: Option<&Value>, claim: &str) -> Result<Permissions, AuthError> {
    let parsed = match value {
        None | Some(Value::Null) => return Ok(Permissions::none()),
        Some(Value::String(s)) => Permissions::parse(s.split_ascii_whitespace()),
        Some(Value::Array(items)) => {
            let mut strings = Vec::with_capacity(items.len());
            for item in items {
                let Some(s) = item.as_str() else {
                    return Err(invalid(format!(
                        "the {} claim holds a non-string entry",
                        excerpt(claim, 64)
                    )));
                };
                strings.push(s);
            }
            Permissions::parse(strings)
        }
        Some(_) => {
            return Err(invalid(format!(
                "the {} claim is neither an array of strings nor a space-separated string",
                excerpt(claim, 64)
            )));
        }
    };
    parsed.map_err(|e| invalid(format!("the {} claim: {e}", excerpt(claim, 64))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expect() -> Expectations<'static> {
        Expectations {
            now: 1_000,
            leeway: 0,
            issuer: None,
            audience: None,
            permissions_claim: "permissions",
        }
    }

    fn run(claims: Value, expect: &Expectations<'_>) -> Result<Claims, AuthError> {
        let Value::Object(map) = claims else { panic!() };
        check(map, expect)
    }

    fn kind(claims: Value) -> AuthErrorKind {
        run(claims, &expect()).unwrap_err().kind
    }

    #[test]
    fn exp_is_required_and_must_be_a_number() {
        assert_eq!(kind(json!({"sub": "a"})), AuthErrorKind::MissingClaim);
        assert_eq!(
            kind(json!({"sub": "a", "exp": "2000"})),
            AuthErrorKind::InvalidClaim
        );
        assert_eq!(
            kind(json!({"sub": "a", "exp": -5})),
            AuthErrorKind::InvalidClaim
        );
        assert!(run(json!({"sub": "a", "exp": 2000.5}), &expect()).is_ok());
    }

    #[test]
    fn exp_is_exclusive_and_leeway_extends_it() {
        assert_eq!(
            kind(json!({"sub": "a", "exp": 1000})),
            AuthErrorKind::Expired
        );
        assert!(run(json!({"sub": "a", "exp": 1001}), &expect()).is_ok());
        let lenient = Expectations {
            leeway: 30,
            ..expect()
        };
        assert!(run(json!({"sub": "a", "exp": 971}), &lenient).is_ok());
        assert_eq!(
            run(json!({"sub": "a", "exp": 970}), &lenient)
                .unwrap_err()
                .kind,
            AuthErrorKind::Expired
        );
        // No overflow at the top of the range.
        assert!(run(json!({"sub": "a", "exp": u64::MAX}), &lenient).is_ok());
    }

    #[test]
    fn nbf_is_checked_with_leeway_when_present() {
        let base = json!({"sub": "a", "exp": 5000});
        let with = |nbf: u64| {
            let mut v = base.clone();
            v["nbf"] = json!(nbf);
            v
        };
        assert!(run(with(1000), &expect()).is_ok());
        assert_eq!(kind(with(1001)), AuthErrorKind::NotYetValid);
        let lenient = Expectations {
            leeway: 30,
            ..expect()
        };
        assert!(run(with(1030), &lenient).is_ok());
        assert_eq!(
            run(with(1031), &lenient).unwrap_err().kind,
            AuthErrorKind::NotYetValid
        );
        assert_eq!(
            kind(json!({"sub": "a", "exp": 5000, "nbf": "soon"})),
            AuthErrorKind::InvalidClaim
        );
    }

    #[test]
    fn audience_may_be_a_string_or_an_array() {
        let e = Expectations {
            audience: Some("herald"),
            ..expect()
        };
        assert!(run(json!({"sub": "a", "exp": 5000, "aud": "herald"}), &e).is_ok());
        assert!(run(json!({"sub": "a", "exp": 5000, "aud": ["x", "herald"]}), &e).is_ok());
        for aud in [json!("other"), json!(["x", "y"]), json!([]), json!(7)] {
            let err = run(json!({"sub": "a", "exp": 5000, "aud": aud}), &e).unwrap_err();
            assert_eq!(err.kind, AuthErrorKind::WrongAudience);
        }
        let err = run(json!({"sub": "a", "exp": 5000}), &e).unwrap_err();
        assert_eq!(err.kind, AuthErrorKind::MissingClaim);
        // Not configured: not checked.
        assert!(run(json!({"sub": "a", "exp": 5000, "aud": "other"}), &expect()).is_ok());
    }

    #[test]
    fn issuer_must_equal_when_configured() {
        let e = Expectations {
            issuer: Some("https://id.example"),
            ..expect()
        };
        assert!(
            run(
                json!({"sub": "a", "exp": 5000, "iss": "https://id.example"}),
                &e
            )
            .is_ok()
        );
        let err = run(json!({"sub": "a", "exp": 5000, "iss": "https://evil"}), &e).unwrap_err();
        assert_eq!(err.kind, AuthErrorKind::WrongIssuer);
        let err = run(
            json!({"sub": "a", "exp": 5000, "iss": ["https://id.example"]}),
            &e,
        )
        .unwrap_err();
        assert_eq!(err.kind, AuthErrorKind::WrongIssuer);
        let err = run(json!({"sub": "a", "exp": 5000}), &e).unwrap_err();
        assert_eq!(err.kind, AuthErrorKind::MissingClaim);
    }

    #[test]
    fn sub_must_be_a_sane_string() {
        assert_eq!(kind(json!({"exp": 5000})), AuthErrorKind::MissingClaim);
        for sub in [json!(""), json!(7), json!("a\nb"), json!("x".repeat(257))] {
            assert_eq!(
                kind(json!({"exp": 5000, "sub": sub})),
                AuthErrorKind::InvalidClaim
            );
        }
        let claims = run(json!({"exp": 5000, "sub": "ü".repeat(128)}), &expect()).unwrap();
        assert_eq!(claims.sub.len(), 256);
    }

    #[test]
    fn permissions_come_from_an_array_or_a_spaced_string() {
        let claims = run(
            json!({"sub": "a", "exp": 5000, "permissions": ["read:*", "publish:chat:*"]}),
            &expect(),
        )
        .unwrap();
        assert_eq!(
            claims.permissions.to_strings(),
            ["read:*", "publish:chat:*"]
        );
        let claims = run(
            json!({"sub": "a", "exp": 5000, "permissions": " read:a  write:b "}),
            &expect(),
        )
        .unwrap();
        assert_eq!(claims.permissions.to_strings(), ["read:a", "write:b"]);
        let claims = run(json!({"sub": "a", "exp": 5000}), &expect()).unwrap();
        assert!(claims.permissions.is_empty());
        for bad in [
            json!(["read:*", 7]),
            json!({"read": true}),
            json!(["reed:x"]),
        ] {
            let err = run(
                json!({"sub": "a", "exp": 5000, "permissions": bad}),
                &expect(),
            )
            .unwrap_err();
            assert_eq!(err.kind, AuthErrorKind::InvalidClaim, "{err}");
        }
        let custom = Expectations {
            permissions_claim: "scope",
            ..expect()
        };
        let claims = run(json!({"sub": "a", "exp": 5000, "scope": "admin"}), &custom).unwrap();
        assert!(claims.permissions.is_admin());
    }
}
