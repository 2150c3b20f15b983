//! CSV export: the current Mensajes filter, or the conversations a report
//! counts, one row per conversation.
//!
//! The file starts with a UTF-8 byte order mark so spreadsheets read the
//! accents, and every value that a spreadsheet would take for a formula
//! (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is
//! prefixed with an apostrophe.
//!
//! **A slow download never holds the database.** The rows come from one
//! query, so the file is one consistent snapshot of the moment the export
//! started, whatever changes meanwhile (a single statement reads one
//! snapshot on SQLite's WAL and on PostgreSQL). That query is written, as
//! CSV, to an unnamed temporary file (`TMPDIR`, deleted by the system as
//! soon as it is closed, even after a crash) as fast as the disk takes it,
//! and the pooled connection goes back to the pool; only then does the
//! response start, with its `Content-Length`, streamed from the file at
//! whatever pace the client reads. A database connection is therefore held
//! for the read time only, never for the client's (20 600 conversations,
//! 9.9 MB of CSV: 0.3-1 s in a release build on a busy two-core machine,
//! either backend), and an error while reading is answered with an error
//! page instead of a truncated file.
//! Reading the query in keyset chunks, releasing the connection between
//! them, was the alternative: it holds nothing while the client reads, but
//! the file would mix moments, which a report reconciled against its export
//! cannot have. Memory stays bounded at any size (a channel of rows and a
//! write buffer); the disk holds one file per running export.
//!
//! **A few at once.** Each person runs at most [`EXPORTS_PER_PERSON`]
//! exports at once and the instance at most [`EXPORTS_PER_INSTANCE`]; the
//! next one is answered 429 with a Spanish page. The database reads of
//! exports take turns ([`READS_AT_ONCE`]), so however many run, exports
//! occupy at most that many pooled connections. A place is freed when its
//! download ends: finished, cancelled, or dropped because its client read
//! nothing for 30 s (see `startup::drop_when_unread`).

use std::io::{BufWriter, Read, Seek, Write};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use actix_web::body::SizedStream;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use futures_util::stream;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::conversations::{RawQuery, resolve_filter};
use super::pages::local_datetime;
use crate::app::state::AppState;
pub use crate::app::state::ExportSlots;
use crate::db::{ExportRow, ExportSource};
use crate::domain::ActorKind;
use crate::http::auth::CurrentUser;
use crate::http::error::AppError;

/// Rows buffered between the database and the temporary file.
const BUFFERED_ROWS: usize = 256;

/// Bytes written to, and read from, the temporary file at a time.
const CHUNK: usize = 64 * 1024;

/// Exports one person may have running at once. Two lets someone download
/// Mensajes and a report side by side; more only multiplies the same file
/// (a browser retrying, a double click) and the disk and bandwidth it takes.
pub const EXPORTS_PER_PERSON: usize = 2;

/// Exports one instance runs at once, whoever asked. Each holds a temporary
/// file the size of its download and a slice of the network until its
/// client has read it; four keeps that small next to everything else the
/// instance serves, while a person is rarely refused (exports are rare and
/// most end in seconds).
pub const EXPORTS_PER_INSTANCE: usize = 4;

pub use crate::app::state::READS_AT_ONCE;

/// The column headers, in order.
pub const HEADERS: [&str; 15] = [
    "Folio",
    "Cliente",
    "Teléfono o código",
    "Canal",
    "Campaña",
    "Agente",
    "Estatus",
    "Inicio",
    "Última actividad",
    "Cerrada",
    "Cerrada por",
    "Tipo de cierre",
    "Categoría",
    "Subcategoría",
    "Comentario",
];

/// A value as one CSV field: formula-like values neutralised, quoted when needed.
pub fn csv_field(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r', ';']) || guarded != guarded.trim() {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// One CSV line (CRLF-terminated, as RFC 4180 says).
pub fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = fields
        .iter()
        .map(|f| csv_field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// The fields of one conversation.
fn row_fields(row: &ExportRow, tz: chrono_tz::Tz) -> [String; 15] {
    let closer_kind = row.closer_kind.as_deref().and_then(ActorKind::parse);
    let closed_by = match (&row.closer_name, closer_kind) {
        (Some(name), _) => name.clone(),
        (None, Some(ActorKind::System)) => "Sistema".to_owned(),
        (None, Some(kind)) => kind.label().to_owned(),
        (None, None) => String::new(),
    };
    [
        row.folio.to_string(),
        row.contact_name.clone().unwrap_or_default(),
        row.contact_external_id.clone(),
        row.channel_kind.label().to_owned(),
        row.campaign_name.clone(),
        row.agent_name.clone().unwrap_or_default(),
        row.status.label().to_owned(),
        local_datetime(row.started_at, tz),
        local_datetime(row.last_activity_at, tz),
        row.closed_at
            .map(|t| local_datetime(t, tz))
            .unwrap_or_default(),
        closed_by,
        closer_kind
            .map(|k| k.label().to_owned())
            .unwrap_or_default(),
        row.category_name.clone().unwrap_or_default(),
        row.subcategory_name.clone().unwrap_or_default(),
        row.closure_comment.clone().unwrap_or_default(),
    ]
}

impl ExportSlots {
    /// A place for one more export of `person`, or why there is none.
    fn claim(self: &Arc<Self>, person: Uuid) -> Result<Slot, AppError> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = running.per_person.get(&person).copied().unwrap_or(0);
        if mine >= EXPORTS_PER_PERSON {
            return Err(AppError::Busy(
                "Ya hay una exportación en curso a tu nombre. Espera a que termine de \
                 descargarse y vuelve a intentarlo.",
            ));
        }
        if running.total >= EXPORTS_PER_INSTANCE {
            return Err(AppError::Busy(
                "Ya hay una exportación en curso y el servidor atiende pocas a la vez. \
                 Inténtalo de nuevo en unos minutos.",
            ));
        }
        running.total += 1;
        *running.per_person.entry(person).or_default() += 1;
        Ok(Slot {
            slots: Arc::clone(self),
            person,
        })
    }
}

/// One running export's place, given back when dropped (the download ended,
/// however it ended).
struct Slot {
    slots: Arc<ExportSlots>,
    person: Uuid,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self
            .slots
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        running.total = running.total.saturating_sub(1);
        if let Some(mine) = running.per_person.get_mut(&self.person) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                running.per_person.remove(&self.person);
            }
        }
    }
}

/// A whole export in its temporary file, positioned at the start.
struct Spooled {
    file: std::fs::File,
    len: u64,
}

/// Writes the CSV of the rows `rows` delivers to an unnamed temporary file
/// (blocking: runs on the blocking pool).
fn write_csv(mut rows: mpsc::Receiver<ExportRow>, tz: chrono_tz::Tz) -> std::io::Result<Spooled> {
    let mut out = BufWriter::with_capacity(CHUNK, tempfile::tempfile()?);
    out.write_all("\u{feff}".as_bytes())?;
    out.write_all(csv_line(&HEADERS).as_bytes())?;
    while let Some(row) = rows.blocking_recv() {
        out.write_all(csv_line(&row_fields(&row, tz)).as_bytes())?;
    }
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    let len = file.stream_position()?;
    file.rewind()?;
    Ok(Spooled { file, len })
}

/// Reads `source` as `user` sees it into a temporary file, holding a pooled
/// connection for the database's read time only.
async fn spool(
    state: &AppState,
    user: &CurrentUser,
    source: &ExportSource,
) -> Result<Spooled, AppError> {
    let _turn = state
        .exports
        .reads
        .acquire()
        .await
        .map_err(|_| AppError::unexpected("the export turns were closed"))?;
    let (tx, rx) = mpsc::channel(BUFFERED_ROWS);
    let tz = state.timezone;
    let writer = tokio::task::spawn_blocking(move || write_csv(rx, tz));
    let started = Instant::now();
    let read = state.store.export_rows(&user.scope, source, &tx).await;
    // The writer finishes once it has every row.
    drop(tx);
    let held = started.elapsed();
    let written = writer
        .await
        .map_err(|e| AppError::unexpected(format!("the export writer stopped: {e}")))?;
    // A database error first: a failed write also ends the read early.
    let rows = read?;
    let spooled = written.map_err(|e| {
        AppError::Unexpected(anyhow::Error::new(e).context("cannot write the export's file"))
    })?;
    tracing::info!(
        rows,
        bytes = spooled.len,
        millis = held.as_secs_f64() * 1000.0,
        "csv export read"
    );
    Ok(spooled)
}

/// What a download still has to send; its drop frees the export's place
/// and closes (so deletes) the file.
struct Sending {
    file: std::fs::File,
    left: u64,
    len: u64,
    _slot: Slot,
}

impl Drop for Sending {
    fn drop(&mut self) {
        tracing::info!(bytes = self.len, unsent = self.left, "csv download ended");
    }
}

/// The next piece of the file (blocking: runs on the blocking pool).
fn next_piece(mut sending: Sending) -> std::io::Result<(Sending, web::Bytes)> {
    let want = CHUNK.min(usize::try_from(sending.left).unwrap_or(CHUNK));
    let mut piece = vec![0; want];
    let n = sending.file.read(&mut piece)?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    piece.truncate(n);
    sending.left -= n as u64;
    Ok((sending, web::Bytes::from(piece)))
}

/// Exports `source` as `user` sees it, as a download named
/// `name-<timestamp>.csv`; refused (429) when too many are running.
pub async fn csv_response(
    state: &AppState,
    user: &CurrentUser,
    source: ExportSource,
    name: &str,
) -> Result<HttpResponse, AppError> {
    let slot = state.exports.claim(user.user_id)?;
    let Spooled { file, len } = spool(state, user, &source).await?;
    let sending = Sending {
        file,
        left: len,
        len,
        _slot: slot,
    };
    let body = stream::unfold(Some(sending), |sending| async move {
        let sending = sending.filter(|s| s.left > 0)?;
        let piece = tokio::task::spawn_blocking(move || next_piece(sending)).await;
        Some(match piece {
            Ok(Ok((sending, bytes))) => (Ok(bytes), Some(sending)),
            // An error ends the response short of its length: the client
            // sees an incomplete download, never a complete-looking one.
            Ok(Err(e)) => (Err(e), None),
            Err(e) => (Err(std::io::Error::other(e)), None),
        })
    });
    let stamp = Utc::now()
        .with_timezone(&state.timezone)
        .format("%Y%m%d-%H%M");
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}-{stamp}.csv\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Compression would buffer the stream and drop the length.
        .insert_header(header::ContentEncoding::Identity)
        .body(SizedStream::new(len, body)))
}

/// `GET /mensajes/exportar?<filters>`: the table under its filters, every page.
pub async fn conversations(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let raw = RawQuery::from_request(&req);
    let (filter, _) = resolve_filter(&state, &user.scope, &raw).await?;
    csv_response(
        &state,
        &user,
        ExportSource::Filter(filter),
        "conversaciones",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_values_are_neutralised() {
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("+52 55"), "'+52 55");
        assert_eq!(csv_field("-1"), "'-1");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\tx"), "'\tx");
        assert_eq!(csv_field("Ana López"), "Ana López");
        assert_eq!(csv_field("a=b"), "a=b");
    }

    #[test]
    fn places_are_limited_per_person_and_per_instance_and_freed_on_drop() {
        let slots = Arc::new(ExportSlots::default());
        let (ana, beto) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut ana_places: Vec<Slot> = (0..EXPORTS_PER_PERSON)
            .map(|_| slots.claim(ana).expect("a place"))
            .collect();
        assert!(matches!(slots.claim(ana), Err(AppError::Busy(_))));
        let beto_places: Vec<Slot> = (0..EXPORTS_PER_INSTANCE - EXPORTS_PER_PERSON)
            .map(|_| slots.claim(beto).expect("a place"))
            .collect();
        assert!(matches!(
            slots.claim(Uuid::from_u128(3)),
            Err(AppError::Busy(_))
        ));
        ana_places.pop();
        assert!(slots.claim(ana).is_ok(), "a freed place can be taken again");
        drop((ana_places, beto_places));
        assert_eq!(slots.running.lock().unwrap().total, 0);
    }

    #[test]
    fn separators_quotes_and_newlines_are_quoted() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("dijo \"hola\""), "\"dijo \"\"hola\"\"\"");
        assert_eq!(csv_field("uno\ndos"), "\"uno\ndos\"");
        assert_eq!(csv_line(&["1", "x,y"]), "1,\"x,y\"\r\n");
    }
}
