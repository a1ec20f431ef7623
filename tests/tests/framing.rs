//! A site's allowed origins decide which pages may frame its widget.

use anyhow::{Result, ensure};
use kefu_tests::Relay;

async fn widget_policy(relay: &Relay) -> Result<String> {
    let response = reqwest::get(format!("{}/widget?site=demo&embed=1", relay.http_url())).await?;
    ensure!(response.status() == 200, "widget page: {} (is the web build there?)", response.status());
    let policy = response.headers().get("content-security-policy").map(|v| v.to_str().map(str::to_owned));
    Ok(policy.transpose()?.unwrap_or_default())
}

#[tokio::test]
async fn allowed_origins_become_the_widgets_frame_ancestors() -> Result<()> {
    let relay = Relay::start().await?;
    assert!(widget_policy(&relay).await?.ends_with("frame-ancestors *"), "open by default");

    let token = relay.admin_token().await?;
    let response = reqwest::Client::new()
        .put(format!("{}/api/site", relay.http_url()))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "allowed_origins": ["https://shop.example", "http://127.0.0.1:8080"] }))
        .send()
        .await?;
    ensure!(response.status() == 200, "saving the origins: {}", response.text().await?);

    let policy = widget_policy(&relay).await?;
    assert!(policy.ends_with("frame-ancestors https://shop.example http://127.0.0.1:8080"), "{policy}");
    Ok(())
}
