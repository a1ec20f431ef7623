//! What the page tells the widget: which site and which parent page (the
//! relay decided both and wrote them into the page), which language and
//! colour, and whether it runs inside the loader's iframe.
//!
//! `/widget?site=KEY&lang=zh-CN&color=%23RRGGBB&embed=1&origin=https://shop.example`
//! inside the loader's iframe; `/c/KEY` as a full page for mobile webviews,
//! which may say who their user is in the fragment:
//! `/c/KEY#kefu_user=TOKEN` (see [`identity_from_fragment`]).
//! The site and the origin in the URL are the relay's to read: it checks
//! who may frame the page and who may hear from it on the decoded key, and
//! the widget takes its answer, never its own reading of the URL.

use kefu_protocol::ids::SiteKey;

use crate::forms::Look;
use crate::i18n::Lang;
use crate::persist::StoredVisitor;

/// The brand colour when the page names none or an invalid one.
pub const DEFAULT_BRAND: Brand = Brand { r: 0x25, g: 0x63, b: 0xeb };

/// How the widget runs on this page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `None` when the URL names no valid site key: the widget says it
    /// cannot connect instead of guessing.
    pub site: Option<SiteKey>,
    pub lang: Lang,
    pub brand: Brand,
    /// Inside the loader's iframe: talk to the parent page with
    /// `postMessage`; the parent shows and hides the panel.
    pub embed: bool,
    /// The parent page's origin, the only one the widget posts to. Without
    /// it the widget posts nothing: `"*"` would tell any page that framed it
    /// what the visitor writes.
    pub parent_origin: Option<String>,
    /// The panel is on screen from the start (always in full-page mode;
    /// with `open=1` in embed mode, when the loader creates the iframe on a
    /// click).
    pub start_open: bool,
    /// A signed identity token from the page's fragment: a mobile app's
    /// way to say who its user is without a loader.
    pub identity: Option<String>,
    /// The site's forms, as the relay wrote them into the page.
    pub look: Look,
    /// What a follow-up mail's link (`/c/KEY?resume=TOKEN`) gave.
    pub resume: Option<Resume>,
}

/// What the relay made of a resume link (`<meta name="kefu-resume">`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Continue as this visitor, in its conversation.
    As(StoredVisitor),
    /// Expired or not valid: say so and start a fresh chat.
    Refused,
}

impl Resume {
    /// A stored-visitor line, or anything else (`expired`, `invalid`) as
    /// a refusal; `None` for a page without the meta.
    pub fn from_meta(content: Option<&str>) -> Option<Resume> {
        let content = content?;
        Some(StoredVisitor::decode(content).map_or(Resume::Refused, Resume::As))
    }
}

/// What the relay wrote into the page (`<meta name="kefu-site">` and
/// `<meta name="kefu-parent">`); empty or missing values are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Granted {
    pub site: Option<String>,
    pub parent: Option<String>,
}

impl Config {
    /// Reads the config from what the relay granted and a query-parameter
    /// lookup for the rest.
    pub fn from_page(granted: Granted, param: impl Fn(&str) -> Option<String>, browser_lang: Option<&str>) -> Config {
        let site = granted.site.and_then(|key| SiteKey::new(key).ok());
        let embed = param("embed").is_some_and(|v| v == "1" || v == "true");
        let parent_origin = granted.parent.filter(|origin| is_origin(origin));
        let open = param("open").is_some_and(|v| v == "1" || v == "true");
        Config {
            site,
            lang: Lang::pick(param("lang").as_deref(), browser_lang),
            brand: param("color").and_then(|c| Brand::parse(&c)).unwrap_or(DEFAULT_BRAND),
            embed,
            parent_origin: if embed { parent_origin } else { None },
            start_open: !embed || open,
            identity: None,
            look: Look::default(),
            resume: None,
        }
    }
}

/// The signed identity token in a fragment such as `#kefu_user=TOKEN`
/// (other `&`-separated entries are ignored). A fragment is never sent to
/// a server, so the token stays out of access logs and `Referer` headers.
/// Only the characters of a signed token (base64url and dots) are taken,
/// at most `bridge::MAX_TOKEN` bytes; the relay checks the signature.
pub fn identity_from_fragment(fragment: &str) -> Option<String> {
    let token = fragment.trim_start_matches('#').split('&').find_map(|entry| entry.strip_prefix("kefu_user="))?;
    let valid = !token.is_empty()
        && token.len() <= crate::bridge::MAX_TOKEN
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    valid.then(|| token.to_owned())
}

/// `scheme://host[:port]` and nothing more, as `postMessage` wants it.
fn is_origin(value: &str) -> bool {
    // A `:` then `//` rather than a search for "://": the scheme has no
    // `:`, and a substring search would link a routine of its own.
    let Some((scheme, host)) =
        value.split_once(':').and_then(|(scheme, rest)| Some((scheme, rest.strip_prefix("//")?)))
    else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// A brand colour, `#RRGGBB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brand {
    r: u8,
    g: u8,
    b: u8,
}

impl Brand {
    /// Accepts exactly `#RRGGBB` (any case), so nothing but a colour can
    /// reach the style sheet.
    pub fn parse(value: &str) -> Option<Brand> {
        let hex = value.strip_prefix('#')?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        Some(Brand { r: channel(0)?, g: channel(2)?, b: channel(4)? })
    }

    /// `#rrggbb`.
    pub fn css(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }

    /// White or near-black, whichever reads better on the brand colour
    /// (WCAG relative luminance; white needs 4.5:1 or better).
    pub fn text_css(self) -> &'static str {
        if self.contrast_with_white() >= 4.5 { "#ffffff" } else { "#111827" }
    }

    fn contrast_with_white(self) -> f64 {
        fn linear(channel: u8) -> f64 {
            let c = f64::from(channel) / 255.0;
            if c <= 0.039_28 {
                return c / 12.92;
            }
            // x^2.4 as x^2 * x^(1/4 + 1/8 + 1/32): square roots are one
            // wasm instruction, `powf` would add a libm routine, and the
            // 0.006 difference in the exponent moves no decision.
            let x = (c + 0.055) / 1.055;
            let r4 = x.sqrt().sqrt();
            let r8 = r4.sqrt();
            let r32 = r8.sqrt().sqrt();
            x * x * r4 * r8 * r32
        }
        let luminance = 0.2126 * linear(self.r) + 0.7152 * linear(self.g) + 0.0722 * linear(self.b);
        1.05 / (luminance + 0.05)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(site: &str, parent: &str) -> Granted {
        Granted { site: Some(site.to_owned()), parent: Some(parent.to_owned()) }
    }

    fn params(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn the_embedded_widget_reads_its_parameters() {
        let config = Config::from_page(
            granted("demo", "https://shop.example:8443"),
            params(&[("lang", "zh-TW"), ("color", "#10B981"), ("embed", "1"), ("origin", "https://evil.example")]),
            Some("en-US"),
        );
        assert_eq!(config.site, SiteKey::new("demo").ok());
        assert_eq!(config.lang, Lang::ZhTw);
        assert_eq!(config.brand.css(), "#10b981");
        assert!(config.embed);
        assert!(!config.start_open);
        assert_eq!(config.parent_origin.as_deref(), Some("https://shop.example:8443"));
    }

    #[test]
    fn the_full_page_starts_open_and_posts_nothing() {
        let config = Config::from_page(granted("demo", "https://shop.example"), params(&[]), Some("zh-HK"));
        assert_eq!(config.site, SiteKey::new("demo").ok());
        assert_eq!(config.lang, Lang::ZhTw);
        assert_eq!(config.brand, DEFAULT_BRAND);
        assert!(!config.embed);
        assert!(config.start_open);
        assert_eq!(config.parent_origin, None);
    }

    #[test]
    fn bad_values_fall_back_instead_of_reaching_the_page() {
        let config = Config::from_page(
            granted("no spaces allowed", "*"),
            params(&[
                ("site", "demo"),
                ("color", "red;background:url(x)"),
                ("embed", "1"),
                ("origin", "https://a.example"),
            ]),
            None,
        );
        assert_eq!(config.site, None);
        assert_eq!(config.brand, DEFAULT_BRAND);
        assert_eq!(config.parent_origin, None);
        for origin in ["javascript:alert(1)", "https://", "https://a.example/path", "ftp://a.example"] {
            assert!(!is_origin(origin), "{origin}");
        }
    }

    #[test]
    fn a_webview_names_its_user_in_the_fragment() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln-_";
        assert_eq!(identity_from_fragment(&format!("#kefu_user={token}")).as_deref(), Some(token));
        assert_eq!(identity_from_fragment(&format!("#x=1&kefu_user={token}&y=2")).as_deref(), Some(token));
        for bad in ["", "#", "#kefu_user=", "#kefu_user=a<b", "#other=abc", "#kefu_user=a%20b"] {
            assert_eq!(identity_from_fragment(bad), None, "{bad}");
        }
        let long = format!("#kefu_user={}", "a".repeat(crate::bridge::MAX_TOKEN + 1));
        assert_eq!(identity_from_fragment(&long), None);
    }

    #[test]
    fn a_resume_link_gives_a_visitor_or_a_refusal() {
        let Some(Resume::As(visitor)) = Resume::from_meta(Some("v1 7 42 k1-42-abc")) else { panic!("a visitor") };
        assert_eq!((visitor.visitor.0, visitor.conversation.0, visitor.token.as_str()), (7, 42, "k1-42-abc"));
        assert_eq!(Resume::from_meta(Some("expired")), Some(Resume::Refused));
        assert_eq!(Resume::from_meta(Some("invalid")), Some(Resume::Refused));
        assert_eq!(Resume::from_meta(None), None);
    }

    #[test]
    fn colours_are_exactly_six_hex_digits() {
        assert_eq!(Brand::parse("#2563eb"), Some(DEFAULT_BRAND));
        for bad in ["2563eb", "#2563e", "#2563ebff", "#gg0000", "#25 3eb", ""] {
            assert_eq!(Brand::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_contrast_matches_wcag() {
        // Reference values from the WCAG formula with the exact exponent.
        let white = Brand { r: 255, g: 255, b: 255 };
        assert!((white.contrast_with_white() - 1.0).abs() < 0.01);
        assert!((DEFAULT_BRAND.contrast_with_white() - 5.17).abs() < 0.05);
        let green = Brand::parse("#10b981").unwrap();
        assert!((green.contrast_with_white() - 2.54).abs() < 0.05);
    }

    #[test]
    fn text_on_the_brand_colour_stays_readable() {
        assert_eq!(DEFAULT_BRAND.text_css(), "#ffffff");
        assert_eq!(Brand::parse("#000000").map(Brand::text_css), Some("#ffffff"));
        assert_eq!(Brand::parse("#fde047").map(Brand::text_css), Some("#111827")); // yellow
        assert_eq!(Brand::parse("#ffffff").map(Brand::text_css), Some("#111827"));
    }
}
