//! HTTP routes, one module per area of the console.

pub mod acciones;
pub mod admin;
pub mod api;
pub mod auditoria;
pub mod campanas;
pub mod categorias;
pub mod login;
pub mod mensajes;
pub mod pages;
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
        .configure(admin::configure)
        .service(api::scope());
}
