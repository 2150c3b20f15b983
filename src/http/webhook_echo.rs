//! `relevo webhook-echo`: a small receiver that prints each delivery it
//! gets and whether its signature holds, so a newcomer (or an integrator
//! checking their setup) can watch an administrator's decision leave
//! Relevo. It answers 200 to a verified delivery, 401 to one whose
//! signature or timestamp does not hold, and 400 to anything else.

use std::io::Write as _;
use std::net::SocketAddr;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;

use crate::domain::webhook::verify;

/// How far a delivery's timestamp may be from the receiver's clock: older
/// signed requests are refused, so a captured one cannot be replayed later.
pub const TOLERANCE_SECONDS: i64 = 300;
/// The largest body read.
const MAX_BODY: usize = 1024 * 1024;

/// What the receiver checks and prints.
struct Echo {
    secret: Option<String>,
}

/// One line about a delivery: its event, conversation and actor.
fn describe(event: &Value) -> String {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let conversation = &event["conversation"];
    let mut line = format!(
        "evento {} · {} · conversación {} · {}",
        event["id"],
        text(&event["type"]).unwrap_or_default(),
        conversation["folio"],
        text(&conversation["status"]).unwrap_or_default(),
    );
    let kind = match event["actor"]["kind"].as_str() {
        Some("router") => Some("el enrutador"),
        Some("rule") => Some("una regla automática"),
        Some("bulk_job") => Some("una acción en lote"),
        Some("customer") => Some("el cliente"),
        Some("bot") => Some("el bot"),
        Some("system") => Some("Relevo"),
        _ => None,
    };
    if let Some(actor) = text(&event["actor"]["name"]).or(kind.map(str::to_owned)) {
        line.push_str(&format!(" · por {actor}"));
    }
    if let Some(category) = text(&event["closure"]["category"]) {
        line.push_str(&format!(" · {category}"));
        if let Some(sub) = text(&event["closure"]["subcategory"]) {
            line.push_str(&format!(" / {sub}"));
        }
    }
    line
}

async fn receive(req: HttpRequest, body: web::Bytes, echo: web::Data<Echo>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let now = chrono::Utc::now();
    let stamp = now.format("%H:%M:%S");
    let timestamp = header("X-Relevo-Timestamp").and_then(|t| t.parse::<i64>().ok());
    let signature = header("X-Relevo-Signature");
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        println!(
            "{stamp} ✗ {} {}: el cuerpo no es JSON",
            req.method(),
            req.path()
        );
        return HttpResponse::BadRequest().finish();
    };
    let summary = describe(&event);
    let verdict = match (&echo.secret, timestamp, signature) {
        (None, _, _) => Ok("sin verificar (falta --secret)"),
        (Some(_), None, _) | (Some(_), _, None) => {
            Err("sin X-Relevo-Timestamp o X-Relevo-Signature")
        }
        (Some(_), Some(ts), _) if (now.timestamp() - ts).abs() > TOLERANCE_SECONDS => {
            Err("la marca de tiempo está a más de 5 minutos del reloj")
        }
        (Some(secret), Some(ts), Some(sig)) if verify(secret, ts, &body, &sig) => {
            Ok("firma válida")
        }
        (Some(_), _, _) => Err("FIRMA INVÁLIDA"),
    };
    let answer = match verdict {
        Ok(verdict) => {
            println!("{stamp} ✓ {summary} ({verdict})");
            HttpResponse::Ok().json(serde_json::json!({ "received": event["id"] }))
        }
        Err(why) => {
            println!("{stamp} ✗ {summary}: {why}");
            HttpResponse::Unauthorized().finish()
        }
    };
    let _ = std::io::stdout().flush();
    answer
}

/// Serves the receiver on `bind` until Ctrl-C.
pub async fn run(bind: SocketAddr, secret: Option<String>) -> anyhow::Result<()> {
    let echo = web::Data::new(Echo { secret });
    let verified = echo.secret.is_some();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(echo.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .default_service(web::post().to(receive))
    })
    .workers(1)
    .bind(bind)?;
    println!(
        "Esperando entregas en http://{bind}/ ({})",
        if verified {
            "se verifica la firma de cada una"
        } else {
            "sin --secret: no se verifica la firma"
        }
    );
    let _ = std::io::stdout().flush();
    server.run().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_is_told_with_its_folio_actor_and_closure() {
        let event = serde_json::json!({
            "id": 42, "type": "cancelled",
            "conversation": { "folio": 7, "status": "cancelled" },
            "actor": { "kind": "administrator", "name": "Ana Pérez" },
            "closure": { "category": "Sin respuesta", "subcategory": null },
        });
        assert_eq!(
            describe(&event),
            "evento 42 · cancelled · conversación 7 · cancelled · por Ana Pérez · Sin respuesta"
        );
    }
}
