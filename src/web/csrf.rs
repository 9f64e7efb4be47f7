//! Cross-site request forgery protection for the dashboard's forms (the double-submit pattern).
//!
//! - [`CSRF_COOKIE`] / [`CSRF_FIELD`]: where the token travels: a cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Path` = the mount path) and a hidden field of every form.
//! - [`new_token`]: a fresh random token (244 random bits, 64 hex digits).
//! - [`token_cookie`]: the cookie that carries it.
//! - [`check`]: the decision for one POST: the field must equal the cookie, and an `Origin`
//!   header, when the browser sends a real one (not the opaque `null`), must name the host the
//!   request was sent to.
//!
//! Another site can make a browser send a POST with the operator's cookies, but it can neither
//! read the cookie nor set it, so it cannot put the same token in the form; `SameSite=Strict`
//! keeps the browser from sending the cookie on a cross-site request at all, and the `Origin`
//! check refuses such a request even from a browser that ignores `SameSite`.

use actix_web::cookie::{Cookie, SameSite};

/// The cookie that holds the token.
pub(crate) const CSRF_COOKIE: &str = "cronlease_csrf";

/// The hidden form field that repeats the token.
pub(crate) const CSRF_FIELD: &str = "csrf";

/// Why a POST was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CsrfRejection {
    /// The request carried no token cookie (cookies blocked, or the page was not loaded first).
    MissingCookie,
    /// The form carried no token field.
    MissingField,
    /// The form's token differs from the cookie's.
    Mismatch,
    /// The `Origin` header names another site than the one the request was sent to.
    ForeignOrigin,
}

impl CsrfRejection {
    /// What the operator reads on the 403 page: what was wrong and what to do.
    pub(crate) fn message(self) -> &'static str {
        match self {
            CsrfRejection::MissingCookie => {
                "the form was sent without its security cookie: allow cookies for this site, reload the page and try again"
            }
            CsrfRejection::MissingField => {
                "the form was sent without its security token: reload the page and use its form"
            }
            CsrfRejection::Mismatch => {
                "the form's security token does not match this browser's: reload the page and try again"
            }
            CsrfRejection::ForeignOrigin => {
                "the form was sent from another site: actions can only be asked from this dashboard's own pages"
            }
        }
    }
}

/// A fresh random token: two v4 UUIDs (122 random bits each from a cryptographic generator),
/// as 64 hex digits.
pub(crate) fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether `token` looks like one [`new_token`] made (so a cookie value can be reused as is).
pub(crate) fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The cookie carrying `token`, valid for the dashboard under `path` only.
pub(crate) fn token_cookie(token: &str, path: &str) -> Cookie<'static> {
    let path = if path.is_empty() { "/" } else { path };
    Cookie::build(CSRF_COOKIE, token.to_owned())
        .path(path.to_owned())
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish()
}

/// Decides whether a POST may proceed: `cookie` and `field` are the token from the cookie and
/// from the form, `origin` the `Origin` header if any, `host` the `Host` the request was sent
/// to.
pub(crate) fn check(
    cookie: Option<&str>,
    field: Option<&str>,
    origin: Option<&str>,
    host: Option<&str>,
) -> Result<(), CsrfRejection> {
    // `Origin: null` says nothing: browsers send it for POSTs from pages served with
    // `Referrer-Policy: no-referrer` or from sandboxed frames. The dashboard's own pages use
    // `same-origin`, so their POSTs carry their real origin; for `null` the token decides.
    if let Some(origin) = origin.filter(|o| *o != "null") {
        let origin_host = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'));
        match (origin_host, host) {
            (Some(origin_host), Some(host)) if origin_host.eq_ignore_ascii_case(host) => {}
            _ => return Err(CsrfRejection::ForeignOrigin),
        }
    }
    let cookie = cookie
        .filter(|c| !c.is_empty())
        .ok_or(CsrfRejection::MissingCookie)?;
    let field = field
        .filter(|f| !f.is_empty())
        .ok_or(CsrfRejection::MissingField)?;
    if constant_time_eq(cookie.as_bytes(), field.as_bytes()) {
        Ok(())
    } else {
        Err(CsrfRejection::Mismatch)
    }
}

/// Compares without stopping at the first difference, so timing tells nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Option<&str> = Some("ops.example:8080");

    #[test]
    fn matching_token_without_origin_passes() {
        let token = new_token();
        assert_eq!(check(Some(&token), Some(&token), None, HOST), Ok(()));
    }

    #[test]
    fn matching_token_from_the_same_origin_passes() {
        let token = new_token();
        let origin = Some("https://ops.example:8080");
        assert_eq!(check(Some(&token), Some(&token), origin, HOST), Ok(()));
    }

    #[test]
    fn missing_cookie_or_field_is_refused() {
        let token = new_token();
        assert_eq!(
            check(None, Some(&token), None, HOST),
            Err(CsrfRejection::MissingCookie)
        );
        assert_eq!(
            check(Some(&token), None, None, HOST),
            Err(CsrfRejection::MissingField)
        );
        assert_eq!(
            check(Some(""), Some(""), None, HOST),
            Err(CsrfRejection::MissingCookie)
        );
    }

    #[test]
    fn a_different_token_is_refused() {
        assert_eq!(
            check(Some(&new_token()), Some(&new_token()), None, HOST),
            Err(CsrfRejection::Mismatch)
        );
        let token = new_token();
        assert_eq!(
            check(Some(&token), Some(&token[..63]), None, HOST),
            Err(CsrfRejection::Mismatch)
        );
    }

    #[test]
    fn a_foreign_or_opaque_origin_is_refused_even_with_the_right_token() {
        let token = new_token();
        for origin in [
            "https://evil.example",
            "https://ops.example:9090",
            "ops.example:8080",
        ] {
            assert_eq!(
                check(Some(&token), Some(&token), Some(origin), HOST),
                Err(CsrfRejection::ForeignOrigin),
                "{origin}"
            );
        }
        assert_eq!(
            check(
                Some(&token),
                Some(&token),
                Some("https://ops.example:8080"),
                None
            ),
            Err(CsrfRejection::ForeignOrigin),
            "an origin cannot be checked without a host"
        );
    }

    #[test]
    fn an_opaque_origin_leaves_the_decision_to_the_token() {
        // What a browser sends for a form of a page served with `Referrer-Policy: no-referrer`
        // (an embedder's proxy may rewrite the header).
        let token = new_token();
        assert_eq!(
            check(Some(&token), Some(&token), Some("null"), HOST),
            Ok(())
        );
        assert_eq!(
            check(Some(&token), Some(&new_token()), Some("null"), HOST),
            Err(CsrfRejection::Mismatch)
        );
    }

    #[test]
    fn tokens_are_fresh_and_well_formed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(well_formed(&a) && well_formed(&b));
        assert!(!well_formed("short") && !well_formed(&"z".repeat(64)));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped_to_the_mount_path() {
        let cookie = token_cookie("abc", "/cronlease");
        assert_eq!(cookie.name(), CSRF_COOKIE);
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site(), Some(SameSite::Strict));
        assert_eq!(cookie.path(), Some("/cronlease"));
        assert_eq!(token_cookie("abc", "").path(), Some("/"));
    }
}
