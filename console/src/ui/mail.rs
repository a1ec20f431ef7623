//! The site's mail, on the Settings page: where agent notifications go,
//! and the outbox of recent mails with how each went. A relay without
//! SMTP says so here instead of pretending to send.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use super::admin::failed;
use super::{clock, spawn_while_shown};
use crate::api::{self, MailSettings, Outbox, OutboxMail};

/// The languages a site's mail can be written in, as the relay names them.
const LANGUAGES: [(&str, &str); 3] = [("en", "English"), ("zh-CN", "简体中文"), ("zh-TW", "繁體中文")];

/// The mail settings form and the outbox below it.
#[component]
pub fn MailPanels() -> impl IntoView {
    let notice = RwSignal::new(None);
    let settings = RwSignal::new(None::<MailSettings>);
    let outbox = RwSignal::new(None::<Outbox>);
    let reload = move || {
        spawn_while_shown(async move {
            match api::mail_settings().await {
                Ok(found) => settings.set(Some(found)),
                Err(error) => failed(notice, &error),
            }
            match api::outbox().await {
                Ok(found) => outbox.set(Some(found)),
                Err(error) => failed(notice, &error),
            }
        });
    };
    reload();
    view! {
        <section class="mail" aria-label="Email">
            {move || notice.get().map(|n| match n {
                Ok(text) => view! { <p class="success" role="status">{text}</p> }.into_any(),
                Err(text) => view! { <p class="error" role="alert">{text}</p> }.into_any(),
            })}
            {move || settings.get().map(|found| view! { <MailForm settings=found notice /> })}
            {move || outbox.get().map(|found| view! { <OutboxList outbox=found reload=Callback::new(move |()| reload()) /> })}
        </section>
    }
}

#[component]
fn MailForm(settings: MailSettings, notice: RwSignal<Option<Result<String, String>>>) -> impl IntoView {
    let notify_to = RwSignal::new(settings.notify_to.clone());
    let reply_to = RwSignal::new(settings.reply_to.clone());
    let missed = RwSignal::new(settings.missed_after_minutes.to_string());
    let language = RwSignal::new(settings.language.clone());
    let saving = RwSignal::new(false);
    let save = move |event: SubmitEvent| {
        event.prevent_default();
        let Ok(missed_after_minutes) = missed.get_untracked().trim().parse::<u32>() else {
            notice.set(Some(Err("Missed-chat minutes must be a whole number (0 for never).".to_owned())));
            return;
        };
        let change = MailSettings {
            smtp_enabled: settings.smtp_enabled,
            notify_to: notify_to.get_untracked().trim().to_owned(),
            missed_after_minutes,
            reply_to: reply_to.get_untracked().trim().to_owned(),
            language: language.get_untracked(),
        };
        saving.set(true);
        spawn_while_shown(async move {
            match api::update_mail_settings(&change).await {
                Ok(_) => notice.set(Some(Ok("Email settings saved.".to_owned()))),
                Err(error) => failed(notice, &error),
            }
            saving.set(false);
        });
    };
    let current = settings.language.clone();
    view! {
        <form class="panel form-grid" on:submit=save>
            <h2>"Email"</h2>
            {(!settings.smtp_enabled).then(|| view! {
                <p class="mail-off" role="status">
                    <strong>"SMTP not configured on this relay."</strong>
                    " Nothing is mailed until it is started with --smtp-url and --mail-from; these settings wait until then."
                </p>
            })}
            <label>"Notify"<span class="hint">"Where new and missed conversations are mailed. Empty: every active agent."</span>
                <input type="text" name="notify_to" placeholder="team@shop.example" prop:value=move || notify_to.get() on:input=move |e| notify_to.set(event_target_value(&e)) />
            </label>
            <label>"Reply-To"<span class="hint">"Where replies to these mails go. Empty: the relay's sender."</span>
                <input type="text" name="reply_to" placeholder="help@shop.example" prop:value=move || reply_to.get() on:input=move |e| reply_to.set(event_target_value(&e)) />
            </label>
            <label>"Missed after (minutes)"<span class="hint">"Mail when a conversation waits this long for an agent's reply. 0: never."</span>
                <input type="number" min="0" name="missed_after_minutes" prop:value=move || missed.get() on:input=move |e| missed.set(event_target_value(&e)) />
            </label>
            <label>"Language"<span class="hint">"The language of these mails."</span>
                <select name="language" on:change=move |e| language.set(event_target_value(&e))>
                    {LANGUAGES.iter().map(|(tag, name)| view! {
                        <option value=*tag selected=current == *tag>{*name}</option>
                    }).collect_view()}
                </select>
            </label>
            <div class="form-actions">
                <button type="submit" class="button primary" disabled=move || saving.get()>
                    {move || if saving.get() { "Saving…" } else { "Save email settings" }}
                </button>
            </div>
        </form>
    }
}

#[component]
fn OutboxList(outbox: Outbox, reload: Callback<()>) -> impl IntoView {
    let empty = outbox.mails.is_empty();
    view! {
        <div class="panel outbox">
            <div class="outbox-head">
                <h2>"Outbox"</h2>
                <button type="button" class="button ghost small" on:click=move |_| reload.run(())>"Refresh"</button>
            </div>
            {empty.then(|| view! { <p class="muted">"No mail yet."</p> })}
            {(!empty).then(|| view! {
                <table class="table">
                    <thead><tr><th>"Time"</th><th>"Mail"</th><th>"To"</th><th>"Status"</th></tr></thead>
                    <tbody>
                        <For each=move || outbox.mails.clone() key=|mail| (mail.id, mail.status.clone(), mail.attempts) children=|mail| view! { <OutboxRow mail /> } />
                    </tbody>
                </table>
            })}
        </div>
    }
}

#[component]
fn OutboxRow(mail: OutboxMail) -> impl IntoView {
    let what = if mail.subject.is_empty() { kind_label(&mail.kind).to_owned() } else { mail.subject.clone() };
    let attempts = (mail.attempts > 1).then(|| format!(" · {} attempts", mail.attempts));
    view! {
        <tr>
            <td class="muted">{clock(mail.updated_at)}</td>
            <td><span class="strong">{what}</span></td>
            <td class="mono">{if mail.to.is_empty() { "—".to_owned() } else { mail.to.clone() }}</td>
            <td>
                <span class={format!("tag mail-{}", mail.status)}>{mail.status.clone()}</span>
                <span class="hint">{attempts}</span>
                {mail.last_error.clone().filter(|_| mail.status != "sent").map(|error| view! { <div class="hint mail-error">{error}</div> })}
            </td>
        </tr>
    }
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "new_conversation" => "New conversation",
        "missed" => "Missed conversation",
        _ => "Mail",
    }
}
