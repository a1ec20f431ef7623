//! The widget's forms of the caller's site: every agent reads them (the
//! visitor panel names form values by their labels), admins change them.

use axum::extract::State;

use super::extract::{Admin, CurrentAgent, Json};
use crate::error::Error;
use crate::state::AppState;
use crate::store::{FieldKind, FormWhen, PrechatForm, SiteForms};

/// Most fields in a pre-chat form: a few questions, not a survey.
const MAX_FIELDS: usize = 12;
/// Longest custom field key (it becomes the attribute `form.KEY`).
const MAX_KEY_CHARS: usize = 32;
/// Longest field label, and longest select option.
const MAX_LABEL_CHARS: usize = 100;
/// Most options of a select field.
const MAX_OPTIONS: usize = 20;
/// Longest privacy text next to the consent checkbox.
const MAX_CONSENT_CHARS: usize = 1000;

/// `GET /api/site/forms`: the site's pre-chat form and survey switches.
pub async fn show(State(state): State<AppState>, current: CurrentAgent) -> Result<axum::Json<SiteForms>, Error> {
    Ok(axum::Json(state.store.site_forms(current.agent.site).await?))
}

/// `PUT /api/site/forms`: an admin replaces them; the answer is what was
/// stored (trimmed, built-in keys filled in).
pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(forms): Json<SiteForms>,
) -> Result<axum::Json<SiteForms>, Error> {
    let forms = validate(forms)?;
    state.store.set_site_forms(admin.site, &forms).await?;
    Ok(axum::Json(forms))
}

/// Checks a form and normalises it: trimmed texts, built-in fields keyed
/// by their kind, an empty privacy text as none. The error names the
/// field at fault.
pub fn validate(mut forms: SiteForms) -> Result<SiteForms, Error> {
    let bad = |why: String| Err(Error::BadRequest(why));
    let form: &mut PrechatForm = &mut forms.prechat;
    if form.fields.len() > MAX_FIELDS {
        return bad(format!("a pre-chat form has at most {MAX_FIELDS} fields"));
    }
    let mut keys: Vec<String> = Vec::new();
    for (number, field) in form.fields.iter_mut().enumerate() {
        let number = number + 1;
        field.label = field.label.trim().to_owned();
        if !is_short_text(&field.label, MAX_LABEL_CHARS) {
            return bad(format!("field {number}: a label needs 1 to {MAX_LABEL_CHARS} characters"));
        }
        match &mut field.kind {
            FieldKind::Name => field.key = "name".into(),
            FieldKind::Email => field.key = "email".into(),
            FieldKind::Phone => field.key = "phone".into(),
            FieldKind::Select { options } => {
                for option in options.iter_mut() {
                    *option = option.trim().to_owned();
                }
                if options.is_empty() || options.len() > MAX_OPTIONS {
                    return bad(format!("field {number}: a select needs 1 to {MAX_OPTIONS} options"));
                }
                if let Some(option) = options.iter().find(|option| !is_short_text(option, MAX_LABEL_CHARS)) {
                    return bad(format!("field {number}: option {option:?} needs 1 to {MAX_LABEL_CHARS} characters"));
                }
                if options.iter().enumerate().any(|(i, option)| options[..i].contains(option)) {
                    return bad(format!("field {number}: an option is listed twice"));
                }
            }
            FieldKind::Text | FieldKind::Number | FieldKind::Checkbox => {}
        }
        let custom = !matches!(field.kind, FieldKind::Name | FieldKind::Email | FieldKind::Phone);
        if custom && !is_key(&field.key) {
            return bad(format!(
                "field {number}: key {:?} must be 1 to {MAX_KEY_CHARS} lowercase letters, digits or _, starting with a letter",
                field.key
            ));
        }
        if custom && field.key == "consent" {
            return bad(format!("field {number}: the key \"consent\" is the consent checkbox's"));
        }
        if keys.contains(&field.key) {
            return bad(format!("field {number}: the key {:?} is used twice", field.key));
        }
        keys.push(field.key.clone());
    }
    form.consent = form.consent.take().map(|text| text.trim().to_owned()).filter(|text| !text.is_empty());
    if let Some(consent) = &form.consent
        && consent.chars().count() > MAX_CONSENT_CHARS
    {
        return bad(format!("the privacy text has at most {MAX_CONSENT_CHARS} characters"));
    }
    if form.when != FormWhen::Never && form.fields.is_empty() && form.consent.is_none() {
        return bad("a pre-chat form that shows needs a field or a privacy text".into());
    }
    Ok(forms)
}

fn is_short_text(text: &str, max: usize) -> bool {
    !text.is_empty() && text.chars().count() <= max && !text.chars().any(char::is_control)
}

fn is_key(key: &str) -> bool {
    key.len() <= MAX_KEY_CHARS
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FormField;

    fn field(key: &str, kind: FieldKind) -> FormField {
        FormField { key: key.into(), label: " Label ".into(), kind, required: false }
    }

    fn with(fields: Vec<FormField>) -> SiteForms {
        let mut forms = SiteForms::default();
        forms.prechat.when = FormWhen::Always;
        forms.prechat.fields = fields;
        forms
    }

    #[test]
    fn forms_are_normalised() {
        let forms = validate(with(vec![
            field("whatever", FieldKind::Email),
            field("plan", FieldKind::Select { options: vec![" Free ".into(), "Pro".into()] }),
        ]))
        .unwrap();
        let fields = &forms.prechat.fields;
        assert_eq!((fields[0].key.as_str(), fields[0].label.as_str()), ("email", "Label"));
        assert_eq!(fields[0].attribute(), "email");
        assert_eq!(fields[1].attribute(), "form.plan");
        assert_eq!(fields[1].kind, FieldKind::Select { options: vec!["Free".into(), "Pro".into()] });
        let mut blank_consent = with(vec![field("a", FieldKind::Text)]);
        blank_consent.prechat.consent = Some("  ".into());
        assert_eq!(validate(blank_consent).unwrap().prechat.consent, None);
    }

    #[test]
    fn bad_forms_are_refused_with_the_reason() {
        let refused = |forms: SiteForms| match validate(forms) {
            Err(Error::BadRequest(why)) => why,
            other => panic!("accepted: {other:?}"),
        };
        assert!(refused(with(vec![field("Plan", FieldKind::Text)])).contains("lowercase"));
        assert!(refused(with(vec![field("", FieldKind::Text)])).contains("key"));
        assert!(refused(with(vec![field("a", FieldKind::Text), field("a", FieldKind::Number)])).contains("twice"));
        assert!(refused(with(vec![field("x", FieldKind::Email), field("y", FieldKind::Email)])).contains("twice"));
        assert!(refused(with(vec![field("s", FieldKind::Select { options: vec![] })])).contains("options"));
        let twice = FieldKind::Select { options: vec!["a".into(), " a".into()] };
        assert!(refused(with(vec![field("s", twice)])).contains("twice"));
        assert!(refused(with(vec![field("consent", FieldKind::Checkbox)])).contains("consent"));
        let mut unlabelled = field("a", FieldKind::Text);
        unlabelled.label = " ".into();
        assert!(refused(with(vec![unlabelled])).contains("label"));
        assert!(refused(with((0..13).map(|i| field(&format!("f{i}"), FieldKind::Text)).collect())).contains("12"));
        assert!(refused(with(vec![])).contains("needs a field"));
        let mut long = with(vec![]);
        long.prechat.consent = Some("x".repeat(1001));
        assert!(refused(long).contains("privacy text"));
        assert!(validate(SiteForms::default()).is_ok(), "no form at all is fine");
    }
}
