//! Parsed, bounded text inputs: e-mail addresses and closure comments.

/// Longest comment accepted on a transition, counted in characters (an emoji is one).
pub const COMMENT_MAX_CHARS: usize = 1000;
/// Longest e-mail address accepted anywhere (RFC 5321 path limit).
pub const EMAIL_MAX_CHARS: usize = 254;

/// A comment that is non-empty after trimming, at most [`COMMENT_MAX_CHARS`]
/// and without U+0000 (which PostgreSQL text cannot hold; other control
/// characters are kept as typed and escaped where shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment(String);

/// Why a comment is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentError {
    /// Over [`COMMENT_MAX_CHARS`]: how many characters it has.
    TooLong(usize),
    /// It holds U+0000.
    Nul,
}

impl Comment {
    /// `Ok(None)` for an empty or blank comment.
    pub fn parse(raw: &str) -> Result<Option<Comment>, CommentError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            Ok(None)
        } else if chars > COMMENT_MAX_CHARS {
            Err(CommentError::TooLong(chars))
        } else if trimmed.contains('\0') {
            Err(CommentError::Nul)
        } else {
            Ok(Some(Comment(trimmed.to_owned())))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// An e-mail address, trimmed and lower-cased so comparisons ignore case;
/// no address has whitespace or control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Option<Email> {
        let value = raw.trim().to_lowercase();
        let valid = value.chars().count() <= EMAIL_MAX_CHARS
            && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            && value
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
        valid.then_some(Email(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comment_counts_characters_not_bytes() {
        let emoji = "😀".repeat(COMMENT_MAX_CHARS);
        assert!(Comment::parse(&emoji).unwrap().is_some());
        assert_eq!(
            Comment::parse(&format!("{emoji}😀")),
            Err(CommentError::TooLong(1001))
        );
    }

    #[test]
    fn a_comment_with_a_nul_character_is_refused() {
        assert_eq!(Comment::parse("hola\u{0}"), Err(CommentError::Nul));
        assert!(Comment::parse("línea 1\r\nlínea 2\u{1}").unwrap().is_some());
    }

    #[test]
    fn a_blank_comment_is_no_comment() {
        assert_eq!(Comment::parse("   \n"), Ok(None));
    }

    #[test]
    fn emails_are_compared_case_insensitively() {
        assert_eq!(
            Email::parse(" Ana@Example.COM ").unwrap().as_str(),
            "ana@example.com"
        );
        assert!(Email::parse("no-at-sign").is_none());
        assert!(Email::parse(&format!("{}@x.mx", "a".repeat(300))).is_none());
        assert!(Email::parse("ana\u{0}@example.com").is_none());
        assert!(Email::parse("ana\u{1b}@example.com").is_none());
    }
}

/// The form of a name used for case- and accent-insensitive matching:
/// trimmed, single-spaced, lower-case, without Spanish diacritics.
pub fn fold(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for word in raw.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars().flat_map(char::to_lowercase) {
            out.push(match c {
                'á' | 'à' | 'ä' | 'â' => 'a',
                'é' | 'è' | 'ë' | 'ê' => 'e',
                'í' | 'ì' | 'ï' | 'î' => 'i',
                'ó' | 'ò' | 'ö' | 'ô' => 'o',
                'ú' | 'ù' | 'ü' | 'û' => 'u',
                other => other,
            });
        }
    }
    out
}

#[cfg(test)]
mod fold_tests {
    #[test]
    fn folding_ignores_case_accents_and_spacing() {
        assert_eq!(super::fold("  Ana   LÓPEZ  Núñez "), "ana lopez nuñez");
    }
}
