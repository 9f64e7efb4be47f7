//! JSON errors of the API: `{"error": "...", "parameter": "..."}` with a status that says whose
//! fault it was.
//!
//! - [`ApiError`]: one error reply; built for a bad parameter ([`ApiError::bad`]), an unknown
//!   resource ([`ApiError::not_found`]), a forbidden request ([`ApiError::forbidden`]), or from
//!   a library [`Error`].
//! - [`query_error`], [`path_error`], [`json_error`]: actix-web's extractor error handlers, so a
//!   request serde cannot read is a JSON 400 as well.
//!
//! Status codes: 400 a malformed parameter (the reply names it), 403 the embedder's
//! authorization hook forbids the request, 404 an unknown job, execution or backfill, 409 a
//! request the resource's state refuses (replaying a row that is not DEAD), 415 a POST that is
//! not `application/json`, 500 a database failure, 503 a scheduler that was shut down.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use crate::error::Error;

/// One error reply of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    parameter: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a str>,
}

impl ApiError {
    /// An error with `status`, `message` and the parameter at fault, if one is.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            parameter: None,
        }
    }

    /// The same error, blaming `parameter`.
    pub(crate) fn on(mut self, parameter: impl Into<String>) -> Self {
        self.parameter = Some(parameter.into());
        self
    }

    /// 400: `parameter` is malformed; `message` says how and what to send instead.
    pub(crate) fn bad(parameter: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message).on(parameter)
    }

    /// 404: nothing is known by `parameter`.
    pub(crate) fn not_found(parameter: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message).on(parameter)
    }

    /// 403: the embedder's authorization decision does not allow this request.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// The library's `error`, with the parameter that named the resource it is about.
    pub(crate) fn from_error(error: Error, parameter: &str) -> Self {
        let status = match &error {
            Error::UnknownJob(_) | Error::ExecutionNotFound(_) => StatusCode::NOT_FOUND,
            Error::NotDead { .. } => StatusCode::CONFLICT,
            Error::InvalidRequest(_) | Error::InvalidConfig(_) => StatusCode::BAD_REQUEST,
            Error::NotRunning => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(%error, "admin API request failed");
            return ApiError::new(status, error.to_string());
        }
        ApiError::new(status, error.to_string()).on(parameter)
    }
}

impl From<Error> for ApiError {
    /// A library error about no parameter in particular (a database failure, a shut-down
    /// scheduler).
    fn from(error: Error) -> Self {
        let mut api = ApiError::from_error(error, "");
        api.parameter = None;
        api
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(Body {
            error: &self.message,
            parameter: self.parameter.as_deref(),
        })
    }
}

/// The parameter a serde message names (``unknown field `x` ``, ``missing field `x` ``,
/// ``duplicate field `x` ``), if any; other messages quote values, not names.
pub(crate) fn named_field(message: &str) -> Option<String> {
    let at = ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.find(prefix).map(|i| i + prefix.len() - 1))?;
    let message = &message[at..];
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

fn from_serde(message: String, fallback: &str) -> actix_web::Error {
    let parameter = named_field(&message).unwrap_or_else(|| fallback.to_owned());
    ApiError::bad(&parameter, message).into()
}

/// A query string serde could not read: JSON 400 naming the parameter when serde does.
pub(crate) fn query_error(
    error: actix_web::error::QueryPayloadError,
    _: &HttpRequest,
) -> actix_web::Error {
    let message = match &error {
        actix_web::error::QueryPayloadError::Deserialize(e) => e.to_string(),
        other => other.to_string(),
    };
    from_serde(format!("bad query string: {message}"), "query")
}

/// A path serde could not read: JSON 400.
pub(crate) fn path_error(error: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    from_serde(format!("bad path: {error}"), "path")
}

/// A JSON body that could not be read: 415 when it is not JSON, else 400 naming the field
/// when serde does.
pub(crate) fn json_error(
    error: actix_web::error::JsonPayloadError,
    _: &HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError;
    match error {
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON with `Content-Type: application/json`",
        )
        .on("Content-Type")
        .into(),
        JsonPayloadError::Deserialize(e) => from_serde(format!("bad JSON body: {e}"), "body"),
        other => from_serde(format!("bad JSON body: {other}"), "body"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_errors_map_to_the_status_that_says_whose_fault_it_was() {
        let id = uuid::Uuid::nil();
        let cases = [
            (Error::UnknownJob("x".into()), 404),
            (Error::ExecutionNotFound(id), 404),
            (
                Error::NotDead {
                    id,
                    status: "SUCCESS".into(),
                },
                409,
            ),
            (Error::InvalidRequest("empty range".into()), 400),
            (Error::NotRunning, 503),
            (Error::TickFailed("db down".into()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(ApiError::from_error(error, "id").status.as_u16(), status);
        }
    }

    #[test]
    fn server_errors_blame_no_parameter() {
        assert_eq!(
            ApiError::from_error(Error::NotRunning, "id").parameter,
            None
        );
        assert_eq!(
            ApiError::from_error(Error::UnknownJob("x".into()), "name").parameter,
            Some("name".into())
        );
    }

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(
            named_field("unknown field `stauts`, expected one of `status`").as_deref(),
            Some("stauts")
        );
        assert_eq!(named_field("invalid digit"), None);
        assert_eq!(
            named_field("invalid type: integer `5`, expected a string"),
            None
        );
        assert_eq!(
            named_field("bad query string: duplicate field `limit`").as_deref(),
            Some("limit")
        );
    }
}
