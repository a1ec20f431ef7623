//! The admin's editor of the widget's forms, on the settings page: the
//! pre-chat form (when it shows, its fields, the privacy text of the
//! consent box) and the satisfaction survey's switches. The relay checks
//! what is saved and says what is wrong.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use super::admin::failed;
use super::spawn_while_shown;
use crate::api::{self, FormField, SiteForms};

/// The kinds an admin can pick, with what the editor calls them.
const KINDS: [(&str, &str); 7] = [
    ("name", "Name"),
    ("email", "Email"),
    ("phone", "Phone"),
    ("text", "Text"),
    ("number", "Number"),
    ("select", "Choice (select)"),
    ("checkbox", "Checkbox"),
];

/// One field as edited: options as lines.
#[derive(Debug, Clone, Copy)]
struct FieldEdit {
    id: usize,
    key: RwSignal<String>,
    label: RwSignal<String>,
    kind: RwSignal<String>,
    options: RwSignal<String>,
    required: RwSignal<bool>,
}

impl FieldEdit {
    fn new(id: usize, field: &FormField) -> FieldEdit {
        FieldEdit {
            id,
            key: RwSignal::new(field.key.clone()),
            label: RwSignal::new(field.label.clone()),
            kind: RwSignal::new(field.kind.clone()),
            options: RwSignal::new(field.options.join("\n")),
            required: RwSignal::new(field.required),
        }
    }

    fn field(&self) -> FormField {
        let kind = self.kind.get_untracked();
        let options = match kind.as_str() {
            "select" => self
                .options
                .get_untracked()
                .lines()
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(ToOwned::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        FormField {
            key: self.key.get_untracked().trim().to_owned(),
            label: self.label.get_untracked(),
            kind,
            options,
            required: self.required.get_untracked(),
        }
    }
}

#[component]
pub fn FormsEditor(notice: RwSignal<Option<Result<String, String>>>) -> impl IntoView {
    let loaded = RwSignal::new(None::<SiteForms>);
    spawn_while_shown(async move {
        match api::forms().await {
            Ok(forms) => loaded.set(Some(forms)),
            Err(error) => failed(notice, &error),
        }
    });
    view! { {move || loaded.get().map(|forms| view! { <Editor forms notice /> })} }
}

#[component]
fn Editor(forms: SiteForms, notice: RwSignal<Option<Result<String, String>>>) -> impl IntoView {
    let when =
        RwSignal::new(if forms.prechat.when.is_empty() { "never".to_owned() } else { forms.prechat.when.clone() });
    let next_id = StoredValue::new(forms.prechat.fields.len());
    let fields =
        RwSignal::new(forms.prechat.fields.iter().enumerate().map(|(i, f)| FieldEdit::new(i, f)).collect::<Vec<_>>());
    let consent = RwSignal::new(forms.prechat.consent.clone().unwrap_or_default());
    let survey = RwSignal::new(forms.survey.enabled);
    let again = RwSignal::new(forms.survey.ask_again);
    let saving = RwSignal::new(false);
    let add = move |_| {
        let id = next_id.get_value();
        next_id.set_value(id + 1);
        let blank = FormField { kind: "text".into(), ..FormField::default() };
        fields.update(|list| list.push(FieldEdit::new(id, &blank)));
    };
    let save = move |event: SubmitEvent| {
        event.prevent_default();
        let mut forms = SiteForms::default();
        forms.prechat.when = when.get_untracked();
        forms.prechat.fields = fields.with_untracked(|list| list.iter().map(FieldEdit::field).collect());
        let privacy = consent.get_untracked();
        forms.prechat.consent = (!privacy.trim().is_empty()).then_some(privacy);
        forms.survey.enabled = survey.get_untracked();
        forms.survey.ask_again = again.get_untracked();
        saving.set(true);
        spawn_while_shown(async move {
            match api::save_forms(&forms).await {
                Ok(_) => notice.set(Some(Ok("Forms saved. Widgets pick them up on their next load.".to_owned()))),
                Err(error) => failed(notice, &error),
            }
            saving.set(false);
        });
    };
    view! {
        <form class="panel form-grid chat-forms" on:submit=save aria-label="Chat forms">
            <h2>"Pre-chat form"</h2>
            <label>"Show it"
                <select name="when" on:change=move |e| when.set(event_target_value(&e))>
                    <option value="never" selected=move || when.get() == "never">"Never"</option>
                    <option value="always" selected=move || when.get() == "always">"Before the first message"</option>
                    <option value="out_of_hours" selected=move || when.get() == "out_of_hours">"Only when nobody can answer"</option>
                </select>
            </label>
            <div class="form-fields">
                <For each=move || fields.get() key=|f| f.id let:field>
                    <FieldEditor field on_remove=move || fields.update(|list| list.retain(|f| f.id != field.id)) />
                </For>
                <button type="button" class="button ghost small" on:click=add>"Add a field"</button>
            </div>
            <label>"Privacy text"
                <span class="hint">"When set, the form ends with a checkbox the visitor must tick to agree to it."</span>
                <textarea name="consent" rows="2" prop:value=move || consent.get() on:input=move |e| consent.set(event_target_value(&e))></textarea>
            </label>
            <h2>"Satisfaction survey"</h2>
            <label class="check">
                <input type="checkbox" name="survey" prop:checked=move || survey.get() on:change=move |e| survey.set(event_target_checked(&e)) />
                <span>"Ask for a rating when a chat is closed"<span class="hint">"1 to 5 with an optional comment; agents see it in the conversation."</span></span>
            </label>
            <label class="check">
                <input type="checkbox" name="ask_again" prop:checked=move || again.get() on:change=move |e| again.set(event_target_checked(&e)) />
                <span>"Ask again after a reopened chat is closed"</span>
            </label>
            <div class="form-actions">
                <button type="submit" class="button primary" disabled=move || saving.get()>
                    {move || if saving.get() { "Saving…" } else { "Save forms" }}
                </button>
            </div>
        </form>
    }
}

#[component]
fn FieldEditor(field: FieldEdit, on_remove: impl Fn() + 'static) -> impl IntoView {
    let builtin = move || matches!(field.kind.get().as_str(), "name" | "email" | "phone");
    let n = field.id;
    view! {
        <fieldset class="form-field-edit">
            <legend class="muted">{format!("Field {}", n + 1)}</legend>
            <label>"Kind"
                <select name=format!("kind-{n}") on:change=move |e| field.kind.set(event_target_value(&e))>
                    {KINDS.iter().map(|&(value, name)| view! {
                        <option value=value selected=move || field.kind.get() == value>{name}</option>
                    }).collect_view()}
                </select>
            </label>
            <label>"Label"
                <input type="text" name=format!("label-{n}") prop:value=move || field.label.get() on:input=move |e| field.label.set(event_target_value(&e)) />
            </label>
            <label>"Key"<span class="hint">"Stored as the attribute form.KEY"</span>
                <input type="text" class="mono" name=format!("key-{n}") disabled=builtin prop:value=move || field.key.get()
                    on:input=move |e| field.key.set(event_target_value(&e)) />
            </label>
            {move || (field.kind.get() == "select").then(|| view! {
                <label>"Options"<span class="hint">"One per line"</span>
                    <textarea name=format!("options-{n}") rows="3" prop:value=move || field.options.get()
                        on:input=move |e| field.options.set(event_target_value(&e))></textarea>
                </label>
            })}
            <label class="check">
                <input type="checkbox" name=format!("required-{n}") prop:checked=move || field.required.get()
                    on:change=move |e| field.required.set(event_target_checked(&e)) />
                <span>"Required"</span>
            </label>
            <button type="button" class="button ghost small" on:click=move |_| on_remove()>"Remove"</button>
        </fieldset>
    }
}
