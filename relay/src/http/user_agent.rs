//! Names a browser and an operating system from a `User-Agent` header,
//! for the visitor panel: the major browsers and systems, major versions
//! only. Anything else is left unnamed rather than guessed.

/// What a user agent says, as a person would name it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    /// e.g. `"Chrome 126"`, `"Firefox 128"`, `"Safari 17"`, `"Edge 126"`.
    pub browser: Option<String>,
    /// e.g. `"Windows 10"`, `"macOS"`, `"Linux"`, `"Android 14"`, `"iOS 17"`.
    pub os: Option<String>,
}

/// The browser and OS named by `user_agent`.
pub fn parse(user_agent: &str) -> Client {
    Client { browser: browser(user_agent), os: os(user_agent) }
}

/// Browsers built on another one name it too (Edge says Chrome and Safari,
/// Chrome says Safari), so the most specific token is looked for first.
fn browser(ua: &str) -> Option<String> {
    const TOKENS: &[(&str, &str)] = &[
        ("Edg/", "Edge"),
        ("EdgA/", "Edge"),
        ("EdgiOS/", "Edge"),
        ("OPR/", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chrome/", "Chrome"),
    ];
    for (token, name) in TOKENS {
        if let Some(version) = version_after(ua, token) {
            return Some(format!("{name} {version}"));
        }
    }
    // Safari gives its own version in `Version/`; `Safari/` is WebKit's.
    if ua.contains("Safari/")
        && let Some(version) = version_after(ua, "Version/")
    {
        return Some(format!("Safari {version}"));
    }
    None
}

fn os(ua: &str) -> Option<String> {
    if let Some(version) = version_after(ua, "Windows NT ") {
        let rest = &ua[ua.find("Windows NT ")? + "Windows NT ".len()..];
        let name = match (version.as_str(), rest.split(['.', ';', ')']).nth(1)) {
            // Windows 11 still says 10.0.
            ("10", _) => "Windows 10",
            ("6", Some("3")) => "Windows 8.1",
            ("6", Some("2")) => "Windows 8",
            ("6", Some("1")) => "Windows 7",
            _ => "Windows",
        };
        return Some(name.to_owned());
    }
    if let Some(version) = version_after(ua, "Android ") {
        return Some(format!("Android {version}"));
    }
    if ua.contains("Android") {
        return Some("Android".to_owned());
    }
    // iPhones say "iPhone OS 17_2", iPads "CPU OS 17_2".
    if ua.contains("iPhone") || ua.contains("iPad") || ua.contains("iPod") {
        let version = version_after(ua, "iPhone OS ").or_else(|| version_after(ua, "CPU OS "));
        return Some(version.map_or_else(|| "iOS".to_owned(), |version| format!("iOS {version}")));
    }
    if ua.contains("CrOS") {
        return Some("ChromeOS".to_owned());
    }
    if ua.contains("Macintosh") || ua.contains("Mac OS X") {
        return Some("macOS".to_owned());
    }
    if ua.contains("Linux") || ua.contains("X11") {
        return Some("Linux".to_owned());
    }
    None
}

/// The major version (leading digits) right after `token`.
fn version_after(ua: &str, token: &str) -> Option<String> {
    let start = ua.find(token)? + token.len();
    let digits: String = ua[start..].chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "browser / os", with "-" for what is not named.
    fn named(ua: &str) -> String {
        let client = parse(ua);
        format!("{} / {}", client.browser.as_deref().unwrap_or("-"), client.os.as_deref().unwrap_or("-"))
    }

    #[test]
    fn desktop_browsers() {
        let chrome_windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                              Chrome/156.0.0.0 Safari/537.36";
        assert_eq!(named(chrome_windows), "Chrome 156 / Windows 10");
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                    Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87";
        assert_eq!(named(edge), "Edge 126 / Windows 10");
        let firefox_linux = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(named(firefox_linux), "Firefox 128 / Linux");
        let safari_mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                          Version/17.5 Safari/605.1.15";
        assert_eq!(named(safari_mac), "Safari 17 / macOS");
        let opera = "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                     Chrome/112.0.0.0 Safari/537.36 OPR/98.0.0.0";
        assert_eq!(named(opera), "Opera 98 / Windows 7");
        let old_windows = "Mozilla/5.0 (Windows NT 6.3; Trident/7.0; rv:11.0) like Gecko";
        assert_eq!(named(old_windows), "- / Windows 8.1");
        let chromebook = "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) \
                          Chrome/125.0.0.0 Safari/537.36";
        assert_eq!(named(chromebook), "Chrome 125 / ChromeOS");
    }

    #[test]
    fn mobile_browsers() {
        let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
                       Chrome/126.0.6478.122 Mobile Safari/537.36";
        assert_eq!(named(android), "Chrome 126 / Android 14");
        let samsung = "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) \
                       SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36";
        assert_eq!(named(samsung), "Samsung Internet 25 / Android 13");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
        assert_eq!(named(iphone), "Safari 17 / iOS 17");
        let chrome_ipad = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                           CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1";
        assert_eq!(named(chrome_ipad), "Chrome 126 / iOS 16");
        let firefox_ios = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                           (KHTML, like Gecko) FxiOS/127.0 Mobile/15E148 Safari/605.1.15";
        assert_eq!(named(firefox_ios), "Firefox 127 / iOS 17");
    }

    #[test]
    fn unknown_agents_are_not_guessed() {
        assert_eq!(named(""), "- / -");
        assert_eq!(named("curl/8.5.0"), "- / -");
        assert_eq!(named("Chrome/"), "- / -");
        let headless = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                        HeadlessChrome/126.0.0.0 Safari/537.36";
        assert_eq!(named(headless), "Chrome 126 / Linux");
    }
}
