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
}

impl Collector for Fixed {
    fn name(&self) -> &str {
        self.name
    }
    fn timeout(&self) -> Duration {
        Duration::from_millis(200)
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
    let collectors = Collectors::new(
        Vec::new(),
        vec![
            Arc::new(Fixed {
                name: "fixed",
                hang: false,
            }),
            Arc::new(Fixed {
                name: "stuck",
                hang: true,
            }),
        ],
    );
    let state = AppState::new(config, collectors, None);
    (router(Arc::clone(&state), config), state)
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
    config.web.request_timeout = Duration::from_secs(5);
    let (router, state) = app(&config);
    let (status, _, _) = get(
        router,
        "/metrics",
        &[("x-prometheus-scrape-timeout-seconds", "0.2")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let stuck = &state.collectors.statuses()["stuck"];
    assert!(stuck.duration < Duration::from_millis(200), "{stuck:?}");
    assert!(stuck.error.as_deref().unwrap().contains("timed out"));
}

#[tokio::test]
async fn bearer_token_protects_everything_but_probes() {
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
    assert_eq!(get(router, "/readyz", &[]).await.0, StatusCode::OK);
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
        "<td>fixed</td><td>ok</td>",
        "<td>stuck</td><td>failed</td>",
        "timed out",
    ] {
        assert!(body.contains(needle), "missing {needle} in {body}");
    }
}
