//! Cancelación automática's pure rules: the limits of a rule, parsing its
//! window and nudge, and the Spanish labels that describe it (in the list,
//! the audit log and the history comment of a conversation it cancels).
//! The Store and the background task (`services::auto_cancel`) both use them.

use crate::domain::Status;
use crate::domain::text::COMMENT_MAX_CHARS;

/// The longest window a rule may have: 30 days.
pub const MAX_WINDOW_MINUTES: i64 = 30 * 24 * 60;
/// Longest rule name and comment, so the history comment fits its limit.
pub const NAME_MAX_CHARS: usize = 80;
pub const RULE_COMMENT_MAX_CHARS: usize = 500;
/// Longest nudge text.
pub const NUDGE_MAX_CHARS: usize = 1000;

/// What a rule measures a conversation's silence from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    /// The customer's last message (or the start of the conversation).
    NoCustomerMessage,
    /// The moment the conversation entered its current status.
    InStatus,
}

impl Measure {
    pub const ALL: [Measure; 2] = [Measure::NoCustomerMessage, Measure::InStatus];

    pub fn as_str(self) -> &'static str {
        match self {
            Measure::NoCustomerMessage => "no_customer_message",
            Measure::InStatus => "in_status",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Measure::NoCustomerMessage => "sin mensaje del cliente",
            Measure::InStatus => "en el estatus",
        }
    }

    pub fn parse(value: &str) -> Option<Measure> {
        Measure::ALL.into_iter().find(|m| m.as_str() == value)
    }
}

impl TryFrom<String> for Measure {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        Measure::parse(&value).ok_or_else(|| format!("unknown measure {value:?}"))
    }
}

/// Parses a rule's window in minutes: a whole number from 1 to 30 days.
pub fn parse_window(raw: &str) -> Result<i64, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("Escribe la ventana en minutos".into());
    }
    let minutes: i64 = raw
        .parse()
        .map_err(|_| "Escribe la ventana en minutos, como número entero".to_owned())?;
    if minutes <= 0 {
        return Err("La ventana debe ser de al menos 1 minuto".into());
    }
    if minutes > MAX_WINDOW_MINUTES {
        return Err(format!(
            "La ventana no puede pasar de 30 días ({MAX_WINDOW_MINUTES} minutos)"
        ));
    }
    Ok(minutes)
}

/// Parses the optional nudge: its text and how many minutes before the
/// window ends it is sent. Both empty: no nudge.
pub fn parse_nudge(
    text: &str,
    lead: &str,
    window: Option<i64>,
) -> Result<Option<(String, i64)>, (&'static str, String)> {
    let text = text.trim();
    let lead = lead.trim();
    if text.is_empty() && lead.is_empty() {
        return Ok(None);
    }
    if text.is_empty() {
        return Err((
            "aviso",
            "Escribe el texto del aviso, o deja vacíos los minutos".into(),
        ));
    }
    let chars = text.chars().count();
    if chars > NUDGE_MAX_CHARS {
        return Err((
            "aviso",
            format!("El aviso admite hasta {NUDGE_MAX_CHARS} caracteres (tiene {chars})"),
        ));
    }
    // It is stored and sent as typed, but PostgreSQL text cannot hold U+0000.
    if text.contains('\0') {
        return Err((
            "aviso",
            "El aviso no admite el carácter nulo (U+0000)".into(),
        ));
    }
    let minutes: i64 = lead.parse().map_err(|_| {
        (
            "aviso_minutos",
            "Escribe con cuántos minutos de anticipación se envía el aviso".to_owned(),
        )
    })?;
    if minutes <= 0 {
        return Err((
            "aviso_minutos",
            "El aviso debe enviarse al menos 1 minuto antes".into(),
        ));
    }
    if let Some(window) = window
        && minutes >= window
    {
        return Err((
            "aviso_minutos",
            "El aviso debe enviarse antes de que termine la ventana (menos minutos que la ventana)"
                .into(),
        ));
    }
    Ok(Some((text.to_owned(), minutes)))
}

/// The comment a rule's cancellation writes to history.
pub fn history_comment(rule_name: &str, comment: Option<&str>) -> String {
    let text = match comment {
        Some(c) if !c.trim().is_empty() => {
            format!("Cancelación automática «{rule_name}»: {}", c.trim())
        }
        _ => format!("Cancelación automática «{rule_name}»"),
    };
    text.chars().take(COMMENT_MAX_CHARS).collect()
}

/// What a rule does, in a sentence: "Cancela las conversaciones en ICR sin
/// mensaje del cliente durante 30 min".
pub fn describe(status: Status, measure: Measure, window_minutes: i64) -> String {
    match measure {
        Measure::NoCustomerMessage => format!(
            "Cancela las conversaciones en {} sin mensaje del cliente durante {}",
            status.label(),
            window_label(window_minutes)
        ),
        Measure::InStatus => format!(
            "Cancela las conversaciones que llevan más de {} en {}",
            window_label(window_minutes),
            status.label()
        ),
    }
}

/// A rule's closure as read: "Flujo atascado › Sin respuesta".
pub fn closure_label(category: &str, subcategory: Option<&str>) -> String {
    match subcategory {
        Some(sub) => format!("{category} › {sub}"),
        None => category.to_owned(),
    }
}

/// A rule's nudge as read: "10 min antes: «¿Sigues ahí?»".
pub fn nudge_label(text: Option<&str>, lead_minutes: Option<i64>) -> Option<String> {
    text.zip(lead_minutes)
        .map(|(text, lead)| format!("{} antes: «{text}»", window_label(lead)))
}

/// "30 min", "4 h", "2 d 3 h".
pub fn window_label(minutes: i64) -> String {
    let (days, rest) = (minutes / 1440, minutes % 1440);
    let (hours, mins) = (rest / 60, rest % 60);
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days} d"));
    }
    if hours > 0 {
        parts.push(format!("{hours} h"));
    }
    if mins > 0 || parts.is_empty() {
        parts.push(format!("{mins} min"));
    }
    parts.join(" ")
}
