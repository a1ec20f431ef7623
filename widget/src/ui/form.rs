//! The forms around the first message: the site's pre-chat form, shown
//! in place of the composer until filled in, and the offline ask, an
//! optional email (and name) next to the composer while nobody can
//! answer. Both send what the visitor gives as attributes (see
//! [`crate::forms`]) and are not asked again once answered, across
//! reloads.

use leptos::either::Either;
use leptos::ev;
use leptos::html::Input;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::KeyboardEvent;

use super::Ctx;
use crate::forms::{self, Field, FieldKind, Look, Problem, When};
use crate::model::Model;
use kefu_protocol::frame::Attribute;

/// The forms' state, reached through context like [`Ctx`].
#[derive(Debug, Clone, Copy)]
pub struct Forms {
    pub look: StoredValue<Look>,
    prechat_answered: RwSignal<bool>,
    contact_answered: RwSignal<bool>,
    email: RwSignal<String>,
    name: RwSignal<String>,
    email_problem: RwSignal<Option<Problem>>,
    email_input: NodeRef<Input>,
}

impl Forms {
    /// The forms of `look`, answered already as the stored state says.
    pub fn provide(ctx: Ctx, look: Look) -> Forms {
        let mut answered = (false, false);
        ctx.connection(|c| answered = (c.answered("prechat"), c.answered("contact")));
        let forms = Forms {
            look: StoredValue::new(look),
            prechat_answered: RwSignal::new(answered.0),
            contact_answered: RwSignal::new(answered.1),
            email: RwSignal::new(String::new()),
            name: RwSignal::new(String::new()),
            email_problem: RwSignal::new(None),
            email_input: NodeRef::new(),
        };
        provide_context(forms);
        forms
    }

    pub fn get() -> Forms {
        use_context::<Forms>().expect("App provides the Forms")
    }

    /// Whether the pre-chat form stands in for the composer now: the site
    /// shows it (always, or while nobody can answer), the page did not say
    /// who the visitor is, and the visitor neither filled it in nor wrote.
    pub fn prechat_due(self, ctx: Ctx) -> bool {
        let (when, has_form) = self.look.with_value(|l| (l.when, !l.fields.is_empty() || l.consent.is_some()));
        let shown = match when {
            When::Always => true,
            When::OutOfHours => ctx.model.with(|m| m.nobody_available()),
            When::Never => false,
        };
        shown
            && has_form
            && !self.prechat_answered.get()
            && ctx.model.with(|m| !m.is_identified() && !m.visitor_wrote())
    }

    /// Whether the offline ask shows next to the composer (not while the
    /// survey asks for a rating).
    pub fn contact_due(self, ctx: Ctx) -> bool {
        let (survey, again) = self.look.with_value(|l| (l.survey, l.survey_again));
        !self.contact_answered.get()
            && ctx.model.with(|m| m.nobody_available() && !m.knows_email() && m.survey_due(survey, again).is_none())
    }

    /// Whether the visitor gave an email in a form here (the offline ask
    /// or the transcript's), on this page or an earlier one.
    pub fn gave_email(self) -> bool {
        self.contact_answered.get()
    }

    /// The visitor gave `email` outside the offline ask (for its
    /// transcript): kept like the ask's answer, which it then skips.
    pub fn give_email(self, ctx: Ctx, email: String) {
        ctx.connection(|c| c.answer_form("contact", vec![Attribute { key: "email".into(), value: email }]));
        self.contact_answered.set(true);
    }

    /// Called as the composer sends: the offline ask's email goes along
    /// with the message. `false` keeps the message in the composer: the
    /// email needs fixing (or, for sites that take offline messages only
    /// with one, giving).
    pub fn before_send(self, ctx: Ctx) -> bool {
        if !self.contact_due(ctx) {
            return true;
        }
        let email = self.email.get_untracked().trim().to_owned();
        let problem = if email.is_empty() {
            let form_only = self.look.with_value(|l| l.offline_form_only);
            (form_only && ctx.model.with_untracked(Model::is_out_of_hours)).then_some(Problem::Required)
        } else {
            (!forms::is_email(&email)).then_some(Problem::Email)
        };
        self.email_problem.set(problem);
        if problem.is_some() {
            if let Some(input) = self.email_input.get_untracked() {
                let _ = input.focus();
            }
            return false;
        }
        if email.is_empty() {
            return true; // optional: asked again with the next message
        }
        let mut set = vec![Attribute { key: "email".into(), value: email }];
        let name = self.name.get_untracked().trim().to_owned();
        if !name.is_empty() {
            set.push(Attribute { key: "name".into(), value: name });
        }
        ctx.connection(|c| c.answer_form("contact", set));
        self.contact_answered.set(true);
        true
    }
}

/// The message under a field that was refused.
fn problem_text(ctx: Ctx, problem: Problem) -> &'static str {
    let text = &ctx.text.forms;
    match problem {
        Problem::Required => text.required,
        Problem::Email => text.bad_email,
        Problem::Number => text.bad_number,
    }
}

/// The offline ask: one line of what will happen, an email and a name.
#[component]
pub fn ContactAsk() -> impl IntoView {
    let ctx = Ctx::get();
    let forms = Forms::get();
    let text = &ctx.text.forms;
    let line = if forms.look.with_value(|l| l.email_follow_up) { text.ask_by_email } else { text.ask_in_chat };
    let invalid = move || forms.email_problem.get().is_some();
    view! {
        <div class="kefu-contact" role="group" aria-labelledby="kefu-contact-line">
            <p class="kefu-contact-line" id="kefu-contact-line">{line}</p>
            <div class="kefu-contact-fields">
                <input class="kefu-field-input" type="email" name="email" autocomplete="email" node_ref=forms.email_input
                    placeholder=text.email aria-label=text.email
                    aria-invalid=move || invalid().to_string()
                    aria-describedby=move || invalid().then_some("kefu-contact-error")
                    on:input=move |e| {
                        forms.email.set(event_target_value(&e));
                        forms.email_problem.set(None);
                    } />
                <input class="kefu-field-input" type="text" name="name" autocomplete="name"
                    placeholder=text.name aria-label=text.name
                    on:input=move |e| forms.name.set(event_target_value(&e)) />
            </div>
            {move || forms.email_problem.get().map(|problem| view! {
                <p class="kefu-field-error" id="kefu-contact-error" role="alert">{problem_text(ctx, problem)}</p>
            })}
        </div>
    }
}

/// The pre-chat form, in place of the composer. The consent box is one
/// more field: a required checkbox labelled with the privacy text.
#[component]
pub fn PrechatForm() -> impl IntoView {
    let ctx = Ctx::get();
    let forms = Forms::get();
    let text = &ctx.text.forms;
    let mut fields = forms.look.with_value(|l| l.fields.clone());
    if let Some(privacy) = forms.look.with_value(|l| l.consent.clone()) {
        fields.push(Field { key: "consent".into(), label: privacy, kind: FieldKind::Checkbox, required: true });
    }
    let values: Vec<RwSignal<String>> = fields.iter().map(|_| RwSignal::new(String::new())).collect();
    let problems: Vec<RwSignal<Option<Problem>>> = fields.iter().map(|_| RwSignal::new(None)).collect();
    let form = StoredValue::new((fields.clone(), values.clone(), problems.clone()));

    let submit = move || {
        let (set, first_error) = form.with_value(|(fields, values, problems)| {
            let mut first_error = None;
            for (i, field) in fields.iter().enumerate() {
                let problem = forms::check(field, &values[i].get_untracked());
                problems[i].set(problem);
                if problem.is_some() && first_error.is_none() {
                    first_error = Some(i);
                }
            }
            let values: Vec<String> = values.iter().map(|v| v.get_untracked()).collect();
            (forms::attributes(fields, &values, false), first_error)
        });
        if let Some(i) = first_error {
            focus(&field_id(i));
            return;
        }
        let gave_email = set.iter().any(|a| a.key == "email");
        ctx.connection(|c| c.answer_form("prechat", set));
        if gave_email {
            ctx.connection(|c| c.answer_form("contact", Vec::new()));
            forms.contact_answered.set(true);
        }
        forms.prechat_answered.set(true);
        ctx.focus_composer();
    };
    let on_keydown = move |event: KeyboardEvent| {
        let on_button = event
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok())
            .is_some_and(|t| t.tag_name() == "BUTTON");
        if event.key() == "Enter" && !event.is_composing() && event.key_code() != 229 && !on_button {
            event.prevent_default();
            submit();
        }
    };
    let rows = fields
        .into_iter()
        .enumerate()
        .map(|(i, field)| view! { <FieldRow index=i field=field value=values[i] problem=problems[i] /> })
        .collect_view();
    view! {
        <form class="kefu-form kefu-prechat" novalidate aria-labelledby="kefu-prechat-title" on:keydown=on_keydown
            on:submit=move |event: ev::SubmitEvent| {
                event.prevent_default();
                submit();
            }>
            <h2 class="kefu-form-title" id="kefu-prechat-title">{text.prechat_title}</h2>
            {rows}
            <button type="submit" class="kefu-form-submit">{text.start}</button>
        </form>
    }
}

/// One field with its label and, once refused, the reason. One shape
/// for every kind (a select, or an input of some type), which keeps the
/// widget small.
#[component]
fn FieldRow(index: usize, field: Field, value: RwSignal<String>, problem: RwSignal<Option<Problem>>) -> impl IntoView {
    let ctx = Ctx::get();
    let id = field_id(index);
    let error_id = format!("{id}-error");
    let invalid = move || problem.get().is_some().to_string();
    let described = {
        let error_id = error_id.clone();
        move || problem.get().map(|_| error_id.clone())
    };
    let required = field.required;
    let checkbox = field.kind == FieldKind::Checkbox;
    // Checkboxes and selects fire `input` too.
    let on_input = move |e: ev::Event| {
        let taken = match checkbox {
            true if event_target_checked(&e) => "yes".into(),
            true => String::new(),
            false => event_target_value(&e),
        };
        value.set(taken);
        problem.set(None);
    };
    let (kind, autocomplete, inputmode) = match field.kind {
        FieldKind::Name => ("text", "name", "text"),
        FieldKind::Email => ("email", "email", "email"),
        FieldKind::Phone => ("tel", "tel", "tel"),
        FieldKind::Number => ("text", "off", "decimal"),
        FieldKind::Checkbox => ("checkbox", "off", "none"),
        FieldKind::Text | FieldKind::Select(_) => ("text", "off", "text"),
    };
    let control = match field.kind.clone() {
        FieldKind::Select(options) => Either::Left(view! {
            <select class="kefu-field-input" id=id.clone() aria-required=required.to_string()
                aria-invalid=invalid aria-describedby=described on:input=on_input>
                <option value="">{ctx.text.forms.choose}</option>
                {options.into_iter().map(|option| view! { <option>{option}</option> }).collect_view()}
            </select>
        }),
        _ => Either::Right(view! {
            <input class="kefu-field-input" type=kind id=id.clone() autocomplete=autocomplete inputmode=inputmode
                aria-required=required.to_string() aria-invalid=invalid aria-describedby=described on:input=on_input />
        }),
    };
    view! {
        <div class=if checkbox { "kefu-field kefu-field-check" } else { "kefu-field" }>
            {control}
            <label class="kefu-field-label" for=id.clone()>
                {field.label.clone()}
                {required.then(|| view! { <span class="kefu-required" aria-hidden="true">" *"</span> })}
            </label>
            {move || problem.get().map(|p| view! {
                <p class="kefu-field-error" id=error_id.clone()>{problem_text(ctx, p)}</p>
            })}
        </div>
    }
}

fn field_id(index: usize) -> String {
    format!("kefu-field-{index}")
}

/// Moves the focus to the element with `id` once it is on screen.
fn focus(id: &str) {
    let id = id.to_owned();
    request_animation_frame(move || {
        if let Some(element) = document().get_element_by_id(&id)
            && let Ok(element) = element.dyn_into::<web_sys::HtmlElement>()
        {
            let _ = element.focus();
        }
    });
}
