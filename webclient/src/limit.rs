//! The composers' length limit. Browsers count a text box's length in
//! UTF-16 units (`maxlength`, `value.length`), and so does this, so the
//! counter the visitor or agent sees agrees with what the box holds.

/// Longest message a composer takes: room for a message body of 16 KiB
/// (the relay's limit) even if every unit took four bytes in UTF-8.
pub const MAX_MESSAGE_UTF16: usize = 4_000;

/// The counter shows from this length on.
pub const COUNT_FROM_UTF16: usize = 3_600;

/// The length of `text` as the browser counts it.
pub fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// `text` cut to at most `max` UTF-16 units, never inside a character;
/// `None` when it fits already.
pub fn clip_to_utf16_units(text: &str, max: usize) -> Option<String> {
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
}
