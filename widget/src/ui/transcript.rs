//! "Email me this chat": a button under the conversation, shown when the
//! relay sends mail and the visitor has written. The relay mails the whole
//! conversation to the address it knows (a signed-in user's, or one given
//! in a form); with none, the visitor is asked for one here. What the
//! relay answered (sent to, too soon, not sent) is read out as a status.

use leptos::prelude::*;

use super::Ctx;
use super::form::Forms;
use crate::forms::is_email;
use crate::model::TranscriptAsk;

#[component]
pub fn Transcript() -> impl IntoView {
    let ctx = Ctx::get();
    let forms = Forms::get();
    let text = &ctx.text.forms;
    let offered = forms.look.with_value(|l| l.email_follow_up);
    // Memos of bools: the model changes with every message, and the
    // parts below must not be built again (and the field lose its focus)
    // unless these change.
    let shown = Memo::new(move |_| offered && ctx.model.with(|m| m.visitor_wrote()));
    let state = move || ctx.model.with(|m| m.transcript().clone());
    // No address known here: the field shows before the ask goes out.
    let asking_email = RwSignal::new(false);
    let email = RwSignal::new(String::new());
    let bad_email = RwSignal::new(false);
    let ask = move |_| {
        if ctx.model.with_untracked(|m| m.knows_email()) || forms.gave_email() {
            ctx.connection(|c| c.mail_transcript());
        } else {
            asking_email.set(true);
        }
    };
    let send = move |_| {
        let address = email.get_untracked().trim().to_owned();
        if !is_email(&address) {
            bad_email.set(true);
            return;
        }
        bad_email.set(false);
        asking_email.set(false);
        forms.give_email(ctx, address);
        ctx.connection(|c| c.mail_transcript());
    };
    let status = move || match state() {
        TranscriptAsk::Mailed(to) => Some([text.chat_sent_to.0, &to, text.chat_sent_to.1].concat()),
        TranscriptAsk::TooSoon => Some(text.chat_too_soon.to_owned()),
        TranscriptAsk::Failed => Some(text.chat_not_sent.to_owned()),
        TranscriptAsk::Idle | TranscriptAsk::Asking | TranscriptAsk::NeedsEmail => None,
    };
    let field =
        Memo::new(move |_| asking_email.get() || ctx.model.with(|m| *m.transcript() == TranscriptAsk::NeedsEmail));
    view! {
        {move || shown.get().then(|| view! {
            <div class="kefu-transcript">
                <p class="kefu-transcript-status" role="status">{status}</p>
                {move || match field.get() {
                    true => view! {
                        <div class="kefu-contact-fields">
                            <input class="kefu-field-input kefu-transcript-email" type="email" autocomplete="email"
                                placeholder=text.chat_email aria-label=text.chat_email
                                aria-invalid=move || bad_email.get().to_string()
                                prop:value=move || email.get_untracked()
                                on:input=move |e| email.set(event_target_value(&e))/>
                            <button type="button" class="kefu-form-submit kefu-transcript-send" on:click=send>
                                {text.send_chat}
                            </button>
                        </div>
                        {move || bad_email.get().then(|| view! { <p class="kefu-field-error">{text.bad_email}</p> })}
                    }
                    .into_any(),
                    false => view! {
                        <button type="button" class="kefu-transcript-button"
                            disabled=move || state() == TranscriptAsk::Asking
                            on:click=ask>{text.email_chat}</button>
                    }
                    .into_any(),
                }}
            </div>
        })}
    }
}
