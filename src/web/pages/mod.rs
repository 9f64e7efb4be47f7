//! The HTML dashboard, mounted at the scope's root.

use actix_web::web::ServiceConfig;

/// Registers the dashboard's routes.
pub(crate) fn configure(_config: &mut ServiceConfig) {}
