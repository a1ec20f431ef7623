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
    // One tree, shown and hidden by attributes: nothing is built again
    // as the model changes, so the field keeps its focus and the wasm
    // carries no second branch of markup.
    let hidden = move || !(offered && ctx.model.with(|m| m.visitor_wrote()));
    let is = move |wanted: TranscriptAsk| ctx.model.with(|m| *m.transcript() == wanted);
    // No address known here: the field shows before the ask goes out.
    let asking_email = RwSignal::new(false);
    let email = RwSignal::new(String::new());
    let bad_email = RwSignal::new(false);
    let field = move || asking_email.get() || is(TranscriptAsk::NeedsEmail);
    let ask = move |_| {
        if ctx.model.with_untracked(|m| m.knows_email()) || forms.gave_email() {
            ctx.connection(|c| c.mail_transcript());
        } else {
            asking_email.set(true);
        }
    };
    let send = move |_| {
        let address = email.get_untracked().trim().to_owned();
        bad_email.set(!is_email(&address));
        if is_email(&address) {
            asking_email.set(false);
            forms.give_email(ctx, address);
            ctx.connection(|c| c.mail_transcript());
        }
    };
    let status = move || {
        ctx.model.with(|m| match m.transcript() {
            TranscriptAsk::Mailed(to) => [text.chat_sent_to.0, to, text.chat_sent_to.1].concat(),
            TranscriptAsk::TooSoon => text.chat_too_soon.to_owned(),
            TranscriptAsk::Failed => text.chat_not_sent.to_owned(),
            TranscriptAsk::Idle | TranscriptAsk::Asking | TranscriptAsk::NeedsEmail => String::new(),
        })
    };
    view! {
        <div class="kefu-transcript" hidden=hidden>
            <p class="kefu-transcript-status" role="status">{status}</p>
            <div class="kefu-contact-fields" hidden=move || !field()>
                <input class="kefu-field-input kefu-transcript-email" type="email" autocomplete="email"
                    placeholder=text.chat_email aria-label=text.chat_email
                    aria-invalid=move || bad_email.get().to_string()
                    on:input=move |e| email.set(event_target_value(&e))/>
                <button type="button" class="kefu-transcript-send" on:click=send>
                    {text.send_chat}
                </button>
            </div>
            <p class="kefu-field-error" hidden=move || !(field() && bad_email.get())>{text.bad_email}</p>
            <button type="button" class="kefu-transcript-button" hidden=field
                disabled=move || is(TranscriptAsk::Asking) on:click=ask>{text.email_chat}</button>
        </div>
    }
}
