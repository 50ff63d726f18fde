//! `GET /`: the status page a person on the host reads at a glance, and `GET /status`, the same
//! facts as JSON (see [`super::status`] for where they come from).
//!
//! Plain HTML and CSS, no script: every state is given in words as well as in colour, times in
//! UTC with their age, and every value from the configuration, the store or an error message is
//! escaped.

use std::fmt::Write;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::status::{self, ActionsStatus, BackupJob, Failure, Level, Moment, Source, Status};

/// The page's style: readable without it, coloured with it.
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#1b1b1b;max-width:72em}\
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd;vertical-align:top}\
th{background:#f3f3f3}.meta{color:#555}.err{font-family:monospace;font-size:.9em;word-break:break-word}\
.state{font-weight:bold;white-space:nowrap}\
.good{background:#d8f3dc;color:#1b4332}.warning{background:#fff3bf;color:#5c4400}\
.bad{background:#ffd6d6;color:#7a0000}.unknown{background:#eee;color:#444}\
.summary{padding:.6em .9em;border-radius:4px;margin:1em 0}";

/// `GET /`.
pub async fn handler(State(state): State<Arc<AppState>>) -> Response {
    match gather(state).await {
        Some(status) => Html(render(&status)).into_response(),
        None => unavailable(),
    }
}

/// `GET /status`.
pub async fn json(State(state): State<Arc<AppState>>) -> Response {
    match gather(state).await {
        Some(status) => Json(status).into_response(),
        None => unavailable(),
    }
}

async fn gather(state: Arc<AppState>) -> Option<Status> {
    tokio::task::spawn_blocking(move || status::gather(&state))
        .await
        .ok()
}

fn unavailable() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "the status could not be gathered\n",
    )
        .into_response()
}

fn class(level: Level) -> &'static str {
    match level {
        Level::Good => "good",
        Level::Warning => "warning",
        Level::Bad => "bad",
        Level::Unknown => "unknown",
    }
}

/// A state cell: the word, coloured.
fn state_cell(level: Level, word: &str) -> String {
    format!("<td class=\"state {}\">{}</td>", class(level), escape(word))
}

/// `2026-12-02 07:36:00 UTC (3h 12m ago)`, or `never`.
fn when(moment: Option<&Moment>) -> String {
    match moment {
        Some(m) => format!(
            "{} <span class=\"meta\">({})</span>",
            escape(&m.utc),
            escape(&status::age(m.age_seconds))
        ),
        None => "never".to_owned(),
    }
}

fn failure(failure: Option<&Failure>) -> String {
    match failure {
        Some(f) => format!(
            "<span class=\"err\">{}</span><br><span class=\"meta\">at {}</span>",
            escape(&f.error),
            when(Some(&f.at))
        ),
        None => String::new(),
    }
}

fn render(status: &Status) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>warden status</title><style>{STYLE}</style></head><body>\
<h1>warden {version}</h1>\
<p class=\"meta\">Started {started}. Page made {now}; reload for fresh values. \
The same facts as JSON: <a href=\"status\">/status</a>.</p>",
        version = escape(status.version),
        started = when(Some(&status.started_at)),
        now = escape(&status.now.utc),
    );
    if status.problems.is_empty() {
        page.push_str("<p class=\"summary good\"><b>All good:</b> nothing needs attention.</p>");
    } else {
        let _ = write!(
            page,
            "<div class=\"summary bad\"><b>{} need{} attention:</b><ul>",
            status.problems.len(),
            if status.problems.len() == 1 { "s" } else { "" }
        );
        for problem in &status.problems {
            let _ = write!(page, "<li>{}</li>", escape(problem));
        }
        page.push_str("</ul></div>");
    }
    sources(
        &mut page,
        "PostgreSQL",
        &status.postgres,
        &["server", "state", "since", "last error"],
        |s| when(s.since.as_ref()),
    );
    sources(
        &mut page,
        "SQLite",
        &status.sqlite,
        &["database", "state", "last integrity check", "last error"],
        |s| {
            format!(
                "{}<br><span class=\"meta\">{}</span>",
                when(s.last_check.as_ref()),
                escape(&s.detail)
            )
        },
    );
    sources(
        &mut page,
        "Queries and run queues",
        &status.queries,
        &["query", "last run", "when", "last error"],
        |s| when(s.last_check.as_ref()),
    );
    backups(&mut page, &status.backups);
    if let Some(actions) = &status.actions {
        actions_table(&mut page, actions);
    }
    page.push_str(
        "<h2>Last scrape</h2><p class=\"meta\">Each collector's last run; a scrape of /metrics runs them.</p>\
<table><tr><th>collector</th><th>result</th><th>when</th><th>duration</th><th>error</th></tr>",
    );
    for c in &status.collectors {
        let _ = write!(
            page,
            "<tr><td>{}</td>{}<td>{}</td><td>{}</td><td class=\"err\">{}</td></tr>",
            escape(&c.name),
            state_cell(c.level, c.state),
            c.last_run
                .as_ref()
                .map_or_else(String::new, |m| when(Some(m))),
            c.duration_seconds
                .map_or_else(String::new, |d| format!("{:.1} ms", d * 1000.0)),
            escape(c.error.as_deref().unwrap_or_default()),
        );
    }
    page.push_str(
        "</table><h2>Endpoints</h2><ul>\
<li><a href=\"metrics\">/metrics</a>: metrics for Prometheus</li>\
<li><a href=\"status\">/status</a>: this page as JSON</li>\
<li><a href=\"healthz\">/healthz</a>: liveness</li>\
<li><a href=\"readyz\">/readyz</a>: readiness</li>",
    );
    if status.actions.is_some() {
        page.push_str("<li>POST /alerts: Alertmanager's webhook, when routes are configured</li>");
    }
    page.push_str("</ul></body></html>\n");
    page
}

fn sources(
    page: &mut String,
    title: &str,
    list: &[Source],
    headers: &[&str; 4],
    third: impl Fn(&Source) -> String,
) {
    if list.is_empty() {
        return;
    }
    let _ = write!(page, "<h2>{}</h2><table><tr>", escape(title));
    for header in headers {
        let _ = write!(page, "<th>{}</th>", escape(header));
    }
    page.push_str("</tr>");
    for source in list {
        let _ = write!(
            page,
            "<tr><td>{}</td>{}<td>{}</td><td>{}</td></tr>",
            escape(&source.name),
            state_cell(source.level, &source.state),
            third(source),
            failure(source.last_error.as_ref()),
        );
    }
    page.push_str("</table>");
}

fn backups(page: &mut String, jobs: &[BackupJob]) {
    if jobs.is_empty() {
        return;
    }
    page.push_str(
        "<h2>Backups</h2><p class=\"meta\">ok: the newest verified backup is within 1.5× the \
expected interval; late: older; failed: the last run failed after the newest backup; never: no \
verified backup yet.</p><table><tr><th>job</th><th>state</th><th>newest verified backup</th>\
<th>expected interval</th><th>last failed run</th><th>on disk</th></tr>",
    );
    for job in jobs {
        let on_disk = match (&job.error, job.corrupt) {
            (Some(err), _) => format!("<span class=\"err\">{}</span>", escape(err)),
            (None, 0) => plural(job.retained, "backup"),
            (None, corrupt) => format!(
                "{}, <b>{corrupt} failed verification</b>",
                plural(job.retained, "backup")
            ),
        };
        let _ = write!(
            page,
            "<tr><td>{}</td>{}<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&job.name),
            state_cell(job.level, job.state),
            when(job.newest_verified.as_ref()),
            job.expected_interval_seconds.map_or_else(
                || "no schedule".to_owned(),
                |s| status::span(std::time::Duration::from_secs_f64(s))
            ),
            job.last_failure
                .as_ref()
                .map_or_else(String::new, |m| when(Some(m))),
            on_disk,
        );
    }
    page.push_str("</table>");
}

fn actions_table(page: &mut String, actions: &ActionsStatus) {
    let _ = write!(
        page,
        "<h2>Actions</h2><p>Queue: <b>{}</b> job{} waiting.</p>",
        actions
            .queue_depth
            .map_or_else(|| "unknown".to_owned(), |d| d.to_string()),
        if actions.queue_depth == Some(1) {
            ""
        } else {
            "s"
        }
    );
    if let Some(err) = &actions.error {
        let _ = write!(
            page,
            "<p class=\"summary bad\">The job store cannot be read: <span class=\"err\">{}</span></p>",
            escape(err)
        );
    }
    page.push_str(
        "<table><tr><th>action</th><th>last run</th><th>last success</th><th>last failure</th><th>last error</th></tr>",
    );
    for action in &actions.actions {
        let _ = write!(
            page,
            "<tr><td>{}</td>{}<td>{}</td><td>{}</td><td class=\"err\">{}</td></tr>",
            escape(&action.name),
            state_cell(action.level, action.state),
            when(action.last_success.as_ref()),
            when(action.last_failure.as_ref()),
            escape(action.last_error.as_deref().unwrap_or_default()),
        );
    }
    page.push_str("</table>");
}

/// `1 backup`, `2 backups`.
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
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
