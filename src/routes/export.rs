//! CSV export: the current Mensajes filter, or the conversations a report
//! counts, one row per conversation, streamed.
//!
//! The file starts with a UTF-8 byte order mark so spreadsheets read the
//! accents, and every value that a spreadsheet would take for a formula
//! (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is
//! prefixed with an apostrophe. Rows come from one query, so the file is
//! one consistent snapshot of the moment the download started, whatever
//! changes while it streams; memory stays bounded at any size.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use futures_util::stream;
use tokio::sync::{mpsc, oneshot};

use super::mensajes::{RawQuery, parse_filter};
use super::pages::local_datetime;
use crate::auth::CurrentUser;
use crate::db::{ExportRow, ExportSource, Store};
use crate::domain::{ActorKind, Scope};
use crate::error::AppError;
use crate::startup::AppState;

/// Rows buffered between the database and the response.
const BUFFERED_ROWS: usize = 256;

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

struct Streaming {
    rows: mpsc::Receiver<ExportRow>,
    done: Option<oneshot::Receiver<bool>>,
    started: bool,
    tz: chrono_tz::Tz,
}

/// Streams `source` as a CSV download named `name-<timestamp>.csv`.
pub fn csv_response(
    store: Store,
    scope: Scope,
    source: ExportSource,
    name: &str,
    tz: chrono_tz::Tz,
) -> HttpResponse {
    let (tx, rx) = mpsc::channel(BUFFERED_ROWS);
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        let ok = match store.export_rows(&scope, &source, &tx).await {
            Ok(rows) => {
                tracing::info!(rows, "csv export finished");
                true
            }
            Err(e) => {
                tracing::warn!(error = ?e, "csv export failed part-way");
                false
            }
        };
        drop(tx);
        let _ = done_tx.send(ok);
    });
    let state = Streaming {
        rows: rx,
        done: Some(done_rx),
        started: false,
        tz,
    };
    let body = stream::unfold(state, |mut state| async move {
        if !state.started {
            state.started = true;
            let mut head = String::from('\u{feff}');
            head.push_str(&csv_line(&HEADERS));
            return Some((Ok(web::Bytes::from(head)), state));
        }
        match state.rows.recv().await {
            Some(row) => {
                let mut chunk = csv_line(&row_fields(&row, state.tz));
                // Whatever else is already waiting goes in the same chunk.
                while chunk.len() < 64 * 1024 {
                    match state.rows.try_recv() {
                        Ok(row) => chunk.push_str(&csv_line(&row_fields(&row, state.tz))),
                        Err(_) => break,
                    }
                }
                Some((Ok(web::Bytes::from(chunk)), state))
            }
            None => {
                let done = state.done.take()?;
                match done.await {
                    Ok(true) => None,
                    // A failure part-way must not look like a complete file:
                    // the response is aborted instead of ending cleanly.
                    _ => Some((Err(std::io::Error::other("export failed part-way")), state)),
                }
            }
        }
    });
    let stamp = Utc::now().with_timezone(&tz).format("%Y%m%d-%H%M");
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}-{stamp}.csv\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Compression would buffer the stream.
        .insert_header(header::ContentEncoding::Identity)
        .streaming(body)
}

/// `GET /mensajes/exportar?<filters>`: the table under its filters, every page.
pub async fn mensajes(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let raw = RawQuery::from_request(&req);
    let (filter, _) = parse_filter(&raw, state.timezone);
    Ok(csv_response(
        state.store.clone(),
        user.scope.clone(),
        ExportSource::Filter(filter),
        "conversaciones",
        state.timezone,
    ))
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
    fn separators_quotes_and_newlines_are_quoted() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("dijo \"hola\""), "\"dijo \"\"hola\"\"\"");
        assert_eq!(csv_field("uno\ndos"), "\"uno\ndos\"");
        assert_eq!(csv_line(&["1", "x,y"]), "1,\"x,y\"\r\n");
    }
}
