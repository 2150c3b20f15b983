//! The transcript as the console shows it: on the conversation page, a
//! page of messages as chat bubbles (customer, bot, agent, automatic
//! notices) with the status history between them, oldest at the top and
//! the latest page first; above the Cancelar/Reasignar form, the last few
//! messages.
//!
//! Texts are shown as typed: escaped by the templates, control characters
//! made visible, long words wrapped, and URLs left as text (never links).
//! Pages are keyset positions in the URL (`?antes=` / `?despues=`, a
//! message's `<micros>.<id>`), so paging works without JavaScript.

use chrono::{Datelike, TimeZone, Utc};
use uuid::Uuid;

use super::pages::{local_datetime, machine_datetime, relative};
use crate::app::state::AppState;
use crate::db::{HistoryRow, MessageKey, MessageRow, TranscriptPage, TranscriptPosition, Ts};
use crate::domain::Author;
use crate::domain::transcript::{Entry, interleave, printable, purged_notice};

/// Messages per page of the conversation page.
pub const PAGE_SIZE: usize = 50;
/// Messages above the Cancelar/Reasignar form.
pub const RECENT: usize = 5;

/// A message as a bubble.
pub struct MessageView {
    /// `customer`, `agent`, `bot` or `system`: the bubble's side and colour.
    pub author: &'static str,
    /// What the author is, in words ("Cliente", "Agente", "Bot",
    /// "Aviso automático"): never shown by colour alone.
    pub role: &'static str,
    /// Who wrote it: the customer's or the agent's name; empty when the
    /// role says it all (the bot, automatic notices).
    pub name: String,
    /// The text as shown, or, once purged, what replaces it.
    pub text: String,
    pub purged: bool,
    /// `14:05`, local.
    pub time: String,
    /// `26/11/2026 14:05`, local.
    pub at: String,
    /// For `<time datetime>`.
    pub at_iso: String,
}

impl MessageView {
    /// `customer` is how the conversation's customer is called (their
    /// name, or their number).
    pub fn new(row: &MessageRow, customer: &str, tz: chrono_tz::Tz, days: u32) -> MessageView {
        let name = match row.author {
            Author::Customer => customer.to_owned(),
            Author::Agent => row.agent_name.clone().unwrap_or_default(),
            Author::Bot | Author::System => String::new(),
        };
        let (text, purged) = match &row.text {
            Some(text) => (printable(text).into_owned(), false),
            None => (purged_notice(days), true),
        };
        MessageView {
            author: row.author.as_str(),
            role: row.author.label(),
            name,
            text,
            purged,
            time: local_time(row.at, tz),
            at: local_datetime(row.at, tz),
            at_iso: machine_datetime(row.at),
        }
    }
}

/// One line of the chat.
pub enum TranscriptEntry {
    /// A day starts: "martes 26/11/2026".
    Day(String),
    Message(MessageView),
    Event(HistoryView),
}

/// A page of the transcript as the conversation page shows it.
pub struct TranscriptView {
    pub entries: Vec<TranscriptEntry>,
    /// Messages on this page.
    pub messages: usize,
    /// "Mensajes anteriores".
    pub older_href: Option<String>,
    /// "Mensajes siguientes" and "Ir a los más recientes".
    pub newer_href: Option<String>,
    pub latest_href: Option<String>,
    /// Why the page asked for is not the one shown.
    pub notice: Option<String>,
}

/// A history row as shown.
pub struct HistoryView {
    pub at: String,
    /// `14:05`, local (the chat's day lines give the date).
    pub time: String,
    /// For `<time datetime>`.
    pub at_iso: String,
    pub ago: String,
    pub what: String,
    pub who: String,
    pub to_status: &'static str,
    pub to_status_label: &'static str,
    pub closure: Option<String>,
    pub comment: Option<String>,
}

impl HistoryView {
    fn new(row: &HistoryRow, tz: chrono_tz::Tz, now: chrono::DateTime<Utc>) -> HistoryView {
        use crate::domain::{ActorKind, EventKind};
        let who = match (row.actor_kind, &row.actor_name) {
            (_, Some(name)) => name.clone(),
            (ActorKind::Customer, None) => "Cliente".into(),
            (ActorKind::System, None) if row.rule_id.is_some() => {
                "Sistema (cancelación automática)".into()
            }
            (ActorKind::System, None) => "Sistema (enrutador)".into(),
            (kind, None) => kind.label().into(),
        };
        let what = match row.kind {
            EventKind::Created => "Inició la conversación (flujo del bot)".to_owned(),
            EventKind::Handoff => match &row.to_agent_name {
                Some(agent) => format!("Derivó a un agente: asignada a {agent}"),
                None => format!("Derivó a un agente: {}", row.to_status.label()),
            },
            EventKind::Assigned => format!(
                "Asignó a {}",
                row.to_agent_name.as_deref().unwrap_or("un agente")
            ),
            EventKind::FirstReply => "Primera respuesta del agente".to_owned(),
            EventKind::Resolved => "Resolvió la conversación".to_owned(),
            EventKind::Cancelled => match &row.rule_name {
                Some(rule) => format!("Cancelada automáticamente por la regla «{rule}»"),
                None => "Canceló la conversación".to_owned(),
            },
            EventKind::Reassigned => match (&row.from_agent_name, &row.to_agent_name) {
                (Some(from), Some(to)) => format!("Reasignó de {from} a {to}"),
                (None, Some(to)) => format!("Reasignó a {to}"),
                // Given back to the router, which found no agent.
                (_, None) => format!("Devolvió al enrutador: {}", row.to_status.label()),
            },
        };
        let closure = row
            .category_name
            .as_ref()
            .map(|c| match &row.subcategory_name {
                Some(s) => format!("{c} › {s}"),
                None => c.clone(),
            });
        HistoryView {
            at: local_datetime(row.at, tz),
            time: row.at.0.with_timezone(&tz).format("%H:%M").to_string(),
            at_iso: machine_datetime(row.at),
            ago: relative(row.at, now),
            what,
            who,
            to_status: row.to_status.as_str(),
            to_status_label: row.to_status.label(),
            closure,
            comment: row.comment.clone(),
        }
    }
}

/// `<micros>.<id>`: a message's place, in a URL.
pub fn cursor_value(key: MessageKey) -> String {
    format!("{}.{}", key.at.0.timestamp_micros(), key.id.simple())
}

/// A position from the URL (an instant of the years a day may have: see
/// [`crate::domain::days::YEARS`]).
pub(crate) fn parse_cursor(value: &str) -> Option<MessageKey> {
    let (micros, id) = value.split_once('.')?;
    let at = Utc.timestamp_micros(micros.parse().ok()?).single()?;
    if !crate::domain::days::in_years(at) {
        return None;
    }
    Some(MessageKey {
        at: Ts::new(at),
        id: Uuid::try_parse(id).ok()?,
    })
}

/// The page a query string asks for (`despues` before `antes`); an
/// unreadable one is noticed and the latest page shown.
pub fn read_position(query: &str) -> (TranscriptPosition, Option<String>) {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    let (after, before) = (value("despues"), value("antes"));
    let position = match (&after, &before) {
        (Some(after), _) => parse_cursor(after).map(TranscriptPosition::After),
        (None, Some(before)) => parse_cursor(before).map(TranscriptPosition::Before),
        (None, None) => Some(TranscriptPosition::Latest),
    };
    match position {
        Some(position) => (position, None),
        None => (
            TranscriptPosition::Latest,
            Some(
                "La página de mensajes pedida no es válida; se muestran los más recientes.".into(),
            ),
        ),
    }
}

/// `14:05`, local.
fn local_time(at: Ts, tz: chrono_tz::Tz) -> String {
    at.0.with_timezone(&tz).format("%H:%M").to_string()
}

const WEEKDAYS: [&str; 7] = [
    "lunes",
    "martes",
    "miércoles",
    "jueves",
    "viernes",
    "sábado",
    "domingo",
];

/// "martes 26/11/2026": the local day of `at`.
fn day_label(at: Ts, tz: chrono_tz::Tz) -> String {
    let local = at.0.with_timezone(&tz);
    format!(
        "{} {}",
        WEEKDAYS[local.weekday().num_days_from_monday() as usize],
        local.format("%d/%m/%Y")
    )
}

/// The chat of `page`: its messages with the history rows (newest first,
/// as the Store reads them) of its window between them, and a day line
/// wherever the local day changes.
pub fn entries(
    page: TranscriptPage,
    history: &[HistoryRow],
    customer: &str,
    state: &AppState,
    now: chrono::DateTime<Utc>,
) -> Vec<TranscriptEntry> {
    let tz = state.timezone;
    let chat = interleave(
        page.messages,
        history.iter().rev().collect(),
        page.window,
        |m| m.at.0,
        |e| e.at.0,
    );
    let mut entries = Vec::with_capacity(chat.len() + 4);
    let mut day = None;
    for entry in chat {
        let at = match &entry {
            Entry::Message(m) => m.at,
            Entry::Event(e) => e.at,
        };
        let label = day_label(at, tz);
        if day.as_ref() != Some(&label) {
            entries.push(TranscriptEntry::Day(label.clone()));
            day = Some(label);
        }
        entries.push(match entry {
            Entry::Message(m) => {
                TranscriptEntry::Message(MessageView::new(&m, customer, tz, state.transcript_days))
            }
            Entry::Event(e) => TranscriptEntry::Event(HistoryView::new(e, tz, now)),
        });
    }
    entries
}

/// The transcript page read at the position [`read_position`] found (and
/// its notice) of conversation `folio`, with its history and links to the
/// pages around it.
pub fn view(
    state: &AppState,
    folio: i64,
    (page, notice): (TranscriptPage, Option<String>),
    history: &[HistoryRow],
    customer: &str,
) -> TranscriptView {
    let href = |name: &str, key: MessageKey| {
        format!(
            "/mensajes/{folio}?{name}={}#transcripcion",
            cursor_value(key)
        )
    };
    let older_href = page.older.map(|key| href("antes", key));
    let newer_href = page.newer.map(|key| href("despues", key));
    let latest_href = newer_href
        .is_some()
        .then(|| format!("/mensajes/{folio}#transcripcion"));
    let messages = page.messages.len();
    TranscriptView {
        entries: entries(page, history, customer, state, Utc::now()),
        messages,
        older_href,
        newer_href,
        latest_href,
        notice,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_round_trips_through_the_url() {
        let key = MessageKey {
            at: Ts::new(Utc.with_ymd_and_hms(2026, 3, 1, 10, 5, 7).unwrap()),
            id: Uuid::now_v7(),
        };
        let value = cursor_value(key);
        assert_eq!(parse_cursor(&value), Some(key));
        let (position, notice) = read_position(&format!("antes={value}"));
        assert_eq!(position, TranscriptPosition::Before(key));
        assert_eq!(notice, None);
        let (position, _) = read_position(&format!("antes=x&despues={value}"));
        assert_eq!(position, TranscriptPosition::After(key));
        assert_eq!(read_position(""), (TranscriptPosition::Latest, None));
    }

    #[test]
    fn an_unreadable_position_shows_the_latest_page_with_a_notice() {
        for bad in [
            "antes=.",
            "antes=1.2.3",
            "despues=1714000000000000.10001",
            "antes=-1000000000000000000.0190d6d4b6a07b3c9f1e2d3c4b5a6978",
            "antes=253402300800000000.0190d6d4b6a07b3c9f1e2d3c4b5a6978",
            "despues=%00",
        ] {
            let (position, notice) = read_position(bad);
            assert_eq!(position, TranscriptPosition::Latest, "{bad}");
            assert!(notice.is_some(), "{bad}");
        }
    }

    #[test]
    fn days_are_named_in_spanish() {
        let at = Ts::new(Utc.with_ymd_and_hms(2026, 11, 24, 18, 0, 0).unwrap());
        assert_eq!(
            day_label(at, chrono_tz::America::Mexico_City),
            "martes 24/11/2026"
        );
        assert_eq!(local_time(at, chrono_tz::America::Mexico_City), "12:00");
    }
}
