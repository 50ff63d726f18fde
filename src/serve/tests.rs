use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::collect::{CollectFuture, Collector, Collectors, Family};
use crate::config::Config;

/// A collector with a fixed answer, or one that never answers.
struct Fixed {
    name: &'static str,
    hang: bool,
    timeout: Duration,
}

impl Collector for Fixed {
    fn name(&self) -> &str {
        self.name
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn collect(&self) -> CollectFuture<'_> {
        let hang = self.hang;
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Ok(vec![Family::single_gauge(
                "test_value",
                "A test value.",
                42.0,
            )])
        })
    }
}

fn app(config: &Config) -> (Router, Arc<AppState>) {
    app_with_stuck_timeout(config, Duration::from_millis(200))
}

/// The app with a fixed collector and one that hangs until `stuck_timeout`.
fn app_with_stuck_timeout(config: &Config, stuck_timeout: Duration) -> (Router, Arc<AppState>) {
    let collectors = Collectors::new(
        Vec::new(),
        vec![
            Arc::new(Fixed {
                name: "fixed",
                hang: false,
                timeout: Duration::from_millis(200),
            }),
            Arc::new(Fixed {
                name: "stuck",
                hang: true,
                timeout: stuck_timeout,
            }),
        ],
    )
    .with_node_scrape(["stuck".to_owned()]);
    let state = AppState::new(config, collectors, None, status::Watched::default());
    (router(Arc::clone(&state), config, Router::new()), state)
}

async fn get(router: Router, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, String, String) {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn a_hanging_collector_does_not_stall_the_scrape() {
    let (router, _) = app(&Config::default());
    let (status, content_type, body) = get(router, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/plain; version=0.0.4"));
    assert!(body.contains("test_value 42"), "{body}");
    assert!(
        body.contains("warden_collector_success{collector=\"fixed\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("warden_collector_success{collector=\"stuck\"} 0"),
        "{body}"
    );
    // Collectors named for node_exporter's scrape families appear there too, and only those.
    assert!(
        body.contains("node_scrape_collector_success{collector=\"stuck\"} 0"),
        "{body}"
    );
    assert!(
        body.contains("node_scrape_collector_duration_seconds{collector=\"stuck\"} "),
        "{body}"
    );
    assert!(
        !body.contains("node_scrape_collector_success{collector=\"fixed\"}"),
        "{body}"
    );
    assert!(body.contains("warden_build_info{version=\""), "{body}");
}

#[tokio::test]
async fn openmetrics_when_asked() {
    let (router, _) = app(&Config::default());
    let (_, content_type, body) = get(
        router,
        "/metrics",
        &[("accept", "application/openmetrics-text;version=1.0.0")],
    )
    .await;
    assert!(content_type.starts_with("application/openmetrics-text"));
    assert!(body.ends_with("# EOF\n"));
}

#[tokio::test]
async fn scrape_timeout_header_shortens_collector_timeouts() {
    let mut config = Config::default();
    config.web.request_timeout = Duration::from_secs(10);
    let (router, state) = app_with_stuck_timeout(&config, Duration::from_secs(5));
    let (status, _, _) = get(
        router,
        "/metrics",
        &[("x-prometheus-scrape-timeout-seconds", "1.5")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let stuck = &state.collectors.statuses()["stuck"];
    assert!(stuck.duration < Duration::from_secs(2), "{stuck:?}");
    assert!(stuck.error.as_deref().unwrap().contains("timed out"));
}

#[tokio::test]
async fn a_tiny_scrape_timeout_header_is_raised_to_the_minimum() {
    let mut config = Config::default();
    config.web.request_timeout = Duration::from_secs(10);
    let (router, state) = app_with_stuck_timeout(&config, Duration::from_secs(5));
    let (status, _, body) = get(
        router,
        "/metrics",
        &[("x-prometheus-scrape-timeout-seconds", "0.001")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("test_value 42"), "{body}");
    let stuck = &state.collectors.statuses()["stuck"];
    // Cut off near the one-second minimum less gather's margin, not after a millisecond.
    assert!(stuck.duration >= Duration::from_millis(800), "{stuck:?}");
}

#[tokio::test]
async fn bearer_token_protects_everything_but_healthz() {
    let mut config = Config::default();
    config.web.bearer_token = Some("tok".to_owned().into());
    let (router, _) = app(&config);
    assert_eq!(
        get(router.clone(), "/metrics", &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(
            router.clone(),
            "/metrics",
            &[("authorization", "Bearer nope")]
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(router.clone(), "/", &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(
            router.clone(),
            "/metrics",
            &[("authorization", "Bearer tok")]
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(get(router.clone(), "/healthz", &[]).await.0, StatusCode::OK);
    assert_eq!(
        get(router, "/readyz", &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn scrapes_beyond_the_cap_get_503() {
    let mut config = Config::default();
    config.web.max_concurrent_scrapes = 1;
    let (router, state) = app(&config);
    let held = state.scrape_permits.try_acquire().unwrap();
    let (status, _, body) = get(router.clone(), "/metrics", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("max_concurrent_scrapes"));
    drop(held);
    assert_eq!(get(router, "/metrics", &[]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn readyz_turns_503_on_shutdown() {
    let (router, state) = app(&Config::default());
    state.set_shutting_down();
    assert_eq!(
        get(router, "/readyz", &[]).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn landing_page_lists_collectors_and_endpoints() {
    let (router, _) = app(&Config::default());
    let _ = get(router.clone(), "/metrics", &[]).await;
    let (status, content_type, body) = get(router, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"));
    for needle in [
        "/metrics",
        "/healthz",
        "/readyz",
        "<td>fixed</td><td class=\"state good\">ok</td>",
        "<td>stuck</td><td class=\"state bad\">failed</td>",
        "timed out",
    ] {
        assert!(body.contains(needle), "missing {needle} in {body}");
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

#[tokio::test]
async fn basic_auth_guards_everything_but_healthz_and_accepts_either_kind() {
    let mut config = Config::default();
    config.web.basic_auth_users.insert(
        "prometheus".to_owned(),
        bcrypt::hash("scrape", 4).unwrap().into(),
    );
    config.web.bearer_token = Some("tok".to_owned().into());
    let (router, state) = app(&config);
    for path in ["/metrics", "/readyz", "/"] {
        let response = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let challenges: Vec<_> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            challenges,
            ["Basic realm=\"warden\"", "Bearer realm=\"warden\""]
        );
    }
    let wrong = basic("prometheus", "nope");
    assert_eq!(
        get(router.clone(), "/metrics", &[("authorization", &wrong)])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let right = basic("prometheus", "scrape");
    for _ in 0..3 {
        assert_eq!(
            get(router.clone(), "/metrics", &[("authorization", &right)])
                .await
                .0,
            StatusCode::OK
        );
    }
    // The wrong password and the first right one ran bcrypt; the next two came from the cache.
    assert_eq!(state.auth.bcrypt_runs(), 2);
    assert_eq!(
        get(
            router.clone(),
            "/readyz",
            &[("authorization", "Bearer tok")]
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(get(router, "/healthz", &[]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn configured_headers_reach_every_response() {
    let mut config = Config::default();
    config.web.bearer_token = Some("tok".to_owned().into());
    config.web.headers = vec![("X-Frame-Options".to_owned(), "deny".to_owned())];
    let (router, _) = app(&config);
    for (path, status) in [
        ("/healthz", StatusCode::OK),
        ("/metrics", StatusCode::UNAUTHORIZED),
    ] {
        let response = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), status);
        assert_eq!(response.headers()["x-frame-options"], "deny", "{path}");
    }
}

#[tokio::test]
async fn requests_beyond_the_rate_limit_get_429() {
    let mut config = Config::default();
    config.web.rate_limit = Some(crate::config::RateLimit {
        interval: Duration::from_secs(3600),
        burst: 2,
    });
    let (router, _) = app(&config);
    assert_eq!(get(router.clone(), "/healthz", &[]).await.0, StatusCode::OK);
    assert_eq!(get(router.clone(), "/healthz", &[]).await.0, StatusCode::OK);
    assert_eq!(
        get(router, "/healthz", &[]).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn extra_routes_are_authenticated_but_not_bound_by_the_request_timeout() {
    let mut config = Config::default();
    config.web.bearer_token = Some("tok".to_owned().into());
    config.web.request_timeout = Duration::from_millis(50);
    let collectors = Collectors::new(Vec::new(), Vec::new());
    let state = AppState::new(&config, collectors, None, status::Watched::default());
    let extra = Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            "done"
        }),
    );
    let router = router(state, &config, extra);
    assert_eq!(
        get(router.clone(), "/slow", &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _, body) = get(router, "/slow", &[("authorization", "Bearer tok")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "done");
}

/// Issue 9: the status page reports what the background tasks and the store know, in words
/// and colours, and `/status` gives the same facts as JSON behind the same authentication.
#[tokio::test]
async fn status_page_reports_sources_backups_and_actions() {
    use crate::act::queue::Actions;
    use crate::backup::{Backups, Progress, Trigger};
    use crate::collect::postgres::Server;
    use crate::collect::sqlite::SqliteCollector;

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/a.txt"), b"a").unwrap();
    let yaml = format!(
        "state_dir: {d}/state\nweb: {{bearer_token: t0ken}}\n\
         postgres:\n  - {{name: app, dsn: 'postgres://warden:hunter2@127.0.0.1:1/app', timeout: 1s}}\n\
         sqlite:\n  - {{name: gone, path: {d}/missing.db}}\n\
         backups:\n  - {{name: notes, kind: files, paths: [{d}/src], destination: {d}/out, schedule: '0 3 * * *'}}\n  - {{name: other, kind: files, paths: [{d}/src], destination: {d}/out2, schedule: '0 3 * * *'}}\n\
         actions:\n  - {{name: snap, backup: notes}}\n",
        d = dir.path().display()
    );
    let config =
        Config::try_from_yaml(&yaml, "test", dir.path(), &crate::config::ProcessEnv).unwrap();

    // A server nothing listens for: its task records the refusal.
    let server = Server::new(config.sources.postgres[0].clone(), Duration::from_secs(1));
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(Arc::clone(&server).run(shutdown.clone()));
    for _ in 0..200 {
        if server.has_tried() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let backups = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Backups::open(&config))
            .await
            .unwrap()
            .unwrap()
    };
    backups
        .run(
            "notes",
            Trigger::Command,
            &shutdown,
            Arc::new(Progress::default()),
        )
        .await
        .unwrap();
    let actions = {
        let config = config.clone();
        let backups = Arc::clone(&backups);
        tokio::task::spawn_blocking(move || Actions::open(&config, Some(backups)))
            .await
            .unwrap()
            .unwrap()
    };
    let watched = status::Watched {
        servers: vec![Arc::clone(&server)],
        sqlite: vec![SqliteCollector::new(config.sources.sqlite[0].clone())],
        runners: Vec::new(),
        backups: Some(backups),
    };
    let state = AppState::new(
        &config,
        Collectors::new(Vec::new(), Vec::new()),
        Some(actions),
        watched,
    );
    let router = router(state, &config, Router::new());
    let auth = [("authorization", "Bearer t0ken")];

    assert_eq!(
        get(router.clone(), "/status", &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (code, content_type, body) = get(router.clone(), "/", &auth).await;
    assert_eq!(code, StatusCode::OK);
    assert!(content_type.starts_with("text/html"));
    for needle in [
        "<td>app</td><td class=\"state bad\">down</td>",
        "Connection refused",
        "<td>gone</td><td class=\"state bad\">missing</td>",
        "<td>notes</td><td class=\"state good\">ok</td>",
        "<td>other</td><td class=\"state warning\">never</td>",
        "<td>snap</td><td class=\"state unknown\">never run</td>",
        "Queue: <b>0</b> jobs waiting",
        "<td>1d</td>",
        " UTC <span class=\"meta\">(",
        "3 need attention",
    ] {
        assert!(body.contains(needle), "missing {needle} in {body}");
    }
    assert!(!body.contains("hunter2"), "a secret in the page: {body}");
    assert!(!body.contains("<script"), "{body}");

    let (code, content_type, body) = get(router, "/status", &auth).await;
    assert_eq!(code, StatusCode::OK);
    assert!(content_type.starts_with("application/json"));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        json["started_at"]["utc"]
            .as_str()
            .unwrap()
            .ends_with(" UTC")
    );
    assert_eq!(json["postgres"][0]["name"], "app");
    assert_eq!(json["postgres"][0]["state"], "down");
    assert_eq!(json["postgres"][0]["level"], "bad");
    assert!(json["postgres"][0]["since"]["unix"].as_f64().unwrap() > 0.0);
    assert!(
        json["postgres"][0]["last_error"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{json:#}"
    );
    assert_eq!(json["sqlite"][0]["state"], "missing");
    assert_eq!(json["backups"][0]["name"], "notes");
    assert_eq!(json["backups"][0]["state"], "ok");
    assert_eq!(json["backups"][0]["expected_interval_seconds"], 86_400.0);
    assert!(
        json["backups"][0]["newest_verified"]["age_seconds"]
            .as_f64()
            .unwrap()
            < 60.0
    );
    assert_eq!(json["backups"][1]["state"], "never");
    assert_eq!(json["actions"]["queue_depth"], 0);
    assert_eq!(json["actions"]["actions"][0]["name"], "snap");
    assert_eq!(json["problems"].as_array().unwrap().len(), 3, "{json:#}");
    assert!(!body.contains("hunter2"));
    shutdown.cancel();
}
