//! The words of the relay's mail, in the languages the widget and the
//! console speak: English, Simplified and Traditional Chinese.

use serde::{Deserialize, Serialize};

/// A mail's language: a site's mail setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Language {
    #[default]
    #[serde(rename = "en")]
    English,
    #[serde(rename = "zh-CN")]
    SimplifiedChinese,
    #[serde(rename = "zh-TW")]
    TraditionalChinese,
}

impl Language {
    /// Every language, for the console's choice.
    pub const ALL: [Language; 3] = [Language::English, Language::SimplifiedChinese, Language::TraditionalChinese];

    /// The tag a site's setting stores and `Content-Language` carries.
    pub fn tag(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::SimplifiedChinese => "zh-CN",
            Language::TraditionalChinese => "zh-TW",
        }
    }

    /// The language of `tag`; `None` for one the relay does not write.
    pub fn from_tag(tag: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|language| language.tag().eq_ignore_ascii_case(tag))
    }

    /// The language of a stored setting; English for anything unknown.
    pub fn from_setting(tag: &str) -> Language {
        Language::from_tag(tag).unwrap_or_default()
    }

    /// The words of this language.
    pub fn texts(self) -> &'static Texts {
        match self {
            Language::English => &EN,
            Language::SimplifiedChinese => &ZH_CN,
            Language::TraditionalChinese => &ZH_TW,
        }
    }
}

/// The words of one language. `{site}` and `{minutes}` are filled in.
#[derive(Debug)]
pub struct Texts {
    pub new_conversation_subject: &'static str,
    pub new_conversation_intro: &'static str,
    pub missed_subject: &'static str,
    pub missed_intro: &'static str,
    pub visitor_wrote: &'static str,
    pub no_message_yet: &'static str,
    pub open_console: &'static str,
    pub automatic: &'static str,
}

const EN: Texts = Texts {
    new_conversation_subject: "New conversation on {site}",
    new_conversation_intro: "A visitor started a conversation on {site} while no agent was online.",
    missed_subject: "Missed conversation on {site}",
    missed_intro: "A visitor on {site} has waited {minutes} minutes without an agent's reply.",
    visitor_wrote: "The visitor wrote:",
    no_message_yet: "(no message yet)",
    open_console: "Open the console",
    automatic: "This mail was sent automatically by Kefu.",
};

const ZH_CN: Texts = Texts {
    new_conversation_subject: "{site} 有新的对话",
    new_conversation_intro: "有访客在没有客服在线时于 {site} 发起了对话。",
    missed_subject: "{site} 有未回复的对话",
    missed_intro: "{site} 有访客已等待 {minutes} 分钟，仍无客服回复。",
    visitor_wrote: "访客写道：",
    no_message_yet: "（尚无消息）",
    open_console: "打开客服台",
    automatic: "此邮件由 Kefu 自动发送。",
};

const ZH_TW: Texts = Texts {
    new_conversation_subject: "{site} 有新的對話",
    new_conversation_intro: "有訪客在沒有客服在線時於 {site} 發起了對話。",
    missed_subject: "{site} 有未回覆的對話",
    missed_intro: "{site} 有訪客已等待 {minutes} 分鐘，仍無客服回覆。",
    visitor_wrote: "訪客寫道：",
    no_message_yet: "（尚無訊息）",
    open_console: "打開客服台",
    automatic: "此郵件由 Kefu 自動發送。",
};

/// `text` with `{site}` and `{minutes}` filled in.
pub(super) fn fill(text: &str, site: &str, minutes: u32) -> String {
    text.replace("{site}", site).replace("{minutes}", &minutes.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_fills_every_placeholder_it_has() {
        for language in Language::ALL {
            let texts = language.texts();
            assert!(texts.new_conversation_subject.contains("{site}"), "{language:?}");
            assert!(texts.missed_intro.contains("{minutes}"), "{language:?}");
            assert_eq!(Language::from_tag(language.tag()), Some(language));
        }
        assert_eq!(Language::from_setting("fr"), Language::English);
        assert_eq!(fill("{site}: {minutes}", "Shop", 5), "Shop: 5");
    }
}
