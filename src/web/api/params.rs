//! Reading request parameters, each failure a 400 that names the parameter and says what to send.
//!
//! - [`scope`], [`time`], [`uuid`], [`status`], [`limit`], [`cursor`]: one parameter each.
//! - [`ListQuery`]: the filters of `/executions`, `/dead` and `POST /dead/replay`, turned into an
//!   [`ExecutionFilter`] by [`ListQuery::filter`].

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::execution::Status;
use crate::scope::Scope;
use crate::store::{ExecutionCursor, ExecutionFilter};
use crate::web::error::ApiError;

/// Rows per page when `limit` is not given.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` accepted.
pub(crate) const MAX_LIMIT: usize = 1000;

/// A scope written `kind:id` (the id may contain `:`), or `global`.
pub(crate) fn scope(parameter: &str, text: &str) -> Result<Scope, ApiError> {
    if text == Scope::GLOBAL {
        return Ok(Scope::global());
    }
    let (kind, id) = text.split_once(':').ok_or_else(|| {
        ApiError::bad(
            parameter,
            format!("scope `{text}` is not KIND:ID: write e.g. tenant:42 (or `global`)"),
        )
    })?;
    let scope = Scope::new(kind, id);
    scope
        .validate()
        .map_err(|message| ApiError::bad(parameter, message))?;
    Ok(scope)
}

/// An RFC 3339 time, e.g. `2026-11-29T03:00:00Z`.
pub(crate) fn time(parameter: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::bad(
                parameter,
                format!("`{text}` is not an RFC 3339 time ({e}): write e.g. 2026-11-29T03:00:00Z"),
            )
        })
}

/// A UUID, e.g. an execution or backfill id.
pub(crate) fn uuid(parameter: &str, text: &str) -> Result<Uuid, ApiError> {
    text.parse().map_err(|e| {
        ApiError::bad(
            parameter,
            format!("`{text}` is not a UUID ({e}): use the id as a listing shows it"),
        )
    })
}

/// An execution status as stored (`DEAD`, `FAILED`, ...).
pub(crate) fn status(parameter: &str, text: &str) -> Result<Status, ApiError> {
    text.parse().map_err(|message| {
        let known: Vec<&str> = Status::ALL.iter().map(Status::as_str).collect();
        ApiError::bad(
            parameter,
            format!("{message}: use one of {}", known.join(", ")),
        )
    })
}

/// A page size from 1 to `max`; `default` when absent.
pub(crate) fn limit(
    parameter: &str,
    text: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    let Some(text) = text else {
        return Ok(default);
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad(
            parameter,
            format!("{parameter} `{text}` is not a number from 1 to {max}"),
        )),
    }
}

/// A page cursor as a listing's `next` gives it.
pub(crate) fn cursor(parameter: &str, text: &str) -> Result<ExecutionCursor, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad(
            parameter,
            format!("`{text}` is not a page cursor: pass the `next` value of the previous page"),
        )
    })
}

/// Applies `parse` to an optional parameter.
pub(crate) fn optional<T>(
    parameter: &str,
    text: Option<&str>,
    parse: impl Fn(&str, &str) -> Result<T, ApiError>,
) -> Result<Option<T>, ApiError> {
    text.map(|text| parse(parameter, text)).transpose()
}

/// The filters of an execution listing or of a bulk replay.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    job: Option<String>,
    scope: Option<String>,
    scope_kind: Option<String>,
    scope_id: Option<String>,
    status: Option<String>,
    from: Option<String>,
    before: Option<String>,
    after: Option<String>,
    #[serde(default, deserialize_with = "text_or_number")]
    limit: Option<String>,
}

/// A value given as a string (a query string) or a number (a JSON body), as text.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(Option::<Given>::deserialize(d)?.map(|given| match given {
        Given::Text(text) => text,
        Given::Number(n) => n.to_string(),
    }))
}

impl ListQuery {
    /// The store filter these parameters ask for.
    pub(crate) fn filter(&self) -> Result<ExecutionFilter, ApiError> {
        let scope = match (&self.scope, &self.scope_kind, &self.scope_id) {
            (Some(text), None, None) => Some(scope("scope", text)?),
            (None, Some(kind), Some(id)) => {
                let scope = Scope::new(kind, id);
                scope
                    .validate()
                    .map_err(|message| ApiError::bad("scope_id", message))?;
                Some(scope)
            }
            (None, None, None) => None,
            (Some(_), _, _) => {
                return Err(ApiError::bad(
                    "scope",
                    "give either `scope` (KIND:ID) or `scope_kind` with `scope_id`, not both",
                ));
            }
            (None, Some(_), None) => {
                return Err(ApiError::bad(
                    "scope_id",
                    "`scope_kind` needs `scope_id` as well",
                ));
            }
            (None, None, Some(_)) => {
                return Err(ApiError::bad(
                    "scope_kind",
                    "`scope_id` needs `scope_kind` as well",
                ));
            }
        };
        Ok(ExecutionFilter {
            job: self.job.clone(),
            scope,
            status: optional("status", self.status.as_deref(), status)?,
            plan_from: optional("from", self.from.as_deref(), time)?,
            plan_before: optional("before", self.before.as_deref(), time)?,
            after: optional("after", self.after.as_deref(), cursor)?,
            limit: limit("limit", self.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blamed(result: Result<impl std::fmt::Debug, ApiError>) -> String {
        use actix_web::ResponseError;
        let error = result.unwrap_err();
        assert_eq!(error.status_code().as_u16(), 400);
        format!("{error:?}")
    }

    #[test]
    fn scopes_are_kind_colon_id_or_global() {
        assert_eq!(
            scope("scope", "tenant:4:2").unwrap(),
            Scope::new("tenant", "4:2")
        );
        assert_eq!(scope("scope", "global").unwrap(), Scope::global());
        assert!(blamed(scope("scope", "tenant")).contains("KIND:ID"));
        assert!(blamed(scope("scope", "tenant:")).contains("empty id"));
    }

    #[test]
    fn limits_stay_within_one_and_the_maximum() {
        assert_eq!(limit("limit", None, 100, 1000).unwrap(), 100);
        assert_eq!(limit("limit", Some("1000"), 100, 1000).unwrap(), 1000);
        for bad in ["0", "1001", "-1", "ten"] {
            assert!(blamed(limit("limit", Some(bad), 100, 1000)).contains("from 1 to 1000"));
        }
    }

    #[test]
    fn a_filter_names_the_parameter_at_fault() {
        let query = |q: &str| {
            actix_web::web::Query::<ListQuery>::from_query(q)
                .unwrap()
                .filter()
        };
        assert!(blamed(query("status=dead")).contains("\"status\""));
        assert!(blamed(query("from=yesterday")).contains("\"from\""));
        assert!(blamed(query("after=x")).contains("\"after\""));
        assert!(blamed(query("scope_kind=tenant")).contains("\"scope_id\""));
        let filter = query("job=a&scope=tenant:1&status=DEAD&limit=5").unwrap();
        assert_eq!(
            (
                filter.job.as_deref(),
                filter.scope,
                filter.status,
                filter.limit
            ),
            (
                Some("a"),
                Some(Scope::new("tenant", "1")),
                Some(Status::Dead),
                5
            )
        );
    }
}
