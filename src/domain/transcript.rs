//! Transcripts: who wrote a message, what a message text may hold, how long
//! texts are kept, and how a page of messages and the status history are
//! told as one chat. Pure: time is a parameter.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

stored_enum!(
    /// Who wrote a message of a conversation.
    Author {
        Customer => "customer", "Cliente",
        Agent => "agent", "Agente",
        Bot => "bot", "Bot",
        System => "system", "Aviso automático",
    }
);

impl Author {
    /// The stored direction: the customer's messages come in, everyone
    /// else's go out to the customer.
    pub fn direction(self) -> &'static str {
        match self {
            Author::Customer => "inbound",
            Author::Agent | Author::Bot | Author::System => "outbound",
        }
    }
}

/// Longest message text accepted, in characters (an emoji is one).
pub const TEXT_MAX_CHARS: usize = 10_000;

/// Why a message text is refused (nothing is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    /// Over [`TEXT_MAX_CHARS`].
    TooLong,
    /// It holds U+0000, which PostgreSQL text cannot.
    Nul,
}

impl TextError {
    pub fn message(self) -> String {
        match self {
            TextError::TooLong => format!("Admite hasta {TEXT_MAX_CHARS} caracteres"),
            TextError::Nul => "No admite el carácter nulo (U+0000)".to_owned(),
        }
    }
}

/// A message text is kept exactly as sent (control characters, 4-byte
/// emoji, leading spaces), as long as it has no U+0000 and at most
/// [`TEXT_MAX_CHARS`] characters.
pub fn check_text(text: &str) -> Result<(), TextError> {
    if text.contains('\0') {
        Err(TextError::Nul)
    } else if text.chars().count() > TEXT_MAX_CHARS {
        Err(TextError::TooLong)
    } else {
        Ok(())
    }
}

/// What a message text shows: line breaks and tabs as they are, every other
/// control character as its visible symbol (U+2400…, `␛` for ESC), so that
/// nothing a customer sent is hidden or breaks the page around it.
pub fn printable(text: &str) -> Cow<'_, str> {
    let visible = |c: char| match c {
        '\n' | '\t' => c,
        '\r' => '\n',
        '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
        '\u{7f}' => '\u{2421}',
        '\u{80}'..='\u{9f}' => '\u{fffd}',
        other => other,
    };
    if text.chars().all(|c| visible(c) == c) {
        return Cow::Borrowed(text);
    }
    // A CR LF pair is one line break.
    Cow::Owned(text.replace("\r\n", "\n").chars().map(visible).collect())
}

/// `RELEVO_TRANSCRIPT_DAYS` when unset: message texts are kept this long.
pub const DEFAULT_RETENTION_DAYS: u32 = 180;
/// The longest retention accepted (about a hundred years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Texts of messages older than this instant are purged at `now`.
pub fn retention_cutoff(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now - chrono::Duration::days(i64::from(days))
}

/// What a purged text shows instead.
pub fn purged_notice(days: u32) -> String {
    let unit = if days == 1 { "día" } else { "días" };
    format!("Texto eliminado por la política de retención ({days} {unit})")
}

/// The part of the status history a page of messages tells: events from
/// `from` (the page's first message, when older pages exist) and before
/// `before` (the next page's first message, when newer pages exist). The
/// first page holds everything earlier, the latest everything later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub from: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
}

impl Window {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from.is_none_or(|from| at >= from) && self.before.is_none_or(|before| at < before)
    }
}

/// One line of a chat: a message, or a history event between messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<M, E> {
    Message(M),
    Event(E),
}

/// Messages and events (each oldest first) as one chat, oldest first; of a
/// message and an event at the same instant the event comes first (the
/// conversation starts, then its first message; the first reply's
/// transition, then the reply). Events outside `window` are left out.
pub fn interleave<M, E>(
    messages: Vec<M>,
    events: Vec<E>,
    window: Window,
    message_at: impl Fn(&M) -> DateTime<Utc>,
    event_at: impl Fn(&E) -> DateTime<Utc>,
) -> Vec<Entry<M, E>> {
    let mut events = events
        .into_iter()
        .filter(|e| window.contains(event_at(e)))
        .peekable();
    let mut chat = Vec::with_capacity(messages.len());
    for message in messages {
        let at = message_at(&message);
        while let Some(event) = events.next_if(|e| event_at(e) <= at) {
            chat.push(Entry::Event(event));
        }
        chat.push(Entry::Message(message));
    }
    chat.extend(events.map(Entry::Event));
    chat
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 10, minute, 0).unwrap()
    }

    #[test]
    fn the_author_decides_the_direction() {
        assert_eq!(Author::Customer.direction(), "inbound");
        for author in [Author::Agent, Author::Bot, Author::System] {
            assert_eq!(author.direction(), "outbound");
        }
        assert_eq!(Author::parse("bot"), Some(Author::Bot));
        assert_eq!(Author::parse("Bot"), None);
    }

    #[test]
    fn texts_are_kept_as_sent_within_the_limit() {
        assert_eq!(check_text(""), Ok(()));
        assert_eq!(check_text("  hola\u{1}\u{1F600}  "), Ok(()));
        assert_eq!(check_text(&"😀".repeat(TEXT_MAX_CHARS)), Ok(()));
        assert_eq!(
            check_text(&"a".repeat(TEXT_MAX_CHARS + 1)),
            Err(TextError::TooLong)
        );
        assert_eq!(check_text("a\0b"), Err(TextError::Nul));
        assert!(TextError::TooLong.message().contains("10000"));
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert!(matches!(printable("hola\nqué tal"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}[31mb"), "a\u{241b}[31mb");
        assert_eq!(printable("a\r\nb\rc"), "a\nb\nc");
        assert_eq!(printable("\u{7f}\u{85}"), "\u{2421}\u{fffd}");
    }

    #[test]
    fn the_cutoff_is_the_retention_before_now() {
        let now = at(0);
        assert_eq!(
            retention_cutoff(now, 180),
            now - chrono::Duration::days(180)
        );
        assert_eq!(
            purged_notice(180),
            "Texto eliminado por la política de retención (180 días)"
        );
        assert_eq!(
            purged_notice(1),
            "Texto eliminado por la política de retención (1 día)"
        );
    }

    #[test]
    fn events_sit_between_the_messages_of_their_time() {
        let messages = vec![("hola", at(1)), ("¿me ayudan?", at(3)), ("gracias", at(5))];
        let events = vec![("creada", at(1)), ("asignada", at(4)), ("resuelta", at(9))];
        let chat = interleave(messages, events, Window::default(), |m| m.1, |e| e.1);
        let names: Vec<&str> = chat
            .iter()
            .map(|entry| match entry {
                Entry::Message(m) => m.0,
                Entry::Event(e) => e.0,
            })
            .collect();
        assert_eq!(
            names,
            [
                "creada",
                "hola",
                "¿me ayudan?",
                "asignada",
                "gracias",
                "resuelta"
            ]
        );
    }

    #[test]
    fn a_page_tells_only_the_events_of_its_window() {
        let window = Window {
            from: Some(at(3)),
            before: Some(at(6)),
        };
        assert!(!window.contains(at(2)));
        assert!(window.contains(at(3)));
        assert!(window.contains(at(5)));
        assert!(!window.contains(at(6)));
        let chat = interleave(
            vec![at(3), at(4)],
            vec![at(1), at(3), at(5), at(6)],
            window,
            |m| *m,
            |e| *e,
        );
        assert_eq!(
            chat,
            vec![
                Entry::Event(at(3)),
                Entry::Message(at(3)),
                Entry::Message(at(4)),
                Entry::Event(at(5)),
            ]
        );
        // Without messages, the window alone decides.
        let empty: Vec<Entry<DateTime<Utc>, _>> = interleave(
            vec![],
            vec![at(1), at(2)],
            Window::default(),
            |m| *m,
            |e| *e,
        );
        assert_eq!(empty.len(), 2);
    }
}
