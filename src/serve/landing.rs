//! `GET /`: a small HTML page with the endpoints and each collector's last status.

use std::fmt::Write;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::extract::State;
use axum::response::Html;

use super::AppState;

pub async fn handler(State(state): State<Arc<AppState>>) -> Html<String> {
    let statuses = state.collectors.statuses();
    let mut rows = String::new();
    for name in state.collectors.names() {
        let (result, duration, detail) = match statuses.get(&name) {
            None => ("not run yet".to_owned(), String::new(), String::new()),
            Some(s) => (
                if s.success { "ok" } else { "failed" }.to_owned(),
                format!("{:.3} ms", s.duration.as_secs_f64() * 1000.0),
                s.error.clone().unwrap_or_default(),
            ),
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&name),
            escape(&result),
            escape(&duration),
            escape(&detail)
        );
    }
    let started = state
        .started_at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>warden</title></head><body>\
<h1>warden {version}</h1>\
<p>Started at unix time {started}.</p>\
<h2>Endpoints</h2><ul>\
<li><a href=\"metrics\">/metrics</a>: metrics for Prometheus</li>\
<li><a href=\"healthz\">/healthz</a>: liveness</li>\
<li><a href=\"readyz\">/readyz</a>: readiness</li>{webhook}</ul>\
<h2>Collectors</h2><p>Status of each collector's last run (a scrape of /metrics runs them).</p>\
<table border=\"1\"><tr><th>collector</th><th>last status</th><th>duration</th><th>error</th></tr>{rows}</table>\
</body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
        webhook = if state
            .actions
            .as_ref()
            .is_some_and(|a| a.config().webhook_enabled())
        {
            "<li>POST /alerts: Alertmanager's webhook (routes configured; see <code>warden actions history</code>)</li>"
        } else {
            ""
        },
    ))
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
