//! Closure categories and sub-categories of a campaign: the keyset-paged
//! list, create, rename, reorder, deactivate and reactivate.
//!
//! Nothing is ever deleted: history refers to categories by id and keeps
//! showing their names; a deactivated one simply stops being offered (the
//! cancel modal reads only active ones on every open). Names are unique
//! within their parent after case and accent folding (`name_key`); the
//! unique index decides races, and its violation becomes [`Refusal::Duplicate`].
//!
//! Order is a `position` unique within the parent (`0008_admin_paging.sql`)
//! and dense, 0 to n − 1: a new one goes last and a move swaps two
//! neighbours, each under a lock on the parent row, so a position is also
//! the item's place in the list and the list pages by it.

use std::collections::HashMap;

use uuid::Uuid;

use super::audit::{
    AdminPage, AdminResult, AuditEntry, ChildList, Keyset, PageCursor, Parent, Refusal,
    admin_write, duplicate,
};
use super::row::from_row;
use super::{StoreResult, Ts, with_read};
use crate::domain::admin::{AuditAction, Name};

/// Most sub-categories one category may have. The cancel modal offers all
/// of a category's active sub-categories in one list, which is only usable
/// while it is short; so the administration page shows them all, too, under
/// their category, rather than paging a list inside a paged list.
pub const MAX_SUBCATEGORIES: i64 = 50;

from_row! {
    /// A sub-category as the administration page shows it.
    #[derive(Debug, Clone)]
    pub struct SubcategoryAdmin {
        pub id: Uuid,
        pub category_id: Uuid,
        pub name: String,
        pub active: bool,
    }
}

/// A category with all its sub-categories (active or not), in order.
#[derive(Debug, Clone)]
pub struct CategoryAdmin {
    pub id: Uuid,
    pub name: String,
    pub active: bool,
    /// Its place in the campaign's list, from 0.
    pub position: i32,
    pub subcategories: Vec<SubcategoryAdmin>,
}

/// Which list an item is moved in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// A campaign's categories by position (`closure_categories_position_key`);
/// the cursor is a position.
pub(super) const CATEGORIES: ChildList = ChildList {
    select: "select id, name, active, position from closure_categories where campaign_id = ",
    keyset: Keyset {
        columns: &["position"],
        lookup: None,
        descending: false,
    },
};

/// Appends the select of every sub-category of `categories` (one page's), in
/// order (`closure_subcategories_position_key`). A macro so it expands per
/// backend's query builder; it only appends.
macro_rules! push_subcategories {
    ($qb:expr, $categories:expr) => {{
        let qb = $qb;
        qb.push(
            "select id, category_id, name, active from closure_subcategories \
             where category_id in (",
        );
        let mut list = qb.separated(", ");
        for id in $categories {
            list.push_bind(id);
        }
        qb.push(") order by category_id, position");
    }};
}

pub(super) use push_subcategories;

/// The statements that move an item among its siblings, for one level.
struct Siblings {
    /// The sibling just before position `$2` under parent `$1`.
    before: &'static str,
    /// The sibling just after position `$2` under parent `$1`.
    after: &'static str,
    /// Puts `$1` at position `$2`.
    place: &'static str,
}

const CATEGORY_SIBLINGS: Siblings = Siblings {
    before: "select id, position from closure_categories where campaign_id = $1 and position < $2 \
             order by position desc limit 1",
    after: "select id, position from closure_categories where campaign_id = $1 and position > $2 \
            order by position limit 1",
    place: "update closure_categories set position = $2 where id = $1",
};

const SUBCATEGORY_SIBLINGS: Siblings = Siblings {
    before: "select id, position from closure_subcategories where category_id = $1 and position < $2 \
             order by position desc limit 1",
    after: "select id, position from closure_subcategories where category_id = $1 and position > $2 \
            order by position limit 1",
    place: "update closure_subcategories set position = $2 where id = $1",
};

impl Siblings {
    /// The statement reading the neighbour in `direction`.
    fn towards(&self, direction: Direction) -> &'static str {
        match direction {
            Direction::Up => self.before,
            Direction::Down => self.after,
        }
    }
}

/// The places that swap item `id` at `from` with its neighbour `other` at
/// `to`, in order: through a free (negative) place, because the unique index
/// on (parent, position) is checked row by row.
fn swap_places(id: Uuid, from: i32, other: Uuid, to: i32) -> [(Uuid, i32); 3] {
    [(id, -1 - from), (other, from), (id, to)]
}

/// The neighbour (id, position) of the item at `$from` under `$parent` in
/// `$direction` among `$siblings`, read in `$tx`: `Result<Option<_>, _>`,
/// `None` at that end of the list. A macro so it expands for either
/// backend's transaction.
macro_rules! neighbour {
    ($tx:ident, $siblings:expr, $parent:expr, $from:expr, $direction:expr) => {
        sqlx::query_as::<_, (Uuid, i32)>($siblings.towards($direction))
            .bind($parent)
            .bind($from)
            .fetch_optional(&mut *$tx)
            .await
    };
}

/// Puts item `$id` at `$position` among `$siblings` in `$tx`:
/// `Result<_, _>`. A macro, as [`neighbour!`].
macro_rules! place {
    ($tx:ident, $siblings:expr, $id:expr, $position:expr) => {
        sqlx::query($siblings.place)
            .bind($id)
            .bind($position)
            .execute(&mut *$tx)
            .await
    };
}

/// The next free position under a locked parent (`$sql` reads the largest),
/// in `$tx`: `Result<i32, _>`. A macro, as [`neighbour!`].
macro_rules! next_position {
    ($tx:ident, $sql:expr, $parent:expr) => {
        sqlx::query_scalar::<_, Option<i32>>($sql)
            .bind($parent)
            .fetch_one(&mut *$tx)
            .await
            .map(|last| last.map_or(0, |p| p + 1))
    };
}

impl super::Store {
    /// One page of a campaign's categories in their order, each with all
    /// its sub-categories (at most [`MAX_SUBCATEGORIES`]), read for the
    /// whole page at once.
    pub async fn categories_page(
        &self,
        campaign_id: Uuid,
        cursor: Option<PageCursor<i32>>,
    ) -> StoreResult<AdminPage<CategoryAdmin>> {
        let page: AdminPage<(Uuid, String, bool, i32)> =
            self.child_page(&CATEGORIES, campaign_id, cursor).await?;
        let subs: Vec<SubcategoryAdmin> = if page.rows.is_empty() {
            Vec::new()
        } else {
            with_read!(self, |pool| {
                let mut qb = sqlx::QueryBuilder::new("");
                push_subcategories!(&mut qb, page.rows.iter().map(|(id, ..)| *id));
                qb.build_query_as().fetch_all(pool).await?
            })
        };
        let mut by_category: HashMap<Uuid, Vec<SubcategoryAdmin>> = HashMap::new();
        for sub in subs {
            by_category.entry(sub.category_id).or_default().push(sub);
        }
        Ok(AdminPage {
            rows: page
                .rows
                .into_iter()
                .map(|(id, name, active, position)| CategoryAdmin {
                    subcategories: by_category.remove(&id).unwrap_or_default(),
                    id,
                    name,
                    active,
                    position,
                })
                .collect(),
            has_prev: page.has_prev,
            has_next: page.has_next,
        })
    }

    /// The name and position of a category of `campaign_id`, if it is one.
    pub async fn category_place(
        &self,
        campaign_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<(String, i32)>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(
                "select name, position from closure_categories where id = $1 and campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// The name of a sub-category of a category of `campaign_id`, if it is
    /// one, and its category's position (which says on which page it shows).
    pub async fn subcategory_place(
        &self,
        campaign_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<(String, i32)>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(
                "select s.name, c.position from closure_subcategories s \
                 join closure_categories c on c.id = s.category_id \
                 where s.id = $1 and c.campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Creates a category at the end of the campaign's list.
    pub async fn create_category(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        name: &Name,
        now: Ts,
    ) -> AdminResult<Uuid> {
        let id = Uuid::now_v7();
        admin_write!(self, now, None, |tx| {
            tx.lock_parent(Parent::Campaign, campaign_id).await?;
            let campaign: String = sqlx::query_scalar("select name from campaigns where id = $1")
                .bind(campaign_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Refusal::NotFound)?;
            let position = next_position!(
                tx,
                "select max(position) from closure_categories where campaign_id = $1",
                campaign_id
            )?;
            sqlx::query(
                "insert into closure_categories (id, campaign_id, name, name_key, position, active, created_at) \
                 values ($1, $2, $3, $4, $5, true, $6)",
            )
            .bind(id)
            .bind(campaign_id)
            .bind(name.as_str())
            .bind(name.key())
            .bind(position)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(duplicate)?;
            let summary = format!("Categoría «{}» creada en «{campaign}»", name.as_str());
            Ok(Written::Changed(
                id,
                AuditEntry::by(
                    actor,
                    AuditAction::CategoryCreate,
                    id,
                    Some(campaign_id),
                    summary,
                ),
            ))
        })
    }

    /// Creates a sub-category at the end of a category of `campaign_id`.
    pub async fn create_subcategory(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        category_id: Uuid,
        name: &Name,
        now: Ts,
    ) -> AdminResult<Uuid> {
        let id = Uuid::now_v7();
        admin_write!(self, now, None, |tx| {
            tx.lock_parent(Parent::Category, category_id).await?;
            let category: String = sqlx::query_scalar(
                "select name from closure_categories where id = $1 and campaign_id = $2",
            )
            .bind(category_id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Refusal::NotFound)?;
            let count: i64 = sqlx::query_scalar(
                "select count(*) from closure_subcategories where category_id = $1",
            )
            .bind(category_id)
            .fetch_one(&mut *tx)
            .await?;
            if count >= MAX_SUBCATEGORIES {
                return Err(Refusal::Invalid(format!(
                    "Una categoría admite hasta {MAX_SUBCATEGORIES} subcategorías: es la lista que se ofrece al cancelar. Desactiva o renombra alguna."
                ))
                .into());
            }
            let position = next_position!(
                tx,
                "select max(position) from closure_subcategories where category_id = $1",
                category_id
            )?;
            sqlx::query(
                "insert into closure_subcategories (id, category_id, name, name_key, position, active, created_at) \
                 values ($1, $2, $3, $4, $5, true, $6)",
            )
            .bind(id)
            .bind(category_id)
            .bind(name.as_str())
            .bind(name.key())
            .bind(position)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(duplicate)?;
            let summary = format!(
                "Subcategoría «{}» creada en la categoría «{category}»",
                name.as_str()
            );
            Ok(Written::Changed(
                id,
                AuditEntry::by(
                    actor,
                    AuditAction::SubcategoryCreate,
                    id,
                    Some(campaign_id),
                    summary,
                ),
            ))
        })
    }

    /// Renames a category of `campaign_id`; `Ok(false)` if the name is the same.
    pub async fn rename_category(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        id: Uuid,
        name: &Name,
        now: Ts,
    ) -> AdminResult<bool> {
        admin_write!(self, now, None, |tx| {
            let old: String = sqlx::query_scalar(
                "select name from closure_categories where id = $1 and campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Refusal::NotFound)?;
            if old == name.as_str() {
                return Ok(Written::Unchanged(false));
            }
            sqlx::query("update closure_categories set name = $2, name_key = $3 where id = $1")
                .bind(id)
                .bind(name.as_str())
                .bind(name.key())
                .execute(&mut *tx)
                .await
                .map_err(duplicate)?;
            let summary = format!("Categoría «{old}» renombrada a «{}»", name.as_str());
            Ok(Written::Changed(
                true,
                AuditEntry::by(
                    actor,
                    AuditAction::CategoryRename,
                    id,
                    Some(campaign_id),
                    summary,
                ),
            ))
        })
    }

    /// Renames a sub-category of a category of `campaign_id`.
    pub async fn rename_subcategory(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        id: Uuid,
        name: &Name,
        now: Ts,
    ) -> AdminResult<bool> {
        admin_write!(self, now, None, |tx| {
            let (old, category): (String, String) = sqlx::query_as(
                "select s.name, c.name from closure_subcategories s \
                 join closure_categories c on c.id = s.category_id \
                 where s.id = $1 and c.campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Refusal::NotFound)?;
            if old == name.as_str() {
                return Ok(Written::Unchanged(false));
            }
            sqlx::query("update closure_subcategories set name = $2, name_key = $3 where id = $1")
                .bind(id)
                .bind(name.as_str())
                .bind(name.key())
                .execute(&mut *tx)
                .await
                .map_err(duplicate)?;
            let summary = format!(
                "Subcategoría «{old}» de «{category}» renombrada a «{}»",
                name.as_str()
            );
            Ok(Written::Changed(
                true,
                AuditEntry::by(
                    actor,
                    AuditAction::SubcategoryRename,
                    id,
                    Some(campaign_id),
                    summary,
                ),
            ))
        })
    }

    /// Moves a category one place up or down in its campaign's whole list
    /// (the first of a page swaps with the last of the page before);
    /// `Ok(false)` at either end.
    pub async fn move_category(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        id: Uuid,
        direction: Direction,
        now: Ts,
    ) -> AdminResult<bool> {
        admin_write!(self, now, None, |tx| {
            tx.lock_parent(Parent::Campaign, campaign_id).await?;
            let (name, from): (String, i32) = sqlx::query_as(
                "select name, position from closure_categories where id = $1 and campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Refusal::NotFound)?;
            let neighbour = neighbour!(tx, CATEGORY_SIBLINGS, campaign_id, from, direction)?;
            let Some((other, to)) = neighbour else {
                return Ok(Written::Unchanged(false));
            };
            for (row, position) in swap_places(id, from, other, to) {
                place!(tx, CATEGORY_SIBLINGS, row, position)?;
            }
            let summary = format!(
                "Categoría «{name}» movida del lugar {} al {}",
                from + 1,
                to + 1
            );
            Ok(Written::Changed(
                true,
                AuditEntry::by(
                    actor,
                    AuditAction::CategoryMove,
                    id,
                    Some(campaign_id),
                    summary,
                ),
            ))
        })
    }

    /// Moves a sub-category one place up or down within its category.
    pub async fn move_subcategory(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        id: Uuid,
        direction: Direction,
        now: Ts,
    ) -> AdminResult<bool> {
        admin_write!(self, now, None, |tx| {
            let (category_id, category): (Uuid, String) = sqlx::query_as(
                "select c.id, c.name from closure_subcategories s \
                 join closure_categories c on c.id = s.category_id \
                 where s.id = $1 and c.campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Refusal::NotFound)?;
            // A sub-category never changes category; its place is read under the lock.
            tx.lock_parent(Parent::Category, category_id).await?;
            let (name, from): (String, i32) =
                sqlx::query_as("select name, position from closure_subcategories where id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            let neighbour = neighbour!(tx, SUBCATEGORY_SIBLINGS, category_id, from, direction)?;
            let Some((other, to)) = neighbour else {
                return Ok(Written::Unchanged(false));
            };
            for (row, position) in swap_places(id, from, other, to) {
                place!(tx, SUBCATEGORY_SIBLINGS, row, position)?;
            }
            let summary = format!(
                "Subcategoría «{name}» de «{category}» movida del lugar {} al {}",
                from + 1,
                to + 1
            );
            Ok(Written::Changed(
                true,
                AuditEntry::by(
                    actor,
                    AuditAction::SubcategoryMove,
                    id,
                    Some(campaign_id),
                    summary,
                ),
            ))
        })
    }

    /// Deactivates or reactivates a category of `campaign_id`. A deactivated
    /// category is no longer offered when cancelling; history keeps its name.
    pub async fn set_category_active(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        id: Uuid,
        active: bool,
        now: Ts,
    ) -> AdminResult<bool> {
        admin_write!(self, now, None, |tx| {
            let (name, was): (String, bool) = sqlx::query_as(
                "select name, active from closure_categories where id = $1 and campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Refusal::NotFound)?;
            if was == active {
                return Ok(Written::Unchanged(false));
            }
            sqlx::query("update closure_categories set active = $2 where id = $1")
                .bind(id)
                .bind(active)
                .execute(&mut *tx)
                .await?;
            let (action, verb) = if active {
                (AuditAction::CategoryReactivate, "reactivada")
            } else {
                (AuditAction::CategoryDeactivate, "desactivada")
            };
            let summary = format!("Categoría «{name}» {verb}");
            Ok(Written::Changed(
                true,
                AuditEntry::by(actor, action, id, Some(campaign_id), summary),
            ))
        })
    }

    /// Deactivates or reactivates a sub-category of a category of `campaign_id`.
    pub async fn set_subcategory_active(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        id: Uuid,
        active: bool,
        now: Ts,
    ) -> AdminResult<bool> {
        admin_write!(self, now, None, |tx| {
            let (name, was, category): (String, bool, String) = sqlx::query_as(
                "select s.name, s.active, c.name from closure_subcategories s \
                 join closure_categories c on c.id = s.category_id \
                 where s.id = $1 and c.campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Refusal::NotFound)?;
            if was == active {
                return Ok(Written::Unchanged(false));
            }
            sqlx::query("update closure_subcategories set active = $2 where id = $1")
                .bind(id)
                .bind(active)
                .execute(&mut *tx)
                .await?;
            let (action, verb) = if active {
                (AuditAction::SubcategoryReactivate, "reactivada")
            } else {
                (AuditAction::SubcategoryDeactivate, "desactivada")
            };
            let summary = format!("Subcategoría «{name}» de «{category}» {verb}");
            Ok(Written::Changed(
                true,
                AuditEntry::by(actor, action, id, Some(campaign_id), summary),
            ))
        })
    }
}
