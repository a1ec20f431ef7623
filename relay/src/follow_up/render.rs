//! The follow-up mails as text and HTML, in the visitor's language: the
//! replies a visitor missed, a conversation's transcript, and the survey
//! of a closed chat. Pure: the
//! caller reads the store and hands over what to say.

use kefu_protocol::ids::Timestamp;

/// The languages mails are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    ZhCn,
    ZhTw,
}

impl Lang {
    /// The language for a visitor's `Accept-Language` (or what its widget
    /// reported): Chinese in Taiwan, Hong Kong and Macau scripts is
    /// traditional, other Chinese simplified, everything else English.
    pub fn pick(language: Option<&str>) -> Lang {
        let Some(tag) = language.map(|tag| tag.trim().to_ascii_lowercase()) else { return Lang::En };
        if !(tag == "zh" || tag.starts_with("zh-") || tag.starts_with("zh_")) {
            return Lang::En;
        }
        let traditional = ["hant", "tw", "hk", "mo"].iter().any(|part| tag.split(['-', '_']).any(|p| p == *part));
        if traditional { Lang::ZhTw } else { Lang::ZhCn }
    }

    /// The BCP 47 tag, for `Content-Language` and `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
            Lang::ZhTw => "zh-TW",
        }
    }

    fn texts(self) -> &'static Texts {
        match self {
            Lang::En => &EN,
            Lang::ZhCn => &ZH_CN,
            Lang::ZhTw => &ZH_TW,
        }
    }
}

struct Texts {
    /// `{site}` is replaced by the site's name.
    reply_subject: &'static str,
    reply_intro: &'static str,
    transcript_subject: &'static str,
    transcript_intro: &'static str,
    continue_chat: &'static str,
    you: &'static str,
    team: &'static str,
    why: &'static str,
    unsubscribe: &'static str,
    survey_subject: &'static str,
    survey_intro: &'static str,
    /// The words of the scores 1 to 5.
    scores: [&'static str; 5],
}

const EN: Texts = Texts {
    reply_subject: "New reply from {site}",
    reply_intro: "You have a reply to your chat with {site}:",
    transcript_subject: "Your chat with {site}",
    transcript_intro: "Here is your chat with {site}:",
    continue_chat: "Continue the chat",
    you: "You",
    team: "Support",
    why: "You get this mail because you chatted with {site}.",
    unsubscribe: "Unsubscribe",
    survey_subject: "How was your chat with {site}?",
    survey_intro: "Your chat with {site} is closed. How was it? Pick a score: one click, and you can add a comment.",
    scores: ["Very bad", "Bad", "OK", "Good", "Very good"],
};

const ZH_CN: Texts = Texts {
    reply_subject: "{site} 回复了您的咨询",
    reply_intro: "{site} 回复了您的咨询：",
    transcript_subject: "您与 {site} 的聊天记录",
    transcript_intro: "以下是您与 {site} 的聊天记录：",
    continue_chat: "继续聊天",
    you: "您",
    team: "客服",
    why: "您收到这封邮件，是因为您曾与 {site} 聊天。",
    unsubscribe: "退订",
    survey_subject: "您对与 {site} 的聊天满意吗？",
    survey_intro: "您与 {site} 的聊天已结束。请为这次服务打分：点击一下即可，还可以留下意见。",
    scores: ["非常不满意", "不满意", "一般", "满意", "非常满意"],
};

const ZH_TW: Texts = Texts {
    reply_subject: "{site} 回覆了您的諮詢",
    reply_intro: "{site} 回覆了您的諮詢：",
    transcript_subject: "您與 {site} 的聊天記錄",
    transcript_intro: "以下是您與 {site} 的聊天記錄：",
    continue_chat: "繼續聊天",
    you: "您",
    team: "客服",
    why: "您收到這封郵件，是因為您曾與 {site} 聊天。",
    unsubscribe: "取消訂閱",
    survey_subject: "您對與 {site} 的聊天滿意嗎？",
    survey_intro: "您與 {site} 的聊天已結束。請為這次服務評分：點擊一下即可，還可以留下意見。",
    scores: ["非常不滿意", "不滿意", "普通", "滿意", "非常滿意"],
};

/// Who wrote a line of a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Speaker {
    Visitor,
    /// An agent, by the name visitors see; `None` shows the team's word.
    Agent(Option<String>),
}

/// One message in a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub speaker: Speaker,
    pub text: String,
    pub at: Timestamp,
}

/// What every follow-up mail needs besides its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context<'a> {
    pub lang: Lang,
    pub site_name: &'a str,
    /// `/c/SITE?resume=TOKEN`, absolute.
    pub resume_url: &'a str,
    /// `/api/unsubscribe?...`, absolute.
    pub unsubscribe_url: &'a str,
}

/// A mail's subject and its two bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The mail of replies a visitor has not seen.
pub fn replies(context: &Context<'_>, lines: &[Line]) -> Rendered {
    let texts = context.lang.texts();
    render(context, texts.reply_subject, texts.reply_intro, lines)
}

/// The mail of a whole conversation.
pub fn transcript(context: &Context<'_>, lines: &[Line]) -> Rendered {
    let texts = context.lang.texts();
    render(context, texts.transcript_subject, texts.transcript_intro, lines)
}

/// The survey's question (`{site}` for the site's name) and the words of
/// its scores 1 to 5, in `lang`: the mail's, and the page its links open.
pub fn survey_words(lang: Lang) -> (&'static str, [&'static str; 5]) {
    let texts = lang.texts();
    (texts.survey_subject, texts.scores)
}

/// The survey of a closed chat: `score_urls` rate it 1 to 5.
pub fn survey(context: &Context<'_>, score_urls: &[String]) -> Rendered {
    let texts = context.lang.texts();
    let fill = |template: &str| template.replace("{site}", &site_name(context));
    let scores = || texts.scores.iter().zip(score_urls).zip(1..);
    let mut text = format!("{}\n\n", fill(texts.survey_intro));
    for ((words, url), score) in scores() {
        text.push_str(&format!("{score} {} {words}: {url}\n", stars(score)));
    }
    text.push_str(&footer_text(context));

    let mut html = head_html(context, &fill(texts.survey_subject), &fill(texts.survey_intro));
    html.push_str("<table role=\"presentation\" style=\"border-collapse:collapse;margin:16px 0\"><tr>");
    for ((words, url), score) in scores() {
        html.push_str(&format!(
            "<td style=\"padding:4px\"><a href=\"{}\" style=\"display:block;padding:10px 12px;border:1px solid #d1d5db;\
             border-radius:8px;text-align:center;color:#111827;text-decoration:none\">\
             <div style=\"font-size:20px;color:#f59e0b\">{}</div><div style=\"font-size:13px\">{score} · {}</div></a></td>",
            escape(url),
            stars(score),
            escape(words),
        ));
    }
    html.push_str("</tr></table>");
    html.push_str(&footer_html(context));
    Rendered { subject: fill(texts.survey_subject), text, html }
}

/// `score` filled stars of five.
fn stars(score: usize) -> String {
    "★".repeat(score) + &"☆".repeat(5 - score)
}

/// The site's name as mails show it. Site names are checked for control
/// characters when saved; a line break would still end the header, so
/// none reaches the subject.
fn site_name(context: &Context<'_>) -> String {
    context.site_name.chars().filter(|c| !c.is_control()).collect()
}

/// The end of a mail's text part: the way back to the chat, why the mail
/// came, and how to stop them.
fn footer_text(context: &Context<'_>) -> String {
    let texts = context.lang.texts();
    format!(
        "\n{}: {}\n\n-- \n{}\n{}: {}\n",
        texts.continue_chat,
        context.resume_url,
        texts.why.replace("{site}", &site_name(context)),
        texts.unsubscribe,
        context.unsubscribe_url
    )
}

/// The start of a mail's HTML part, up to its first paragraph.
fn head_html(context: &Context<'_>, title: &str, intro: &str) -> String {
    format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body style=\"font-family:sans-serif;color:#111827\"><p>{}</p>",
        context.lang.tag(),
        escape(title),
        escape(intro),
    )
}

/// The end of a mail's HTML part, as [`footer_text`].
fn footer_html(context: &Context<'_>) -> String {
    let texts = context.lang.texts();
    format!(
        "<p><a href=\"{}\">{}</a></p><hr><p style=\"color:#6b7280;font-size:12px\">{} <a href=\"{}\">{}</a></p></body></html>",
        escape(context.resume_url),
        escape(texts.continue_chat),
        escape(&texts.why.replace("{site}", &site_name(context))),
        escape(context.unsubscribe_url),
        escape(texts.unsubscribe),
    )
}

fn render(context: &Context<'_>, subject: &str, intro: &str, lines: &[Line]) -> Rendered {
    let texts = context.lang.texts();
    let site = site_name(context);
    let fill = |template: &str| template.replace("{site}", &site);
    let speaker = |line: &Line| match &line.speaker {
        Speaker::Visitor => texts.you.to_owned(),
        Speaker::Agent(Some(name)) => name.clone(),
        Speaker::Agent(None) => texts.team.to_owned(),
    };

    let mut text = format!("{}\n\n", fill(intro));
    for line in lines {
        text.push_str(&format!("{} ({}):\n{}\n\n", speaker(line), utc(line.at), line.text));
    }
    // The lines end in a blank line already.
    text.push_str(footer_text(context).trim_start_matches('\n'));

    let mut html = head_html(context, &fill(subject), &fill(intro));
    for line in lines {
        html.push_str(&format!(
            "<div style=\"margin:12px 0\"><div style=\"color:#6b7280;font-size:13px\">{} · {}</div>\
             <div style=\"white-space:pre-wrap\">{}</div></div>",
            escape(&speaker(line)),
            utc(line.at),
            escape(&line.text),
        ));
    }
    html.push_str(&footer_html(context));
    Rendered { subject: fill(subject), text, html }
}

/// Text for HTML element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `2026-12-02 09:00 UTC`. Mails cannot know the reader's time zone, so
/// they say which one they use.
fn utc(at: Timestamp) -> String {
    let secs = at.0 / 1000;
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm),
    // in unsigned arithmetic: the epoch shift keeps every step positive.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", of_day / 3600, of_day % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(lang: Lang) -> Context<'static> {
        Context {
            lang,
            site_name: "Shop <&>",
            resume_url: "https://chat.example/c/demo?resume=r1-7-9-ab",
            unsubscribe_url: "https://chat.example/api/unsubscribe?site=demo&token=u1-7-cd",
        }
    }

    fn lines() -> Vec<Line> {
        vec![
            Line { speaker: Speaker::Visitor, text: "Is it in stock?".into(), at: Timestamp(1_764_630_000_000) },
            Line {
                speaker: Speaker::Agent(Some("Ana".into())),
                text: "Yes <b>two</b> left".into(),
                at: Timestamp(1_764_666_000_000),
            },
        ]
    }

    #[test]
    fn languages_follow_the_visitor() {
        assert_eq!(Lang::pick(None), Lang::En);
        assert_eq!(Lang::pick(Some("de-CH")), Lang::En);
        assert_eq!(Lang::pick(Some("zh-CN")), Lang::ZhCn);
        assert_eq!(Lang::pick(Some("zh")), Lang::ZhCn);
        assert_eq!(Lang::pick(Some("zh-Hans-SG")), Lang::ZhCn);
        assert_eq!(Lang::pick(Some("zh-TW")), Lang::ZhTw);
        assert_eq!(Lang::pick(Some("zh-Hant")), Lang::ZhTw);
        assert_eq!(Lang::pick(Some("ZH-hk")), Lang::ZhTw);
        assert_eq!(Lang::pick(Some("zhx")), Lang::En);
    }

    #[test]
    fn the_reply_mail_carries_every_line_and_both_links_in_both_parts() {
        let mail = replies(&context(Lang::En), &lines());
        assert_eq!(mail.subject, "New reply from Shop <&>");
        for part in [&mail.text, &mail.html] {
            assert!(part.contains("resume=r1-7-9-ab"), "{part}");
            assert!(part.contains("token=u1-7-cd"), "{part}");
            assert!(part.contains("Is it in stock?"), "{part}");
            assert!(part.contains("Ana"), "{part}");
        }
        assert!(mail.text.contains("Yes <b>two</b> left\n"));
        assert!(mail.text.contains("(2025-12-02 09:00 UTC)"), "{}", mail.text);
        assert!(mail.html.contains("Yes &lt;b&gt;two&lt;/b&gt; left"), "message text is escaped");
        assert!(mail.html.contains("Shop &lt;&amp;&gt;"), "the site name is escaped");
        assert!(mail.html.contains("site=demo&amp;token="), "the link is escaped in its attribute");
        assert!(!mail.html.contains("<b>"));
    }

    #[test]
    fn chinese_visitors_get_chinese_mail() {
        let simplified = replies(&context(Lang::ZhCn), &lines());
        assert_eq!(simplified.subject, "Shop <&> 回复了您的咨询");
        assert!(simplified.text.contains("继续聊天") && simplified.html.contains("lang=\"zh-CN\""));
        let traditional = transcript(&context(Lang::ZhTw), &lines());
        assert_eq!(traditional.subject, "您與 Shop <&> 的聊天記錄");
        assert!(traditional.text.contains("您 (2025-12-01 23:00 UTC)"), "{}", traditional.text);
    }

    #[test]
    fn the_survey_mail_links_each_score_in_both_parts() {
        let urls: Vec<String> =
            (1..=5).map(|n| format!("https://chat.example/api/survey?site=demo&token=s1-x&score={n}")).collect();
        let mail = survey(&context(Lang::En), &urls);
        assert_eq!(mail.subject, "How was your chat with Shop <&>?");
        assert!(mail.text.contains("1 ★☆☆☆☆ Very bad: https://chat.example/api/survey?site=demo&token=s1-x&score=1\n"));
        assert!(
            mail.text.contains("5 ★★★★★ Very good: https://chat.example/api/survey?site=demo&token=s1-x&score=5\n")
        );
        for n in 1..=5 {
            assert!(mail.html.contains(&format!("site=demo&amp;token=s1-x&amp;score={n}\"")), "score {n}");
        }
        for part in [&mail.text, &mail.html] {
            assert!(part.contains("resume=r1-7-9-ab") && part.contains("token=u1-7-cd"), "{part}");
        }
        let traditional = survey(&context(Lang::ZhTw), &urls);
        assert_eq!(traditional.subject, "您對與 Shop <&> 的聊天滿意嗎？");
        assert!(traditional.html.contains("5 · 非常滿意"), "{}", traditional.html);
    }

    #[test]
    fn a_line_break_in_the_site_name_never_reaches_the_subject() {
        let context = Context { site_name: "Shop\r\nBcc: all@example.com", ..context(Lang::En) };
        assert_eq!(replies(&context, &[]).subject, "New reply from ShopBcc: all@example.com");
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc(Timestamp(0)), "1970-01-01 00:00 UTC");
        assert_eq!(utc(Timestamp(951_782_400_000)), "2000-02-29 00:00 UTC");
        assert_eq!(utc(Timestamp(1_798_761_599_000)), "2026-12-31 23:59 UTC");
    }
}
