//! Room chat: the rules of a message's text, shared by the gateway (which refuses a bad
//! one at once, with an `error` frame) and the engine (which posts it to the room).
//!
//! A message is text only: what the page shows is what was sent, rendered as text, never
//! as markup; control characters (which could reorder or hide what is shown, or break a
//! log line) are refused rather than stripped, so a player sees why.

/// Most characters (Unicode scalar values) of a chat message.
pub const CHAT_TEXT_CHARS_MAX: usize = 200;

/// Messages of a room kept for a newcomer's snapshot, the newest last.
pub const CHAT_HISTORY_MESSAGES_MAX: usize = 50;

/// Why a chat text is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChatTextError {
    #[error("a chat message has 1 to 200 characters")]
    Length,
    #[error("a chat message cannot hold control characters")]
    ControlCharacters,
}

/// The text to post: `text` without surrounding white space, if it is a valid message.
pub fn checked_text(text: &str) -> Result<&str, ChatTextError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > CHAT_TEXT_CHARS_MAX {
        return Err(ChatTextError::Length);
    }
    // Bidirectional overrides and isolates reorder what a reader sees.
    let hidden =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if text.chars().any(hidden) {
        return Err(ChatTextError::ControlCharacters);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_trimmed_and_bounded_in_characters_not_bytes() {
        assert_eq!(checked_text("  gl hf  "), Ok("gl hf"));
        assert_eq!(
            checked_text("<script>alert(1)</script>"),
            Ok("<script>alert(1)</script>")
        );
        let longest = "é".repeat(CHAT_TEXT_CHARS_MAX);
        assert_eq!(checked_text(&longest), Ok(longest.as_str()));
        assert_eq!(checked_text(&"é".repeat(201)), Err(ChatTextError::Length));
        assert_eq!(checked_text(""), Err(ChatTextError::Length));
        assert_eq!(checked_text("   "), Err(ChatTextError::Length));
    }

    #[test]
    fn control_and_reordering_characters_are_refused() {
        for bad in [
            "a\nb",
            "a\u{0}b",
            "a\u{1b}[31mb",
            "abc\u{202E}fed",
            "a\u{2066}b",
        ] {
            assert_eq!(
                checked_text(bad),
                Err(ChatTextError::ControlCharacters),
                "{bad:?}"
            );
        }
    }
}
