//! The page shell and the small pieces every page uses.
//!
//! - [`shell`]: the HTML document (viewport meta, one inline stylesheet, navigation, the
//!   notice of the last action), with a stable `id` on `<body>` per page.
//! - [`problem`]: the error page (400, 403, 404, 409, 500, 503).
//! - [`Zones`] / [`time`]: times shown in the job's time zone, UTC in the `title`.
//! - [`status`]: a status badge; [`csrf_field`]: the hidden token field every form carries.
//!
//! Everything written into the page goes through maud's escaping: no data is ever
//! `PreEscaped`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use jiff::tz::TimeZone;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::context::{Ctx, Problem};
use crate::execution::Status;
use crate::web::csrf::CSRF_FIELD;

/// The one stylesheet: readable on a laptop and a phone; wide tables scroll sideways.
/// A constant, never data.
const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#1b2a3a;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:1rem;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}
header strong{margin-right:1rem}
main{padding:1rem;max-width:80rem;margin:auto}
h1{font-size:1.35rem;margin:.2rem 0 1rem}
h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
.scroll{overflow-x:auto;background:#fff;border:1px solid #dde1e6;border-radius:6px}
table{border-collapse:collapse;width:100%}
th,td{padding:.4rem .6rem;border-bottom:1px solid #eceef1;text-align:left;vertical-align:top;white-space:nowrap}
td.wrap{white-space:normal;word-break:break-word;min-width:12rem}
th{background:#f0f2f5;font-weight:600}
.badge{display:inline-block;padding:0 .45rem;border-radius:9px;font-size:.8rem;font-weight:600;background:#e4e7eb}
.s-SUCCESS,.s-healthy,.s-live{background:#d5f2dc;color:#13532a}
.s-FAILED,.s-failing,.s-gone{background:#fde2c8;color:#7a3a00}
.s-DEAD{background:#f9d0d0;color:#7d1010}
.s-RUNNING{background:#d6e6fb;color:#0d3c7a}
.s-paused,.s-stopped{background:#e9e3f7;color:#42237a}
.notice{background:#e5f3ff;border:1px solid #9cc8f0;padding:.5rem .8rem;border-radius:6px;margin-bottom:1rem}
.problem{background:#fdecec;border:1px solid #e6a3a3;padding:.8rem;border-radius:6px}
form.inline{display:inline}
form.box{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:.6rem .8rem;margin:.5rem 0;display:flex;flex-wrap:wrap;gap:.5rem;align-items:end}
label{display:flex;flex-direction:column;font-size:.85rem;gap:.15rem}
input,select,button{font:inherit;padding:.25rem .4rem}
button{cursor:pointer;border:1px solid #8a96a3;border-radius:4px;background:#fff}
button.danger{border-color:#b44;color:#8b1a1a}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font-size:.85rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:.6rem .8rem}
dt{font-weight:600}dd{margin:0;word-break:break-word}
.muted{color:#68717c}
@media (max-width:640px){main{padding:.5rem}th,td{padding:.3rem .4rem;font-size:.85rem}}
";

/// The HTML document around a page's `body`. `page` becomes `<body id="page-…">`.
pub(crate) fn shell(ctx: &Ctx, page: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · cronlease" }
                style { (PreEscaped(STYLE)) }
            }
            body id={ "page-" (page) } data-can-act=(ctx.can_act) {
                (nav(&ctx.base))
                main {
                    @if let Some(notice) = &ctx.notice {
                        p.notice id="notice" role="status" { (notice) }
                    }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn nav(base: &str) -> Markup {
    html! {
        header {
            strong { "cronlease" }
            nav {
                a id="nav-overview" href={ (base) "/" } { "Overview" } " · "
                a id="nav-executions" href={ (base) "/executions" } { "Executions" } " · "
                a id="nav-dead" href={ (base) "/dead" } { "Dead letters" }
            }
        }
    }
}

/// The error page: its status code and what was wrong.
pub(crate) fn problem(base: &str, problem: &Problem) -> Markup {
    let code = problem.status.as_u16();
    let reason = problem.status.canonical_reason().unwrap_or("Error");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (code) " " (reason) " · cronlease" }
                style { (PreEscaped(STYLE)) }
            }
            body id="page-error" data-status=(code) {
                (nav(base))
                main {
                    h1 { (code) " " (reason) }
                    p.problem id="problem" { (problem.message) }
                }
            }
        }
    }
}

/// The time zone of each job, from the job registry (UTC for unknown jobs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Zones(HashMap<String, TimeZone>);

impl Zones {
    /// Zones from `(job, IANA name)` pairs; a name jiff does not know reads as UTC.
    pub(crate) fn new<'a>(jobs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Zones(
            jobs.into_iter()
                .map(|(job, zone)| (job.to_owned(), zone_named(zone)))
                .collect(),
        )
    }

    /// The zone of `job`.
    pub(crate) fn of(&self, job: &str) -> TimeZone {
        self.0.get(job).cloned().unwrap_or(TimeZone::UTC)
    }
}

/// The zone called `name`, or UTC when jiff does not know it.
pub(crate) fn zone_named(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

/// `t` in `zone` (`2026-11-24 01:00:00 CET`), with UTC in the `title` and `datetime`.
pub(crate) fn time(t: DateTime<Utc>, zone: &TimeZone) -> Markup {
    let utc = t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    html! { time datetime=(utc) title={ (utc) } { (local(t, zone)) } }
}

/// An optional time, `—` when absent.
pub(crate) fn maybe_time(t: Option<DateTime<Utc>>, zone: &TimeZone) -> Markup {
    match t {
        Some(t) => time(t, zone),
        None => html! { span.muted { "—" } },
    }
}

/// `t` as local text in `zone`.
pub(crate) fn local(t: DateTime<Utc>, zone: &TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(t.timestamp_millis()) {
        Ok(ts) => ts
            .to_zoned(zone.clone())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        Err(_) => t.to_rfc3339(),
    }
}

/// `t` as a `datetime-local` input value in `zone` (`2026-11-24T01:00`).
pub(crate) fn local_input(t: DateTime<Utc>, zone: &TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(t.timestamp_millis()) {
        Ok(ts) => ts
            .to_zoned(zone.clone())
            .strftime("%Y-%m-%dT%H:%M")
            .to_string(),
        Err(_) => String::new(),
    }
}

/// A status badge with `data-status`.
pub(crate) fn status(status: Status) -> Markup {
    badge(status.as_str())
}

/// A badge for a word (`healthy`, `paused`, `live`), styled by class `s-<word>`.
pub(crate) fn badge(word: &str) -> Markup {
    html! { span class={ "badge s-" (word) } data-status=(word) { (word) } }
}

/// The hidden field with the CSRF token, which every form carries.
pub(crate) fn csrf_field(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(ctx.token); }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_in_the_zone_with_utc_in_the_title() {
        let t: DateTime<Utc> = "2026-11-24T00:00:00Z".parse().unwrap();
        let html = time(t, &zone_named("Europe/Paris")).into_string();
        assert!(html.contains("2026-11-24 01:00:00 CET"), "{html}");
        assert!(html.contains(r#"title="2026-11-24T00:00:00Z""#), "{html}");
        assert_eq!(
            local(t, &zone_named("No/Such_Zone")),
            "2026-11-24 00:00:00 UTC"
        );
        assert_eq!(
            local_input(t, &zone_named("Europe/Paris")),
            "2026-11-24T01:00"
        );
    }
}
