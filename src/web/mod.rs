//! The admin surface for actix-web (feature `web`): a JSON API and a server-rendered dashboard,
//! mounted in one line into the embedder's own `App`.
//!
//! - [`scope`] / [`WebScope`]: the mountable service and its settings (the authorization hook).
//! - [`Access`]: what the embedder's decision allows a request (nothing, reading, or acting).
//! - `api/`: the JSON API under `…/api` (and its OpenAPI description at `…/api/openapi.json`).
//! - `pages/`: the HTML dashboard (forms for every action, CSRF-protected, no JavaScript).
//! - `csrf.rs`: the double-submit token that every dashboard form carries.
//! - `headers.rs`: the security headers every response carries.
//! - `error.rs`: the API's JSON errors (`{"error", "parameter"}`, a 4xx naming the culprit).
//! - `summary.rs`: one job at a glance (schedule, next plan, pauses, counts, failures, runners),
//!   shared by the API and the dashboard.
//!
//! ```no_run
//! # async fn mount(scheduler: cronlease::Scheduler) {
//! use actix_web::{App, HttpServer};
//! use cronlease::web::Access;
//!
//! HttpServer::new(move || {
//!     App::new().service(
//!         cronlease::web::scope("/cronlease", scheduler.clone())
//!             .authorize(|req| match req.headers().get("x-operator") {
//!                 Some(_) => Access::Act,
//!                 None => Access::Read,
//!             }),
//!     )
//! });
//! # }
//! ```
//!
//! Without [`WebScope::authorize`] every request may read and none may act: mutating actions need
//! an explicit decision from the embedder.

mod access;
mod api;
mod csrf;
mod error;
mod headers;
mod pages;
mod state;
mod summary;

use std::sync::Arc;

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::{HttpRequest, web};

use crate::Scheduler;

pub use access::Access;
use state::WebState;

/// The dashboard and API for `scheduler`, to mount under `path` (e.g. `"/cronlease"`).
///
/// Read-only until [`WebScope::authorize`] grants more.
pub fn scope(path: &str, scheduler: Scheduler) -> WebScope {
    WebScope {
        path: path.trim_end_matches('/').to_owned(),
        scheduler,
        authorize: Arc::new(|_| Access::Read),
    }
}

/// The mountable admin service: pass it to `App::service`. Built by [`scope`].
pub struct WebScope {
    path: String,
    scheduler: Scheduler,
    authorize: Arc<dyn Fn(&HttpRequest) -> Access + Send + Sync>,
}

impl WebScope {
    /// Decides per request what it may do: [`Access::Deny`] answers 403 to everything,
    /// [`Access::Read`] allows pages and GETs, [`Access::Act`] also allows the actions (replay,
    /// pause, resume, trigger, backfill). Default: every request gets `Read`.
    pub fn authorize(
        mut self,
        decide: impl Fn(&HttpRequest) -> Access + Send + Sync + 'static,
    ) -> Self {
        self.authorize = Arc::new(decide);
        self
    }
}

impl HttpServiceFactory for WebScope {
    fn register(self, config: &mut AppService) {
        let state = web::Data::new(WebState {
            scheduler: self.scheduler,
            authorize: self.authorize,
            base: self.path.clone(),
        });
        let scope = web::scope(&self.path)
            .app_data(state)
            .wrap(headers::security_headers())
            .service(web::scope("/api").configure(api::configure))
            .configure(pages::configure)
            .default_service(web::to(pages::unknown_path));
        scope.register(config);
    }
}
