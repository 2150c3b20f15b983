//! HTTP routes, one module per area of the console.

pub mod acciones;
pub mod admin;
pub mod api;
pub mod auditoria;
pub mod bulk;
pub mod campanas;
pub mod categorias;
pub mod cuenta;
pub mod export;
pub mod login;
pub mod mensajes;
pub mod pages;
pub mod reglas;
pub mod reportes;
pub mod usuarios;

use actix_web::web;

/// The route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(pages::home))
        .route("/healthz", web::get().to(pages::healthz))
        .route("/readyz", web::get().to(pages::readyz))
        .route("/metrics", web::get().to(pages::metrics))
        .route("/login", web::get().to(login::show))
        .route("/login", web::post().to(login::submit))
        .route("/logout", web::post().to(login::logout))
        .route("/mensajes", web::get().to(mensajes::list))
        .route("/mensajes/eventos", web::get().to(mensajes::events))
        .route("/mensajes/cambios", web::get().to(mensajes::changes))
        // Before `/mensajes/{folio}`, which would take these names for folios.
        .route("/mensajes/exportar", web::get().to(export::mensajes))
        .route("/mensajes/lote", web::get().to(bulk::show))
        .route("/mensajes/lote", web::post().to(bulk::submit))
        .route(
            "/mensajes/lote/subcategorias",
            web::get().to(bulk::subcategories),
        )
        .route("/mensajes/lote/{id}", web::get().to(bulk::job))
        .route("/reportes", web::get().to(reportes::show))
        .route("/reportes/exportar", web::get().to(reportes::export))
        .route("/cancelacion-automatica", web::get().to(reglas::list))
        .route("/cancelacion-automatica", web::post().to(reglas::create))
        .route(
            "/cancelacion-automatica/{id}/estado",
            web::post().to(reglas::toggle),
        )
        .route(
            "/cancelacion-automatica/{id}/eliminar",
            web::post().to(reglas::delete),
        )
        .route(
            "/cancelacion-automatica/{id}",
            web::get().to(reglas::edit_form),
        )
        .route(
            "/cancelacion-automatica/{id}",
            web::post().to(reglas::update),
        )
        .route("/mensajes/{folio}", web::get().to(mensajes::detail))
        .route("/mensajes/{folio}/acciones", web::get().to(acciones::show))
        .route(
            "/mensajes/{folio}/acciones",
            web::post().to(acciones::submit),
        )
        .route(
            "/mensajes/{folio}/subcategorias",
            web::get().to(acciones::subcategories),
        )
        // Mi cuenta, and closing a user's sessions (see `auth::session`).
        .route("/cuenta", web::get().to(cuenta::show))
        .route(
            "/cuenta/contrasena",
            web::post().to(cuenta::change_password),
        )
        .route(
            "/cuenta/sesiones/cerrar",
            web::post().to(cuenta::close_other_sessions),
        )
        .route(
            "/usuarios/{id}/sesiones/cerrar",
            web::post().to(usuarios::close_sessions),
        )
        .configure(admin::configure)
        .service(api::scope());
}
