//! `GET /runners`: the scheduler instances sharing the database, live, gone or stopped.

use actix_web::HttpResponse;
use serde_json::json;

use super::guard::Read;
use super::views::RunnerView;
use crate::web::error::ApiError;

/// `GET /runners`.
pub(crate) async fn list(Read(state): Read) -> Result<HttpResponse, ApiError> {
    let runners = state.scheduler.runners().await?;
    Ok(HttpResponse::Ok().json(json!({
        "runners": runners.iter().map(RunnerView::from).collect::<Vec<_>>(),
    })))
}
