//! Closure categories and sub-categories of a campaign: create, rename,
//! reorder, deactivate and reactivate.
//!
//! Nothing is ever deleted: history refers to categories by id and keeps
//! showing their names; a deactivated one simply stops being offered (the
//! cancel modal reads only active ones on every open). Names are unique
//! within their parent after case and accent folding (`name_key`); the
//! unique index decides races, and its violation becomes [`Refusal::Duplicate`].

use uuid::Uuid;

use super::admin::{AdminResult, Refusal, is_unique};
use super::audit::{AdminTx, AuditEntry};
use super::{StoreResult, Ts, with_read, with_write};
use crate::domain::admin::{AuditAction, Name};

/// Most categories one campaign may have, and sub-categories one category may have.
pub const MAX_CATEGORIES: i64 = 100;
pub const MAX_SUBCATEGORIES: i64 = 50;

/// A sub-category as the administration page shows it.
#[derive(Debug, Clone)]
pub struct SubcategoryAdmin {
    pub id: Uuid,
    pub name: String,
    pub active: bool,
}

/// A category with all its sub-categories (active or not), in order.
#[derive(Debug, Clone)]
pub struct CategoryAdmin {
    pub id: Uuid,
    pub name: String,
    pub active: bool,
    pub subcategories: Vec<SubcategoryAdmin>,
}

type TreeRow = (
    Uuid,
    String,
    bool,
    Option<Uuid>,
    Option<String>,
    Option<bool>,
);

/// Which list an item is moved in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

impl super::Store {
    /// Every category of a campaign with its sub-categories, in their order.
    pub async fn category_tree(&self, campaign_id: Uuid) -> StoreResult<Vec<CategoryAdmin>> {
        let rows: Vec<TreeRow> = with_read!(self, |pool| {
            sqlx::query_as(
                "select c.id, c.name, c.active, s.id, s.name, s.active from closure_categories c \
                 left join closure_subcategories s on s.category_id = c.id \
                 where c.campaign_id = $1 \
                 order by c.position, c.name_key, c.id, s.position, s.name_key, s.id",
            )
            .bind(campaign_id)
            .fetch_all(pool)
            .await?
        });
        let mut tree: Vec<CategoryAdmin> = Vec::new();
        for (id, name, active, sub_id, sub_name, sub_active) in rows {
            if tree.last().is_none_or(|c| c.id != id) {
                tree.push(CategoryAdmin {
                    id,
                    name,
                    active,
                    subcategories: Vec::new(),
                });
            }
            if let (Some(sid), Some(sname), Some(sactive), Some(last)) =
                (sub_id, sub_name, sub_active, tree.last_mut())
            {
                last.subcategories.push(SubcategoryAdmin {
                    id: sid,
                    name: sname,
                    active: sactive,
                });
            }
        }
        Ok(tree)
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
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let campaign: Option<String> =
                sqlx::query_scalar("select name from campaigns where id = $1")
                    .bind(campaign_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(campaign) = campaign else {
                return Ok(Err(Refusal::NotFound));
            };
            let (count, last): (i64, Option<i32>) = sqlx::query_as(
                "select count(*), max(position) from closure_categories where campaign_id = $1",
            )
            .bind(campaign_id)
            .fetch_one(&mut *tx)
            .await?;
            if count >= MAX_CATEGORIES {
                return Ok(Err(Refusal::Invalid(format!(
                    "Una campaña admite hasta {MAX_CATEGORIES} categorías."
                ))));
            }
            let inserted = sqlx::query(
                "insert into closure_categories (id, campaign_id, name, name_key, position, active, created_at) \
                 values ($1, $2, $3, $4, $5, true, $6)",
            )
            .bind(id)
            .bind(campaign_id)
            .bind(name.as_str())
            .bind(name.key())
            .bind(last.map_or(0, |p| p + 1))
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(e) if is_unique(&e) => Err(Refusal::Duplicate),
                Err(e) => return Err(e.into()),
                Ok(_) => {
                    let entry = AuditEntry {
                        actor_id: Some(actor),
                        action: AuditAction::CategoryCreate,
                        object_id: Some(id),
                        campaign_id: Some(campaign_id),
                        summary: format!("Categoría «{}» creada en «{campaign}»", name.as_str()),
                    };
                    tx.audit(now, &entry).await?;
                    tx.commit().await?;
                    Ok(id)
                }
            }
        }))
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
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let category: Option<String> = sqlx::query_scalar(
                "select name from closure_categories where id = $1 and campaign_id = $2",
            )
            .bind(category_id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(category) = category else {
                return Ok(Err(Refusal::NotFound));
            };
            let (count, last): (i64, Option<i32>) = sqlx::query_as(
                "select count(*), max(position) from closure_subcategories where category_id = $1",
            )
            .bind(category_id)
            .fetch_one(&mut *tx)
            .await?;
            if count >= MAX_SUBCATEGORIES {
                return Ok(Err(Refusal::Invalid(format!(
                    "Una categoría admite hasta {MAX_SUBCATEGORIES} subcategorías."
                ))));
            }
            let inserted = sqlx::query(
                "insert into closure_subcategories (id, category_id, name, name_key, position, active, created_at) \
                 values ($1, $2, $3, $4, $5, true, $6)",
            )
            .bind(id)
            .bind(category_id)
            .bind(name.as_str())
            .bind(name.key())
            .bind(last.map_or(0, |p| p + 1))
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(e) if is_unique(&e) => Err(Refusal::Duplicate),
                Err(e) => return Err(e.into()),
                Ok(_) => {
                    let entry = AuditEntry {
                        actor_id: Some(actor),
                        action: AuditAction::SubcategoryCreate,
                        object_id: Some(id),
                        campaign_id: Some(campaign_id),
                        summary: format!(
                            "Subcategoría «{}» creada en la categoría «{category}»",
                            name.as_str()
                        ),
                    };
                    tx.audit(now, &entry).await?;
                    tx.commit().await?;
                    Ok(id)
                }
            }
        }))
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
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let old: Option<String> = sqlx::query_scalar(
                "select name from closure_categories where id = $1 and campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(old) = old else {
                return Ok(Err(Refusal::NotFound));
            };
            if old == name.as_str() {
                return Ok(Ok(false));
            }
            let updated =
                sqlx::query("update closure_categories set name = $2, name_key = $3 where id = $1")
                    .bind(id)
                    .bind(name.as_str())
                    .bind(name.key())
                    .execute(&mut *tx)
                    .await;
            match updated {
                Err(e) if is_unique(&e) => Err(Refusal::Duplicate),
                Err(e) => return Err(e.into()),
                Ok(_) => {
                    let entry = AuditEntry {
                        actor_id: Some(actor),
                        action: AuditAction::CategoryRename,
                        object_id: Some(id),
                        campaign_id: Some(campaign_id),
                        summary: format!("Categoría «{old}» renombrada a «{}»", name.as_str()),
                    };
                    tx.audit(now, &entry).await?;
                    tx.commit().await?;
                    Ok(true)
                }
            }
        }))
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
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let old: Option<(String, String)> = sqlx::query_as(
                "select s.name, c.name from closure_subcategories s \
                 join closure_categories c on c.id = s.category_id \
                 where s.id = $1 and c.campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((old, category)) = old else {
                return Ok(Err(Refusal::NotFound));
            };
            if old == name.as_str() {
                return Ok(Ok(false));
            }
            let updated = sqlx::query(
                "update closure_subcategories set name = $2, name_key = $3 where id = $1",
            )
            .bind(id)
            .bind(name.as_str())
            .bind(name.key())
            .execute(&mut *tx)
            .await;
            match updated {
                Err(e) if is_unique(&e) => Err(Refusal::Duplicate),
                Err(e) => return Err(e.into()),
                Ok(_) => {
                    let entry = AuditEntry {
                        actor_id: Some(actor),
                        action: AuditAction::SubcategoryRename,
                        object_id: Some(id),
                        campaign_id: Some(campaign_id),
                        summary: format!(
                            "Subcategoría «{old}» de «{category}» renombrada a «{}»",
                            name.as_str()
                        ),
                    };
                    tx.audit(now, &entry).await?;
                    tx.commit().await?;
                    Ok(true)
                }
            }
        }))
    }

    /// Moves a category one place up or down in its campaign's list;
    /// `Ok(false)` at either end.
    pub async fn move_category(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        id: Uuid,
        direction: Direction,
        now: Ts,
    ) -> AdminResult<bool> {
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let siblings: Vec<(Uuid, String, i32)> = sqlx::query_as(
                "select id, name, position from closure_categories where campaign_id = $1 \
                 order by position, name_key, id",
            )
            .bind(campaign_id)
            .fetch_all(&mut *tx)
            .await?;
            let Some((order, name, from, to)) = reorder(&siblings, id, direction) else {
                return Ok(if siblings.iter().any(|s| s.0 == id) {
                    Ok(false)
                } else {
                    Err(Refusal::NotFound)
                });
            };
            for (position, (sid, _, current)) in order.iter().enumerate() {
                if *current != position as i32 {
                    sqlx::query("update closure_categories set position = $2 where id = $1")
                        .bind(*sid)
                        .bind(position as i32)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let entry = AuditEntry {
                actor_id: Some(actor),
                action: AuditAction::CategoryMove,
                object_id: Some(id),
                campaign_id: Some(campaign_id),
                summary: format!("Categoría «{name}» movida del lugar {from} al {to}"),
            };
            tx.audit(now, &entry).await?;
            tx.commit().await?;
            Ok(true)
        }))
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
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let parent: Option<(Uuid, String)> = sqlx::query_as(
                "select c.id, c.name from closure_subcategories s \
                 join closure_categories c on c.id = s.category_id \
                 where s.id = $1 and c.campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((category_id, category)) = parent else {
                return Ok(Err(Refusal::NotFound));
            };
            let siblings: Vec<(Uuid, String, i32)> = sqlx::query_as(
                "select id, name, position from closure_subcategories where category_id = $1 \
                 order by position, name_key, id",
            )
            .bind(category_id)
            .fetch_all(&mut *tx)
            .await?;
            let Some((order, name, from, to)) = reorder(&siblings, id, direction) else {
                return Ok(Ok(false));
            };
            for (position, (sid, _, current)) in order.iter().enumerate() {
                if *current != position as i32 {
                    sqlx::query("update closure_subcategories set position = $2 where id = $1")
                        .bind(*sid)
                        .bind(position as i32)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let entry = AuditEntry {
                actor_id: Some(actor),
                action: AuditAction::SubcategoryMove,
                object_id: Some(id),
                campaign_id: Some(campaign_id),
                summary: format!(
                    "Subcategoría «{name}» de «{category}» movida del lugar {from} al {to}"
                ),
            };
            tx.audit(now, &entry).await?;
            tx.commit().await?;
            Ok(true)
        }))
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
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let current: Option<(String, bool)> = sqlx::query_as(
                "select name, active from closure_categories where id = $1 and campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?;
            match current {
                None => Err(Refusal::NotFound),
                Some((_, was)) if was == active => Ok(false),
                Some((name, _)) => {
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
                    let entry = AuditEntry {
                        actor_id: Some(actor),
                        action,
                        object_id: Some(id),
                        campaign_id: Some(campaign_id),
                        summary: format!("Categoría «{name}» {verb}"),
                    };
                    tx.audit(now, &entry).await?;
                    tx.commit().await?;
                    Ok(true)
                }
            }
        }))
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
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let current: Option<(String, bool, String)> = sqlx::query_as(
                "select s.name, s.active, c.name from closure_subcategories s \
                 join closure_categories c on c.id = s.category_id \
                 where s.id = $1 and c.campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?;
            match current {
                None => Err(Refusal::NotFound),
                Some((_, was, _)) if was == active => Ok(false),
                Some((name, _, category)) => {
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
                    let entry = AuditEntry {
                        actor_id: Some(actor),
                        action,
                        object_id: Some(id),
                        campaign_id: Some(campaign_id),
                        summary: format!("Subcategoría «{name}» de «{category}» {verb}"),
                    };
                    tx.audit(now, &entry).await?;
                    tx.commit().await?;
                    Ok(true)
                }
            }
        }))
    }
}

/// The list with `id` moved one place, its name, and its old and new
/// places (1-based); `None` when `id` is absent or already at that end.
#[allow(clippy::type_complexity)]
fn reorder(
    siblings: &[(Uuid, String, i32)],
    id: Uuid,
    direction: Direction,
) -> Option<(Vec<(Uuid, String, i32)>, String, usize, usize)> {
    let index = siblings.iter().position(|s| s.0 == id)?;
    let target = match direction {
        Direction::Up => index.checked_sub(1)?,
        Direction::Down => Some(index + 1).filter(|t| *t < siblings.len())?,
    };
    let mut order = siblings.to_vec();
    order.swap(index, target);
    Some((order, siblings[index].1.clone(), index + 1, target + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_swaps_with_the_neighbour_and_stops_at_the_ends() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let list = vec![(a, "A".to_owned(), 0), (b, "B".to_owned(), 0)];
        let (order, name, from, to) = reorder(&list, b, Direction::Up).unwrap();
        assert_eq!(order[0].0, b);
        assert_eq!((name.as_str(), from, to), ("B", 2, 1));
        assert!(reorder(&list, a, Direction::Up).is_none());
        assert!(reorder(&list, b, Direction::Down).is_none());
    }
}
