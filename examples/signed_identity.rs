//! What a site's backend does to vouch for its logged-in user: sign the
//! user id, name and email with the site's identity secret, for a short
//! time and for one site, as a JWT (HS256). Any JWT library does the same;
//! this one spells it out with `hmac`, `sha2` and `base64`.
//!
//! ```sh
//! # The secret is on the console's Settings page (admins), or in
//! # GET /api/site as `identity_secret`. Read it from the environment, not
//! # the command line, so it stays out of the shell history.
//! KEFU_IDENTITY_SECRET=... cargo run -p kefu-examples --example signed_identity -- \
//!     --site demo --user-id 42 --name Ada --email ada@example.com
//! ```
//!
//! It prints the token and the two ways to hand it to the widget:
//! `Kefu.setUser({ token })` on a web page, and `/c/SITE#kefu_user=TOKEN`
//! for a mobile app's webview (the fragment never reaches a server log).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Command line.
#[derive(Debug, Parser)]
struct Args {
    /// The site's identity secret.
    #[arg(long, env = "KEFU_IDENTITY_SECRET", hide_env_values = true)]
    secret: String,
    /// The site's key: the token is good for this site only.
    #[arg(long, default_value = "demo")]
    site: String,
    /// The relay's address, for the webview URL.
    #[arg(long, env = "KEFU_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long)]
    user_id: String,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    email: Option<String>,
    /// How long the token is good for, in seconds (the relay takes at most
    /// a day). Short is safer: whoever reads the page can use it until then.
    #[arg(long, default_value_t = 600)]
    valid_for: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = serde_json::json!({
        "sub": args.user_id,
        "name": args.name,
        "email": args.email,
        "iat": now,
        "exp": now + args.valid_for,
        "aud": args.site,
    });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(args.secret.as_bytes())?;
    mac.update(signed.as_bytes());
    let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));

    println!("{token}");
    println!();
    println!("On a web page:  Kefu.setUser({{ token: \"{token}\" }})");
    println!("In a webview:   {}/c/{}#kefu_user={token}", args.url.trim_end_matches('/'), args.site);
    Ok(())
}
