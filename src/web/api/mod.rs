//! The JSON API, mounted under `…/api`.

use actix_web::web::ServiceConfig;

/// Registers the API's routes.
pub(crate) fn configure(_config: &mut ServiceConfig) {}
