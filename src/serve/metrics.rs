//! `GET /metrics`: run the collectors and encode their families in the negotiated format.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::collect::{Format, family};

/// The header Prometheus sends with its scrape timeout in seconds.
const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

pub async fn handler(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Ok(_permit) = state.scrape_permits.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many concurrent scrapes; raise web.max_concurrent_scrapes or scrape less often\n",
        )
            .into_response();
    };
    let format = negotiate(
        headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let scrape_timeout = headers
        .get(SCRAPE_TIMEOUT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_scrape_timeout);
    let snapshot = state.collectors.gather(scrape_timeout).await;
    let body = family::encode(snapshot, format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// The scrape timeout Prometheus sends, in seconds; absent when unparseable, not finite or not
/// positive, and clamped to [`MIN_SCRAPE_TIMEOUT`]..=[`MAX_SCRAPE_TIMEOUT`]: the header is
/// untrusted input, and a huge value must not overflow nor a tiny one time out every collector.
fn parse_scrape_timeout(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().parse().ok()?;
    if !seconds.is_finite() || seconds <= 0.0 {
        return None;
    }
    let seconds = seconds.clamp(
        MIN_SCRAPE_TIMEOUT.as_secs_f64(),
        MAX_SCRAPE_TIMEOUT.as_secs_f64(),
    );
    Duration::try_from_secs_f64(seconds).ok()
}

/// The longest scrape timeout taken from the header; collectors have their own, shorter limits.
const MAX_SCRAPE_TIMEOUT: Duration = Duration::from_secs(3600);
/// The shortest scrape timeout taken from the header. Any client may send the header, and a
/// collector that overruns its limit is marked stuck and skipped for every later scrape until it
/// returns (collect::batch): `0.001` from one client would blank the host metrics for all.
/// Prometheus' own `scrape_timeout` is rarely below a second; one second still leaves the
/// collectors most of it after `Collectors::gather`'s margin.
pub const MIN_SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

/// Picks OpenMetrics when the client accepts it at least as much as text format 0.0.4;
/// text otherwise, including when the header is absent or unparseable.
pub fn negotiate(accept: &str) -> Format {
    let mut openmetrics = 0.0f32;
    let mut text = 0.0f32;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0f32;
        for param in parts {
            if let Some(value) = param.strip_prefix("q=") {
                q = value.parse().unwrap_or(0.0);
            }
        }
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Text004
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_2_42_gets_openmetrics() {
        let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(accept), Format::OpenMetrics);
    }

    #[test]
    fn scrape_timeout_header_is_bounded_and_tolerant() {
        assert_eq!(parse_scrape_timeout("10"), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_scrape_timeout(" 2.5 "),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_scrape_timeout("1e300"), Some(MAX_SCRAPE_TIMEOUT));
        for tiny in ["0.001", "1e-300", "0.5"] {
            assert_eq!(
                parse_scrape_timeout(tiny),
                Some(MIN_SCRAPE_TIMEOUT),
                "{tiny}"
            );
        }
        for bad in ["", "-1", "0", "-0.001", "NaN", "inf", "-inf", "ten"] {
            assert_eq!(parse_scrape_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn plain_clients_get_text() {
        assert_eq!(negotiate(""), Format::Text004);
        assert_eq!(negotiate("*/*"), Format::Text004);
        assert_eq!(negotiate("text/plain;version=0.0.4"), Format::Text004);
    }

    #[test]
    fn preference_follows_q_values() {
        assert_eq!(
            negotiate("text/plain;q=1,application/openmetrics-text;q=0.5"),
            Format::Text004
        );
        assert_eq!(
            negotiate("application/openmetrics-text;q=0"),
            Format::Text004
        );
    }
}
