//! HTTP routes, one module per area of the console.

pub mod account;
pub mod actions;
pub mod admin;
pub mod api;
pub mod audit_log;
pub mod auth;
pub mod auto_cancel;
pub mod bulk;
pub mod campaigns;
pub mod categories;
pub mod choices;
pub mod conversations;
pub mod error;
pub mod export;
pub mod live;
pub mod login;
pub mod middleware;
pub mod pages;
pub mod reports;
pub mod transcript;
pub mod users;
pub mod webhook_echo;
pub mod webhooks;

use actix_web::web;

/// The route table.
///
/// The API's scope comes first. actix tries routes in the order they are
/// registered, and each dynamic path (`/mensajes/{folio}`…) is a regular
/// expression run against the request's path. Behind the console's routes,
/// every customer message paid for some forty of those matches, about 3 %
/// of the server's CPU under ingest (`perf`, 4 December). The scope's
/// static prefix is one comparison for a console request.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(api::scope())
        .route("/", web::get().to(pages::home))
        .route("/healthz", web::get().to(pages::healthz))
        .route("/readyz", web::get().to(pages::readyz))
        .route("/metrics", web::get().to(pages::metrics))
        .route("/login", web::get().to(login::show))
        .route("/login", web::post().to(login::submit))
        .route("/logout", web::post().to(login::logout))
        .route("/mensajes", web::get().to(conversations::list))
        .route("/mensajes/eventos", web::get().to(conversations::events))
        .route("/mensajes/cambios", web::get().to(conversations::changes))
        // Before `/mensajes/{folio}`, which would take these names for folios.
        .route("/mensajes/exportar", web::get().to(export::conversations))
        .route("/mensajes/lote", web::get().to(bulk::show))
        .route("/mensajes/lote", web::post().to(bulk::submit))
        .route(
            "/mensajes/lote/subcategorias",
            web::get().to(bulk::subcategories),
        )
        .route("/mensajes/lote/{id}", web::get().to(bulk::job))
        .route("/reportes", web::get().to(reports::show))
        .route("/reportes/exportar", web::get().to(reports::export))
        .route("/cancelacion-automatica", web::get().to(auto_cancel::list))
        .route(
            "/cancelacion-automatica",
            web::post().to(auto_cancel::create),
        )
        .route(
            "/cancelacion-automatica/{id}/estado",
            web::post().to(auto_cancel::toggle),
        )
        .route(
            "/cancelacion-automatica/{id}/eliminar",
            web::post().to(auto_cancel::delete),
        )
        .route(
            "/cancelacion-automatica/{id}",
            web::get().to(auto_cancel::edit_form),
        )
        .route(
            "/cancelacion-automatica/{id}",
            web::post().to(auto_cancel::update),
        )
        .route("/mensajes/{folio}", web::get().to(conversations::detail))
        .route("/mensajes/{folio}/acciones", web::get().to(actions::show))
        .route(
            "/mensajes/{folio}/acciones",
            web::post().to(actions::submit),
        )
        .route(
            "/mensajes/{folio}/subcategorias",
            web::get().to(actions::subcategories),
        )
        // Mi cuenta, and closing a user's sessions (see `auth::session`).
        .route("/cuenta", web::get().to(account::show))
        .route(
            "/cuenta/contrasena",
            web::post().to(account::change_password),
        )
        .route(
            "/cuenta/sesiones/cerrar",
            web::post().to(account::close_other_sessions),
        )
        .route(
            "/usuarios/{id}/sesiones/cerrar",
            web::post().to(users::close_sessions),
        )
        .configure(configure_admin);
}

/// The administration routes (Campañas, Usuarios, Categorías, Auditoría),
/// here rather than in `admin`: those pages use `admin`'s helpers, so
/// `admin` must not name them.
/// Literal segments are registered before the `{id}` patterns they overlap.
fn configure_admin(cfg: &mut actix_web::web::ServiceConfig) {
    use actix_web::web::{get, post};
    cfg.route("/campanas", get().to(campaigns::list))
        .route("/campanas", post().to(campaigns::create))
        .route("/campanas/nueva", get().to(campaigns::new_form))
        .route("/campanas/{id}", get().to(campaigns::show))
        .route("/campanas/{id}", post().to(campaigns::update))
        .route("/campanas/{id}/horario", get().to(campaigns::schedule))
        .route(
            "/campanas/{id}/horario",
            post().to(campaigns::save_schedule),
        )
        .route("/campanas/{id}/canales", get().to(campaigns::channels))
        .route(
            "/campanas/{id}/canales",
            post().to(campaigns::create_channel),
        )
        .route(
            "/campanas/{id}/canales/{canal}/{accion}",
            post().to(campaigns::channel_action),
        )
        .route("/campanas/{id}/tokens", post().to(campaigns::create_token))
        .route(
            "/campanas/{id}/tokens/{token}/revocar",
            post().to(campaigns::revoke_token),
        )
        .route("/campanas/{id}/miembros", get().to(campaigns::members))
        .route("/campanas/{id}/miembros", post().to(campaigns::add_member))
        .route(
            "/campanas/{id}/miembros/{usuario}/quitar",
            post().to(campaigns::remove_member),
        )
        .route("/campanas/{id}/webhooks", get().to(webhooks::list))
        .route("/campanas/{id}/webhooks", post().to(webhooks::create))
        .route(
            "/campanas/{id}/webhooks/{webhook}",
            get().to(webhooks::show),
        )
        .route(
            "/campanas/{id}/webhooks/{webhook}",
            post().to(webhooks::update),
        )
        .route(
            "/campanas/{id}/webhooks/{webhook}/secreto",
            post().to(webhooks::rotate_secret),
        )
        .route(
            "/campanas/{id}/webhooks/{webhook}/eliminar",
            post().to(webhooks::delete),
        )
        .route("/campanas/{id}/{accion}", post().to(campaigns::set_active))
        .route("/usuarios", get().to(users::list))
        .route("/usuarios", post().to(users::create))
        .route("/usuarios/nuevo", get().to(users::new_form))
        .route("/usuarios/{id}", get().to(users::show))
        .route("/usuarios/{id}", post().to(users::update))
        .route("/usuarios/{id}/contrasena", post().to(users::set_password))
        .route("/usuarios/{id}/{accion}", post().to(users::set_active))
        .route("/categorias", get().to(categories::show))
        .route("/categorias/{campana}", post().to(categories::create))
        .route(
            "/categorias/{campana}/categoria/{categoria}/subcategorias",
            post().to(categories::create_sub),
        )
        .route(
            "/categorias/{campana}/{tipo}/{id}",
            post().to(categories::rename),
        )
        .route(
            "/categorias/{campana}/{tipo}/{id}/{accion}",
            post().to(categories::act),
        )
        .route("/auditoria", get().to(audit_log::list));
}
