//! What every request handler of the admin surface shares.

use std::sync::Arc;

use actix_web::HttpRequest;

use super::Access;
use crate::Scheduler;

/// The scheduler, the embedder's authorization hook and the mount path.
pub(crate) struct WebState {
    pub(crate) scheduler: Scheduler,
    pub(crate) authorize: Arc<dyn Fn(&HttpRequest) -> Access + Send + Sync>,
    /// The mount path without a trailing slash (`""` when mounted at the root), for links.
    pub(crate) base: String,
}

impl WebState {
    /// The embedder's decision for `req`.
    pub(crate) fn access(&self, req: &HttpRequest) -> Access {
        (self.authorize)(req)
    }
}
