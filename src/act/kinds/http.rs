//! `http:` sends one HTTP request, typically to a service's own restart or drain endpoint.
//!
//! ```yaml
//! http:
//!   url: "http://127.0.0.1:8000/restart?host={labels.instance}"
//!   method: POST                 # default GET
//!   expect_status: [200, 204]    # default: any 2xx
//!   headers: {X-Reason: alert}
//!   bearer_token_file: /etc/warden/app-token
//!   body: '{"host": "{labels.instance}"}'
//!   timeout: 10s
//!   placeholder_pattern: '[a-z0-9.-]{1,64}'
//! ```
//!
//! Placeholders may appear in the URL after its host (their values percent-encoded) and in
//! the body; never in the scheme, host or port, nor in headers. Redirects are not followed;
//! the response body is read up to [`BODY_LIMIT`] bytes. TLS is rustls with the ring provider
//! and the Mozilla roots. The token and header values never appear in a message or summary,
//! and URLs with credentials (`user:pass@`) are refused at load time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::command::Redactor;
use super::{ActionError, JobContext, Kind, Outcome, ParseContext, Registration, RunFuture};
use crate::act::placeholder::{Pattern, Template, percent_encode};
use crate::config::Problems;

/// The registration line in [`super::KINDS`].
pub const KIND: Registration = Registration { key: "http", parse };

/// The response bytes kept for the outcome: an error page's first lines.
pub const BODY_LIMIT: usize = 16 * 1024;

/// A request's limit unless `timeout` says otherwise.
pub const DEFAULT_TIMEOUT: &str = "10s";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    url: String,
    method: Option<String>,
    expect_status: Option<Value>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    bearer_token_file: Option<String>,
    body: Option<String>,
    #[serde(default, deserialize_with = "crate::config::lenient::duration")]
    timeout: Option<String>,
    placeholder_pattern: Option<String>,
}

/// A validated request: the `http` kind, and `then_check`'s HTTP probe.
pub struct HttpAction {
    method: Method,
    url: Template,
    body: Option<Template>,
    headers: HeaderMap,
    token: Option<secrecy::SecretString>,
    expect: Vec<u16>,
    timeout: Duration,
    pattern: Pattern,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAction")
            .field("method", &self.method)
            .field("url", &self.url.to_string())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("expect", &self.expect)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn parse(
    value: &Value,
    path: &str,
    context: &ParseContext<'_>,
    problems: &mut Problems,
) -> Option<Arc<dyn Kind>> {
    let raw: RawHttp = super::deserialize(value, path, problems)?;
    let action = HttpAction::try_from_raw(raw, path, context, problems)?;
    Some(Arc::new(action))
}

/// Parses `expect_status`: one code or a list; `None` means any 2xx.
pub(crate) fn expect_status(
    value: Option<&Value>,
    path: &str,
    problems: &mut Problems,
) -> Vec<u16> {
    let codes: Vec<u64> = match value {
        None => return Vec::new(),
        Some(Value::Number(n)) => n.as_u64().into_iter().collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_u64).collect(),
        Some(_) => Vec::new(),
    };
    let valid: Vec<u16> = codes
        .iter()
        .filter_map(|c| u16::try_from(*c).ok())
        .filter(|c| (100..=599).contains(c))
        .collect();
    let count = match value {
        Some(Value::Array(items)) => items.len(),
        _ => 1,
    };
    if valid.is_empty() || valid.len() != count {
        problems.push(
            path,
            "must be a status code from 100 to 599, or a list of them",
        );
    }
    valid
}

/// The client every request uses: rustls on ring with the Mozilla roots, no redirects.
fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| err.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .map_err(|err| err.to_string())
}

impl HttpAction {
    fn try_from_raw(
        raw: RawHttp,
        path: &str,
        context: &ParseContext<'_>,
        problems: &mut Problems,
    ) -> Option<HttpAction> {
        let before = problems.0.len();
        let pattern = Pattern::parse(
            raw.placeholder_pattern.as_deref(),
            &format!("{path}.placeholder_pattern"),
            problems,
        );
        let url = HttpAction::url(&raw.url, &format!("{path}.url"), problems);
        let method = match raw.method.as_deref().unwrap_or("GET") {
            m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD") => {
                Method::from_bytes(m.as_bytes()).ok()
            }
            other => {
                problems.push(
                    format!("{path}.method"),
                    format!("`{other}` is not one of GET, POST, PUT, PATCH, DELETE, HEAD"),
                );
                None
            }
        };
        let expect = expect_status(
            raw.expect_status.as_ref(),
            &format!("{path}.expect_status"),
            problems,
        );
        let mut headers = HeaderMap::new();
        for (name, value) in &raw.headers {
            let at = format!("{path}.headers.{name}");
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                problems.push(&at, "not a header name");
                continue;
            };
            if value.contains(['{', '}']) {
                problems.push(&at, "headers take no placeholder");
                continue;
            }
            match HeaderValue::from_str(value) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    headers.insert(header, value);
                }
                // The value may be a secret: not shown.
                Err(_) => problems.push(&at, "not a valid header value"),
            }
        }
        let token = crate::config::secret(
            None,
            raw.bearer_token_file,
            &format!("{path}.bearer_token"),
            context.base,
            problems,
        );
        let body = raw
            .body
            .as_deref()
            .and_then(|body| Template::parse(body, &format!("{path}.body"), problems));
        let timeout = crate::config::duration(
            raw.timeout,
            DEFAULT_TIMEOUT,
            &format!("{path}.timeout"),
            problems,
        );
        let client = match client(timeout) {
            Ok(client) => Some(client),
            Err(err) => {
                problems.push(path, format!("cannot set up the HTTP client: {err}"));
                None
            }
        };
        if problems.0.len() > before {
            return None;
        }
        Some(HttpAction {
            method: method?,
            url: url?,
            body: if raw.body.is_some() {
                Some(body?)
            } else {
                None
            },
            headers,
            token,
            expect,
            timeout,
            pattern,
            client: client?,
        })
    }

    /// A `GET` probe of `url` for `then_check`.
    pub(crate) fn probe(
        url: &str,
        expect: Vec<u16>,
        timeout: Duration,
        path: &str,
        problems: &mut Problems,
    ) -> Option<HttpAction> {
        let url = HttpAction::url(url, path, problems)?;
        let client = client(timeout)
            .map_err(|err| problems.push(path, format!("cannot set up the HTTP client: {err}")))
            .ok()?;
        Some(HttpAction {
            method: Method::GET,
            url,
            body: None,
            headers: HeaderMap::new(),
            token: None,
            expect,
            timeout,
            pattern: Pattern::default(),
            client,
        })
    }

    /// Parses the URL template: http or https, no credentials, placeholders only after the
    /// host.
    fn url(text: &str, path: &str, problems: &mut Problems) -> Option<Template> {
        let template = Template::parse(text, path, problems)?;
        if let Some(first) = text.find("{labels.") {
            let authority_end = text
                .find("://")
                .map(|i| i + 3)
                .and_then(|start| text[start..].find(['/', '?', '#']).map(|end| start + end));
            if authority_end.is_none_or(|end| first < end) {
                problems.push(
                    path,
                    "placeholders may appear only after the host (in the path or query)",
                );
                return None;
            }
        }
        // The URL with every placeholder filled by a harmless value, to check its shape.
        let sample = template
            .render_with(
                &template
                    .labels()
                    .map(|l| (l.to_owned(), "x".to_owned()))
                    .collect(),
                &Pattern::default(),
                percent_encode,
            )
            .ok()?;
        let url = match Url::parse(&sample) {
            Ok(url) => url,
            Err(err) => {
                problems.push(path, format!("not a URL: {err}"));
                return None;
            }
        };
        if !matches!(url.scheme(), "http" | "https") {
            problems.push(path, "must be an http:// or https:// URL");
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            problems.push(
                path,
                "must not hold credentials: use bearer_token_file or headers",
            );
            return None;
        }
        Some(template)
    }

    /// The request's URL with its placeholders filled and percent-encoded.
    fn render_url(&self, labels: &BTreeMap<String, String>) -> Result<String, ActionError> {
        self.url.render_with(labels, &self.pattern, percent_encode)
    }

    fn accepts(&self, status: u16) -> bool {
        if self.expect.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect.contains(&status)
        }
    }

    /// What a run would send.
    ///
    /// # Errors
    /// [`ActionError::Placeholder`] when a placeholder's value is refused.
    pub fn describe(&self, labels: &BTreeMap<String, String>) -> Result<String, ActionError> {
        let url = self.render_url(labels)?;
        if let Some(body) = &self.body {
            body.render(labels, &self.pattern)?;
        }
        Ok(format!("{} {url}", self.method))
    }

    /// Sends the request and checks the status.
    ///
    /// # Errors
    /// [`ActionError::Placeholder`] for a refused value, [`ActionError::Failed`] when no
    /// response came, [`ActionError::Refused`] for an unexpected status,
    /// [`ActionError::Cancelled`] on `cancel`.
    pub async fn execute(
        &self,
        labels: &BTreeMap<String, String>,
        cancel: &CancellationToken,
    ) -> Result<Outcome, ActionError> {
        let url = self.render_url(labels)?;
        let what = format!("{} {url}", self.method);
        let mut request = self
            .client
            .request(self.method.clone(), &url)
            .headers(self.headers.clone())
            .timeout(self.timeout);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        if let Some(body) = &self.body {
            request = request.body(body.render(labels, &self.pattern)?);
        }
        let redactor = Redactor::new(
            self.token
                .iter()
                .map(|t| t.expose_secret().to_owned())
                .collect(),
        );
        let exchange = async {
            let mut response = request
                .send()
                .await
                .map_err(|err| ActionError::failed(&what, err.without_url()))?;
            let status = response.status();
            let mut body = Vec::new();
            while body.len() < BODY_LIMIT {
                match response.chunk().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    Ok(None) | Err(_) => break,
                }
            }
            body.truncate(BODY_LIMIT);
            let text = redactor.redact(String::from_utf8_lossy(&body).trim());
            Ok::<_, ActionError>((status, text))
        };
        let (status, text) = tokio::select! {
            result = exchange => result?,
            () = cancel.cancelled() => return Err(ActionError::Cancelled),
        };
        if !self.accepts(status.as_u16()) {
            let expected = if self.expect.is_empty() {
                "a 2xx status".to_owned()
            } else {
                self.expect
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ")
            };
            let head: String = text.chars().take(200).collect();
            return Err(ActionError::Refused(format!(
                "{what} answered {status}, expected {expected}{}",
                if head.is_empty() {
                    String::new()
                } else {
                    format!(": {head}")
                }
            )));
        }
        Ok(Outcome {
            summary: format!("{what} answered {status}"),
            exit_code: None,
            output: text,
        })
    }
}

impl Kind for HttpAction {
    fn key(&self) -> &'static str {
        KIND.key
    }

    fn plan(&self, labels: &BTreeMap<String, String>) -> Result<String, ActionError> {
        self.describe(labels)
    }

    fn run<'a>(&'a self, context: &'a JobContext<'a>) -> RunFuture<'a> {
        Box::pin(self.execute(context.labels, &context.cancel))
    }
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;

    fn build(value: Value) -> Result<Arc<dyn Kind>, Vec<String>> {
        super::super::testing::parse_with(|context, problems| {
            parse(&value, "actions[4].http", context, problems)
        })
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn placeholders_are_percent_encoded_in_the_url() {
        let action = build(json!({
            "url": "http://127.0.0.1:8000/restart/{labels.job}?host={labels.instance}",
            "method": "POST",
        }))
        .unwrap();
        assert_eq!(
            action
                .plan(&labels(&[("job", "api"), ("instance", "db-1:5432")]))
                .unwrap(),
            "POST http://127.0.0.1:8000/restart/api?host=db-1%3A5432"
        );
        assert!(
            action
                .plan(&labels(&[("job", "a&b=c"), ("instance", "x")]))
                .is_err()
        );
    }

    #[test]
    fn config_problems_have_key_paths() {
        let dir = tempfile::tempdir().unwrap();
        let problems = build(json!({
            "url": "http://{labels.host}/restart",
            "method": "TRACE",
            "expect_status": [200, 999],
            "headers": {"X Bad": "v", "X-Ok": "{labels.x}"},
            "bearer_token_file": dir.path().join("missing"),
            "timeout": "0s",
        }))
        .unwrap_err();
        let paths: Vec<&str> = problems
            .iter()
            .map(|p| p.split(": ").next().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "actions[4].http.url",
                "actions[4].http.method",
                "actions[4].http.expect_status",
                "actions[4].http.headers.X Bad",
                "actions[4].http.headers.X-Ok",
                "actions[4].http.bearer_token_file",
                "actions[4].http.timeout",
            ],
            "{problems:?}"
        );
        for (url, expected) in [
            ("ftp://host/x", "http:// or https://"),
            ("http://user:pw@host/x", "must not hold credentials"),
            ("http://host:{labels.port}/x", "only after the host"),
            ("not a url", "not a URL"),
        ] {
            let problems = build(json!({"url": url})).unwrap_err();
            assert!(problems[0].contains(expected), "{url}: {problems:?}");
            assert!(!problems[0].contains("pw@"), "{problems:?}");
        }
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "tok-very-secret\n").unwrap();
        let action =
            build(json!({"url": "https://example.invalid/", "bearer_token_file": file})).unwrap();
        assert!(!format!("{action:?}").contains("tok-very-secret"));
    }
}
