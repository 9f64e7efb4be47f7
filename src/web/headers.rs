//! Security headers on every response of the admin surface: no framing, no sniffing, no
//! referrer leaks to other sites (same-origin requests keep theirs, so a form POST carries its real
//! `Origin` for the CSRF check), and a content security policy that allows only the page's own resources.

use actix_web::middleware::DefaultHeaders;

/// The content security policy: the dashboard needs no script and no resource from elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("Cache-Control", "no-store"))
}
