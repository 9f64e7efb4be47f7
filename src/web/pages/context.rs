//! What every page handler starts with and ends with: the access check, the CSRF token, the
//! flash notice, the parsed form or query, and the reply (a page, a 303 redirect, or an error
//! page).
//!
//! - [`Ctx`]: one request's facts (mount path, whether it may act, its CSRF token, its notice).
//! - [`Problem`]: an error page (status and a message that says what was wrong).
//! - [`Fields`]: the `name=value` pairs of a query string or a form body.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use maud::Markup;

use super::layout;
use crate::error::Error;
use crate::web::csrf::{self, CSRF_COOKIE, CSRF_FIELD};
use crate::web::state::WebState;

/// One request's facts, for rendering and for actions.
pub(crate) struct Ctx {
    /// The mount path without a trailing slash, prefixed to every link.
    pub(crate) base: String,
    /// Whether the embedder's decision allows actions: without it no form is shown.
    pub(crate) can_act: bool,
    /// The CSRF token every form repeats.
    pub(crate) token: String,
    /// Whether the token is new and its cookie must be set.
    new_token: bool,
    /// The notice of the action that redirected here, if any.
    pub(crate) notice: Option<String>,
}

impl Ctx {
    /// The context of a page request: `Err` is the 403 when the embedder denies reading.
    pub(crate) fn read(req: &HttpRequest, state: &WebState) -> Result<(Ctx, Fields), Problem> {
        let access = state.access(req);
        let query = Fields::parse(req.query_string());
        if !access.can_read() {
            return Err(Problem::forbidden(
                "this dashboard is not open to you: ask its operators for access",
            ));
        }
        let cookie = req
            .cookie(CSRF_COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|t| csrf::well_formed(t));
        let (token, new_token) = match cookie {
            Some(token) => (token, false),
            None => (csrf::new_token(), true),
        };
        let ctx = Ctx {
            base: state.base.clone(),
            can_act: access.can_act(),
            token,
            new_token,
            notice: query.get("notice").map(str::to_owned),
        };
        Ok((ctx, query))
    }

    /// The context of an action (a form POST): `Err` is the 403 page when the embedder does
    /// not allow actions or the CSRF check fails (see [`problem_page`]).
    pub(crate) fn act(
        req: &HttpRequest,
        state: &WebState,
        body: &[u8],
    ) -> Result<(Ctx, Fields), Problem> {
        let access = state.access(req);
        let forbid = |message: &str| Problem::forbidden(message);
        if !access.can_read() {
            return Err(forbid(
                "this dashboard is not open to you: ask its operators for access",
            ));
        }
        if !access.can_act() {
            return Err(forbid(
                "your access is read-only: actions (replay, pause, resume, trigger, backfill) need an operator's access",
            ));
        }
        let form = Fields::parse(&String::from_utf8_lossy(body));
        let cookie = req.cookie(CSRF_COOKIE).map(|c| c.value().to_owned());
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        let info = req.connection_info();
        csrf::check(
            cookie.as_deref(),
            form.get(CSRF_FIELD),
            origin,
            Some(info.host()),
        )
        .map_err(|rejection| forbid(rejection.message()))?;
        let ctx = Ctx {
            base: state.base.clone(),
            can_act: true,
            token: cookie.unwrap_or_default(),
            new_token: false,
            notice: None,
        };
        Ok((ctx, form))
    }

    /// A link to `path` (which starts with `/`) under the mount path.
    pub(crate) fn link(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The reply for a page, or its error page.
    pub(crate) fn finish(&self, page: Result<Markup, Problem>) -> HttpResponse {
        let mut reply = match page {
            Ok(markup) => HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .body(markup.into_string()),
            Err(problem) => problem_page(&self.base, &problem),
        };
        if self.new_token {
            let _ = reply.add_cookie(&csrf::token_cookie(&self.token, &self.cookie_path()));
        }
        reply
    }

    /// The reply for an action: 303 to `path` (under the mount path) with `notice` in the
    /// query string, or the error page.
    pub(crate) fn redirect(&self, done: Result<(String, String), Problem>) -> HttpResponse {
        match done {
            Ok((path, notice)) => {
                let sep = if path.contains('?') { '&' } else { '?' };
                let location = format!("{}{path}{sep}notice={}", self.base, encode(&notice));
                HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, location))
                    .finish()
            }
            Err(problem) => problem_page(&self.base, &problem),
        }
    }

    fn cookie_path(&self) -> String {
        if self.base.is_empty() {
            "/".to_owned()
        } else {
            self.base.clone()
        }
    }
}

/// An error page: its status and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// 400, 403, 404, 409, 500 or 503.
    pub(crate) status: StatusCode,
    /// What was wrong and what to do.
    pub(crate) message: String,
}

impl Problem {
    /// A malformed parameter: the message names it.
    pub(crate) fn bad(parameter: &str, message: impl std::fmt::Display) -> Self {
        Problem {
            status: StatusCode::BAD_REQUEST,
            message: format!("bad parameter `{parameter}`: {message}"),
        }
    }

    /// An unknown job, execution or backfill.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// A request the embedder's decision or the CSRF check refuses.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Problem {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::UnknownJob(_) | Error::ExecutionNotFound(_) => StatusCode::NOT_FOUND,
            Error::InvalidRequest(_) | Error::InvalidConfig(_) => StatusCode::BAD_REQUEST,
            Error::NotDead { .. } => StatusCode::CONFLICT,
            Error::NotRunning => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Problem {
            status,
            message: error.to_string(),
        }
    }
}

/// The error page for `problem`.
pub(crate) fn problem_page(base: &str, problem: &Problem) -> HttpResponse {
    HttpResponse::build(problem.status)
        .content_type("text/html; charset=utf-8")
        .body(layout::problem(base, problem).into_string())
}

/// The `name=value` pairs of a query string or an `application/x-www-form-urlencoded` body,
/// in order (a name may repeat: the checked boxes of a form).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    /// Parses `text`; undecodable escapes are kept as they are.
    pub(crate) fn parse(text: &str) -> Self {
        Fields(
            text.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(name), decode(value))
                })
                .collect(),
        )
    }

    /// The first value of `name`, if present and not empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` was sent at all, even empty.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// Every non-empty value of `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name` parsed by `parse`, or a 400 naming the parameter.
    pub(crate) fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, Problem> {
        self.get(name)
            .map(|v| parse(v).map_err(|e| Problem::bad(name, e)))
            .transpose()
    }
}

/// Percent-decodes a form value (`+` is a space).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes `text` for a URL's path segment or query value.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A time from a form or query: RFC 3339 (`2026-11-24T00:00:00Z`), or a local date and time
/// (`2026-11-24T00:00`, what a `datetime-local` input sends) read in `zone`.
pub(crate) fn parse_time(text: &str, zone: &jiff::tz::TimeZone) -> Result<DateTime<Utc>, String> {
    let expected = || {
        format!(
            "`{text}` is not a time: use RFC 3339 (`2026-11-24T00:00:00Z`) or a local `2026-11-24T00:00`"
        )
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let civil: jiff::civil::DateTime = text.parse().map_err(|_| expected())?;
    let zoned = civil.to_zoned(zone.clone()).map_err(|_| expected())?;
    DateTime::from_timestamp_millis(zoned.timestamp().as_millisecond()).ok_or_else(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_decode_escapes_pluses_and_repeats() {
        let fields = Fields::parse("id=a&id=b&scope_id=%3Cscript%3E+x&empty=&bad=%zz");
        assert_eq!(fields.all("id").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(fields.get("scope_id"), Some("<script> x"));
        assert_eq!(fields.get("empty"), None);
        assert_eq!(fields.get("bad"), Some("%zz"));
        assert_eq!(Fields::parse("").get("x"), None);
        let empty = Fields::parse("back=&x=1");
        assert!(empty.has("back") && empty.get("back").is_none() && !empty.has("y"));
    }

    #[test]
    fn encode_round_trips_through_decode() {
        let text = "a b/&?=<é>";
        assert_eq!(decode(&encode(text)), text);
        assert_eq!(encode("job-1_x.y"), "job-1_x.y");
    }

    #[test]
    fn times_are_rfc3339_or_local_in_the_zone() {
        let utc = jiff::tz::TimeZone::UTC;
        let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        let at: DateTime<Utc> = "2026-11-24T00:00:00Z".parse().unwrap();
        assert_eq!(parse_time("2026-11-24T00:00:00Z", &paris), Ok(at));
        assert_eq!(parse_time("2026-11-24T00:00", &utc), Ok(at));
        assert_eq!(
            parse_time("2026-11-24T01:00", &paris),
            Ok(at),
            "Paris is UTC+1 in November"
        );
        assert!(
            parse_time("yesterday", &utc)
                .unwrap_err()
                .contains("yesterday")
        );
    }
}
