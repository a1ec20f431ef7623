//! A site's allowed origins decide which pages may frame its widget, on
//! every path that serves the widget page and on the site key as the URL
//! decodes it; when the store cannot say, nobody may.

use anyhow::{Context, Result, ensure};
use kefu_tests::Relay;
use kefu_tests::postgres::Database;

/// The `frame-ancestors` of the widget page at `target`.
async fn frame_ancestors(relay: &Relay, target: &str) -> Result<String> {
    let response = reqwest::get(format!("{}{target}", relay.http_url())).await?;
    ensure!(response.status() == 200, "{target}: {} (is the web build there?)", response.status());
    let policy = response.headers().get("content-security-policy").context("a policy")?.to_str()?.to_owned();
    let ancestors = policy.split("; ").find_map(|d| d.strip_prefix("frame-ancestors ")).context("frame-ancestors")?;
    Ok(ancestors.to_owned())
}

async fn allow(relay: &Relay, origins: &[&str]) -> Result<()> {
    let token = relay.admin_token().await?;
    let response = reqwest::Client::new()
        .put(format!("{}/api/site", relay.http_url()))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "allowed_origins": origins }))
        .send()
        .await?;
    ensure!(response.status() == 200, "saving the origins: {}", response.text().await?);
    Ok(())
}

/// Every way of naming the demo site's widget page.
const DEMO_PAGES: &[&str] = &[
    "/widget?site=demo&embed=1",
    "/widget?site=d%65mo&embed=1",
    "/widget?site=demo&site=other&embed=1",
    "/c/demo",
    "/c/d%65mo",
    "/c/other?site=demo",
    "/c/demo?embed=1&origin=https://evil.example",
];

#[tokio::test]
async fn allowed_origins_become_the_widgets_frame_ancestors() -> Result<()> {
    let relay = Relay::start().await?;
    assert_eq!(frame_ancestors(&relay, "/widget?site=demo&embed=1").await?, "*", "open by default");

    allow(&relay, &["https://shop.example", "http://127.0.0.1:8080"]).await?;
    for target in DEMO_PAGES {
        let ancestors = frame_ancestors(&relay, target).await?;
        assert_eq!(ancestors, "https://shop.example http://127.0.0.1:8080", "{target}");
    }
    Ok(())
}

#[tokio::test]
async fn a_store_that_cannot_answer_lets_nobody_frame_the_widget() -> Result<()> {
    let database = Database::create().await?;
    let relay = Relay::start_with(&["--database-url", database.url()]).await?;
    allow(&relay, &["https://shop.example"]).await?;
    // The stored origins become unreadable: the relay cannot know them.
    let broken = tokio::process::Command::new("psql")
        .args([database.url(), "-v", "ON_ERROR_STOP=1", "-qc", "UPDATE sites SET allowed_origins = 'not json'"])
        .status()
        .await?;
    ensure!(broken.success(), "psql failed: {broken}");
    for target in DEMO_PAGES {
        assert_eq!(frame_ancestors(&relay, target).await?, "'none'", "{target}");
    }
    Ok(())
}
