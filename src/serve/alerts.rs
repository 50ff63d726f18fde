//! `POST /alerts`: Alertmanager's webhook.
//!
//! The body is read up to `webhook.max_body_bytes` (413 beyond), decoded and checked (400 with
//! a JSON error naming the problem), routed per alert, and committed to the store; the answer
//! is 200 only once the transaction is durable, and 503 when the store could not commit, so
//! Alertmanager retries (it drops 4xx for good). No action runs inside the request.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::act::metrics::NotificationResult;
use crate::act::payload::Payload;
use crate::act::queue::{ActError, Actions};
use crate::collect::ErrorChain;

/// The handler.
pub async fn handler(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let Some(actions) = state
        .actions
        .as_ref()
        .filter(|a| a.config().webhook_enabled())
    else {
        return (StatusCode::NOT_FOUND, "no routes are configured\n").into_response();
    };
    let limit = actions.config().webhook.max_body_bytes;
    let body = match axum::body::to_bytes(request.into_body(), limit).await {
        Ok(body) => body,
        Err(_) => {
            return answer(
                actions,
                NotificationResult::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": format!("the body is larger than webhook.max_body_bytes ({limit} bytes)")}),
            );
        }
    };
    let payload = match Payload::try_from_slice(&body) {
        Ok(payload) => payload,
        Err(err) => {
            tracing::warn!(error = %err, "Refused a webhook notification.");
            return answer(
                actions,
                NotificationResult::Invalid,
                StatusCode::BAD_REQUEST,
                json!({"error": err.to_string()}),
            );
        }
    };
    match actions.accept(&payload).await {
        Ok(accepted) => answer(
            actions,
            NotificationResult::Accepted,
            StatusCode::OK,
            json!({
                "status": "accepted",
                "alerts": payload.alerts.len(),
                "queued": accepted.queued,
            }),
        ),
        Err(err @ (ActError::Store(_) | ActError::WriterGone)) => {
            tracing::error!(error = %ErrorChain(&err), "Cannot commit a webhook notification; answering 503.");
            answer(
                actions,
                NotificationResult::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "the state store could not commit the notification; retry later"}),
            )
        }
        Err(err) => answer(
            actions,
            NotificationResult::Invalid,
            StatusCode::BAD_REQUEST,
            json!({"error": err.to_string()}),
        ),
    }
}

fn answer(
    actions: &Actions,
    result: NotificationResult,
    status: StatusCode,
    body: serde_json::Value,
) -> Response {
    actions.metrics().notification(result);
    (status, axum::Json(body)).into_response()
}
