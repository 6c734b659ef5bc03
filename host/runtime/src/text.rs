//! Making text a plugin gave safe to keep and to print.

use std::fmt::Write;

/// `text` cut to at most `max` bytes on a character boundary; a cut text
/// ends with a marker saying how many bytes were dropped.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    // The marker's length depends on the count; reserve room for the largest.
    let marker_room = " [18446744073709551615 bytes cut]".len();
    let mut end = max.saturating_sub(marker_room);
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} [{} bytes cut]", &text[..end], text.len() - end)
}

/// `text` on one line: line breaks, tabs and other control characters
/// (terminal escapes included) are written as escapes, so a message can
/// neither start a forged log record nor drive the operator's terminal.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_is_cut_on_a_character_boundary() {
        assert_eq!(clip("hello", 10), "hello");
        let cut = clip(&"é".repeat(100), 60);
        assert!(cut.len() <= 60, "{cut}");
        assert!(cut.ends_with(" bytes cut]"), "{cut}");
        assert!(cut.starts_with('é'));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(one_line("a\nb\r\tc\u{1b}[31m\\"), "a\\nb\\r\\tc\\u{1b}[31m\\\\");
    }
}
