//! What the administration pages (Campañas, Usuarios, Categorías,
//! Auditoría) share: role checks, form and query fields, keyset pager
//! links, the confirmation page shown before deactivating, and redirects.

use std::str::FromStr;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use uuid::Uuid;

use super::pages::{PageContext, render};
use crate::db::{AdminPage, PageCursor};
use crate::domain::Role;
use crate::http::auth::CurrentUser;
use crate::http::error::AppError;

/// Form or query fields as sent, repeated names included (`campanas=…&campanas=…`).
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, trimmed of nothing (empty when absent).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether the confirmation page was answered.
    pub fn confirmed(&self) -> bool {
        self.get("confirmado") == "si"
    }

    /// The keyset position in `despues` / `antes`, if valid.
    pub fn cursor(&self) -> Option<PageCursor> {
        self.cursor_in(PAGE_KEYS)
    }

    /// The keyset position in the fields `keys` names, if valid; a cursor
    /// that does not parse is no cursor (the first page).
    pub fn cursor_in<K: FromStr>(&self, keys: PageKeys) -> Option<PageCursor<K>> {
        if let Ok(key) = self.get(keys.next).trim().parse() {
            Some(PageCursor::After(key))
        } else if let Ok(key) = self.get(keys.prev).trim().parse() {
            Some(PageCursor::Before(key))
        } else {
            None
        }
    }
}

/// The query fields that carry a paged list's position: the rows before
/// `prev`, or after `next`. Two lists on one page use different names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageKeys {
    pub prev: &'static str,
    pub next: &'static str,
}

/// The fields of a page's only (or main) list.
pub const PAGE_KEYS: PageKeys = PageKeys {
    prev: "antes",
    next: "despues",
};

/// Campañas, Usuarios and Auditoría are for Super Administradores only.
pub fn require_super(user: &CurrentUser) -> Result<(), AppError> {
    if user.role == Role::SuperAdmin {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

/// A path id; malformed ones answer the same 404 as unknown ones.
pub fn path_id(raw: &str, not_found: &'static str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw.trim()).map_err(|_| AppError::NotFound(not_found))
}

/// A field that should hold an id and holds something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// An optional id from a field: `Ok(None)` when empty.
pub fn field_id(raw: &str) -> Result<Option<Uuid>, Malformed> {
    let raw = raw.trim();
    if raw.is_empty() {
        Ok(None)
    } else {
        Uuid::parse_str(raw).map(Some).map_err(|_| Malformed)
    }
}

/// 303 to `location` (after a successful POST).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .finish()
}

/// An `<option>`.
#[derive(Debug, Clone)]
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Opt {
    pub fn new(value: impl Into<String>, label: impl Into<String>, selected: bool) -> Opt {
        Opt {
            value: value.into(),
            label: label.into(),
            selected,
        }
    }
}

/// Anterior / Siguiente links of a keyset-paged list.
#[derive(Debug, Clone)]
pub struct Pager {
    /// What the links page through, for the navigation's accessible name.
    pub label: &'static str,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Default for Pager {
    fn default() -> Pager {
        Pager {
            label: "Paginación",
            prev: None,
            next: None,
        }
    }
}

impl Pager {
    /// Links for `page` of the list at `base` with the filter `params`.
    pub fn new<T>(
        base: &str,
        params: &[(&str, String)],
        page: &AdminPage<T>,
        id_of: impl Fn(&T) -> Uuid,
    ) -> Pager {
        Pager::in_fields(PAGE_KEYS, base, params, page, id_of)
    }

    /// Links for `page` whose position goes in the fields `keys` (the
    /// other fields the page keeps, such as another list's position, are
    /// in `params`).
    pub fn in_fields<T, K: std::fmt::Display>(
        keys: PageKeys,
        base: &str,
        params: &[(&str, String)],
        page: &AdminPage<T>,
        key_of: impl Fn(&T) -> K,
    ) -> Pager {
        let link = |field: &str, key: K| {
            let mut pairs: Vec<(&str, String)> = params
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .cloned()
                .collect();
            pairs.push((field, key.to_string()));
            format!(
                "{base}?{}",
                serde_urlencoded::to_string(&pairs).unwrap_or_default()
            )
        };
        Pager {
            prev: page
                .has_prev
                .then(|| page.rows.first().map(|r| link(keys.prev, key_of(r))))
                .flatten(),
            next: page
                .has_next
                .then(|| page.rows.last().map(|r| link(keys.next, key_of(r))))
                .flatten(),
            ..Pager::default()
        }
    }

    /// The same links, with another accessible name.
    pub fn labelled(self, label: &'static str) -> Pager {
        Pager { label, ..self }
    }
}

/// The page shown before a deactivation: what will happen, and a button
/// that posts the same form again with `confirmado=si`.
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub ctx: PageContext,
    pub title: String,
    pub consequences: Vec<String>,
    pub action: String,
    pub button: String,
    pub back: String,
}

/// Renders the confirmation page for a POST to `action`.
pub fn confirm(
    req: &HttpRequest,
    user: &CurrentUser,
    menu: &str,
    title: String,
    consequences: Vec<String>,
    back: String,
) -> Result<HttpResponse, AppError> {
    confirm_with(req, user, menu, title, consequences, "Desactivar", back)
}

/// [`confirm`] with another button label.
pub fn confirm_with(
    req: &HttpRequest,
    user: &CurrentUser,
    menu: &str,
    title: String,
    consequences: Vec<String>,
    button: &str,
    back: String,
) -> Result<HttpResponse, AppError> {
    render(&ConfirmPage {
        ctx: PageContext::new(req, user, menu)?,
        title,
        consequences,
        action: req.path().to_owned(),
        button: button.to_owned(),
        back,
    })
}

/// "hace 3 min"-free absolute time for administration lists.
pub fn when(at: crate::db::Ts, tz: chrono_tz::Tz) -> String {
    super::pages::local_datetime(at, tz)
}
