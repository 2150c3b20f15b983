//! Every route that takes input, driven with generated bad values on both
//! backends (issue 19, item 10).
//!
//! [`ROUTES`] lists every route of the route table with its parameters
//! (path segments, query fields, form fields, JSON fields) and what each
//! holds. `the_fuzz_list_names_exactly_the_registered_routes` reads
//! `src/http/*.rs` and fails when a route is registered without being
//! listed here, or listed without being registered.
//!
//! For each parameter of each route the fuzzer sends the route's valid
//! request with that one parameter replaced by each value of a fixed list
//! (see [`bad_values`]): empty, blank, 10 KB, control characters, NUL,
//! invalid UTF-8 percent-encodings, malformed escapes, SQL and HTML
//! metacharacters, wrong types, negative, zero and huge numbers, impossible
//! dates, ids and folios of the campaigns outside the Administrador's scope,
//! and one string from a seeded generator. Per route it also sends the
//! request without or with a wrong CSRF token, with every field repeated,
//! with a body over the limit, with a JSON body instead of a form, with
//! junk in the query string, and without a session. API calls carry valid
//! tokens (and missing, wrong or the other kind of token) with malformed
//! JSON, wrong types, huge numbers, nested junk and over-long strings.
//! Console requests go as the Administrador and as the Super
//! Administrador, about a quarter of them as htmx requests (CSRF token in
//! the header). Everything is deterministic: the values come from a
//! seeded generator keyed by route and parameter.
//!
//! Every answer is checked ([`judge`]): never a 5xx nor a dropped
//! connection; a console error is a Spanish HTML page (the error fragment
//! for htmx); an API answer is JSON and its errors `{"error", "message"}`;
//! no console answer echoes markup unescaped; the Administrador never gets
//! a Super Administrador page nor sees the name of a campaign outside their
//! scope. Around the Administrador's and the API's fuzzing, the rows of
//! every table that belongs to the campaigns outside the Administrador's
//! scope, and of the tables they may not touch at all, are compared before
//! and after ([`snapshot`]): they must not change.
//!
//! The run is bounded (about 5 600 requests per backend, three concurrent
//! sessions; the costly routes and each role's secondary routes are
//! sampled). `FUZZ_TRACE=1` prints every request with its status. The
//! named tests after the fuzzer keep the defects it found.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, SUPER_EMAIL, SUPER_PASSWORD, TestApp, csrf_in,
    field_value, first_option, spawn_app, spawn_app_configured,
};
use relevo::db::Store;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use uuid::Uuid;

on_both_backends!(
    bad_values_in_every_parameter_never_answer_5xx_nor_change_anything_outside_scope,
    a_return_path_that_cannot_be_a_header_falls_back_to_the_list_after_the_cancellation,
    days_outside_the_years_1_to_9999_are_refused_as_invalid_instead_of_failing,
    a_nul_character_in_a_comment_or_a_rule_text_is_refused_next_to_its_field,
    a_nul_character_in_an_e_mail_is_refused_and_never_fails_a_login,
    a_nul_character_in_a_search_or_a_folio_is_ignored_instead_of_failing,
);

// ---------------------------------------------------------------------------
// The routes and their parameters
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

/// Who may use a route, and how it authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Area {
    /// No session needed.
    Public,
    /// `POST /login`: a session with a CSRF token, no account.
    Login,
    /// The console, both administrator roles.
    Console,
    /// The console, Super Administrador only.
    SuperOnly,
    /// `/api/v1` with the channel's token.
    ChannelApi,
    /// `/api/v1` with an integration token.
    IntegrationApi,
}

/// How a route is driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Note {
    Plain,
    /// Server-sent events: only the status and the type are read.
    Stream,
    /// Ends the session it is sent with (or the user's others): sent alone,
    /// after the others, signing in again when needed.
    EndsSessions,
    /// Slow by design (Argon2, a CSV of every conversation): a sample of
    /// its cases is sent.
    Costly,
}

/// Where a parameter travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    Path,
    Query,
    Form,
    Json,
}

/// What a parameter holds: its valid value and the bad values of its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum K {
    /// A conversation folio in scope (a fresh open one per request).
    Folio,
    /// The current version of the request's conversation.
    Version,
    /// A conversation id in scope.
    Conversation,
    /// A campaign in the Administrador's scope (Ventas Hogar).
    Campaign,
    /// The campaign the Super Administrador's campaign pages act on.
    SuperCampaign,
    /// An active closure category of Ventas Hogar, and one of its sub-categories.
    Category,
    Subcategory,
    /// An agent of Ventas Hogar.
    Agent,
    /// The user the Super Administrador's user pages act on.
    User,
    /// A member of [`K::SuperCampaign`].
    Member,
    /// An automatic-cancellation rule of Ventas Hogar.
    Rule,
    /// A bulk job of the requesting user.
    Job,
    /// A channel of [`K::SuperCampaign`].
    Channel,
    /// An integration token of [`K::SuperCampaign`].
    Token,
    /// A webhook of [`K::SuperCampaign`].
    Webhook,
    /// The API's channel (whose token the channel calls carry).
    ApiChannel,
    /// A conversation of Ventas Hogar with an agent (API calls).
    ApiConversation,
    /// A conversation of Ventas Hogar in ICR (a hand-off).
    IcrConversation,
    /// The agent of the request's API conversation.
    ApiAgent,
    /// An outbox item id.
    OutboxItem,
    /// Free text, valid as given.
    Text(&'static str),
    /// A name, unique per request.
    Name,
    /// An e-mail address, unique per request (or one no account has, at login).
    Email,
    /// A password: the given one.
    Password(&'static str),
    /// A number, valid as given.
    Number(&'static str),
    /// A `YYYY-MM-DD` day.
    Date,
    /// A Mensajes page position (`<micros>.<folio>`).
    MsgCursor,
    /// A transcript page position (`<micros>.<message id>`).
    TranscriptCursor,
    /// An administration list position.
    PageCursor,
    /// One of these words (the first is the valid value).
    Choice(&'static [&'static str]),
    /// An IANA time zone.
    Zone,
    /// An `HH:MM` time.
    Time(&'static str),
    /// A value unique per request (an API `message_id`).
    Unique,
    /// A customer's phone number.
    Phone,
    /// A JSON boolean.
    Bool,
    /// Sent as given and never fuzzed.
    Fixed(&'static str),
    /// A field whose only meaningful value is not sent (`confirmado=si`):
    /// it gets the generic bad values only.
    Junk,
}

#[derive(Clone, Copy, Debug)]
struct P {
    at: At,
    name: &'static str,
    kind: K,
    /// Left out of the valid request.
    optional: bool,
    /// Other fields set while this one is fuzzed (what makes it matter).
    with: &'static [(&'static str, &'static str)],
}

const fn p(name: &'static str, kind: K) -> P {
    P {
        at: At::Path,
        name,
        kind,
        optional: false,
        with: &[],
    }
}

const fn q(name: &'static str, kind: K) -> P {
    P {
        at: At::Query,
        ..p(name, kind)
    }
}

const fn qo(name: &'static str, kind: K) -> P {
    P {
        optional: true,
        ..q(name, kind)
    }
}

const fn f(name: &'static str, kind: K) -> P {
    P {
        at: At::Form,
        ..p(name, kind)
    }
}

const fn fo(name: &'static str, kind: K) -> P {
    P {
        optional: true,
        ..f(name, kind)
    }
}

const fn j(name: &'static str, kind: K) -> P {
    P {
        at: At::Json,
        ..p(name, kind)
    }
}

const fn jo(name: &'static str, kind: K) -> P {
    P {
        optional: true,
        ..j(name, kind)
    }
}

impl P {
    const fn with(self, with: &'static [(&'static str, &'static str)]) -> P {
        P { with, ..self }
    }

    fn fuzzed(&self) -> bool {
        !matches!(self.kind, K::Fixed(_))
    }
}

#[derive(Clone, Copy, Debug)]
struct Route {
    method: Method,
    /// As registered (with `/api/v1` for the API).
    pattern: &'static str,
    area: Area,
    note: Note,
    params: &'static [P],
}

const fn get(pattern: &'static str, area: Area, params: &'static [P]) -> Route {
    Route {
        method: Method::Get,
        pattern,
        area,
        note: Note::Plain,
        params,
    }
}

const fn post(pattern: &'static str, area: Area, params: &'static [P]) -> Route {
    Route {
        method: Method::Post,
        ..get(pattern, area, params)
    }
}

impl Route {
    const fn note(self, note: Note) -> Route {
        Route { note, ..self }
    }

    fn is_api(&self) -> bool {
        matches!(self.area, Area::ChannelApi | Area::IntegrationApi)
    }

    fn is_console(&self) -> bool {
        matches!(self.area, Area::Console | Area::SuperOnly)
    }
}

use Area::{ChannelApi, Console, IntegrationApi, Login, Public, SuperOnly};

const STATUSES: &[&str] = &[
    "abiertas",
    "todas",
    "icr",
    "assigned",
    "in_progress",
    "out_of_hours",
    "agents_offline",
    "resolved",
    "cancelled",
];
const OPEN_STATUSES: &[&str] = &[
    "icr",
    "assigned",
    "in_progress",
    "out_of_hours",
    "agents_offline",
    "resolved",
];
const CHANNELS: &[&str] = &["whatsapp", "messenger", "telegram", "instagram", "web"];
const ACTIONS: &[&str] = &["cancelar", "reasignar"];
const MEASURES: &[&str] = &["no_customer_message", "in_status"];
const ONE: &[&str] = &["1", "0"];
const ROLES: &[&str] = &["admin", "agent", "super_admin"];
const ACTIVE_FILTER: &[&str] = &["activas", "inactivas"];
const USER_STATE: &[&str] = &["activos", "inactivos"];
const ACTIVATION: &[&str] = &["reactivar", "desactivar"];
const CHANNEL_ACTIONS: &[&str] = &["reactivar", "desactivar", "rotar"];
const ITEM_KINDS: &[&str] = &["categoria", "subcategoria"];
const ITEM_ACTIONS: &[&str] = &["bajar", "subir", "desactivar", "reactivar"];
const AUDIT_OBJECTS: &[&str] = &[
    "user",
    "campaign",
    "channel",
    "integration_token",
    "category",
    "subcategory",
    "bulk_job",
    "auto_cancel_rule",
];
const DAY_MODES: &[&str] = &["horario", "cerrado", "24h"];

/// The Mensajes filters when they only matter for "all that match".
const ALL: &[(&str, &str)] = &[("todas", "1")];
const REASSIGN: &[(&str, &str)] = &[("accion", "reasignar")];
/// A rule form that saves (the others preview: nothing accumulates).
const SAVE: &[(&str, &str)] = &[("vista_previa", "")];
const WITH_NUDGE: &[(&str, &str)] = &[("aviso", "Seguimos aquí, ¿te ayudamos?")];
const SAVE_WITH_LEAD: &[(&str, &str)] = &[("aviso_minutos", "60"), ("vista_previa", "")];

const RULE_FORM: [P; 11] = [
    f("campana", K::Campaign),
    f("nombre", K::Name).with(SAVE),
    f("estatus", K::Choice(OPEN_STATUSES)),
    f("medida", K::Choice(MEASURES)),
    f("minutos", K::Number("43200")),
    f("categoria", K::Category),
    fo("subcategoria", K::Subcategory),
    fo("comentario", K::Text("Regla de prueba")).with(SAVE),
    fo("aviso", K::Text("Seguimos aquí")).with(SAVE_WITH_LEAD),
    fo("aviso_minutos", K::Number("60")).with(WITH_NUDGE),
    f("vista_previa", K::Choice(&["1", ""])),
];

/// Every route of the route table (`src/http/mod.rs`, `http::configure_admin`,
/// `api::scope`), with its parameters.
static ROUTES: &[Route] = &[
    // Operations and sign-in.
    get("/", Public, &[]),
    get("/healthz", Public, &[]),
    get("/readyz", Public, &[]),
    get("/api/v1/openapi.json", Public, &[]),
    get("/metrics", Public, &[]),
    get("/login", Public, &[qo("salida", K::Text("1"))]),
    post(
        "/login",
        Login,
        &[
            f("email", K::Email),
            f("password", K::Password("una-clave-cualquiera")),
        ],
    ),
    post("/logout", Console, &[]).note(Note::EndsSessions),
    // Mensajes.
    get(
        "/mensajes",
        Console,
        &[
            qo("estatus", K::Choice(STATUSES)),
            qo("campana", K::Campaign),
            qo("agente", K::Agent),
            qo("canal", K::Choice(CHANNELS)),
            qo("desde", K::Date),
            qo("hasta", K::Date),
            qo("q", K::Text("Ana")),
            qo("despues", K::MsgCursor),
            qo("antes", K::MsgCursor),
        ],
    ),
    get("/mensajes/eventos", Console, &[]).note(Note::Stream),
    get(
        "/mensajes/cambios",
        Console,
        &[
            qo("estatus", K::Choice(STATUSES)),
            qo("campana", K::Campaign),
            qo("agente", K::Agent),
            qo("canal", K::Choice(CHANNELS)),
            qo("desde", K::Date),
            qo("hasta", K::Date),
            qo("q", K::Text("Ana")),
            q("id", K::Conversation),
        ],
    ),
    get(
        "/mensajes/exportar",
        Console,
        &[
            qo("estatus", K::Choice(STATUSES)),
            qo("campana", K::Campaign),
            qo("agente", K::Agent),
            qo("canal", K::Choice(CHANNELS)),
            qo("desde", K::Date),
            qo("hasta", K::Date),
            qo("q", K::Text("Ana")),
        ],
    )
    .note(Note::Costly),
    get(
        "/mensajes/lote",
        Console,
        &[
            q("folio", K::Folio),
            qo("todas", K::Choice(ONE)),
            qo("estatus", K::Choice(STATUSES)).with(ALL),
            qo("campana", K::Campaign).with(ALL),
            qo("agente", K::Agent).with(ALL),
            qo("canal", K::Choice(CHANNELS)).with(ALL),
            qo("desde", K::Date).with(ALL),
            qo("hasta", K::Date).with(ALL),
            qo("q", K::Text("Ana")).with(ALL),
            qo("accion", K::Choice(ACTIONS)),
            qo("categoria", K::Category),
            qo("comentario", K::Text("Lote")),
        ],
    ),
    post(
        "/mensajes/lote",
        Console,
        &[
            f("folio", K::Folio),
            f("accion", K::Choice(ACTIONS)),
            f("categoria", K::Category),
            fo("subcategoria", K::Subcategory),
            fo("agente", K::Agent).with(REASSIGN),
            fo("comentario", K::Text("Cierre en lote")),
            fo("todas", K::Choice(ONE)),
            fo("esperadas", K::Number("3")).with(ALL),
            fo("estatus", K::Choice(STATUSES)).with(ALL),
            fo("campana", K::Campaign).with(ALL),
            fo("agente_filtro", K::Agent).with(ALL),
            fo("canal", K::Choice(CHANNELS)).with(ALL),
            fo("desde", K::Date).with(ALL),
            fo("hasta", K::Date).with(ALL),
            fo("q", K::Text("Ana")).with(ALL),
        ],
    ),
    get(
        "/mensajes/lote/subcategorias",
        Console,
        &[q("categoria", K::Category)],
    ),
    get("/mensajes/lote/{id}", Console, &[p("id", K::Job)]),
    // Reportes and automatic cancellation.
    get(
        "/reportes",
        Console,
        &[
            qo("desde", K::Date),
            qo("hasta", K::Date),
            qo("campana", K::Campaign),
        ],
    ),
    get(
        "/reportes/exportar",
        Console,
        &[
            qo("desde", K::Date),
            qo("hasta", K::Date),
            qo("campana", K::Campaign),
        ],
    )
    .note(Note::Costly),
    get("/cancelacion-automatica", Console, &[]),
    post("/cancelacion-automatica", Console, &RULE_FORM),
    post(
        "/cancelacion-automatica/{id}/estado",
        Console,
        &[p("id", K::Rule), fo("activa", K::Choice(ONE))],
    ),
    post(
        "/cancelacion-automatica/{id}/eliminar",
        Console,
        &[p("id", K::Rule), fo("confirmado", K::Junk)],
    ),
    get("/cancelacion-automatica/{id}", Console, &[p("id", K::Rule)]),
    post(
        "/cancelacion-automatica/{id}",
        Console,
        &[
            p("id", K::Rule),
            f("nombre", K::Name).with(SAVE),
            f("estatus", K::Choice(OPEN_STATUSES)),
            f("medida", K::Choice(MEASURES)),
            f("minutos", K::Number("43200")),
            f("categoria", K::Category),
            fo("subcategoria", K::Subcategory),
            fo("comentario", K::Text("Regla de prueba")).with(SAVE),
            fo("aviso", K::Text("Seguimos aquí")).with(SAVE_WITH_LEAD),
            fo("aviso_minutos", K::Number("60")).with(WITH_NUDGE),
            f("vista_previa", K::Choice(&["1", ""])),
            // Ignored (a rule keeps its campaign), but sent by the form.
            fo("campana", K::Campaign),
        ],
    ),
    // One conversation.
    get(
        "/mensajes/{folio}",
        Console,
        &[
            p("folio", K::Folio),
            qo("antes", K::TranscriptCursor),
            qo("despues", K::TranscriptCursor),
        ],
    ),
    get(
        "/mensajes/{folio}/acciones",
        Console,
        &[
            p("folio", K::Folio),
            qo("volver", K::Text("/mensajes?estatus=todas")),
            qo("categoria", K::Category),
        ],
    ),
    post(
        "/mensajes/{folio}/acciones",
        Console,
        &[
            p("folio", K::Folio),
            f("accion", K::Choice(ACTIONS)),
            f("categoria", K::Category),
            fo("subcategoria", K::Subcategory),
            fo("comentario", K::Text("Cerrada por prueba")),
            fo("agente", K::Agent).with(REASSIGN),
            f("version", K::Version),
            fo("volver", K::Text("/mensajes?estatus=todas")),
        ],
    ),
    get(
        "/mensajes/{folio}/subcategorias",
        Console,
        &[p("folio", K::Folio), q("categoria", K::Category)],
    ),
    // Mi cuenta and sessions.
    get("/cuenta", Console, &[]),
    post(
        "/cuenta/contrasena",
        Console,
        &[
            f("actual", K::Password("(la del usuario)")),
            f("contrasena", K::Password("Una-clave-nueva-2026")),
            // Never the same as `contrasena`: the fuzzer never changes
            // the password it signs in with.
            f("confirmacion", K::Password("Otra-clave-distinta-2026")),
        ],
    )
    .note(Note::EndsSessions),
    post("/cuenta/sesiones/cerrar", Console, &[]).note(Note::EndsSessions),
    post(
        "/usuarios/{id}/sesiones/cerrar",
        SuperOnly,
        &[p("id", K::User)],
    ),
    // Campañas.
    get(
        "/campanas",
        SuperOnly,
        &[
            qo("estado", K::Choice(ACTIVE_FILTER)),
            qo("despues", K::PageCursor),
            qo("antes", K::PageCursor),
        ],
    ),
    post(
        "/campanas",
        SuperOnly,
        &[f("nombre", K::Name), f("zona", K::Zone)],
    ),
    get("/campanas/nueva", SuperOnly, &[]),
    get("/campanas/{id}", SuperOnly, &[p("id", K::SuperCampaign)]),
    post(
        "/campanas/{id}",
        SuperOnly,
        &[
            p("id", K::SuperCampaign),
            f("nombre", K::Name),
            f("zona", K::Zone),
            f("rezagada_minutos", K::Number("45")),
        ],
    ),
    get(
        "/campanas/{id}/horario",
        SuperOnly,
        &[p("id", K::SuperCampaign)],
    ),
    post(
        "/campanas/{id}/horario",
        SuperOnly,
        // Every day goes through the same parser: Monday, Thursday and
        // Sunday are fuzzed, the others keep their hours.
        &[
            p("id", K::SuperCampaign),
            f("modo-0", K::Choice(DAY_MODES)),
            f("abre-0", K::Time("08:00")),
            f("cierra-0", K::Time("20:00")),
            f("modo-1", K::Fixed("horario")),
            f("abre-1", K::Fixed("08:00")),
            f("cierra-1", K::Fixed("20:00")),
            f("modo-2", K::Fixed("24h")),
            f("modo-3", K::Fixed("horario")),
            f("abre-3", K::Time("22:00")),
            f("cierra-3", K::Time("02:00")),
            f("modo-4", K::Fixed("horario")),
            f("abre-4", K::Fixed("08:00")),
            f("cierra-4", K::Fixed("20:00")),
            f("modo-5", K::Fixed("cerrado")),
            f("modo-6", K::Choice(DAY_MODES)),
            f("abre-6", K::Time("09:00")),
            f("cierra-6", K::Time("14:00")),
        ],
    ),
    get(
        "/campanas/{id}/canales",
        SuperOnly,
        &[
            p("id", K::SuperCampaign),
            qo("canales_despues", K::PageCursor),
            qo("canales_antes", K::PageCursor),
            qo("tokens_despues", K::PageCursor),
            qo("tokens_antes", K::PageCursor),
        ],
    ),
    post(
        "/campanas/{id}/canales",
        SuperOnly,
        &[
            p("id", K::SuperCampaign),
            f("tipo", K::Choice(CHANNELS)),
            f("nombre", K::Name),
        ],
    ),
    post(
        "/campanas/{id}/canales/{canal}/{accion}",
        SuperOnly,
        &[
            p("id", K::SuperCampaign),
            p("canal", K::Channel),
            p("accion", K::Choice(CHANNEL_ACTIONS)),
            fo("confirmado", K::Junk),
        ],
    ),
    post(
        "/campanas/{id}/tokens",
        SuperOnly,
        &[p("id", K::SuperCampaign), f("nombre", K::Name)],
    ),
    post(
        "/campanas/{id}/tokens/{token}/revocar",
        SuperOnly,
        &[
            p("id", K::SuperCampaign),
            p("token", K::Token),
            fo("confirmado", K::Junk),
        ],
    ),
    get(
        "/campanas/{id}/miembros",
        SuperOnly,
        &[
            p("id", K::SuperCampaign),
            qo("buscar", K::Text("a")),
            qo("buscar_despues", K::PageCursor),
            qo("buscar_antes", K::PageCursor),
            qo("despues", K::PageCursor),
            qo("antes", K::PageCursor),
        ],
    ),
    post(
        "/campanas/{id}/miembros",
        SuperOnly,
        &[
            p("id", K::SuperCampaign),
            f("usuario", K::User),
            fo("buscar", K::Text("a")),
        ],
    ),
    post(
        "/campanas/{id}/miembros/{usuario}/quitar",
        SuperOnly,
        &[
            p("id", K::SuperCampaign),
            p("usuario", K::Member),
            fo("confirmado", K::Junk),
        ],
    ),
    // A campaign's webhooks.
    get(
        "/campanas/{id}/webhooks",
        SuperOnly,
        &[p("id", K::SuperCampaign)],
    ),
    post(
        "/campanas/{id}/webhooks",
        SuperOnly,
        &[
            p("id", K::SuperCampaign),
            f("url", K::Text("http://127.0.0.1:9/fuzz")),
            f("tipos", K::Text("cancelled")),
        ],
    ),
    get(
        "/campanas/{id}/webhooks/{webhook}",
        SuperOnly,
        &[p("id", K::SuperCampaign), p("webhook", K::Webhook)],
    ),
    post(
        "/campanas/{id}/webhooks/{webhook}",
        SuperOnly,
        &[
            p("id", K::SuperCampaign),
            p("webhook", K::Webhook),
            f("url", K::Text("http://127.0.0.1:9/fuzz")),
            f("tipos", K::Text("cancelled")),
            fo("activo", K::Text("si")),
        ],
    ),
    post(
        "/campanas/{id}/webhooks/{webhook}/secreto",
        SuperOnly,
        &[
            p("id", K::SuperCampaign),
            p("webhook", K::Webhook),
            fo("confirmado", K::Junk),
        ],
    ),
    post(
        "/campanas/{id}/webhooks/{webhook}/eliminar",
        SuperOnly,
        &[
            p("id", K::SuperCampaign),
            p("webhook", K::Webhook),
            fo("confirmado", K::Junk),
        ],
    ),
    post(
        "/campanas/{id}/{accion}",
        SuperOnly,
        &[
            p("id", K::SuperCampaign),
            p("accion", K::Choice(ACTIVATION)),
            fo("confirmado", K::Junk),
        ],
    ),
    // Usuarios.
    get(
        "/usuarios",
        SuperOnly,
        &[
            qo("rol", K::Choice(ROLES)),
            qo("campana", K::Campaign),
            qo("estado", K::Choice(USER_STATE)),
            qo("despues", K::PageCursor),
            qo("antes", K::PageCursor),
        ],
    ),
    post(
        "/usuarios",
        SuperOnly,
        &[
            f("nombre", K::Name),
            f("correo", K::Email),
            f("rol", K::Choice(ROLES)),
            f("campanas", K::SuperCampaign),
            f("contrasena", K::Password("Clave-de-prueba-2026")),
            f("confirmacion", K::Password("Clave-de-prueba-2026")),
        ],
    )
    .note(Note::Costly),
    get("/usuarios/nuevo", SuperOnly, &[]),
    get("/usuarios/{id}", SuperOnly, &[p("id", K::User)]),
    post(
        "/usuarios/{id}",
        SuperOnly,
        &[
            p("id", K::User),
            f("nombre", K::Name),
            f("correo", K::Email),
            f("rol", K::Choice(ROLES)),
            fo("campanas", K::SuperCampaign),
        ],
    ),
    post(
        "/usuarios/{id}/contrasena",
        SuperOnly,
        &[
            p("id", K::User),
            f("contrasena", K::Password("Clave-de-prueba-2026")),
            f("confirmacion", K::Password("Clave-de-prueba-2026")),
        ],
    )
    .note(Note::Costly),
    post(
        "/usuarios/{id}/{accion}",
        SuperOnly,
        &[
            p("id", K::User),
            p("accion", K::Choice(ACTIVATION)),
            fo("confirmado", K::Junk),
        ],
    ),
    // Categorías.
    get(
        "/categorias",
        Console,
        &[
            qo("campana", K::Campaign),
            qo("despues", K::PageCursor),
            qo("antes", K::PageCursor),
        ],
    ),
    post(
        "/categorias/{campana}",
        Console,
        &[p("campana", K::Campaign), f("nombre", K::Name)],
    ),
    post(
        "/categorias/{campana}/categoria/{categoria}/subcategorias",
        Console,
        &[
            p("campana", K::Campaign),
            p("categoria", K::Category),
            f("nombre", K::Name),
        ],
    ),
    post(
        "/categorias/{campana}/{tipo}/{id}",
        Console,
        &[
            p("campana", K::Campaign),
            p("tipo", K::Choice(ITEM_KINDS)),
            p("id", K::Category),
            f("nombre", K::Name),
        ],
    ),
    post(
        "/categorias/{campana}/{tipo}/{id}/{accion}",
        Console,
        &[
            p("campana", K::Campaign),
            p("tipo", K::Choice(ITEM_KINDS)),
            p("id", K::Category),
            p("accion", K::Choice(ITEM_ACTIONS)),
            fo("confirmado", K::Junk),
        ],
    ),
    // Auditoría.
    get(
        "/auditoria",
        SuperOnly,
        &[
            qo("actor", K::User),
            qo("objeto", K::Choice(AUDIT_OBJECTS)),
            qo("campana", K::Campaign),
            qo("desde", K::Date),
            qo("hasta", K::Date),
            qo("despues", K::PageCursor),
            qo("antes", K::PageCursor),
        ],
    ),
    // The integration API.
    post(
        "/api/v1/channels/{channel_id}/messages",
        ChannelApi,
        &[
            p("channel_id", K::ApiChannel),
            j("message_id", K::Unique),
            j("from", K::Phone),
            jo("name", K::Text("Cliente de prueba")),
            j("text", K::Text("Hola, ¿me ayudan?")),
        ],
    ),
    get(
        "/api/v1/channels/{channel_id}/outbox",
        ChannelApi,
        &[
            p("channel_id", K::ApiChannel),
            qo("after", K::OutboxItem),
            qo("limit", K::Number("50")),
        ],
    ),
    post(
        "/api/v1/channels/{channel_id}/outbox/{id}/delivered",
        ChannelApi,
        &[p("channel_id", K::ApiChannel), p("id", K::OutboxItem)],
    ),
    // `wait` is left out: a valid one (" 5 ") only holds the answer open.
    get(
        "/api/v1/events",
        IntegrationApi,
        &[qo("after", K::Number("0")), qo("limit", K::Number("100"))],
    ),
    get(
        "/api/v1/conversations/{id}",
        IntegrationApi,
        &[p("id", K::ApiConversation)],
    ),
    post(
        "/api/v1/conversations/{id}/handoff",
        IntegrationApi,
        &[p("id", K::IcrConversation)],
    ),
    post(
        "/api/v1/conversations/{id}/agent-messages",
        IntegrationApi,
        &[
            p("id", K::ApiConversation),
            j("agent_id", K::ApiAgent),
            j("text", K::Text("Con gusto le ayudo")),
        ],
    ),
    post(
        "/api/v1/conversations/{id}/bot-messages",
        IntegrationApi,
        &[
            p("id", K::ApiConversation),
            j("message_id", K::Unique),
            j("text", K::Text("Elige una opción: 1) Pagos 2) Asesor")),
        ],
    ),
    post(
        "/api/v1/conversations/{id}/resolve",
        IntegrationApi,
        &[
            p("id", K::ApiConversation),
            j("agent_id", K::ApiAgent),
            jo("category_id", K::Category),
            jo("subcategory_id", K::Subcategory),
            jo("comment", K::Text("Resuelta por prueba")),
        ],
    ),
    post(
        "/api/v1/agents/{agent_id}/presence",
        IntegrationApi,
        &[p("agent_id", K::Agent), j("connected", K::Bool)],
    ),
];

// ---------------------------------------------------------------------------
// The route table as registered
// ---------------------------------------------------------------------------

/// `(METHOD, pattern)` of every `.route(` in `src/http/*.rs`, with the
/// prefix of the `web::scope` of its file. Fails on a registration style
/// it cannot read (so that a new one is taught here, not missed).
fn registered_routes() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
    let mut found = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("src/http")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.push(concat!(env!("CARGO_MANIFEST_DIR"), "/src/app/mod.rs").into());
    // The API registers its routes from one table, which it exposes.
    let api = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/api.rs");
    files.retain(|file| file.as_path() != std::path::Path::new(api));
    for (method, pattern) in relevo::http::api::route_list() {
        found.insert((
            method.to_string(),
            format!("{}{pattern}", relevo::http::api::PREFIX),
        ));
    }
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for unreadable in [
            "web::resource(",
            "#[get(",
            "#[post(",
            "#[put(",
            "#[delete(",
            "#[route(",
            "services![",
        ] {
            assert!(
                !text.contains(unreadable),
                "{}: `{unreadable}` registers routes this test cannot read; teach `registered_routes` about it",
                file.display()
            );
        }
        let mut scopes = Vec::new();
        for (at, marker) in text.match_indices("web::scope(\"") {
            let rest = &text[at + marker.len()..];
            scopes.push(&rest[..rest.find('"').expect("end of the scope literal")]);
        }
        assert!(
            scopes.len() <= 1,
            "{}: several scopes in one file; teach `registered_routes` about them",
            file.display()
        );
        let prefix = scopes.first().copied().unwrap_or("");
        let starts: Vec<usize> = text.match_indices(".route(").map(|(i, _)| i).collect();
        for (n, start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(text.len());
            let call = &text[start + ".route(".len()..end];
            let call = call.trim_start();
            let Some(literal) = call.strip_prefix('"') else {
                panic!(
                    "{}: a `.route(` whose pattern is not a literal; teach `registered_routes` about it",
                    file.display()
                );
            };
            let pattern = &literal[..literal.find('"').expect("end of the pattern")];
            let method = ["get()", "post()", "put()", "delete()", "patch()", "head()"]
                .iter()
                .filter_map(|m| call.find(m).map(|at| (at, m)))
                .min()
                .map(|(_, m)| m.trim_end_matches("()").to_uppercase())
                .unwrap_or_else(|| panic!("{}: no method for route {pattern}", file.display()));
            found.insert((method, format!("{prefix}{pattern}")));
        }
    }
    found
}

#[test]
fn the_fuzz_list_names_exactly_the_registered_routes() {
    let registered = registered_routes();
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| {
            let method = match r.method {
                Method::Get => "GET",
                Method::Post => "POST",
            };
            (method.to_owned(), r.pattern.to_owned())
        })
        .collect();
    assert_eq!(listed.len(), ROUTES.len(), "a route is listed twice");
    let missing: Vec<_> = registered.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "routes registered but not fuzzed (add them to ROUTES in tests/fuzz.rs with their parameters): {missing:?}"
    );
    let stale: Vec<_> = listed.difference(&registered).collect();
    assert!(
        stale.is_empty(),
        "routes listed but not registered: {stale:?}"
    );
    // Every `{segment}` of a pattern is a path parameter, and only those.
    for route in ROUTES {
        let segments: Vec<&str> = route
            .pattern
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let params: Vec<&str> = route
            .params
            .iter()
            .filter(|p| p.at == At::Path)
            .map(|p| p.name)
            .collect();
        assert_eq!(segments, params, "path parameters of {}", route.pattern);
        assert!(
            route.is_api() || route.params.iter().all(|p| p.at != At::Json),
            "{}: JSON fields outside the API",
            route.pattern
        );
    }
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    /// Seeded by `key`, so each route and parameter has its own stream and
    /// adding a route changes no other's values.
    fn keyed(key: &str) -> Rng {
        // FNV-1a.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in key.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Rng(hash ^ 0x5EED_F022_2026_0019)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True about `num` times in `den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }

    /// A string mixing letters, digits, markup and SQL punctuation,
    /// blanks, control characters, accents, emoji and bidi overrides.
    fn text(&mut self) -> String {
        const POOLS: &[&[char]] = &[
            &['a', 'Z', 'ñ', 'Á', 'ü', '7', '0'],
            &[
                '\'', '"', '<', '>', '&', ';', '%', '\\', '/', '=', '+', '#', '?', '.',
            ],
            &[' ', '\t', '\n', '\r', '\u{a0}', '\u{3000}'],
            &['\u{0}', '\u{1}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}'],
            &['😀', '👩', '\u{200d}', '\u{fffd}', '\u{feff}', '\u{10ffff}'],
            &['\u{202e}', '\u{200b}', '\u{301}', '\u{2028}'],
        ];
        let len = 1 + self.below(40);
        (0..len)
            .map(|_| {
                let pool = POOLS[self.below(POOLS.len())];
                pool[self.below(pool.len())]
            })
            .collect()
    }
}

/// A value as sent.
#[derive(Clone, Debug)]
enum V {
    /// Text: percent-encoded in a URL or form, a JSON string in JSON.
    Text(String),
    /// Bytes that are not UTF-8: percent-encoded, or raw inside a JSON string.
    Bytes(Vec<u8>),
    /// Sent exactly as written (a malformed escape, a JSON literal).
    Raw(String),
    /// Left out.
    Missing,
}

fn text(s: impl Into<String>) -> V {
    V::Text(s.into())
}

/// Ids and values of the demo data the fuzzer aims at.
struct Ids {
    inside_campaign: Uuid,
    outside_campaign: Uuid,
    category: Uuid,
    subcategory: Uuid,
    other_subcategory: Uuid,
    inactive_category: Uuid,
    outside_category: Uuid,
    outside_subcategory: Uuid,
    agent: Uuid,
    outside_agent: Uuid,
    admin: Uuid,
    target_user: Uuid,
    rule: Uuid,
    outside_rule: Uuid,
    admin_job: Uuid,
    super_job: Uuid,
    api_channel: Uuid,
    other_inside_channel: Uuid,
    outside_channel: Uuid,
    super_channel: Uuid,
    token: Uuid,
    outside_token: Uuid,
    webhook: Uuid,
    outside_webhook: Uuid,
    conversation: Uuid,
    outside_conversation: Uuid,
    outbox_item: Uuid,
    closed_folio: i64,
    outside_folio: i64,
    channel_token: String,
    integration_token: String,
    outside_integration_token: String,
}

/// A labelled text value.
fn t(label: &str, value: impl Into<String>) -> (String, V) {
    (label.to_owned(), V::Text(value.into()))
}

/// A labelled value sent exactly as written.
fn raw(label: &str, value: &str) -> (String, V) {
    (label.to_owned(), V::Raw(value.to_owned()))
}

/// Two ids nothing has.
fn unknown_ids() -> [(String, V); 2] {
    [
        t("nil id", Uuid::nil().to_string()),
        t(
            "unknown id",
            Uuid::from_u64_pair(0xdead, 0xbeef).to_string(),
        ),
    ]
}

/// The bad values of a URL, query or form parameter, labelled: the
/// generic ones and those of its kind.
fn bad_values(param: &P, ids: &Ids, rng: &mut Rng) -> Vec<(String, V)> {
    let mut values: Vec<(String, V)> = vec![
        t("empty", ""),
        t("blank", " \t\r\n "),
        t("10 KB", "a".repeat(10 * 1024)),
        t(
            "control characters",
            "a\u{0}b\u{1}c\r\nd\u{1b}[0m\u{7f}\u{202e}e",
        ),
        t("NUL", "\u{0}"),
        (
            "invalid UTF-8".to_owned(),
            V::Bytes(vec![b'a', 0xff, 0xfe, 0xc3]),
        ),
        raw("malformed escape", "%zz%a%"),
        t(
            "SQL/HTML metacharacters",
            "' OR '1'='1' -- \"><fuzz-x>&amp;%_\\",
        ),
        t("wrong type", "abc"),
        t("negative", "-1"),
        t("zero", "0"),
        t("huge", "99999999999999999999"),
        t("random", rng.text()),
    ];
    match param.kind {
        K::Folio => values.extend([
            t("folio of another campaign", ids.outside_folio.to_string()),
            t("closed folio", ids.closed_folio.to_string()),
            t("exponent", "1e4"),
            t("i64::MAX", i64::MAX.to_string()),
            t("leading plus", format!("+{}", ids.closed_folio)),
        ]),
        K::Conversation | K::ApiConversation | K::IcrConversation => {
            values.extend([
                t(
                    "conversation of another campaign",
                    ids.outside_conversation.to_string(),
                ),
                t("upper-case id", ids.conversation.to_string().to_uppercase()),
                t("braced id", format!("{{{}}}", ids.conversation)),
            ]);
            values.extend(unknown_ids());
        }
        K::Campaign | K::SuperCampaign | K::PageCursor => {
            values.extend([
                t(
                    "campaign outside the scope",
                    ids.outside_campaign.to_string(),
                ),
                t("braced id", format!("{{{}}}", ids.inside_campaign)),
                t("urn id", format!("urn:uuid:{}", ids.inside_campaign)),
                t("i32 overflow", "2147483648"),
            ]);
            values.extend(unknown_ids());
        }
        K::Category => {
            values.extend([
                t(
                    "category of another campaign",
                    ids.outside_category.to_string(),
                ),
                t("inactive category", ids.inactive_category.to_string()),
                t("sub-category as category", ids.subcategory.to_string()),
            ]);
            values.extend(unknown_ids());
        }
        K::Subcategory => {
            values.extend([
                t(
                    "sub-category of another campaign",
                    ids.outside_subcategory.to_string(),
                ),
                t(
                    "sub-category of another category",
                    ids.other_subcategory.to_string(),
                ),
                t("category as sub-category", ids.category.to_string()),
            ]);
            values.extend(unknown_ids());
        }
        K::Agent | K::ApiAgent => {
            values.extend([
                t("agent of another campaign", ids.outside_agent.to_string()),
                t("an administrator, not an agent", ids.admin.to_string()),
            ]);
            values.extend(unknown_ids());
        }
        K::User | K::Member => {
            values.extend([
                t("the Administrador", ids.admin.to_string()),
                t("agent of another campaign", ids.outside_agent.to_string()),
                t("agent of Ventas Hogar", ids.agent.to_string()),
            ]);
            values.extend(unknown_ids());
        }
        K::Rule => {
            values.push(t("rule of another campaign", ids.outside_rule.to_string()));
            values.extend(unknown_ids());
        }
        K::Job => {
            values.extend([
                t("the Administrador's job", ids.admin_job.to_string()),
                t("the Super Administrador's job", ids.super_job.to_string()),
            ]);
            values.extend(unknown_ids());
        }
        K::Channel | K::ApiChannel => {
            values.extend([
                t(
                    "channel of another campaign",
                    ids.outside_channel.to_string(),
                ),
                t(
                    "another channel of Ventas Hogar",
                    ids.other_inside_channel.to_string(),
                ),
            ]);
            values.extend(unknown_ids());
        }
        K::Token => {
            values.push(t(
                "token of another campaign",
                ids.outside_token.to_string(),
            ));
            values.extend(unknown_ids());
        }
        K::Webhook => {
            values.push(t(
                "webhook of another campaign",
                ids.outside_webhook.to_string(),
            ));
            values.extend(unknown_ids());
        }
        K::OutboxItem => values.extend(unknown_ids()),
        K::Date => values.extend([
            t("before PostgreSQL's range", "-5000-01-01"),
            t("chrono's first day", "-262143-01-01"),
            t("chrono's last day", "+262142-12-31"),
            t("year 0", "0000-01-01"),
            t("five-digit year", "10000-01-01"),
            t("30 February", "2026-02-30"),
            t("unpadded", "2026-1-5"),
            t("day first", "05/01/2026"),
        ]),
        K::TranscriptCursor => values.extend([
            t("a Mensajes position", "1714000000000000.10001"),
            t(
                "an id of nothing",
                format!("1714000000000000.{}", Uuid::now_v7()),
            ),
            t(
                "instant past the years",
                format!("253402300800000000.{}", Uuid::nil().simple()),
            ),
            t("id too short", "1714000000000000.0190d6d4"),
            t("dot only", "."),
            t("three parts", "1.2.3"),
        ]),
        K::MsgCursor => values.extend([
            t(
                "instant before PostgreSQL's range",
                "-1000000000000000000.10001",
            ),
            t("i64 extremes", format!("{}.{}", i64::MIN, i64::MAX)),
            t("negative folio", "1714000000000000.-1"),
            t("dot only", "."),
            t("three parts", "1.2.3"),
        ]),
        K::Number(_) | K::Version => values.extend([
            t("exponent", "1e3"),
            t("fraction", "1.5"),
            t("i64 overflow", "9223372036854775808"),
            t("i64::MIN", i64::MIN.to_string()),
            t("padded", " 5 "),
        ]),
        K::Choice(words) => {
            for word in words.iter().skip(1) {
                values.push(t("another valid choice", *word));
            }
            values.push(t("upper case", words[0].to_uppercase()));
            values.push(t("trailing NUL", format!("{}\u{0}", words[0])));
        }
        K::Zone => values.extend([
            t("unknown zone", "Marte/Olympus"),
            t("lower case", "america/mexico_city"),
            t("a path", "../../etc/passwd"),
            t("UTC", "UTC"),
        ]),
        K::Time(_) => values.extend([
            t("24:00", "24:00"),
            t("unpadded", "8:5"),
            t("seconds", "08:00:00"),
            t("99:99", "99:99"),
        ]),
        K::Email => {
            values.extend([
                t("NUL inside", "nadie\u{0}@relevo.demo"),
                t("control character inside", "nadie\u{1}@relevo.demo"),
                t("no local part", "@relevo.demo"),
                t("no dot", "nadie@relevo"),
                t("255 characters", format!("{}@relevo.demo", "a".repeat(243))),
            ]);
            // Never an account's own address at the login form: its
            // failures would lock the account the fuzzer signs in with.
            if param.name != "email" {
                values.push(t("an existing account, upper case", "Admin@Relevo.demo"));
            }
        }
        K::Password(_) => values.extend([
            t("11 characters", "a".repeat(11)),
            t("NUL inside", "clave-larga\u{0}-2026"),
            t("2500 emoji", "😀".repeat(2500)),
        ]),
        K::Text(valid) | K::Fixed(valid) => values.extend([
            t("1001 characters", "x".repeat(1001)),
            t("1001 emoji", "😀".repeat(1001)),
            t("an existing name", "Cliente no responde"),
            // What passes a check of how a value starts.
            t(
                "valid, then control characters",
                format!("{valid}\r\nX-Fuzz: 1\u{1}"),
            ),
            t("valid, then NUL", format!("{valid}\u{0}")),
            t("valid, then non-ASCII", format!("{valid}&q=Ñandú 😀")),
        ]),
        K::Name => values.extend([
            t("1001 characters", "x".repeat(1001)),
            t("1001 emoji", "😀".repeat(1001)),
            t("an existing name", "Cliente no responde"),
            t("a name, then NUL", "Nombre\u{0}"),
        ]),
        K::Unique | K::Phone | K::Bool | K::Junk => {}
    }
    values
}

/// The bad values of a JSON field, labelled.
fn bad_json_values(kind: K, ids: &Ids, rng: &mut Rng) -> Vec<(String, V)> {
    let mut values: Vec<(String, V)> = vec![
        ("missing".to_owned(), V::Missing),
        raw("null", "null"),
        raw("number", "123"),
        raw("negative", "-1"),
        raw("huge number", "99999999999999999999999999"),
        raw("float overflow", "1e400"),
        raw("bool", "true"),
        raw("array", "[1, \"a\", null]"),
        raw("nested junk", "{\"a\": {\"b\": [[[{\"c\": [null, {}]}]]]}}"),
        t("empty string", ""),
        t("blank", " \t\r\n "),
        t("10 KB", "a".repeat(10 * 1024)),
        t("70 KB", "a".repeat(70 * 1024)),
        t(
            "control characters",
            "a\u{0}b\u{1}c\r\nd\u{1b}[0m\u{7f}\u{202e}e",
        ),
        t("NUL", "\u{0}"),
        (
            "invalid UTF-8".to_owned(),
            V::Bytes(vec![b'a', 0xff, 0xfe, 0xc3]),
        ),
        raw("bad escape", "\"\\x41\\ud800\""),
        t("SQL/HTML metacharacters", "' OR '1'='1' -- \"><fuzz-x>"),
        t("wrong type", "abc"),
        t("random", rng.text()),
    ];
    match kind {
        K::ApiAgent | K::Agent => values.extend([
            t("agent of another campaign", ids.outside_agent.to_string()),
            t("an administrator", ids.admin.to_string()),
            t("nil id", Uuid::nil().to_string()),
        ]),
        K::Category => values.extend([
            t(
                "category of another campaign",
                ids.outside_category.to_string(),
            ),
            t("inactive category", ids.inactive_category.to_string()),
        ]),
        K::Subcategory => values.extend([
            t(
                "sub-category of another campaign",
                ids.outside_subcategory.to_string(),
            ),
            t(
                "sub-category of another category",
                ids.other_subcategory.to_string(),
            ),
        ]),
        K::Bool => values.extend([raw("a string", "\"true\""), raw("one", "1")]),
        K::Text(_) | K::Unique | K::Phone => values.extend([
            t("10 001 characters", "x".repeat(10_001)),
            t("201 characters", "x".repeat(201)),
            t("emoji", "😀👩‍💻"),
        ]),
        _ => {}
    }
    values
}

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Admin,
    Super,
    /// No session at all.
    Anonymous,
    /// The login form's session (a CSRF token, no account).
    Visitor,
    /// API tokens.
    Api,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Csrf {
    Field,
    Header,
    Missing,
    Wrong,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Valid,
    Missing,
    Wrong,
    /// The other kind of token (a channel's on integration calls and back).
    OtherKind,
    /// An integration token of another campaign.
    OtherCampaign,
}

#[derive(Clone, Debug)]
enum Val {
    /// The route's valid value for this parameter.
    Base,
    Set(V),
}

#[derive(Clone, Debug)]
struct Case {
    route: &'static Route,
    who: Who,
    /// What is wrong with it, for the report.
    label: String,
    values: Vec<(P, Val)>,
    /// Pairs added to the query string verbatim.
    junk_query: Option<&'static str>,
    /// A body sent instead of the parameters: (content type, bytes).
    body: Option<(&'static str, Vec<u8>)>,
    csrf: Csrf,
    htmx: bool,
    token: Token,
    /// The status the case must get, if it is known.
    expect: Option<StatusCode>,
}

impl Case {
    fn new(route: &'static Route, who: Who, label: impl Into<String>) -> Case {
        Case {
            route,
            who,
            label: label.into(),
            values: route.params.iter().map(|p| (*p, Val::Base)).collect(),
            junk_query: None,
            body: None,
            csrf: Csrf::Field,
            htmx: false,
            token: Token::Valid,
            expect: None,
        }
    }

    /// This case with `param` set to `value` (and its `with` fields).
    fn set(mut self, param: &P, value: V) -> Case {
        for (name, with) in param.with {
            if let Some(slot) = self.values.iter_mut().find(|(p, _)| p.name == *name) {
                slot.1 = Val::Set(text(*with));
            } else {
                let extra = P {
                    at: param.at,
                    ..fo(name, K::Junk)
                };
                self.values.push((extra, Val::Set(text(*with))));
            }
        }
        if let Some(slot) = self.values.iter_mut().find(|(p, _)| p.name == param.name) {
            slot.1 = Val::Set(value);
        }
        self
    }
}

const JUNK_QUERY: &str = "%ff%fe=%ff&a=%zz&&=&b=%00&estatus=%E2%80%AE&folio=-1&folio=1e9";

/// Every case of `route` for `who`.
fn cases_of(route: &'static Route, who: Who, ids: &Ids) -> Vec<Case> {
    let key = format!("{:?} {} {:?}", route.method, route.pattern, who);
    let mut rng = Rng::keyed(&key);
    let mut cases = vec![Case::new(route, who, "the valid request")];
    let mut junk = Case::new(route, who, "junk in the query string");
    junk.junk_query = Some(JUNK_QUERY);
    cases.push(junk);
    for param in route.params.iter().filter(|p| p.fuzzed()) {
        let mut param_rng = Rng::keyed(&format!("{key} {}", param.name));
        let values = if param.at == At::Json {
            bad_json_values(param.kind, ids, &mut param_rng)
        } else {
            bad_values(param, ids, &mut param_rng)
        };
        for (label, value) in values {
            let label = format!("`{}` = {label}", param.name);
            cases.push(Case::new(route, who, label).set(param, value));
        }
    }
    let form_route = route.method == Method::Post && !route.is_api();
    if form_route {
        let mut missing = Case::new(route, who, "no CSRF token");
        missing.csrf = Csrf::Missing;
        missing.expect = Some(StatusCode::FORBIDDEN);
        let mut wrong = Case::new(route, who, "a wrong CSRF token");
        wrong.csrf = Csrf::Wrong;
        wrong.expect = Some(StatusCode::FORBIDDEN);
        let mut repeated = Case::new(route, who, "every field twice");
        for param in route.params.iter().filter(|p| p.at == At::Form) {
            let extra = P {
                optional: false,
                ..*param
            };
            repeated.values.push((
                P {
                    kind: K::Fixed("abc"),
                    ..extra
                },
                Val::Base,
            ));
        }
        let mut oversized = Case::new(route, who, "a body over 64 KiB");
        oversized.csrf = Csrf::Header;
        oversized.values.push((
            fo("relleno", K::Junk),
            Val::Set(text("a".repeat(70 * 1024))),
        ));
        let mut json = Case::new(route, who, "a JSON body instead of a form");
        json.csrf = Csrf::Header;
        json.body = Some((
            "application/json",
            b"{\"nombre\": [1, 2], \"_csrf\": null}".to_vec(),
        ));
        let mut bytes = Case::new(route, who, "a form body that is not UTF-8");
        bytes.csrf = Csrf::Header;
        bytes.body = Some((
            "application/x-www-form-urlencoded",
            b"nombre=\xff\xfe&accion=\xc3&folio=1".to_vec(),
        ));
        cases.extend([missing, wrong, repeated, oversized, json, bytes]);
    }
    if route.is_api() {
        for (label, token) in [
            ("no token", Token::Missing),
            ("a wrong token", Token::Wrong),
            ("the other kind of token", Token::OtherKind),
            ("a token of another campaign", Token::OtherCampaign),
        ] {
            let mut case = Case::new(route, who, label);
            case.token = token;
            cases.push(case);
        }
        if route.method == Method::Post {
            let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
            let bodies: Vec<(&str, Vec<u8>)> = vec![
                ("an empty body", Vec::new()),
                ("an unclosed object", b"{".to_vec()),
                ("an array", b"[]".to_vec()),
                ("null", b"null".to_vec()),
                ("a bare string", b"\"hola\"".to_vec()),
                ("trailing garbage", b"{} x".to_vec()),
                ("5000 nested arrays", deep.into_bytes()),
                ("a byte-order mark", b"\xef\xbb\xbf{}".to_vec()),
                ("bytes that are not UTF-8", b"{\"text\": \"\xff\xfe\"}".to_vec()),
                (
                    "duplicate keys",
                    b"{\"text\": \"a\", \"text\": \"b\", \"connected\": true, \"connected\": false}"
                        .to_vec(),
                ),
                (
                    "a 70 KB body",
                    format!("{{\"text\": \"{}\"}}", "a".repeat(70 * 1024)).into_bytes(),
                ),
            ];
            for (label, body) in bodies {
                let mut case = Case::new(route, who, label);
                case.body = Some(("application/json", body));
                cases.push(case);
            }
            let mut form = Case::new(route, who, "a form body");
            form.body = Some(("application/x-www-form-urlencoded", b"text=hola".to_vec()));
            cases.push(form);
        }
    }
    // Some console requests come from htmx: the token in the header, and
    // errors answered as fragments.
    if route.is_console() {
        for case in cases.iter_mut() {
            if case.csrf == Csrf::Field && case.body.is_none() && rng.chance(1, 4) {
                case.htmx = true;
                case.csrf = Csrf::Header;
            }
        }
    }
    cases
}

/// Cases of `who` over every route they may fuzz, after the sampling that
/// keeps the run bounded.
fn plan(who: Who, ids: &Ids) -> Vec<Case> {
    let mut planned = Vec::new();
    for route in ROUTES {
        let mine = matches!(
            (who, route.area),
            (Who::Api, ChannelApi | IntegrationApi)
                | (Who::Visitor, Login | Public)
                | (Who::Admin | Who::Super, Console | SuperOnly)
        );
        if !mine {
            continue;
        }
        let mut cases = cases_of(route, who, ids);
        // How much of a route's cases to send: all of what each role is
        // there for, a sample of the rest.
        let keep = match (who, route.area, route.note) {
            (_, _, Note::Costly) => (1, 3),
            (Who::Admin, SuperOnly, _) => (1, 8),
            (Who::Super, Console, _) => (1, 3),
            _ => (1, 1),
        };
        if keep != (1, 1) {
            let mut rng = Rng::keyed(&format!("sample {} {who:?}", route.pattern));
            let mut n = 0;
            cases.retain(|case| {
                n += 1;
                // The valid request and the route-level cases always go.
                n <= 2 || case.expect.is_some() || rng.chance(keep.0, keep.1)
            });
        }
        planned.extend(cases);
    }
    // Without a session: every console route once, valid and junk.
    if who == Who::Visitor {
        for route in ROUTES.iter().filter(|r| r.is_console()) {
            planned.push(Case::new(route, Who::Anonymous, "no session"));
            let mut junk = Case::new(
                route,
                Who::Anonymous,
                "no session, junk in the query string",
            );
            junk.junk_query = Some(JUNK_QUERY);
            planned.push(junk);
        }
    }
    planned
}

/// A deterministic shuffle, so that concurrent workers mix routes.
fn shuffle<T>(items: &mut [T], seed: &str) {
    let mut rng = Rng::keyed(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i + 1);
        items.swap(i, j);
    }
}

// ---------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// Percent-encodes every byte but the unreserved ones.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn url_form(value: &V) -> Option<String> {
    match value {
        V::Text(s) => Some(encode(s.as_bytes())),
        V::Bytes(b) => Some(encode(b)),
        V::Raw(s) => Some(s.clone()),
        V::Missing => None,
    }
}

fn json_form(value: &V) -> Option<Vec<u8>> {
    match value {
        V::Text(s) => Some(serde_json::to_vec(s).expect("json string")),
        V::Bytes(b) => {
            let mut out = vec![b'"'];
            out.extend_from_slice(b);
            out.push(b'"');
            Some(out)
        }
        V::Raw(s) => Some(s.clone().into_bytes()),
        V::Missing => None,
    }
}

/// A signed-in (or anonymous) client.
struct Session {
    client: reqwest::Client,
    csrf: String,
}

/// Conversations of Ventas Hogar the valid requests act on, taken in
/// turn (a closed one is skipped while an open one is left), each kept
/// apart from the others' so that no case closes another's.
struct Pools {
    /// For the console, as (folio, id).
    console: Mutex<Vec<(i64, Uuid)>>,
    /// Assigned and in progress, for the agents' API calls.
    api: Vec<(i64, Uuid)>,
    /// In ICR, for hand-offs.
    icr: Vec<(i64, Uuid)>,
    next: AtomicUsize,
    unique: AtomicUsize,
}

struct Fuzz {
    app: TestApp,
    ids: Ids,
    pools: Pools,
}

/// What a request got.
struct Answer {
    status: StatusCode,
    content_type: String,
    location: Option<String>,
    hx_redirect: bool,
    body: String,
}

impl Fuzz {
    fn next(&self) -> usize {
        self.pools.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The next conversation of `pool` that is `still` (an SQL condition),
    /// or the next one if none is.
    async fn pick(&self, pool: &[(i64, Uuid)], still: &str) -> (i64, Uuid) {
        let start = self.next();
        for n in 0..pool.len().min(20) {
            let (folio, id) = pool[(start + n) % pool.len()];
            let open = fetch_i64s(
                &self.app,
                format!("select count(*) from conversations where folio = {folio} and {still}"),
            )
            .await;
            if open.first() == Some(&1) {
                return (folio, id);
            }
        }
        pool[start % pool.len()]
    }

    fn unique(&self) -> usize {
        self.pools.unique.fetch_add(1, Ordering::Relaxed)
    }

    async fn version_of(&self, folio: i64) -> i64 {
        fetch_i64s(
            &self.app,
            format!("select version from conversations where folio = {folio}"),
        )
        .await
        .first()
        .copied()
        .unwrap_or(1)
    }

    async fn agent_of(&self, conversation: Uuid) -> Option<Uuid> {
        let found = match &self.app.store {
            Store::Sqlite(p) => {
                sqlx::query_scalar::<_, Option<Uuid>>(
                    "select agent_id from conversations where id = $1",
                )
                .bind(conversation)
                .fetch_optional(&p.read)
                .await
            }
            Store::Postgres(relevo::db::PgStore { pool, .. }) => {
                sqlx::query_scalar::<_, Option<Uuid>>(
                    "select agent_id from conversations where id = $1",
                )
                .bind(conversation)
                .fetch_optional(pool)
                .await
            }
        };
        found.expect("agent of a conversation").flatten()
    }

    /// The valid value of `param` for this request; `folio` and
    /// `conversation` are the request's own, chosen by its path.
    async fn base(
        &self,
        param: &P,
        who: Who,
        folio: &mut Option<i64>,
        conversation: &mut Option<Uuid>,
    ) -> V {
        let ids = &self.ids;
        let id = |id: Uuid| text(id.to_string());
        match param.kind {
            K::Folio => {
                let pool = self.pools.console.lock().expect("pool").clone();
                let (chosen, _) = self.pick(&pool, "is_open").await;
                *folio = Some(chosen);
                text(chosen.to_string())
            }
            K::Version => match *folio {
                Some(folio) => text(self.version_of(folio).await.to_string()),
                None => text("1"),
            },
            K::Conversation => id(ids.conversation),
            K::Campaign => id(ids.inside_campaign),
            K::SuperCampaign => id(ids.outside_campaign),
            K::Category => id(ids.category),
            K::Subcategory => id(ids.subcategory),
            K::Agent => id(ids.agent),
            K::User => id(ids.target_user),
            K::Member => id(ids.outside_agent),
            K::Rule => id(ids.rule),
            K::Job => id(if who == Who::Super {
                ids.super_job
            } else {
                ids.admin_job
            }),
            K::Channel => id(ids.super_channel),
            K::Token => id(ids.token),
            K::Webhook => id(ids.webhook),
            K::ApiChannel => id(ids.api_channel),
            K::ApiConversation | K::IcrConversation => {
                let (_, chosen) = if param.kind == K::IcrConversation {
                    self.pick(&self.pools.icr, "status = 'icr'").await
                } else {
                    self.pick(&self.pools.api, "is_open").await
                };
                *conversation = Some(chosen);
                id(chosen)
            }
            K::ApiAgent => match *conversation {
                Some(c) => self.agent_of(c).await.map_or_else(|| text(""), id),
                None => id(ids.agent),
            },
            K::OutboxItem => id(ids.outbox_item),
            K::Text(t) | K::Number(t) | K::Time(t) | K::Fixed(t) => text(t),
            K::Password(t) => match (param.name, who) {
                ("actual", Who::Admin) => text(ADMIN_PASSWORD),
                ("actual", _) => text(SUPER_PASSWORD),
                _ => text(t),
            },
            K::Name => text(format!("Prueba {}", self.unique())),
            // An address no account has, another each time: the account
            // throttle counts by address.
            K::Email if param.name == "email" => {
                text(format!("nadie{}@relevo.demo", self.unique()))
            }
            K::Email => text(format!("prueba{}@relevo.demo", self.unique())),
            K::Unique => text(format!("fuzz-{}", self.unique())),
            K::Phone => text(format!("52155{:08}", self.unique())),
            K::Choice(words) => text(words[0]),
            K::Zone => text("America/Mexico_City"),
            K::Bool => V::Raw("true".into()),
            K::Date | K::MsgCursor | K::TranscriptCursor | K::PageCursor | K::Junk => V::Missing,
        }
    }

    /// Sends `case` with `session` (its own for the console roles).
    async fn send(&self, case: &Case, session: &Session) -> Result<Answer, String> {
        let route = case.route;
        let mut folio = None;
        let mut conversation = None;
        let mut path = route.pattern.to_owned();
        let mut query = Vec::new();
        let mut form = Vec::new();
        let mut json: Vec<(String, Vec<u8>)> = Vec::new();
        // Path values first: they choose the request's conversation.
        let mut ordered: Vec<&(P, Val)> = case.values.iter().collect();
        ordered.sort_by_key(|(p, _)| p.at != At::Path);
        for (param, val) in ordered {
            let value = match val {
                Val::Set(v) => v.clone(),
                Val::Base if param.optional => V::Missing,
                Val::Base => {
                    self.base(param, case.who, &mut folio, &mut conversation)
                        .await
                }
            };
            match param.at {
                At::Path => {
                    let segment = url_form(&value).unwrap_or_default();
                    path = path.replace(&format!("{{{}}}", param.name), &segment);
                }
                At::Query => {
                    if let Some(v) = url_form(&value) {
                        query.push(format!("{}={v}", param.name));
                    }
                }
                At::Form => {
                    if let Some(v) = url_form(&value) {
                        form.push(format!("{}={v}", param.name));
                    }
                }
                At::Json => {
                    if let Some(v) = json_form(&value) {
                        json.push((param.name.to_owned(), v));
                    }
                }
            }
        }
        if let Some(junk) = case.junk_query {
            query.push(junk.to_owned());
        }
        let mut url = self.app.url(&path);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        let method = match route.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut request = session.client.request(method, &url);
        if route.is_api() {
            let ids = &self.ids;
            let (right, other) = match route.area {
                ChannelApi => (&ids.channel_token, &ids.integration_token),
                _ => (&ids.integration_token, &ids.channel_token),
            };
            let token = match case.token {
                Token::Valid => Some(right.clone()),
                Token::Missing => None,
                Token::Wrong => Some("rlv_no-es-un-token".to_owned()),
                Token::OtherKind => Some(other.clone()),
                Token::OtherCampaign => Some(ids.outside_integration_token.clone()),
            };
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
        }
        if case.htmx {
            request = request.header("HX-Request", "true");
        }
        if route.note == Note::Stream {
            request = request.header("Accept", "text/event-stream");
        }
        let is_form = route.method == Method::Post && !route.is_api();
        if is_form {
            match case.csrf {
                Csrf::Field => form.push(format!("_csrf={}", encode(session.csrf.as_bytes()))),
                Csrf::Header => request = request.header("X-CSRF-Token", session.csrf.clone()),
                Csrf::Wrong => form.push("_csrf=no-es-el-token".to_owned()),
                Csrf::Missing => {}
            }
        }
        if let Some((content_type, body)) = &case.body {
            request = request
                .header("Content-Type", *content_type)
                .body(body.clone());
        } else if is_form {
            request = request
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form.join("&"));
        } else if route.is_api() && route.method == Method::Post {
            let mut body = b"{".to_vec();
            for (n, (name, value)) in json.iter().enumerate() {
                if n > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(format!("\"{name}\":").as_bytes());
                body.extend_from_slice(value);
            }
            body.push(b'}');
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        if case.who == Who::Visitor && route.area == Login {
            // Each attempt from its own address, so that the address
            // throttle never slows the run down.
            let n = self.unique();
            request = request.header(
                "X-Forwarded-For",
                format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
            );
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let location = header("location");
        let hx_redirect = header("hx-redirect").is_some();
        let body = if route.note == Note::Stream && status.is_success() {
            String::new()
        } else {
            let bytes = response
                .bytes()
                .await
                .map_err(|e| format!("the body broke off: {e}"))?;
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Ok(Answer {
            status,
            content_type,
            location,
            hx_redirect,
            body,
        })
    }
}

// ---------------------------------------------------------------------------
// Judging answers
// ---------------------------------------------------------------------------

/// The campaigns outside the Administrador's scope: their names must never
/// reach the Administrador nor Ventas Hogar's tokens.
const OUTSIDE_NAMES: &[&str] = &["Cobranza", "Atención a Clientes", "Seguros Auto"];

/// Words of messages that are not Spanish sentences for a person:
/// serde's and actix's English, and Rust's `Debug` of our own types.
const NOT_FOR_PEOPLE: &[&str] = &[
    "deserialize",
    "invalid",
    "expected",
    "missing field",
    "unknown variant",
    "error:",
    "failed",
    "Refusal",
    "LastSuperAdmin",
    "NotFound",
    "Duplicate",
    "Invalid(",
    "(&#34;",
    "(&quot;",
];

fn between<'a>(body: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = body.find(start)? + start.len();
    let to = body[from..].find(end)? + from;
    Some(&body[from..to])
}

fn spanish_problem(message: &str) -> Option<String> {
    let trimmed = message.trim();
    if trimmed.is_empty() {
        return Some("an error with no message".into());
    }
    NOT_FOR_PEOPLE
        .iter()
        .find(|w| trimmed.contains(*w))
        .map(|w| format!("an error message that is not for people (`{w}`): {trimmed:?}"))
}

/// What is wrong with `answer` to `case`, if anything.
fn judge(case: &Case, answer: &Answer) -> Vec<String> {
    let mut problems = Vec::new();
    let route = case.route;
    let status = answer.status;
    if status.is_server_error() {
        let detail = between(&answer.body, "<p>", "</p>")
            .unwrap_or(&answer.body)
            .chars()
            .take(160)
            .collect::<String>();
        problems.push(format!("answered {status}: {detail:?}"));
        return problems;
    }
    if let Some(expected) = case.expect
        && status != expected
    {
        problems.push(format!("answered {status} instead of {expected}"));
    }
    if route.is_api() {
        if !answer.content_type.starts_with("application/json") {
            problems.push(format!("an API answer of type {:?}", answer.content_type));
        }
        match serde_json::from_str::<serde_json::Value>(&answer.body) {
            Err(_) => problems.push(format!(
                "an API answer that is not JSON: {:?}",
                answer.body.chars().take(120).collect::<String>()
            )),
            Ok(value) if status.is_client_error() => {
                let error = value.get("error").and_then(|v| v.as_str());
                let message = value.get("message").and_then(|v| v.as_str());
                if error.is_none() || message.is_none() {
                    problems.push(format!("an API error without error/message: {value}"));
                }
            }
            Ok(_) => {}
        }
        if let Some(name) = OUTSIDE_NAMES.iter().find(|n| answer.body.contains(*n)) {
            problems.push(format!("a Ventas Hogar token saw the campaign {name}"));
        }
        return problems;
    }
    // The console (and its public pages).
    let csv = answer.content_type.starts_with("text/csv");
    if !csv && answer.body.contains("<fuzz-x>") {
        problems.push("markup from the request echoed unescaped".into());
    }
    if status.is_client_error() && route.pattern != "/metrics" {
        if !answer.content_type.starts_with("text/html") {
            problems.push(format!("a {status} of type {:?}", answer.content_type));
        }
        let fragment = between(&answer.body, "fragment-error\" role=\"alert\">", "</div>");
        let page = answer.body.contains("class=\"error-code\"");
        if case.htmx && page {
            problems.push(format!(
                "an htmx request got the full error page ({status})"
            ));
        }
        if !case.htmx && !answer.body.contains("<html lang=\"es\">") {
            problems.push(format!(
                "a {status} that is not a Spanish page: {:?}",
                answer.body.chars().take(120).collect::<String>()
            ));
        }
        let message = if page {
            answer
                .body
                .split("</h1>")
                .nth(1)
                .and_then(|rest| between(rest, "<p>", "</p>"))
        } else {
            fragment
        };
        if let Some(problem) = message.and_then(spanish_problem) {
            problems.push(problem);
        }
    }
    // Let in: a page, or a redirect anywhere but to the login page.
    let granted = status.is_success() || (status.is_redirection() && !to_login(answer));
    if case.who == Who::Admin {
        if route.area == SuperOnly && granted {
            problems.push(format!(
                "the Administrador got {status} from a Super Administrador page"
            ));
        }
        if let Some(name) = OUTSIDE_NAMES.iter().find(|n| answer.body.contains(*n)) {
            problems.push(format!(
                "the Administrador saw the campaign {name}, outside their scope"
            ));
        }
    }
    if case.who == Who::Anonymous && granted {
        problems.push(format!("answered {status} without a session"));
    }
    problems
}

fn to_login(answer: &Answer) -> bool {
    answer.hx_redirect
        || answer
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with("/login"))
}

// ---------------------------------------------------------------------------
// The tables outside the Administrador's scope
// ---------------------------------------------------------------------------

const OUTSIDE: &str =
    "(select id from campaigns where name not in ('Ventas Hogar', 'Soporte Técnico'))";

/// Each table with the rows the Administrador (and Ventas Hogar's tokens)
/// must never change: those of the campaigns outside their scope, and all
/// of the tables they have no page for.
fn guarded_tables() -> Vec<(&'static str, String)> {
    let outside_conversations =
        format!("(select id from conversations where campaign_id in {OUTSIDE})");
    let all = || "1 = 1".to_owned();
    vec![
        ("settings", all()),
        ("campaigns", all()),
        ("campaign_schedules", all()),
        ("campaign_members", all()),
        ("channels", all()),
        ("integration_tokens", all()),
        // Ventas Hogar's tokens connect and disconnect its agents.
        (
            "users",
            format!(
                "not (role = 'agent' and id in (select user_id from campaign_members where campaign_id not in {OUTSIDE}))"
            ),
        ),
        (
            "user_sessions",
            "user_id not in (select id from users where email = 'admin@relevo.demo')".to_owned(),
        ),
        (
            "contacts",
            format!("channel_id in (select id from channels where campaign_id in {OUTSIDE})"),
        ),
        ("closure_categories", format!("campaign_id in {OUTSIDE}")),
        (
            "closure_subcategories",
            format!(
                "category_id in (select id from closure_categories where campaign_id in {OUTSIDE})"
            ),
        ),
        ("conversations", format!("campaign_id in {OUTSIDE}")),
        ("conversation_counts", format!("campaign_id in {OUTSIDE}")),
        (
            "agent_conversation_counts",
            format!("campaign_id in {OUTSIDE}"),
        ),
        (
            "conversation_events",
            format!("conversation_id in {outside_conversations}"),
        ),
        (
            "messages",
            format!("conversation_id in {outside_conversations}"),
        ),
        (
            "inbound_messages",
            format!("conversation_id in {outside_conversations}"),
        ),
        (
            "outbox_messages",
            format!("conversation_id in {outside_conversations}"),
        ),
        (
            "auto_cancel_nudges",
            format!("conversation_id in {outside_conversations}"),
        ),
        ("auto_cancel_rules", format!("campaign_id in {OUTSIDE}")),
        (
            "audit_log",
            format!("campaign_id is null or campaign_id in {OUTSIDE}"),
        ),
        (
            "bulk_job_items",
            format!("conversation_id in {outside_conversations}"),
        ),
    ]
}

/// Every guarded row, as text, by table.
async fn snapshot(app: &TestApp) -> BTreeMap<&'static str, Vec<String>> {
    let mut tables = BTreeMap::new();
    for (table, filter) in guarded_tables() {
        let sql = match app.backend {
            Backend::Sqlite => {
                let columns = fetch_texts(
                    app,
                    format!("select name from pragma_table_info('{table}') order by cid"),
                )
                .await;
                assert!(!columns.is_empty(), "no table {table}");
                let row = columns
                    .iter()
                    .map(|c| format!("quote(\"{c}\")"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                format!("select {row} from {table} where {filter}")
            }
            Backend::Postgres => format!("select t::text from {table} t where {filter}"),
        };
        let mut rows = fetch_texts(app, sql).await;
        rows.sort();
        tables.insert(table, rows);
    }
    tables
}

fn compare(
    before: &BTreeMap<&'static str, Vec<String>>,
    after: &BTreeMap<&'static str, Vec<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (table, rows) in before {
        let now = &after[table];
        if rows == now {
            continue;
        }
        let old: BTreeSet<&String> = rows.iter().collect();
        let new: BTreeSet<&String> = now.iter().collect();
        let short = |row: &&String| row.chars().take(200).collect::<String>();
        let gone: Vec<_> = old.difference(&new).take(3).map(short).collect();
        let added: Vec<_> = new.difference(&old).take(3).map(short).collect();
        problems.push(format!(
            "{table} changed outside the Administrador's scope ({} rows before, {} after); gone: {gone:?}; new: {added:?}",
            rows.len(),
            now.len()
        ));
    }
    problems
}

// ---------------------------------------------------------------------------
// Database helpers (test set-up and checks only)
// ---------------------------------------------------------------------------

async fn fetch_texts(app: &TestApp, sql: String) -> Vec<String> {
    let sql = sqlx::AssertSqlSafe(sql);
    match &app.store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(&p.read).await,
        Store::Postgres(relevo::db::PgStore { pool, .. }) => {
            sqlx::query_scalar(sql).fetch_all(pool).await
        }
    }
    .expect("query")
}

async fn fetch_i64s(app: &TestApp, sql: String) -> Vec<i64> {
    let sql = sqlx::AssertSqlSafe(sql);
    match &app.store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(&p.read).await,
        Store::Postgres(relevo::db::PgStore { pool, .. }) => {
            sqlx::query_scalar(sql).fetch_all(pool).await
        }
    }
    .expect("query")
}

async fn fetch_uuids(app: &TestApp, sql: String) -> Vec<Uuid> {
    let sql = sqlx::AssertSqlSafe(sql);
    match &app.store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(&p.read).await,
        Store::Postgres(relevo::db::PgStore { pool, .. }) => {
            sqlx::query_scalar(sql).fetch_all(pool).await
        }
    }
    .expect("query")
}

async fn one_uuid(app: &TestApp, sql: &str) -> Uuid {
    *fetch_uuids(app, sql.to_owned())
        .await
        .first()
        .unwrap_or_else(|| panic!("nothing for {sql}"))
}

async fn execute(app: &TestApp, sql: &'static str) {
    match &app.store {
        Store::Sqlite(p) => sqlx::query(sql).execute(&p.write).await.map(|_| ()),
        Store::Postgres(relevo::db::PgStore { pool, .. }) => {
            sqlx::query(sql).execute(pool).await.map(|_| ())
        }
    }
    .expect("statement");
}

fn category_sql(campaign: &str, category: &str) -> String {
    format!(
        "select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
         where p.name = '{campaign}' and c.name = '{category}'"
    )
}

fn subcategory_sql(campaign: &str, category: &str, sub: &str) -> String {
    format!(
        "select s.id from closure_subcategories s join closure_categories c on c.id = s.category_id \
         join campaigns p on p.id = c.campaign_id \
         where p.name = '{campaign}' and c.name = '{category}' and s.name = '{sub}'"
    )
}

fn agent_sql(campaign: &str) -> String {
    format!(
        "select u.id from users u join campaign_members m on m.user_id = u.id \
         join campaigns p on p.id = m.campaign_id \
         where p.name = '{campaign}' and u.role = 'agent' order by u.id"
    )
}

fn channel_sql(campaign: &str) -> String {
    format!(
        "select c.id from channels c join campaigns p on p.id = c.campaign_id \
         where p.name = '{campaign}' order by c.id"
    )
}

fn folio_sql(campaigns: &str, open: bool) -> String {
    format!(
        "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name in ({campaigns}) and {}c.is_open order by c.folio",
        if open { "" } else { "not " }
    )
}

const INSIDE_NAMES: &str = "'Ventas Hogar', 'Soporte Técnico'";

// ---------------------------------------------------------------------------
// Sessions and set-up
// ---------------------------------------------------------------------------

/// Signs `client` in and returns its session's CSRF token.
async fn sign_in(app: &TestApp, client: &reqwest::Client, email: &str, password: &str) -> String {
    let page = app.get_with(client, "/login").await;
    let csrf = csrf_in(&page.body);
    let answer = app
        .post_form_with(
            client,
            "/login",
            &[("_csrf", &csrf), ("email", email), ("password", password)],
        )
        .await;
    assert_eq!(
        answer.location.as_deref(),
        Some("/mensajes"),
        "{email} could not sign in: {}",
        answer.status
    );
    csrf_in(&app.get_with(client, "/cuenta").await.body)
}

async fn session_of(app: &TestApp, who: Who) -> Session {
    let client = client();
    let csrf = match who {
        Who::Admin => sign_in(app, &client, ADMIN_EMAIL, ADMIN_PASSWORD).await,
        Who::Super => sign_in(app, &client, SUPER_EMAIL, SUPER_PASSWORD).await,
        Who::Visitor => csrf_in(&app.get_with(&client, "/login").await.body),
        Who::Anonymous | Who::Api => String::new(),
    };
    Session { client, csrf }
}

/// The id at the end of a redirect's `Location`.
fn id_in_location(location: Option<&str>) -> Uuid {
    let location = location.expect("a redirect");
    Uuid::parse_str(location.rsplit('/').next().expect("a last segment")).expect("an id")
}

async fn set_up(app: TestApp) -> Fuzz {
    // The router and automatic cancellation must not touch the campaigns
    // outside the scope while the snapshot is compared: with no connected
    // agent the router assigns nothing there (and no rule of theirs is
    // active).
    execute(
        &app,
        "update users set connected = false where role = 'agent' and id in \
         (select user_id from campaign_members where campaign_id in \
         (select id from campaigns where name not in ('Ventas Hogar', 'Soporte Técnico')))",
    )
    .await;
    let inside_campaign = app.campaign_id("Ventas Hogar").await;
    let outside_campaign = app.campaign_id("Cobranza").await;
    let category = one_uuid(&app, &category_sql("Ventas Hogar", "Cliente no responde")).await;
    let subcategory = one_uuid(
        &app,
        &subcategory_sql("Ventas Hogar", "Cliente no responde", "Número equivocado"),
    )
    .await;
    let other_subcategory = one_uuid(
        &app,
        &subcategory_sql("Ventas Hogar", "Spam o abuso", "Publicidad"),
    )
    .await;
    let inactive_category = one_uuid(&app, &category_sql("Ventas Hogar", "Prueba interna")).await;
    let outside_category = one_uuid(&app, &category_sql("Cobranza", "Cliente no responde")).await;
    let outside_subcategory = one_uuid(
        &app,
        &subcategory_sql("Cobranza", "Cliente no responde", "Número equivocado"),
    )
    .await;
    let agent = one_uuid(&app, &agent_sql("Ventas Hogar")).await;
    let outside_agent = one_uuid(&app, &agent_sql("Cobranza")).await;
    let admin = one_uuid(
        &app,
        "select id from users where email = 'admin@relevo.demo'",
    )
    .await;
    let target_user = app
        .create_user(
            "objetivo.fuzz@relevo.demo",
            relevo::domain::Role::Admin,
            "Objetivo-de-prueba-2026",
            &["Cobranza"],
        )
        .await;
    let inside_channels = fetch_uuids(&app, channel_sql("Ventas Hogar")).await;
    let outside_channel = one_uuid(&app, &channel_sql("Cobranza")).await;
    let now = relevo::db::Ts::now();
    let (_, integration_token) = app
        .store
        .create_integration_token("Ventas Hogar", "fuzz", now)
        .await
        .expect("token")
        .expect("campaign");
    let (outside_token, outside_integration_token) = app
        .store
        .create_integration_token("Cobranza", "fuzz", now)
        .await
        .expect("token")
        .expect("campaign");
    let (token, _) = app
        .store
        .create_integration_token("Cobranza", "fuzz revocable", now)
        .await
        .expect("token")
        .expect("campaign");
    // A webhook of the Super Administrador's campaign, and one of another.
    let webhook_of = |campaign: Uuid| {
        let store = app.store.clone();
        async move {
            let input = relevo::db::WebhookInput {
                url: "http://127.0.0.1:9/fuzz",
                event_types: "cancelled",
                enabled: false,
            };
            store
                .create_webhook(admin, campaign, input, now)
                .await
                .expect("webhook")
                .expect("campaign")
                .0
        }
    };
    let webhook = webhook_of(app.campaign_id("Cobranza").await).await;
    let outside_webhook = webhook_of(app.campaign_id("Ventas Hogar").await).await;
    let closed_folio = fetch_i64s(&app, folio_sql(INSIDE_NAMES, false)).await[0];
    let outside_folio = fetch_i64s(&app, folio_sql("'Cobranza'", true)).await[0];
    let outside_conversation = one_uuid(
        &app,
        &format!("select id from conversations where folio = {outside_folio}"),
    )
    .await;

    // Jobs and rules, made through the console like anyone would.
    let super_session = session_of(&app, Who::Super).await;
    let admin_session = session_of(&app, Who::Admin).await;
    let job = |session: &Session, folio: i64| {
        let form = [
            ("_csrf", session.csrf.clone()),
            ("folio", folio.to_string()),
            ("accion", "cancelar".to_owned()),
            ("categoria", category.to_string()),
        ];
        let client = session.client.clone();
        let url = app.url("/mensajes/lote");
        async move {
            let answer = client.post(url).form(&form).send().await.expect("bulk");
            assert_eq!(answer.status(), StatusCode::SEE_OTHER, "bulk job set-up");
            id_in_location(
                answer
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok()),
            )
        }
    };
    let super_job = job(&super_session, closed_folio).await;
    let admin_job = job(&admin_session, closed_folio).await;
    let rule = |session: &Session, campaign: Uuid, category: Uuid, name: &'static str| {
        let nudges = name == "Regla con aviso";
        let mut form = vec![
            ("_csrf", session.csrf.clone()),
            ("campana", campaign.to_string()),
            ("nombre", name.to_owned()),
            ("estatus", "icr".to_owned()),
            ("medida", "no_customer_message".to_owned()),
            ("minutos", "43200".to_owned()),
            ("categoria", category.to_string()),
        ];
        if nudges {
            // A nudge after a minute of silence: the outbox gets items.
            form.push(("aviso", "¿Seguimos en contacto?".to_owned()));
            form.push(("aviso_minutos", "43199".to_owned()));
        }
        let client = session.client.clone();
        let url = app.url("/cancelacion-automatica");
        async move {
            let answer = client.post(url).form(&form).send().await.expect("rule");
            assert_eq!(answer.status(), StatusCode::SEE_OTHER, "rule set-up");
        }
    };
    rule(
        &super_session,
        outside_campaign,
        outside_category,
        "Regla ajena",
    )
    .await;
    rule(&admin_session, inside_campaign, category, "Regla de fuzz").await;
    rule(&admin_session, inside_campaign, category, "Regla con aviso").await;
    let outside_rule = one_uuid(
        &app,
        "select id from auto_cancel_rules where name = 'Regla ajena'",
    )
    .await;
    let rule = one_uuid(
        &app,
        "select id from auto_cancel_rules where name = 'Regla de fuzz'",
    )
    .await;
    // The other campaign's rule stays off: it must not cancel anything
    // while the snapshot is compared.
    let answer = super_session
        .client
        .post(app.url(&format!("/cancelacion-automatica/{outside_rule}/estado")))
        .form(&[("_csrf", super_session.csrf.as_str()), ("activa", "0")])
        .send()
        .await
        .expect("rule off");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "rule off");
    // One pass now, so that Ventas Hogar's outbox has nudges to acknowledge.
    relevo::services::auto_cancel::run_pass(&app.store, chrono::Utc::now())
        .await
        .expect("automatic cancellation pass");
    let nudged = "from outbox_messages o join channels c on c.id = o.channel_id \
                  join campaigns p on p.id = c.campaign_id where p.name = 'Ventas Hogar' order by o.id";
    let outbox_items = fetch_uuids(&app, format!("select o.id {nudged}")).await;
    let outbox_channels = fetch_uuids(&app, format!("select o.channel_id {nudged}")).await;
    let api_channel = outbox_channels
        .first()
        .copied()
        .unwrap_or(inside_channels[0]);
    let outbox_item = outbox_items
        .first()
        .copied()
        .unwrap_or(Uuid::from_u64_pair(7, 7));
    let other_inside_channel = *inside_channels
        .iter()
        .find(|c| **c != api_channel)
        .expect("a second channel");
    let channel_token = app
        .store
        .rotate_channel_token(api_channel)
        .await
        .expect("rotate")
        .expect("channel");

    // Conversations for the valid requests to act on, kept apart.
    let icr = new_conversations(&app, api_channel, &channel_token, 30, "icr").await;
    new_conversations(&app, api_channel, &channel_token, 80, "consola").await;
    let console = console_pool(&app, &icr).await;
    let api = pairs(
        &app,
        "from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name = 'Ventas Hogar' and c.status in ('assigned', 'in_progress')",
    )
    .await;
    assert!(
        console.len() > 80 && api.len() > 5,
        "conversations to act on"
    );
    let ids = Ids {
        inside_campaign,
        outside_campaign,
        category,
        subcategory,
        other_subcategory,
        inactive_category,
        outside_category,
        outside_subcategory,
        agent,
        outside_agent,
        admin,
        target_user,
        rule,
        outside_rule,
        admin_job,
        super_job,
        api_channel,
        other_inside_channel,
        outside_channel,
        super_channel: outside_channel,
        token,
        outside_token,
        webhook,
        outside_webhook,
        conversation: api[0].1,
        outside_conversation,
        outbox_item,
        closed_folio,
        outside_folio,
        channel_token,
        integration_token,
        outside_integration_token,
    };
    Fuzz {
        app,
        ids,
        pools: Pools {
            console: Mutex::new(console),
            api,
            icr,
            next: AtomicUsize::new(0),
            unique: AtomicUsize::new(0),
        },
    }
}

/// `(folio, id)` of the conversations `from_where` selects, by folio.
async fn pairs(app: &TestApp, from_where: &str) -> Vec<(i64, Uuid)> {
    let folios = fetch_i64s(app, format!("select c.folio {from_where} order by c.folio")).await;
    let ids = fetch_uuids(app, format!("select c.id {from_where} order by c.folio")).await;
    folios.into_iter().zip(ids).collect()
}

/// The open conversations of Ventas Hogar without an agent, but those of `icr`.
async fn console_pool(app: &TestApp, icr: &[(i64, Uuid)]) -> Vec<(i64, Uuid)> {
    pairs(
        app,
        "from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name = 'Ventas Hogar' and c.status in ('icr', 'out_of_hours', 'agents_offline')",
    )
    .await
    .into_iter()
    .filter(|c| !icr.contains(c))
    .collect()
}

/// Starts `n` conversations on `channel` through the API.
async fn new_conversations(
    app: &TestApp,
    channel: Uuid,
    token: &str,
    n: usize,
    tag: &str,
) -> Vec<(i64, Uuid)> {
    let mut started = Vec::new();
    for i in 0..n {
        let (status, body) = app
            .api_call(
                reqwest::Method::POST,
                &format!("/api/v1/channels/{channel}/messages"),
                Some(token),
                Some(serde_json::json!({
                    "message_id": format!("preparacion-{tag}-{i}"),
                    "from": format!("5215599{:02}{i:04}", tag.len()),
                    "text": "Hola",
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "a new conversation: {body}");
        let id = Uuid::parse_str(body["conversation_id"].as_str().expect("id")).expect("uuid");
        started.push((body["folio"].as_i64().expect("folio"), id));
    }
    started
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

/// Problems found, each kind once per route and role with its first input.
#[derive(Default)]
struct Findings {
    by_key: BTreeMap<String, (String, usize)>,
    requests: usize,
    statuses: BTreeMap<u16, usize>,
    sign_ins: usize,
}

impl Findings {
    fn record(&mut self, case: &Case, outcome: &Result<Answer, String>) {
        self.requests += 1;
        if std::env::var_os("FUZZ_TRACE").is_some() {
            let status = outcome
                .as_ref()
                .map_or_else(|e| e.clone(), |a| a.status.as_u16().to_string());
            eprintln!(
                "fuzz-trace {:?} {} [{:?}{}] {} -> {status}",
                case.route.method,
                case.route.pattern,
                case.who,
                if case.htmx { ", htmx" } else { "" },
                case.label.chars().take(80).collect::<String>()
            );
        }
        let problems = match outcome {
            Ok(answer) => {
                *self.statuses.entry(answer.status.as_u16()).or_default() += 1;
                judge(case, answer)
            }
            Err(e) => vec![e.clone()],
        };
        for problem in problems {
            // Numbers and quoted details vary between inputs of one defect.
            let kind: String = problem.split(':').next().unwrap_or_default().to_owned();
            let key = format!(
                "{:?} {} [{:?}] {kind}",
                case.route.method, case.route.pattern, case.who
            );
            let entry = self
                .by_key
                .entry(key)
                .or_insert_with(|| (format!("{} — {problem}", case.label), 0));
            entry.1 += 1;
        }
    }

    fn note(&mut self, problem: String) {
        self.by_key.insert(problem, (String::new(), 1));
    }

    fn report(&self) -> String {
        let mut out = String::new();
        for (key, (example, count)) in &self.by_key {
            let _ = writeln!(out, "{key} ×{count}: {example}");
        }
        out
    }
}

/// Sends `cases` with `workers` concurrent sessions of `who` (each its own
/// sign-in), the session-ending ones afterwards with one session.
async fn run(fuzz: &Arc<Fuzz>, who: Who, cases: Vec<Case>, workers: usize) -> Findings {
    let (mut alone, mut shared): (Vec<Case>, Vec<Case>) = cases
        .into_iter()
        .partition(|c| c.route.note == Note::EndsSessions && c.who == who);
    shuffle(&mut shared, &format!("{who:?}"));
    alone.sort_by_key(|c| c.route.pattern);
    let shared = Arc::new(shared);
    let cursor = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let fuzz = fuzz.clone();
        let shared = shared.clone();
        let cursor = cursor.clone();
        tasks.push(tokio::spawn(async move {
            let mut findings = Findings::default();
            let mut mine = session_of(&fuzz.app, who).await;
            let anonymous = session_of(&fuzz.app, Who::Anonymous).await;
            let visitor = session_of(&fuzz.app, Who::Visitor).await;
            loop {
                let n = cursor.fetch_add(1, Ordering::Relaxed);
                let Some(case) = shared.get(n) else { break };
                let session = match case.who {
                    Who::Anonymous | Who::Api => &anonymous,
                    Who::Visitor => &visitor,
                    Who::Admin | Who::Super => &mine,
                };
                let outcome = fuzz.send(case, session).await;
                if case.who == who
                    && matches!(who, Who::Admin | Who::Super)
                    && outcome.as_ref().is_ok_and(to_login)
                {
                    findings.note(format!(
                        "{:?} {} [{who:?}] found its session ended by another request ({})",
                        case.route.method, case.route.pattern, case.label
                    ));
                    mine = session_of(&fuzz.app, who).await;
                    findings.sign_ins += 1;
                }
                findings.record(case, &outcome);
            }
            findings
        }));
    }
    let mut findings = Findings::default();
    for task in tasks {
        let part = task.await.expect("worker");
        findings.requests += part.requests;
        findings.sign_ins += part.sign_ins;
        for (status, n) in part.statuses {
            *findings.statuses.entry(status).or_default() += n;
        }
        for (key, (example, count)) in part.by_key {
            let entry = findings.by_key.entry(key).or_insert((example, 0));
            entry.1 += count;
        }
    }
    if !alone.is_empty() {
        let mut session = session_of(&fuzz.app, who).await;
        for case in &alone {
            let outcome = fuzz.send(case, &session).await;
            findings.record(case, &outcome);
            if outcome.as_ref().is_ok_and(to_login) {
                session = session_of(&fuzz.app, who).await;
                findings.sign_ins += 1;
            }
        }
    }
    findings
}

async fn bad_values_in_every_parameter_never_answer_5xx_nor_change_anything_outside_scope(
    backend: Backend,
) {
    let Some(app) = spawn_app_configured(backend, true, |settings| {
        settings.trusted_proxies = "127.0.0.1".parse().expect("trusted proxies");
        settings.webhook_allow = "127.0.0.1".parse().expect("webhook destinations");
    })
    .await
    else {
        return;
    };
    let started = Instant::now();
    let fuzz = Arc::new(set_up(app).await);
    let ids = &fuzz.ids;

    // The Administrador, the API with Ventas Hogar's tokens and visitors,
    // with the campaigns outside the scope watched.
    let before = snapshot(&fuzz.app).await;
    // The comparison is not vacuous: what it guards is there.
    for table in [
        "campaigns",
        "users",
        "user_sessions",
        "channels",
        "contacts",
        "closure_categories",
        "closure_subcategories",
        "conversations",
        "conversation_events",
        "auto_cancel_rules",
    ] {
        assert!(!before[table].is_empty(), "nothing guarded in {table}");
    }
    let mut cases = plan(Who::Admin, ids);
    cases.extend(plan(Who::Api, ids));
    cases.extend(plan(Who::Visitor, ids));
    let first = cases.len();
    let scoped_started = Instant::now();
    let mut findings = run(&fuzz, Who::Admin, cases, 3).await;
    let scoped_time = scoped_started.elapsed();
    let after = snapshot(&fuzz.app).await;
    for problem in compare(&before, &after) {
        findings.note(problem);
    }

    // The Super Administrador, over everything.
    new_conversations(&fuzz.app, ids.api_channel, &ids.channel_token, 60, "super").await;
    let console = console_pool(&fuzz.app, &fuzz.pools.icr).await;
    *fuzz.pools.console.lock().expect("pool") = console;
    let cases = plan(Who::Super, ids);
    let second = cases.len();
    let super_started = Instant::now();
    let super_findings = run(&fuzz, Who::Super, cases, 3).await;
    let super_time = super_started.elapsed();

    eprintln!(
        "fuzz {backend:?}: {first} requests (Administrador, API, visitors) in {:.1} s, \
         {second} (Super Administrador) in {:.1} s, {:.1} s in all; statuses {:?} and {:?}; \
         sign-ins again: {} and {}",
        scoped_time.as_secs_f64(),
        super_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        findings.statuses,
        super_findings.statuses,
        findings.sign_ins,
        super_findings.sign_ins,
    );
    let report = format!("{}{}", findings.report(), super_findings.report());
    assert!(report.is_empty(), "the fuzzer found:\n{report}");
}

// ---------------------------------------------------------------------------
// Defects the fuzzer found
// ---------------------------------------------------------------------------

/// An open conversation of Ventas Hogar with nobody assigned.
async fn open_folio(app: &TestApp) -> i64 {
    fetch_i64s(
        app,
        "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name = 'Ventas Hogar' and c.status in ('icr', 'out_of_hours', 'agents_offline') \
         order by c.folio"
            .to_owned(),
    )
    .await[0]
}

async fn status_of(app: &TestApp, folio: i64) -> String {
    fetch_texts(
        app,
        format!("select status from conversations where folio = {folio}"),
    )
    .await
    .remove(0)
}

/// Posts the Cancelar form of `folio` with the first category and `extra`.
async fn cancel_with(app: &TestApp, folio: i64, extra: &[(&str, &str)]) -> common::Page {
    let path = format!("/mensajes/{folio}/acciones");
    let form = app.get(&path).await.body;
    let (csrf, version) = (csrf_in(&form), field_value(&form, "version"));
    let category = first_option(&form, "accion-categoria");
    let mut fields = vec![
        ("_csrf", csrf.as_str()),
        ("version", version.as_str()),
        ("accion", "cancelar"),
        ("categoria", category.as_str()),
    ];
    fields.extend_from_slice(extra);
    app.post_form(&path, &fields).await
}

/// Found as a 500 after the cancellation had been saved: the return path
/// went into the `Location` header, where a line break cannot go.
async fn a_return_path_that_cannot_be_a_header_falls_back_to_the_list_after_the_cancellation(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    for return_to in [
        "/mensajes?estatus=todas\r\nSet-Cookie: relevo=x",
        "/mensajes?q=Ana\u{0}",
    ] {
        let folio = open_folio(&app).await;
        let answer = cancel_with(&app, folio, &[("volver", return_to)]).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{return_to:?}");
        assert_eq!(
            answer.location,
            Some(format!("/mensajes#conversacion-{folio}")),
            "{return_to:?}"
        );
        assert_eq!(status_of(&app, folio).await, "cancelled");
    }
    // A path that is a header value still leads back where it says.
    let folio = open_folio(&app).await;
    let answer = cancel_with(
        &app,
        folio,
        &[("volver", "/mensajes?estatus=todas&q=Ana%20L")],
    )
    .await;
    assert_eq!(
        answer.location.as_deref(),
        Some("/mensajes?estatus=todas&q=Ana%20L")
    );
}

/// Found as a dropped connection (a panic computing the day after
/// 31/12/262142 or 29 days before 1/1/-262143) and, on PostgreSQL, as
/// 500s for instants before 4713 BC.
async fn days_outside_the_years_1_to_9999_are_refused_as_invalid_instead_of_failing(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let invalid_date = "Escribe una fecha válida";
    for query in [
        "hasta=-262143-01-01",
        "hasta=%2B262142-12-31",
        "desde=-5000-01-01&hasta=2026-01-01",
        "desde=10000-01-01&hasta=10000-01-02",
    ] {
        let page = app.get(&format!("/reportes?{query}")).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(page.body.contains(invalid_date), "{query}");
        let export = app.get(&format!("/reportes/exportar?{query}")).await;
        assert_eq!(export.status, StatusCode::CONFLICT, "{query}");
        assert!(export.body.contains(invalid_date), "{query}");
    }
    for (query, notice) in [
        ("desde=-5000-01-01", "Se ignoró el filtro de fecha inicial"),
        (
            "hasta=%2B262142-12-31",
            "Se ignoró el filtro de fecha final",
        ),
        (
            "despues=-1000000000000000000.10001",
            "La página pedida no es válida",
        ),
        (
            "antes=253402300800000000.10001",
            "La página pedida no es válida",
        ),
    ] {
        let page = app.get(&format!("/mensajes?{query}")).await;
        assert_eq!(page.status, StatusCode::OK, "{query}");
        assert!(page.body.contains(notice), "{query}");
    }
    let export = app.get("/mensajes/exportar?desde=-5000-01-01").await;
    assert_eq!(export.status, StatusCode::OK);
    let super_client = common::new_client();
    app.login_with(&super_client, SUPER_EMAIL, SUPER_PASSWORD)
        .await;
    let audit = app
        .get_with(
            &super_client,
            "/auditoria?desde=-5000-01-01&hasta=%2B262142-12-31",
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK);
    assert!(audit.body.contains("Se ignoró el filtro de fecha inicial"));
    assert!(audit.body.contains("Se ignoró el filtro de fecha final"));
}

/// Found as 500s on PostgreSQL, whose text cannot hold U+0000, after
/// everything else about the form had been accepted.
async fn a_nul_character_in_a_comment_or_a_rule_text_is_refused_next_to_its_field(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let nul = "no admite el carácter nulo";

    let folio = open_folio(&app).await;
    let answer = cancel_with(&app, folio, &[("comentario", "Cliente\u{0} molesto")]).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.body.contains(&format!("El comentario {nul}")));
    assert_ne!(status_of(&app, folio).await, "cancelled");

    let bulk_page = app.get(&format!("/mensajes/lote?folio={folio}")).await.body;
    let category = one_uuid(&app, &category_sql("Ventas Hogar", "Cliente no responde"))
        .await
        .to_string();
    let folio_text = folio.to_string();
    let answer = app
        .post_form(
            "/mensajes/lote",
            &[
                ("_csrf", &csrf_in(&bulk_page)),
                ("folio", &folio_text),
                ("accion", "cancelar"),
                ("categoria", &category),
                ("comentario", "\u{0}"),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.body.contains(&format!("El comentario {nul}")));
    assert_ne!(status_of(&app, folio).await, "cancelled");

    let campaign = app.campaign_id("Ventas Hogar").await.to_string();
    let rules_before = fetch_i64s(&app, "select count(*) from auto_cancel_rules".to_owned()).await;
    let csrf = csrf_in(&app.get("/cancelacion-automatica").await.body);
    for (field, value, message) in [
        (
            "nombre",
            "Regla\u{0}",
            "El nombre no admite caracteres de control",
        ),
        (
            "nombre",
            "Regla\r\nnueva",
            "El nombre no admite caracteres de control",
        ),
        (
            "comentario",
            "Sin respuesta\u{0}",
            "El comentario no admite el carácter nulo",
        ),
        (
            "aviso",
            "¿Sigues ahí?\u{0}",
            "El aviso no admite el carácter nulo",
        ),
    ] {
        let mut form = vec![
            ("_csrf", csrf.as_str()),
            ("campana", campaign.as_str()),
            ("nombre", "Regla nueva"),
            ("estatus", "icr"),
            ("medida", "no_customer_message"),
            ("minutos", "120"),
            ("categoria", category.as_str()),
            ("aviso_minutos", "60"),
            ("aviso", "¿Sigues ahí?"),
        ];
        form.retain(|(k, _)| *k != field);
        form.push((field, value));
        let answer = app.post_form("/cancelacion-automatica", &form).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert!(answer.body.contains(message), "{field}: {message}");
    }
    let rules_after = fetch_i64s(&app, "select count(*) from auto_cancel_rules".to_owned()).await;
    assert_eq!(rules_before, rules_after, "no rule was saved");

    // The API's resolve checks its comment the same way.
    let (_, token) = app
        .store
        .create_integration_token("Ventas Hogar", "pruebas", relevo::db::Ts::now())
        .await
        .expect("token")
        .expect("campaign");
    let busy = "from conversations c join campaigns p on p.id = c.campaign_id \
                where p.name = 'Ventas Hogar' and c.status in ('assigned', 'in_progress') \
                order by c.folio";
    let conversation = fetch_uuids(&app, format!("select c.id {busy}")).await[0];
    let agent = fetch_uuids(&app, format!("select c.agent_id {busy}")).await[0];
    let (status, body) = app
        .api_call(
            reqwest::Method::POST,
            &format!("/api/v1/conversations/{conversation}/resolve"),
            Some(&token),
            Some(serde_json::json!({ "agent_id": agent, "comment": "Listo\u{0}" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "comment");
    let (_, state) = app
        .api_call(
            reqwest::Method::GET,
            &format!("/api/v1/conversations/{conversation}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(state["is_open"], true, "nothing was resolved");
}

/// Found as 500s on PostgreSQL: an e-mail with U+0000 reached the
/// account look-up of the login form (which anyone can post) and the
/// user form's save.
async fn a_nul_character_in_an_e_mail_is_refused_and_never_fails_a_login(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let visitor = common::new_client();
    let login = app
        .login_with(&visitor, "admin\u{0}@relevo.demo", ADMIN_PASSWORD)
        .await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    assert!(login.body.contains("lang=\"es\""));

    app.login_as_super().await;
    let user = app
        .create_user(
            "editable@relevo.demo",
            relevo::domain::Role::Admin,
            "Editable-de-prueba-2026",
            &["Cobranza"],
        )
        .await;
    let path = format!("/usuarios/{user}");
    let csrf = csrf_in(&app.get(&path).await.body);
    for email in ["editable\u{0}@relevo.demo", "editable\u{1}@relevo.demo"] {
        let answer = app
            .post_form(
                &path,
                &[
                    ("_csrf", &csrf),
                    ("nombre", "Usuaria Editable"),
                    ("correo", email),
                    ("rol", "admin"),
                ],
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{email:?}");
    }
    let stored = fetch_texts(
        &app,
        "select email from users where email like 'editable%'".to_owned(),
    )
    .await;
    assert_eq!(stored, ["editable@relevo.demo"]);
}

/// Found as 500s on PostgreSQL: a search went to the database with
/// U+0000 in it, and a bulk selection stored the folio as typed.
async fn a_nul_character_in_a_search_or_a_folio_is_ignored_instead_of_failing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let page = app.get("/mensajes?q=Ana%00").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Se ignoró el filtro de búsqueda"));
    let changes = app.get("/mensajes/cambios?q=Ana%00&estatus=todas").await;
    assert_eq!(changes.status, StatusCode::OK);
    let bulk_page = app.get("/mensajes/lote?todas=1&q=Ana%00").await;
    assert_eq!(bulk_page.status, StatusCode::OK);

    let folio = open_folio(&app).await;
    let form = app.get(&format!("/mensajes/lote?folio={folio}")).await.body;
    let category = one_uuid(&app, &category_sql("Ventas Hogar", "Cliente no responde"))
        .await
        .to_string();
    let answer = app
        .post_form(
            "/mensajes/lote",
            &[
                ("_csrf", &csrf_in(&form)),
                ("folio", &format!("{folio}\u{0}")),
                ("accion", "cancelar"),
                ("categoria", &category),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let job = app.get(answer.location.as_deref().expect("job page")).await;
    assert!(job.body.contains("no encontrada"));
    assert_ne!(status_of(&app, folio).await, "cancelled");

    let super_client = common::new_client();
    app.login_with(&super_client, SUPER_EMAIL, SUPER_PASSWORD)
        .await;
    let campaign = app.campaign_id("Cobranza").await;
    let members = app
        .get_with(
            &super_client,
            &format!("/campanas/{campaign}/miembros?buscar=Ana%00"),
        )
        .await;
    assert_eq!(members.status, StatusCode::OK);
}
