//! The authorization check every endpoint starts with, as extractors listed first among a
//! handler's arguments (actix-web runs extractors in order, so a forbidden request is refused
//! before its parameters are read).
//!
//! - [`Read`]: the embedder's decision must allow reading ([`Access::can_read`]); GETs.
//! - [`Act`]: it must allow acting ([`Access::can_act`]), and the request must be
//!   `Content-Type: application/json`; POSTs.
//!
//! The content type is the API's defence against cross-site request forgery: a cross-site HTML
//! form can only send `application/x-www-form-urlencoded`, `multipart/form-data` or
//! `text/plain`, and a script on another origin cannot send `application/json` without a CORS
//! preflight, which this API never answers with permission. So a browser that holds the
//! operator's cookie cannot be made to POST here by another site.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, web};

use crate::web::Access;
use crate::web::error::ApiError;
use crate::web::state::WebState;

/// The request may read; carries the shared state.
pub(crate) struct Read(pub(crate) web::Data<WebState>);

/// The request may act (a POST with a JSON content type); carries the shared state.
pub(crate) struct Act(pub(crate) web::Data<WebState>);

fn state(req: &HttpRequest) -> Result<web::Data<WebState>, ApiError> {
    req.app_data::<web::Data<WebState>>()
        .cloned()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the admin API is not mounted through cronlease::web::scope",
            )
        })
}

fn access(req: &HttpRequest) -> Result<(web::Data<WebState>, Access), ApiError> {
    let state = state(req)?;
    let access = state.access(req);
    Ok((state, access))
}

/// Whether the request's body is declared JSON (`application/json`, parameters allowed).
fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

impl FromRequest for Read {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(access(req).and_then(|(state, access)| {
            if access.can_read() {
                Ok(Read(state))
            } else {
                Err(ApiError::forbidden(
                    "this request may not read the scheduler's state",
                ))
            }
        }))
    }
}

impl FromRequest for Act {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(access(req).and_then(|(state, access)| {
            if !access.can_act() {
                return Err(ApiError::forbidden(
                    "this request may not act: the embedder's authorization hook grants only reading",
                ));
            }
            if !is_json(req) {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send actions with `Content-Type: application/json` (an empty body is fine where every field is optional)",
                )
                .on("Content-Type"));
            }
            Ok(Act(state))
        }))
    }
}
