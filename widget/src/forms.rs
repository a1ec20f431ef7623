//! The site's forms as the widget needs them (the pre-chat form, the
//! survey switches, whether answers can come by email), and the checks
//! of what the visitor fills in. Plain data, tested on the host; `look`
//! reads it from the page.
//!
//! Every value becomes a visitor attribute: the built-in fields `name`,
//! `email` and `phone` under those keys, the site's own fields as
//! `form.KEY` and the consent box as `form.consent`, so a site's field
//! can never overwrite the visitor's address. The relay shows them to
//! agents as unverified.

use kefu_protocol::frame::Attribute;

/// What a field asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    Name,
    Email,
    Phone,
    Text,
    Number,
    Select(Vec<String>),
    Checkbox,
}

/// One field of the pre-chat form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub key: String,
    pub label: String,
    pub kind: FieldKind,
    pub required: bool,
}

impl Field {
    /// The attribute the value is stored as.
    pub fn attribute(&self) -> String {
        match self.kind {
            FieldKind::Name => "name".into(),
            FieldKind::Email => "email".into(),
            FieldKind::Phone => "phone".into(),
            _ => format!("form.{}", self.key),
        }
    }
}

/// When the pre-chat form shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum When {
    Always,
    OutOfHours,
    #[default]
    Never,
}

/// What the relay wrote into the page about the site's forms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Look {
    pub when: When,
    pub fields: Vec<Field>,
    /// The privacy text of the consent box; none: no box.
    pub consent: Option<String>,
    pub survey: bool,
    pub survey_again: bool,
    /// The relay sends email: the offline ask can promise an answer there.
    pub email_follow_up: bool,
    /// Out of hours the site takes messages only with an email to answer
    /// (the hours' "offline form only").
    pub offline_form_only: bool,
}

/// Why a value is refused, for the message under its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Required,
    Email,
    Number,
}

/// Whether `text` looks like an address mail could reach: something, one
/// `@`, a domain with a dot, no spaces. The relay does not mail on its
/// strength; it catches typos.
pub fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else { return false };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(char::is_whitespace)
}

/// Whether `text` is a decimal number (`-12`, `3.5`, `3,5`). Checked by
/// hand: float parsing would add its tables to the wasm for this alone.
fn is_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let mut separators = 0;
    !digits.is_empty()
        && digits.chars().all(|c| match c {
            '0'..='9' => true,
            '.' | ',' => {
                separators += 1;
                separators == 1
            }
            _ => false,
        })
        && digits.chars().any(|c| c.is_ascii_digit())
}

/// Checks one value (trimmed; a checkbox is `"yes"` or empty).
pub fn check(field: &Field, value: &str) -> Option<Problem> {
    let value = value.trim();
    if value.is_empty() {
        return field.required.then_some(Problem::Required);
    }
    match field.kind {
        FieldKind::Email if !is_email(value) => Some(Problem::Email),
        FieldKind::Number if !is_number(value) => Some(Problem::Number),
        _ => None,
    }
}

/// The attributes a filled form gives: each non-empty value, and the
/// consent.
pub fn attributes(fields: &[Field], values: &[String], consent: bool) -> Vec<Attribute> {
    let mut set: Vec<Attribute> = fields
        .iter()
        .zip(values)
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(field, value)| Attribute { key: field.attribute(), value: value.trim().to_owned() })
        .collect();
    if consent {
        set.push(Attribute { key: "form.consent".into(), value: "yes".into() });
    }
    set
}

impl Look {
    /// Reads `<meta name="kefu-look">`, the JSON of `GET /api/widget/KEY`
    /// that the relay writes into the page. Anything missing or unknown is
    /// left out: no form, no survey. Browser only.
    pub fn from_page(json: Option<String>) -> Look {
        use js_sys::{Array, JSON, Reflect};
        use wasm_bindgen::JsValue;

        let Some(root) = json.and_then(|json| JSON::parse(&json).ok()) else { return Look::default() };
        let get = |value: &JsValue, key: &str| Reflect::get(value, &JsValue::from_str(key)).unwrap_or(JsValue::NULL);
        let text = |value: &JsValue, key: &str| get(value, key).as_string().unwrap_or_default();
        let list = |value: JsValue| if Array::is_array(&value) { Array::from(&value).to_vec() } else { Vec::new() };
        let prechat = get(&root, "prechat");
        let survey = get(&root, "survey");
        let fields = list(get(&prechat, "fields"))
            .iter()
            .filter_map(|field| {
                let kind = match text(field, "kind").as_str() {
                    "name" => FieldKind::Name,
                    "email" => FieldKind::Email,
                    "phone" => FieldKind::Phone,
                    "text" => FieldKind::Text,
                    "number" => FieldKind::Number,
                    "checkbox" => FieldKind::Checkbox,
                    "select" => {
                        FieldKind::Select(list(get(field, "options")).iter().filter_map(JsValue::as_string).collect())
                    }
                    _ => return None,
                };
                let required = get(field, "required").as_bool().unwrap_or(false);
                Some(Field { key: text(field, "key"), label: text(field, "label"), kind, required })
            })
            .collect();
        Look {
            when: match text(&prechat, "when").as_str() {
                "always" => When::Always,
                "out_of_hours" => When::OutOfHours,
                _ => When::Never,
            },
            fields,
            consent: get(&prechat, "consent").as_string().filter(|text| !text.is_empty()),
            survey: get(&survey, "enabled").as_bool().unwrap_or(false),
            survey_again: get(&survey, "ask_again").as_bool().unwrap_or(false),
            email_follow_up: get(&root, "email_follow_up").as_bool().unwrap_or(false),
            offline_form_only: get(&root, "offline_form_only").as_bool().unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(kind: FieldKind, required: bool) -> Field {
        Field { key: "plan".into(), label: "Plan".into(), kind, required }
    }

    #[test]
    fn email_shapes() {
        for good in ["a@b.co", "first.last+tag@mail.example.com"] {
            assert!(is_email(good), "{good}");
        }
        for bad in ["", "a", "a@", "@b.co", "a@b", "a@b.", "a@.b", "a b@c.de", "a@b@c.de"] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn values_are_checked_by_kind_and_requirement() {
        assert_eq!(check(&field(FieldKind::Text, true), "  "), Some(Problem::Required));
        assert_eq!(check(&field(FieldKind::Text, false), ""), None);
        assert_eq!(check(&field(FieldKind::Email, false), "nope"), Some(Problem::Email));
        assert_eq!(check(&field(FieldKind::Number, true), "12.5"), None);
        assert_eq!(check(&field(FieldKind::Number, true), "twelve"), Some(Problem::Number));
        for bad in ["-", ".", "1.2.3", "1e5", "--1"] {
            assert_eq!(check(&field(FieldKind::Number, true), bad), Some(Problem::Number), "{bad}");
        }
        assert_eq!(check(&field(FieldKind::Number, true), "-3,5"), None);
        assert_eq!(check(&field(FieldKind::Checkbox, true), ""), Some(Problem::Required));
    }

    #[test]
    fn custom_keys_cannot_pass_for_the_visitors_address() {
        let fields = [
            Field { key: "email".into(), label: "Email".into(), kind: FieldKind::Email, required: true },
            Field { key: "email".into(), label: "Work email".into(), kind: FieldKind::Text, required: false },
            field(FieldKind::Select(vec!["Pro".into()]), true),
        ];
        let values = ["a@b.co".to_owned(), " w@b.co ".to_owned(), String::new()];
        let keys: Vec<(String, String)> =
            attributes(&fields, &values, true).into_iter().map(|a| (a.key, a.value)).collect();
        assert_eq!(
            keys,
            [
                ("email".into(), "a@b.co".into()),
                ("form.email".into(), "w@b.co".into()),
                ("form.consent".into(), "yes".into())
            ]
        );
    }
}
