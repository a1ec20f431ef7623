//! The widget's texts in every language it speaks, and how one is chosen.

use kefu_protocol::frame::ConversationEvent;

/// A language of the widget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    /// Simplified Chinese.
    ZhCn,
    /// Traditional Chinese (Taiwan, Hong Kong, Macau).
    ZhTw,
}

impl Lang {
    /// The language from the page's `lang` parameter if it names one, else
    /// from the browser's `navigator.language`; English when neither does.
    pub fn pick(param: Option<&str>, browser: Option<&str>) -> Lang {
        param.and_then(Lang::from_tag).or_else(|| browser.and_then(Lang::from_tag)).unwrap_or(Lang::En)
    }

    /// Understands BCP 47 tags loosely. For Chinese the script decides when
    /// the tag names one (`zh-Hant`, `zh-Hans-HK`), else the region: Taiwan,
    /// Hong Kong and Macau write traditional characters, the rest
    /// simplified.
    fn from_tag(tag: &str) -> Option<Lang> {
        let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
        let mut parts = tag.split('-');
        match parts.next()? {
            "en" => Some(Lang::En),
            "zh" => {
                let rest: Vec<&str> = parts.collect();
                let traditional = if rest.contains(&"hant") {
                    true
                } else if rest.contains(&"hans") {
                    false
                } else {
                    rest.iter().any(|part| matches!(*part, "tw" | "hk" | "mo"))
                };
                Some(if traditional { Lang::ZhTw } else { Lang::ZhCn })
            }
            _ => None,
        }
    }

    /// The tag for `<html lang>`, so screen readers pronounce it right.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
            Lang::ZhTw => "zh-TW",
        }
    }

    /// The texts in this language.
    pub fn strings(self) -> &'static Strings {
        match self {
            Lang::En => &EN,
            Lang::ZhCn => &ZH_CN,
            Lang::ZhTw => &ZH_TW,
        }
    }
}

/// The texts of the widget's forms (`ui::form`, `ui::survey`).
#[derive(Debug)]
pub struct FormTexts {
    /// The offline ask when the relay can send the answer by email.
    pub ask_by_email: &'static str,
    /// The offline ask when answers come in the chat only.
    pub ask_in_chat: &'static str,
    pub email: &'static str,
    pub name: &'static str,
    pub bad_email: &'static str,
    pub required: &'static str,
    pub bad_number: &'static str,
    pub prechat_title: &'static str,
    pub start: &'static str,
    pub choose: &'static str,
    pub survey_title: &'static str,
    /// What each score button reads out, 1 to 5.
    pub scores: [&'static str; 5],
    pub comment: &'static str,
    pub submit_rating: &'static str,
    /// The button that asks for the chat by mail.
    pub email_chat: &'static str,
    /// Where it was sent: the address goes between the two parts.
    pub chat_sent_to: (&'static str, &'static str),
    /// Asked again too soon.
    pub chat_too_soon: &'static str,
    pub chat_not_sent: &'static str,
    /// The address field when no email is known, and its button.
    pub chat_email: &'static str,
    pub send_chat: &'static str,
}

/// Every text the widget shows or reads out.
#[derive(Debug)]
pub struct Strings {
    pub title: &'static str,
    pub subtitle_online: &'static str,
    pub subtitle_offline: &'static str,
    /// Out of business hours: before and after when the site opens.
    pub back_at: (&'static str, &'static str),
    /// Out of business hours with no opening in sight.
    pub closed_now: &'static str,
    pub today: &'static str,
    pub tomorrow: &'static str,
    /// Sunday first, as `Date.getDay` counts.
    pub weekdays: [&'static str; 7],
    pub greeting: &'static str,
    pub team: &'static str,
    pub you: &'static str,
    pub messages: &'static str,
    pub placeholder: &'static str,
    pub send: &'static str,
    pub emoji: &'static str,
    pub close: &'static str,
    pub reconnecting: &'static str,
    pub unavailable: &'static str,
    pub sending: &'static str,
    pub sent: &'static str,
    pub delivered: &'static str,
    pub read: &'static str,
    pub failed: &'static str,
    /// Not sent, and why: over the relay's size limit.
    pub failed_too_long: &'static str,
    /// Not sent, and why: the visitor may not write there.
    pub failed_not_allowed: &'static str,
    pub typing: &'static str,
    /// A system line: an agent joined; the agent's name goes between the
    /// two parts.
    pub joined: (&'static str, &'static str),
    pub closed: &'static str,
    pub reopened: &'static str,
    /// A system line: the visitor rated the chat; the score goes between.
    pub rated: (&'static str, &'static str),
    /// The pre-chat form, the offline ask and the survey.
    pub forms: FormTexts,
    /// A paste went over the composer's limit and was cut.
    pub cut: &'static str,
    /// The app failed; only a reload brings it back.
    pub crashed: &'static str,
    /// A mail's link to continue a chat was too old or not valid.
    pub resume_failed: &'static str,
}

impl Strings {
    /// The system line a visitor is shown for `event`. Who did it among
    /// the agents (took, transferred, closed) is the team's business: the
    /// visitor learns who answers now and whether the chat is open.
    pub fn system_line(&self, event: &ConversationEvent) -> String {
        match event {
            ConversationEvent::Assigned { to, .. } | ConversationEvent::Transferred { to, .. } => {
                let (before, after) = self.joined;
                [before, to.name.as_str(), after].concat()
            }
            ConversationEvent::Closed { .. } => self.closed.to_owned(),
            ConversationEvent::Reopened { .. } => self.reopened.to_owned(),
            ConversationEvent::Rated { score, .. } => {
                let (before, after) = self.rated;
                format!("{before}{score}{after}")
            }
        }
    }
}

static EN: Strings = Strings {
    title: "Chat with us",
    subtitle_online: "We typically reply in a few minutes",
    subtitle_offline: "No agent is online right now. Leave a message and we'll reply here.",
    back_at: ("We're back ", " (your time). Leave a message and we'll reply then."),
    closed_now: "We're closed right now. Leave a message and we'll reply here.",
    today: "today",
    tomorrow: "tomorrow",
    weekdays: ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"],
    greeting: "Hi there 👋 How can we help you today?",
    team: "Support",
    you: "You",
    messages: "Messages",
    placeholder: "Write a message…",
    send: "Send message",
    emoji: "Insert emoji",
    close: "Close chat",
    reconnecting: "Reconnecting…",
    unavailable: "The chat cannot connect right now. Please reload the page to try again.",
    sending: "Sending…",
    sent: "Sent",
    delivered: "Delivered",
    read: "Read",
    failed: "Not sent",
    failed_too_long: "Not sent: too long",
    failed_not_allowed: "Not sent: not allowed here",
    typing: "Typing…",
    joined: ("", " joined the chat"),
    closed: "The conversation was closed",
    reopened: "The conversation was reopened",
    rated: ("You rated the chat ", " of 5"),
    forms: FormTexts {
        ask_by_email: "Nobody is here right now. Leave your email and we'll send the answer there, and you can continue here.",
        ask_in_chat: "Nobody is here right now. Leave your email if you like; we'll reply here.",
        email: "Email (optional)",
        name: "Name (optional)",
        bad_email: "This email address looks incomplete, e.g. name@example.com.",
        required: "Please fill this in.",
        bad_number: "Please enter a number.",
        prechat_title: "Before we start",
        start: "Start chat",
        choose: "Choose…",
        survey_title: "How was this chat?",
        scores: ["1 of 5: very bad", "2 of 5: bad", "3 of 5: okay", "4 of 5: good", "5 of 5: very good"],
        comment: "Comment (optional)",
        submit_rating: "Send rating",
        email_chat: "Email me this chat",
        chat_sent_to: ("This chat is on its way to ", "."),
        chat_too_soon: "A copy of this chat was just sent. You can ask again in a few minutes.",
        chat_not_sent: "The chat could not be sent. Please try again.",
        chat_email: "Your email",
        send_chat: "Send",
    },
    cut: "Your message was too long and was cut to 4,000 characters.",
    crashed: "Something went wrong. Please reload the page.",
    resume_failed: "This chat link has expired or is not valid. You can start a new chat here.",
};

static ZH_CN: Strings = Strings {
    title: "在线客服",
    subtitle_online: "我们通常在几分钟内回复",
    subtitle_offline: "目前没有客服在线。请留言，我们会在这里回复您。",
    back_at: ("我们将于", "（您的当地时间）回来。请留言，我们届时回复。"),
    closed_now: "现在不是服务时间。请留言，我们会在这里回复您。",
    today: "今天",
    tomorrow: "明天",
    weekdays: ["星期日", "星期一", "星期二", "星期三", "星期四", "星期五", "星期六"],
    greeting: "您好 👋 有什么可以帮您？",
    team: "客服",
    you: "我",
    messages: "消息",
    placeholder: "输入消息…",
    send: "发送",
    emoji: "插入表情",
    close: "关闭聊天",
    reconnecting: "正在重新连接…",
    unavailable: "暂时无法连接，请刷新页面重试。",
    sending: "发送中…",
    sent: "已发送",
    delivered: "已送达",
    read: "已读",
    failed: "发送失败",
    failed_too_long: "发送失败：内容太长",
    failed_not_allowed: "发送失败：无权在此发送",
    typing: "正在输入…",
    joined: ("", " 加入了对话"),
    closed: "对话已结束",
    reopened: "对话已重新开启",
    rated: ("您为本次对话评了 ", " 分（满分 5 分）"),
    forms: FormTexts {
        ask_by_email: "现在没有客服在线。留下您的邮箱，我们会把回复发到邮箱，您也可以在这里继续对话。",
        ask_in_chat: "现在没有客服在线。您可以留下邮箱（可选），我们会在这里回复您。",
        email: "邮箱（可选）",
        name: "姓名（可选）",
        bad_email: "邮箱地址似乎不完整，例如 name@example.com。",
        required: "请填写此项。",
        bad_number: "请输入数字。",
        prechat_title: "开始之前",
        start: "开始对话",
        choose: "请选择…",
        survey_title: "您对本次对话满意吗？",
        scores: [
            "1 分（满分 5）：很差",
            "2 分（满分 5）：差",
            "3 分（满分 5）：一般",
            "4 分（满分 5）：好",
            "5 分（满分 5）：很好",
        ],
        comment: "留言（可选）",
        submit_rating: "提交评价",
        email_chat: "将聊天记录发到我的邮箱",
        chat_sent_to: ("聊天记录正在发往 ", "。"),
        chat_too_soon: "刚刚已发送过聊天记录，请几分钟后再试。",
        chat_not_sent: "聊天记录未能发送，请重试。",
        chat_email: "您的邮箱",
        send_chat: "发送",
    },
    cut: "消息太长，已截断为 4000 个字符。",
    crashed: "出错了，请刷新页面。",
    resume_failed: "此聊天链接已过期或无效。您可以在这里开始新的聊天。",
};

static ZH_TW: Strings = Strings {
    title: "線上客服",
    subtitle_online: "我們通常會在幾分鐘內回覆",
    subtitle_offline: "目前沒有客服在線。請留言，我們會在這裡回覆您。",
    back_at: ("我們將於", "（您的當地時間）回來。請留言，我們屆時回覆。"),
    closed_now: "現在不是服務時間。請留言，我們會在這裡回覆您。",
    today: "今天",
    tomorrow: "明天",
    weekdays: ["星期日", "星期一", "星期二", "星期三", "星期四", "星期五", "星期六"],
    greeting: "您好 👋 有什麼可以幫您？",
    team: "客服",
    you: "我",
    messages: "訊息",
    placeholder: "輸入訊息…",
    send: "傳送",
    emoji: "插入表情符號",
    close: "關閉聊天",
    reconnecting: "正在重新連線…",
    unavailable: "暫時無法連線，請重新整理頁面再試一次。",
    sending: "傳送中…",
    sent: "已傳送",
    delivered: "已送達",
    read: "已讀",
    failed: "傳送失敗",
    failed_too_long: "傳送失敗：內容太長",
    failed_not_allowed: "傳送失敗：無權在此傳送",
    typing: "正在輸入…",
    joined: ("", " 加入了對話"),
    closed: "對話已結束",
    reopened: "對話已重新開啟",
    rated: ("您為這次對話評了 ", " 分（滿分 5 分）"),
    forms: FormTexts {
        ask_by_email: "現在沒有客服在線。留下您的電子郵件，我們會把回覆寄到信箱，您也可以在這裡繼續對話。",
        ask_in_chat: "現在沒有客服在線。您可以留下電子郵件（選填），我們會在這裡回覆您。",
        email: "電子郵件（選填）",
        name: "姓名（選填）",
        bad_email: "電子郵件地址似乎不完整，例如 name@example.com。",
        required: "請填寫此欄。",
        bad_number: "請輸入數字。",
        prechat_title: "開始之前",
        start: "開始對話",
        choose: "請選擇…",
        survey_title: "您對這次對話滿意嗎？",
        scores: [
            "1 分（滿分 5）：很差",
            "2 分（滿分 5）：差",
            "3 分（滿分 5）：普通",
            "4 分（滿分 5）：好",
            "5 分（滿分 5）：很好",
        ],
        comment: "留言（選填）",
        submit_rating: "送出評分",
        email_chat: "將聊天記錄寄到我的信箱",
        chat_sent_to: ("聊天記錄正在寄往 ", "。"),
        chat_too_soon: "剛剛已寄出聊天記錄，請幾分鐘後再試。",
        chat_not_sent: "聊天記錄未能寄出，請再試一次。",
        chat_email: "您的電子郵件",
        send_chat: "寄出",
    },
    cut: "訊息太長，已截斷為 4000 個字元。",
    crashed: "發生錯誤，請重新整理頁面。",
    resume_failed: "此聊天連結已過期或無效。您可以在這裡開始新的聊天。",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameter_wins_over_the_browser() {
        assert_eq!(Lang::pick(Some("zh-TW"), Some("en-US")), Lang::ZhTw);
        assert_eq!(Lang::pick(Some("en"), Some("zh-CN")), Lang::En);
    }

    #[test]
    fn an_unknown_parameter_falls_back_to_the_browser_then_english() {
        assert_eq!(Lang::pick(Some("fr"), Some("zh-CN")), Lang::ZhCn);
        assert_eq!(Lang::pick(Some(""), None), Lang::En);
        assert_eq!(Lang::pick(None, Some("de-DE")), Lang::En);
        assert_eq!(Lang::pick(None, None), Lang::En);
    }

    #[test]
    fn chinese_variants_map_to_simplified_or_traditional() {
        for tag in ["zh-TW", "zh-HK", "zh-Hant", "zh-Hant-CN", "zh_hk", "ZH-MO"] {
            assert_eq!(Lang::pick(Some(tag), None), Lang::ZhTw, "{tag}");
        }
        for tag in ["zh", "zh-CN", "zh-Hans", "zh-SG", "zh-Hans-HK"] {
            assert_eq!(Lang::pick(Some(tag), None), Lang::ZhCn, "{tag}");
        }
    }

    #[test]
    fn every_language_has_every_text() {
        for lang in [Lang::En, Lang::ZhCn, Lang::ZhTw] {
            let s = lang.strings();
            for text in [
                s.title,
                s.subtitle_online,
                s.subtitle_offline,
                s.back_at.0,
                s.back_at.1,
                s.closed_now,
                s.today,
                s.tomorrow,
                s.greeting,
                s.placeholder,
                s.send,
                s.typing,
                s.cut,
                s.crashed,
            ] {
                assert!(!text.is_empty(), "{lang:?}");
            }
            assert!(!s.joined.1.is_empty(), "{lang:?}");
        }
    }

    #[test]
    fn system_lines_name_the_agent_who_answers_now() {
        use kefu_protocol::frame::AgentRef;
        use kefu_protocol::ids::AgentId;

        let ann = AgentRef { id: AgentId(1), name: "Ann".into() };
        let bob = AgentRef { id: AgentId(2), name: "Bob".into() };
        let en = Lang::En.strings();
        assert_eq!(en.system_line(&ConversationEvent::Assigned { to: ann.clone(), by: None }), "Ann joined the chat");
        assert_eq!(
            en.system_line(&ConversationEvent::Transferred { from: ann.clone(), to: bob }),
            "Bob joined the chat"
        );
        assert_eq!(en.system_line(&ConversationEvent::Closed { by: ann }), "The conversation was closed");
        assert_eq!(Lang::ZhTw.strings().system_line(&ConversationEvent::Reopened { by: None }), "對話已重新開啟");
        let rated = ConversationEvent::Rated { score: 4, comment: "private to the team".into() };
        assert_eq!(en.system_line(&rated), "You rated the chat 4 of 5");
    }
}
