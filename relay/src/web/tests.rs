//! The web routes served on port 0 from a folder of fake files, asked with
//! raw HTTP/1.1 so request targets such as `/assets/../x` reach the server
//! byte for byte (an HTTP client library would tidy them first). The
//! widget page's decision reads a real SQLite store with the demo site.

use std::path::Path;

use kefu_protocol::ids::SiteKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{NOT_BUILT, routes};
use crate::config::Config;
use crate::state::AppState;
use crate::store::{SiteUpdate, Store};

/// The fake widget page: what the relay writes goes at the mark.
const WIDGET_PAGE: &[u8] = b"<!doctype html><head><!-- kefu:page --><title>widget</title>";

/// A folder laid out as `cargo xtask build-web` lays it out.
fn fake_web_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |name: &str, bytes: &[u8]| {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    write("kefu.js", b"console.log('loader');\n");
    write("kefu.js.br", b"BROTLI-LOADER");
    write("kefu.js.gz", b"GZIP-LOADER");
    write("widget.html", WIDGET_PAGE);
    write("widget.html.br", b"BROTLI-WIDGET");
    write("demo.html", b"<!doctype html><title>demo</title>");
    write("assets/kefu-widget-0123abcd_bg.wasm", b"\0asm\x01\0\0\0");
    write("assets/kefu-widget-0123abcd_bg.wasm.br", b"BROTLI-WASM");
    write("assets/kefu-widget-0123abcd.js", b"export default 1;\n");
    // Something the traversal attempts aim at, just outside `assets/`.
    write("secret.txt", b"SECRET");
    dir
}

/// A relay's state over `web_dir`, with a store that has the demo site.
async fn state(web_dir: &Path) -> (AppState, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(data.path()).await.unwrap();
    crate::auth::bootstrap(&store, "admin@example.com", Some("a long enough password")).await.unwrap();
    let mut config = Config::with_data_dir(data.path());
    config.web_dir = Some(web_dir.to_owned());
    (AppState::new(config, store), data)
}

async fn serve_state(state: AppState) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = routes(super::WebFiles::from_config(&state.config)).with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Serves `web_dir`; the store's folder lives as long as the value.
async fn serve(web_dir: &Path) -> (std::net::SocketAddr, tempfile::TempDir) {
    let (state, data) = state(web_dir).await;
    (serve_state(state).await, data)
}

/// Sets the demo site's allowed origins.
async fn allow(state: &AppState, origins: &[&str]) {
    let site = state.store.site_by_key(&SiteKey::new("demo").unwrap()).await.unwrap().unwrap();
    let update = SiteUpdate {
        allowed_origins: Some(origins.iter().map(|o| (*o).to_owned()).collect()),
        ..SiteUpdate::default()
    };
    state.store.update_site(site.id, &update).await.unwrap();
}

/// One answer: the status, the headers (names lowercased) and the body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Sends `GET target` with `extra` header lines and reads the whole answer.
async fn get(addr: std::net::SocketAddr, target: &str, extra: &[&str]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("GET {target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();

    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer { status, headers, body: raw[split + 4..].to_vec() }
}

#[tokio::test]
async fn web_loader_is_precompressed_and_cached_briefly() {
    let dir = fake_web_dir();
    let (addr, _data) = serve(dir.path()).await;

    let br = get(addr, "/kefu.js", &["accept-encoding: gzip, br"]).await;
    assert_eq!(br.status, 200);
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(br.body, b"BROTLI-LOADER");
    assert!(br.header("content-type").unwrap().contains("javascript"), "{br:?}");
    assert_eq!(br.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(br.header("vary"), Some("accept-encoding"));

    let gz = get(addr, "/kefu.js", &["accept-encoding: gzip"]).await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.body, b"GZIP-LOADER");

    let plain = get(addr, "/kefu.js", &[]).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body, b"console.log('loader');\n");
}

#[tokio::test]
async fn web_assets_are_immutable_and_wasm_has_its_type() {
    let dir = fake_web_dir();
    let (addr, _data) = serve(dir.path()).await;

    let wasm = get(addr, "/assets/kefu-widget-0123abcd_bg.wasm", &["accept-encoding: br"]).await;
    assert_eq!(wasm.status, 200);
    assert_eq!(wasm.header("content-type"), Some("application/wasm"));
    assert_eq!(wasm.header("content-encoding"), Some("br"));
    assert_eq!(wasm.header("cache-control"), Some("public, max-age=31536000, immutable"));
    assert_eq!(wasm.body, b"BROTLI-WASM");

    // No .br sibling: the plain file, still cached for good.
    let glue = get(addr, "/assets/kefu-widget-0123abcd.js", &["accept-encoding: br"]).await;
    assert_eq!(glue.status, 200);
    assert_eq!(glue.header("content-encoding"), None);
    assert!(glue.header("content-type").unwrap().contains("javascript"));

    // A missing asset is not cached for a year.
    let missing = get(addr, "/assets/kefu-widget-ffffffff.js", &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("cache-control"), None);

    // No directory listings or index pages.
    assert_eq!(get(addr, "/assets/", &[]).await.status, 404);
}

#[tokio::test]
async fn web_widget_page_is_revalidated_and_framable_from_anywhere() {
    let dir = fake_web_dir();
    let (addr, _data) = serve(dir.path()).await;

    for target in ["/widget?site=demo&embed=1", "/c/demo"] {
        let page = get(addr, target, &["accept-encoding: br"]).await;
        assert_eq!(page.status, 200, "{target}");
        assert_eq!(
            String::from_utf8_lossy(&page.body),
            "<!doctype html><head><meta name=\"kefu-site\" content=\"demo\"><meta name=\"kefu-parent\" content=\"\">\
             <meta name=\"kefu-look\" content=\"{&quot;color&quot;:&quot;#2563eb&quot;,&quot;greeting&quot;:&quot;&quot;,\
             &quot;position&quot;:&quot;right&quot;,&quot;hours&quot;:false,&quot;open_now&quot;:true,\
             &quot;next_opening&quot;:null,&quot;next_closing&quot;:null,&quot;offline_form_only&quot;:false,\
             &quot;prechat&quot;:{&quot;when&quot;:&quot;never&quot;,&quot;fields&quot;:[],\
             &quot;consent&quot;:null},&quot;survey&quot;:{&quot;enabled&quot;:false,&quot;ask_again&quot;:false},\
             &quot;email_follow_up&quot;:false}\"><title>widget</title>"
        );
        assert!(page.header("content-type").unwrap().starts_with("text/html"));
        assert_eq!(page.header("cache-control"), Some("no-cache"));
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(page.header("x-frame-options"), None);
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors *"), "{csp}");
        assert!(csp.contains("script-src 'self' 'wasm-unsafe-eval';"), "{csp}");
    }

    let demo = get(addr, "/demo", &[]).await;
    assert_eq!(demo.status, 200);
    assert_eq!(demo.body, b"<!doctype html><title>demo</title>");

    let root = get(addr, "/", &[]).await;
    assert_eq!(root.status, 307);
    assert_eq!(root.header("location"), Some("/demo"));
}

#[tokio::test]
async fn web_paths_cannot_leave_the_folder() {
    let dir = fake_web_dir();
    let (addr, _data) = serve(dir.path()).await;
    for target in [
        "/assets/../../etc/passwd",
        "/assets/../secret.txt",
        "/assets/%2e%2e/secret.txt",
        "/assets/%2E%2E%2Fsecret.txt",
        "/assets/..%2fsecret.txt",
        "/assets/..%5csecret.txt",
        "/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/assets//etc/passwd",
        "/assets/%2fetc%2fpasswd",
        "/assets/kefu-widget-0123abcd.js/../../secret.txt",
    ] {
        let answer = get(addr, target, &[]).await;
        assert!(matches!(answer.status, 400 | 404), "{target}: {answer:?}");
        let body = String::from_utf8_lossy(&answer.body);
        assert!(!body.contains("SECRET") && !body.contains("root:"), "{target} leaked: {body}");
    }
}

#[tokio::test]
async fn web_apps_not_built_answer_503_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("web");
    let (addr, _data) = serve(&missing).await;
    for target in ["/kefu.js", "/widget", "/c/demo", "/demo", "/assets/x.wasm"] {
        let answer = get(addr, target, &[]).await;
        assert_eq!(answer.status, 503, "{target}");
        assert_eq!(answer.body, NOT_BUILT.as_bytes());
    }

    // Built after the relay started: served without a restart.
    std::fs::create_dir_all(&missing).unwrap();
    std::fs::write(missing.join("kefu.js"), "1").unwrap();
    assert_eq!(get(addr, "/kefu.js", &[]).await.status, 200);
}

#[tokio::test]
async fn web_console_page_is_revalidated_and_never_framed() {
    let dir = fake_web_dir();
    std::fs::write(dir.path().join("console.html"), b"<!doctype html><title>console</title>").unwrap();
    std::fs::write(dir.path().join("console.html.br"), b"BROTLI-CONSOLE").unwrap();
    let (addr, _data) = serve(dir.path()).await;

    let page = get(addr, "/console", &["accept-encoding: br"]).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body, b"BROTLI-CONSOLE");
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");

    // Not built yet (a relay started before the web build): 404, not a
    // page from elsewhere.
    std::fs::remove_file(dir.path().join("console.html")).unwrap();
    std::fs::remove_file(dir.path().join("console.html.br")).unwrap();
    assert_eq!(get(addr, "/console", &[]).await.status, 404);
}

/// The widget page's `frame-ancestors` for `target`, and its body.
async fn framing(addr: std::net::SocketAddr, target: &str, extra: &[&str]) -> (String, String) {
    let page = get(addr, target, extra).await;
    assert_eq!(page.status, 200, "{target}");
    let csp = page.header("content-security-policy").unwrap_or_default();
    let ancestors = csp.split("; ").find_map(|d| d.strip_prefix("frame-ancestors ")).unwrap_or_default().to_owned();
    (ancestors, String::from_utf8_lossy(&page.body).into_owned())
}

#[tokio::test]
async fn web_every_widget_path_is_framed_as_its_decoded_site_allows() {
    let dir = fake_web_dir();
    let (state, _data) = state(dir.path()).await;
    allow(&state, &["https://shop.example"]).await;
    let addr = serve_state(state).await;
    for target in [
        "/widget?site=demo&embed=1",
        "/widget?site=d%65mo&embed=1",
        "/widget?embed=1&site=demo&site=other",
        "/c/demo",
        "/c/d%65mo",
        "/c/other?site=demo",
        "/c/demo?embed=1&origin=https://evil.example",
    ] {
        let (ancestors, body) = framing(addr, target, &[]).await;
        assert_eq!(ancestors, "https://shop.example", "{target}");
        assert!(body.contains("<meta name=\"kefu-site\" content=\"demo\">"), "{target}: {body}");
    }
}

#[tokio::test]
async fn web_the_widget_may_post_only_to_an_origin_the_site_allows() {
    let dir = fake_web_dir();
    let (state, _data) = state(dir.path()).await;
    let parent = |body: &str| {
        body.split("name=\"kefu-parent\" content=\"").nth(1).unwrap().split('"').next().unwrap().to_owned()
    };
    let addr = serve_state(state.clone()).await;

    // No allowed origins: the claim must be the framer's own origin.
    let target = "/widget?site=demo&embed=1&origin=https%3A%2F%2Fshop.example";
    let (_, body) = framing(addr, target, &["referer: https://shop.example/cart"]).await;
    assert_eq!(parent(&body), "https://shop.example");
    let (_, body) = framing(addr, target, &["referer: https://evil.example/"]).await;
    assert_eq!(parent(&body), "", "a framer that claims another origin");
    let (_, body) = framing(addr, target, &[]).await;
    assert_eq!(parent(&body), "", "nobody vouches for the claim");

    // Allowed origins: the claim must be one of them, whoever frames.
    allow(&state, &["https://shop.example"]).await;
    let (_, body) = framing(addr, target, &[]).await;
    assert_eq!(parent(&body), "https://shop.example");
    let evil = "/c/demo?embed=1&origin=https%3A%2F%2Fevil.example";
    let (_, body) = framing(addr, evil, &["referer: https://evil.example/"]).await;
    assert_eq!(parent(&body), "");
}

#[tokio::test]
async fn web_a_store_error_lets_nobody_frame_the_widget() {
    let dir = fake_web_dir();
    let (state, _data) = state(dir.path()).await;
    let addr = serve_state(state.clone()).await;
    state.store.close().await;
    for target in ["/widget?site=demo&embed=1&origin=https%3A%2F%2Fshop.example", "/c/demo"] {
        let (ancestors, body) = framing(addr, target, &["referer: https://shop.example/"]).await;
        assert_eq!(ancestors, "'none'", "{target}");
        assert!(body.contains("name=\"kefu-parent\" content=\"\""), "{target}: {body}");
    }
}
