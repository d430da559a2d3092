//! The dashboard is served from the binary itself.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_from_the_binary_with_its_assets_and_routes() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(config(dir.path(), None)).await;
    let (status, index) = get(&g.url("/"), None).await;
    assert_eq!(status, 200);
    assert!(index.contains("<html"), "{index}");
    // A client-side route gets the same page (QR labels link to /terminals/{id}).
    let (status, page) = get(&g.url("/terminals/HY-001"), None).await;
    assert_eq!((status, page == index), (200, true));
    // Every asset the page names is there, with a fitting type.
    let assets: Vec<&str> = index
        .split('"')
        .filter(|s| s.starts_with("/assets/") || s.starts_with("assets/"))
        .collect();
    assert!(!assets.is_empty(), "index.html names no assets: {index}");
    for a in assets {
        let resp = reqwest::get(g.url(&format!("/{}", a.trim_start_matches('/'))))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{a}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            ct.contains("javascript") || ct.contains("css") || ct.contains("text"),
            "{a}: {ct}"
        );
    }
    // API routes are not swallowed by the page.
    let (status, body) = get(&g.url("/api/v1/nothing-here"), Some(&g.token)).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"error\""));
    g.stop().await;
}
