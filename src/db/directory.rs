//! Users, campaigns and channels: what the filters, the login and the
//! command line need to read and write.

use uuid::Uuid;

use super::row::from_row;
use super::{NotifyInTx, StoreError, StoreResult, Ts, with_read, with_write};
use crate::domain::{ChannelKind, Role, Scope};
use crate::live::Event;

from_row! {
    /// A campaign as a filter option.
    #[derive(Debug, Clone)]
    pub struct CampaignOption {
        pub id: Uuid,
        pub name: String,
    }
}

from_row! {
    /// A person (agent) as a filter option.
    #[derive(Debug, Clone)]
    pub struct PersonOption {
        pub id: Uuid,
        pub name: String,
    }
}

/// A channel kind present in the viewer's scope.
#[derive(Debug, Clone)]
pub struct ChannelOption {
    pub kind: ChannelKind,
}

from_row! {
    /// A user as stored (without the password hash).
    #[derive(Debug, Clone)]
    pub struct UserRecord {
        pub id: Uuid,
        pub email: String,
        pub name: String,
        #[try_from(String)]
        pub role: Role,
        pub active: bool,
    }
}

/// A user to create, with the names of the campaigns to assign.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Already normalised (trimmed, lower-cased).
    pub email: String,
    pub name: String,
    pub role: Role,
    pub password_hash: Option<String>,
    pub campaigns: Vec<String>,
}

impl super::Store {
    /// Creates a user and their campaign assignments in one transaction.
    /// Fails without writing anything when a campaign name is unknown or the
    /// e-mail is taken.
    pub async fn create_user(&self, user: &NewUser, now: Ts) -> StoreResult<Uuid> {
        let id = Uuid::now_v7();
        with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            sqlx::query(
                "insert into users (id, email, name, role, active, connected, password_hash, created_at, updated_at) \
                 values ($1, $2, $3, $4, true, false, $5, $6, $6)",
            )
            .bind(id)
            .bind(&user.email)
            .bind(&user.name)
            .bind(user.role.as_str())
            .bind(&user.password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for name in &user.campaigns {
                let campaign: Option<Uuid> =
                    sqlx::query_scalar("select id from campaigns where name_key = $1")
                        .bind(crate::domain::text::fold(name))
                        .fetch_optional(&mut *tx)
                        .await?;
                let campaign = campaign
                    .ok_or_else(|| StoreError::Conflict(format!("unknown campaign {name:?}")))?;
                sqlx::query(
                    "insert into campaign_members (campaign_id, user_id, created_at) values ($1, $2, $3)",
                )
                .bind(campaign)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "insert into audit_log (id, at, actor_id, action, object_kind, object_id, summary) \
                 values ($1, $2, null, 'user.create', 'user', $3, $4)",
            )
            .bind(Uuid::now_v7())
            .bind(now)
            .bind(id.to_string())
            .bind(format!(
                "Usuario {} ({}) creado desde la línea de comandos como {}",
                user.name,
                user.email,
                user.role.label()
            ))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(id)
    }

    /// The user with this e-mail (normalised), if any.
    pub async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as("select id, email, name, role, active from users where email = $1")
                .bind(email)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Activates or deactivates a user; a deactivated user's sessions stop
    /// working on their next request.
    pub async fn set_user_active(&self, user_id: Uuid, active: bool, now: Ts) -> StoreResult<()> {
        let event = Event::AccessChanged {
            user_id: Some(user_id),
        };
        let notification = self.feed().notification(event);
        with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            sqlx::query("update users set active = $2, updated_at = $3 where id = $1")
                .bind(user_id)
                .bind(active)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.notify_change(&notification).await?;
            tx.commit().await?;
        });
        self.publish(event);
        Ok(())
    }

    /// Changes a user's role.
    pub async fn set_user_role(&self, user_id: Uuid, role: Role, now: Ts) -> StoreResult<()> {
        let event = Event::AccessChanged {
            user_id: Some(user_id),
        };
        let notification = self.feed().notification(event);
        with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            sqlx::query("update users set role = $2, updated_at = $3 where id = $1")
                .bind(user_id)
                .bind(role.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.notify_change(&notification).await?;
            tx.commit().await?;
        });
        self.publish(event);
        Ok(())
    }

    /// Removes a user from a campaign.
    pub async fn unassign_campaign(&self, user_id: Uuid, campaign_id: Uuid) -> StoreResult<()> {
        let event = Event::AccessChanged {
            user_id: Some(user_id),
        };
        let notification = self.feed().notification(event);
        with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            sqlx::query("delete from campaign_members where user_id = $1 and campaign_id = $2")
                .bind(user_id)
                .bind(campaign_id)
                .execute(&mut *tx)
                .await?;
            tx.notify_change(&notification).await?;
            tx.commit().await?;
        });
        self.publish(event);
        Ok(())
    }

    /// Campaigns the scope covers, by name.
    pub async fn campaign_options(&self, scope: &Scope) -> StoreResult<Vec<CampaignOption>> {
        let all: Vec<CampaignOption> = with_read!(self, |pool| {
            sqlx::query_as("select id, name from campaigns order by name_key")
                .fetch_all(pool)
                .await?
        });
        Ok(all.into_iter().filter(|c| scope.allows(c.id)).collect())
    }

    /// Agents assigned to any campaign of the scope, by name.
    pub async fn agent_options(&self, scope: &Scope) -> StoreResult<Vec<PersonOption>> {
        // Only the scope's memberships are read (an Administrador's few
        // campaigns, not every agent of the deployment).
        let rows: Vec<(Uuid, String, Uuid)> = with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(
                "select u.id, u.name, m.campaign_id from campaign_members m \
                 join users u on u.id = m.user_id where u.role = 'agent'",
            );
            if let Scope::Campaigns(ids) = scope {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                qb.push(" and m.campaign_id in (");
                let mut list = qb.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                qb.push(")");
            }
            qb.push(" order by u.name, u.id");
            qb.build_query_as().fetch_all(pool).await?
        });
        let mut agents: Vec<PersonOption> = Vec::new();
        for (id, name, campaign) in rows {
            if scope.allows(campaign) && agents.last().is_none_or(|a| a.id != id) {
                agents.push(PersonOption { id, name });
            }
        }
        Ok(agents)
    }

    /// A campaign's id by its name (case-insensitive).
    pub async fn campaign_id_by_name(&self, name: &str) -> StoreResult<Option<Uuid>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_scalar("select id from campaigns where name_key = $1")
                .bind(crate::domain::text::fold(name))
                .fetch_optional(pool)
                .await?
        }))
    }
}
