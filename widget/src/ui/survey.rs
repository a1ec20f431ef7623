//! The satisfaction survey after an agent closed the chat: five score
//! buttons, an optional comment, one send. The relay's "rated" line ends
//! it and confirms the score (here and in the visitor's other tabs); the
//! model decides when it is due (`Model::survey_due`).

use leptos::prelude::*;

use super::Ctx;
use super::form::Forms;
use kefu_protocol::ids::Seq;

#[component]
pub fn Survey() -> impl IntoView {
    let ctx = Ctx::get();
    let forms = Forms::get();
    let text = &ctx.text.forms;
    let (enabled, again) = forms.look.with_value(|l| (l.survey, l.survey_again));
    let due = Memo::new(move |_| ctx.model.with(|m| m.survey_due(enabled, again)));
    let score = RwSignal::new(None::<u8>);
    let comment = RwSignal::new(String::new());
    // The close a rating went out for: the button waits for the relay.
    let sent = RwSignal::new(None::<Seq>);
    let submit = move |_| {
        let (Some(close), Some(chosen)) = (due.get_untracked(), score.get_untracked()) else { return };
        sent.set(Some(close));
        ctx.connection(|c| c.rate(chosen, comment.get_untracked().trim().to_owned()));
    };
    let buttons = move || {
        (1..=5u8)
            .map(|n| {
                let label = text.scores[usize::from(n - 1)];
                view! {
                    <button type="button" class="kefu-score" aria-label=label title=label
                        aria-pressed=move || (score.get() == Some(n)).to_string()
                        on:click=move |_| score.set(Some(n))>{n}</button>
                }
            })
            .collect_view()
    };
    view! {
        {move || due.get().is_some().then(|| view! {
            <section class="kefu-survey" aria-labelledby="kefu-survey-title">
                <h2 class="kefu-form-title" id="kefu-survey-title">{text.survey_title}</h2>
                <div class="kefu-scores" role="group" aria-labelledby="kefu-survey-title">{buttons()}</div>
                <textarea class="kefu-field-input kefu-survey-comment" rows="2" aria-label=text.comment
                    placeholder=text.comment on:input=move |e| comment.set(event_target_value(&e))></textarea>
                <button type="button" class="kefu-form-submit"
                    disabled=move || score.get().is_none() || sent.get() == due.get()
                    on:click=submit>{text.submit_rating}</button>
            </section>
        })}
    }
}
