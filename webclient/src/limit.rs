//! The composers' length limit, the same in the widget and the console.
//! Browsers count a text box's length in UTF-16 units (`maxlength`,
//! `value.length`), and so does this, so the counter the visitor or agent
//! sees agrees with what the box holds.
//!
//! The box takes any length and is cut here rather than with `maxlength`,
//! which cuts a paste without a word: here the writer is told.

use web_sys::HtmlTextAreaElement;

/// Longest message a composer takes: room for a message body of 16 KiB
/// (the relay's limit) even if every unit took four bytes in UTF-8.
pub const MAX_MESSAGE_UTF16: usize = 4_000;

/// The counter shows from this length on.
const COUNT_FROM_UTF16: usize = 3_600;

/// What `input` holds after an edit, cut to [`MAX_MESSAGE_UTF16`] (in the
/// box too). `notice(true)` when this edit was cut, so the composer says
/// so; `notice(false)` once the box is empty, so the notice goes.
pub fn take_edit(input: &HtmlTextAreaElement, mut notice: impl FnMut(bool)) -> String {
    let value = input.value();
    match clip_to_utf16_units(&value, MAX_MESSAGE_UTF16) {
        Some(clipped) => {
            input.set_value(&clipped);
            notice(true);
            clipped
        }
        None => {
            if value.is_empty() {
                notice(false);
            }
            value
        }
    }
}

/// The counter near the limit, "3700 / 4000"; `None` further from it.
pub fn counter(text: &str) -> Option<String> {
    let length = utf16_len(text);
    (length >= COUNT_FROM_UTF16).then(|| format!("{length} / {MAX_MESSAGE_UTF16}"))
}

/// The length of `text` as the browser counts it.
fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// `text` cut to at most `max` UTF-16 units, never inside a character;
/// `None` when it fits already.
fn clip_to_utf16_units(text: &str, max: usize) -> Option<String> {
    let mut units = 0;
    for (at, c) in text.char_indices() {
        units += c.len_utf16();
        if units > max {
            return Some(text[..at].to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_a_character_boundary() {
        assert_eq!(clip_to_utf16_units("abc", 3), None);
        assert_eq!(clip_to_utf16_units("abcd", 3).as_deref(), Some("abc"));
        // 👋 is two UTF-16 units: it does not fit in the last one.
        assert_eq!(clip_to_utf16_units("ab👋", 3).as_deref(), Some("ab"));
        assert_eq!(clip_to_utf16_units("中文字", 2).as_deref(), Some("中文"));
        assert_eq!(utf16_len("a👋中"), 4);
    }

    #[test]
    fn the_counter_shows_near_the_limit_only() {
        assert_eq!(counter(&"x".repeat(3_599)), None);
        assert_eq!(counter(&"x".repeat(3_600)).as_deref(), Some("3600 / 4000"));
        assert_eq!(counter(&"👋".repeat(2_000)).as_deref(), Some("4000 / 4000"));
    }
}
