//! The benchmark data set of BENCHMARKS.md, generated deterministically and
//! written with multi-row inserts in large transactions: 50 campaigns, 500
//! agents, 200,000 contacts, 1,000,000 conversations over 180 days (the most
//! recent 10 % open) with their history and the customer message that
//! opened each one (a `messages` row and its `inbound_messages` delivery
//! record, so the idempotency look-up of `ingest` meets a table of real
//! size), 8 categories per campaign with 0–4 sub-categories each.

use std::io::Write;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use relevo::db::{Store, Ts};
use sha2::{Digest, Sha256};
use sqlx::QueryBuilder;
use uuid::Uuid;

pub const CAMPAIGNS: u64 = 50;
pub const AGENTS_PER_CAMPAIGN: u64 = 10;
pub const CHANNELS_PER_CAMPAIGN: u64 = 2;
pub const CONTACTS: u64 = 200_000;
pub const CATEGORIES_PER_CAMPAIGN: u64 = 8;
pub const ADMINS: u64 = 20;
pub const PASSWORD: &str = "bench-password-2026";
/// Bumped whenever the generated data changes shape.
pub const VERSION: &str = "relevo-bench-v3";

/// Entity ids are deterministic so scenarios can name them.
pub fn id(kind: u128, n: u64) -> Uuid {
    Uuid::from_u128((kind << 96) | n as u128)
}
pub const K_CAMPAIGN: u128 = 1;
pub const K_USER: u128 = 2;
pub const K_CHANNEL: u128 = 3;
pub const K_CONTACT: u128 = 4;
pub const K_CONVERSATION: u128 = 5;
pub const K_CATEGORY: u128 = 6;
pub const K_SUBCATEGORY: u128 = 7;
pub const K_EVENT: u128 = 8;
pub const K_MESSAGE: u128 = 9;

pub fn agent_id(campaign: u64, k: u64) -> Uuid {
    id(K_USER, 1000 + campaign * AGENTS_PER_CAMPAIGN + k)
}
pub fn admin_email(k: u64) -> String {
    format!("bench-admin-{k}@relevo.bench")
}
/// The campaigns administrator `k` is assigned to. Admin 0 (the `list` and
/// `search` user) has 5 of the 50.
pub fn admin_campaigns(k: u64) -> Vec<u64> {
    if k == 0 {
        return (0..5).collect();
    }
    let count = 1 + k % 6;
    (0..count).map(|i| (k * 7 + i * 3) % CAMPAIGNS).collect()
}
pub fn channel_token(channel: u64) -> String {
    format!("bench-channel-token-{channel:04}")
}
fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
/// Contact `n`'s phone: a Mexico City mobile ("52", "55" and 8 digits).
/// The 8 digits are `n` scrambled by a bijection of 0..10^8 (48,271 is prime
/// to 10^8), so numbers spread over the whole range as real ones do, instead
/// of 200,000 consecutive numbers that every short prefix would match.
pub fn contact_phone(n: u64) -> String {
    format!("5255{:08}", (n * 48_271 + 12_345) % 100_000_000)
}

const STATUSES_OPEN: [&str; 5] = [
    "icr",
    "assigned",
    "in_progress",
    "out_of_hours",
    "agents_offline",
];

/// (id, conversation, at, kind, from status, to status, to agent, actor kind, actor)
type EventRow = (
    Uuid,
    Uuid,
    Ts,
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<Uuid>,
    &'static str,
    Option<Uuid>,
);

/// Where the data set lives and how big it is.
pub struct Plan {
    pub conversations: u64,
    pub now: DateTime<Utc>,
}

impl Plan {
    pub fn open_from(&self) -> u64 {
        self.conversations - self.conversations / 10
    }

    pub fn contact_of(&self, n: u64) -> u64 {
        (n * 7919) % CONTACTS
    }

    pub fn campaign_of_contact(contact: u64) -> u64 {
        (contact % (CAMPAIGNS * CHANNELS_PER_CAMPAIGN)) / CHANNELS_PER_CAMPAIGN
    }

    pub fn channel_of_contact(contact: u64) -> u64 {
        contact % (CAMPAIGNS * CHANNELS_PER_CAMPAIGN)
    }

    pub fn status_of(&self, n: u64) -> &'static str {
        if n >= self.open_from() {
            STATUSES_OPEN[(n % 5) as usize]
        } else if n.is_multiple_of(3) {
            "cancelled"
        } else {
            "resolved"
        }
    }

    pub fn started_at(&self, n: u64) -> DateTime<Utc> {
        let span = Duration::days(180).num_seconds() as f64;
        let offset = span * (n as f64 / self.conversations as f64);
        self.now - Duration::days(180) + Duration::milliseconds((offset * 1000.0) as i64)
    }
}

/// Rows per insert statement into a table whose triggers write the event
/// log. SQLite's triggers number each event from `sqlite_sequence`, which a
/// multi-row statement advances only when it ends (its rows would all get
/// the same number): one row per statement there, in the same transaction.
fn rows_per_statement(store: &Store, elsewhere: usize) -> usize {
    match store {
        Store::Sqlite(_) => 1,
        Store::Postgres(_) => elsewhere,
    }
}

macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            Store::Sqlite(pools) => {
                let $pool = &pools.write;
                $body
            }
            Store::Postgres(pg) => {
                let $pool = &pg.pool;
                $body
            }
        }
    };
}

/// Whether `store` already holds this data set.
pub async fn matches(store: &Store, plan: &Plan) -> bool {
    let expected = format!("{VERSION}:{}", plan.conversations);
    store.setting("bench_dataset").await.ok().flatten() == Some(expected)
}

fn progress(label: &str, done: u64, total: u64, started: Instant) {
    let width = 30;
    let filled = (done * width / total.max(1)) as usize;
    print!(
        "\r  {label:<14} [{}{}] {done:>9}/{total} {:>5.1}s",
        "#".repeat(filled),
        " ".repeat(width as usize - filled),
        started.elapsed().as_secs_f64()
    );
    let _ = std::io::stdout().flush();
    if done >= total {
        println!();
    }
}

/// Builds the data set into an empty, migrated `store`.
pub async fn build(store: &Store, plan: &Plan, password_hash: &str) -> anyhow::Result<()> {
    let now = Ts::new(plan.now);
    if let Store::Sqlite(pools) = store {
        // Loading only: the file is rebuilt if this run dies half-way.
        sqlx::query("pragma synchronous = off")
            .execute(&pools.write)
            .await?;
    }
    on_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        for c in 0..CAMPAIGNS {
            sqlx::query(
                "insert into campaigns (id, name, name_key, active, timezone, created_at, updated_at) \
                 values ($1, $2, $3, true, 'America/Mexico_City', $4, $4)",
            )
            .bind(id(K_CAMPAIGN, c))
            .bind(format!("Campaña {c:02}"))
            .bind(format!("campaña {c:02}"))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for weekday in 0..7i32 {
                sqlx::query(
                    "insert into campaign_schedules (campaign_id, weekday, opens_at, closes_at) values ($1, $2, '07:00', '22:00')",
                )
                .bind(id(K_CAMPAIGN, c))
                .bind(weekday)
                .execute(&mut *tx)
                .await?;
            }
            for ch in 0..CHANNELS_PER_CAMPAIGN {
                let channel = c * CHANNELS_PER_CAMPAIGN + ch;
                sqlx::query(
                    "insert into channels (id, campaign_id, kind, name, token_hash, active, created_at) \
                     values ($1, $2, $3, $4, $5, true, $6)",
                )
                .bind(id(K_CHANNEL, channel))
                .bind(id(K_CAMPAIGN, c))
                .bind(if ch == 0 { "whatsapp" } else { "web" })
                .bind(format!("Canal {channel}"))
                .bind(sha256_hex(&channel_token(channel)))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            for k in 0..CATEGORIES_PER_CAMPAIGN {
                let category = c * CATEGORIES_PER_CAMPAIGN + k;
                sqlx::query(
                    "insert into closure_categories (id, campaign_id, name, name_key, position, active, created_at) \
                     values ($1, $2, $3, $4, $5, true, $6)",
                )
                .bind(id(K_CATEGORY, category))
                .bind(id(K_CAMPAIGN, c))
                .bind(format!("Categoría {k}"))
                .bind(format!("categoria {k}"))
                .bind(k as i32)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                for s in 0..(k % 5) {
                    sqlx::query(
                        "insert into closure_subcategories (id, category_id, name, name_key, position, active, created_at) \
                         values ($1, $2, $3, $4, $5, true, $6)",
                    )
                    .bind(id(K_SUBCATEGORY, category * 10 + s))
                    .bind(id(K_CATEGORY, category))
                    .bind(format!("Subcategoría {s}"))
                    .bind(format!("subcategoria {s}"))
                    .bind(s as i32)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for k in 0..AGENTS_PER_CAMPAIGN {
                let user = agent_id(c, k);
                sqlx::query(
                    "insert into users (id, email, name, role, active, connected, password_hash, created_at, updated_at) \
                     values ($1, $2, $3, 'agent', true, $4, null, $5, $5)",
                )
                .bind(user)
                .bind(format!("agente-{c}-{k}@relevo.bench"))
                .bind(format!("Agente {c}-{k}"))
                .bind(k % 2 == 0)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("insert into campaign_members (campaign_id, user_id, created_at) values ($1, $2, $3)")
                    .bind(id(K_CAMPAIGN, c))
                    .bind(user)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let super_id = id(K_USER, 1);
        sqlx::query(
            "insert into users (id, email, name, role, active, connected, password_hash, created_at, updated_at) \
             values ($1, 'bench-super@relevo.bench', 'Super Bench', 'super_admin', true, false, $2, $3, $3)",
        )
        .bind(super_id)
        .bind(password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for k in 0..ADMINS {
            let user = id(K_USER, 10 + k);
            sqlx::query(
                "insert into users (id, email, name, role, active, connected, password_hash, created_at, updated_at) \
                 values ($1, $2, $3, 'admin', true, false, $4, $5, $5)",
            )
            .bind(user)
            .bind(admin_email(k))
            .bind(format!("Administrador {k}"))
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for c in admin_campaigns(k) {
                sqlx::query("insert into campaign_members (campaign_id, user_id, created_at) values ($1, $2, $3) on conflict do nothing")
                    .bind(id(K_CAMPAIGN, c))
                    .bind(user)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
    });

    // Contacts.
    let started = Instant::now();
    let chunk = 4000u64;
    let mut done = 0;
    while done < CONTACTS {
        let end = (done + chunk).min(CONTACTS);
        on_pool!(store, |pool| {
            let mut qb = QueryBuilder::new(
                "insert into contacts (id, channel_id, external_id, name, name_key, created_at) ",
            );
            qb.push_values(done..end, |mut b, n| {
                let name = format!("Cliente {n}");
                b.push_bind(id(K_CONTACT, n))
                    .push_bind(id(K_CHANNEL, Plan::channel_of_contact(n)))
                    .push_bind(contact_phone(n))
                    .push_bind(name.clone())
                    .push_bind(name.to_lowercase())
                    .push_bind(now);
            });
            qb.build().execute(pool).await?;
        });
        done = end;
        progress("contacts", done, CONTACTS, started);
    }

    // Conversations, then their history.
    let started = Instant::now();
    let chunk = 1500u64;
    let mut done = 0;
    let total = plan.conversations;
    while done < total {
        let end = (done + chunk).min(total);
        on_pool!(store, |pool| {
            let mut tx = pool.begin().await?;
            let mut qb = QueryBuilder::new(
                "insert into conversations (folio, id, campaign_id, channel_id, contact_id, status, is_open, version, \
                 agent_id, started_at, last_activity_at, closed_at, closed_by, closer_kind, closure_category_id, \
                 closure_subcategory_id, closure_comment) ",
            );
            qb.push_values(done..end, |mut b, n| {
                let contact = plan.contact_of(n);
                let campaign = Plan::campaign_of_contact(contact);
                let status = plan.status_of(n);
                let started_at = plan.started_at(n);
                let last = started_at + Duration::seconds((n % 600) as i64 + 30);
                let has_agent = !matches!(status, "icr" | "out_of_hours" | "agents_offline");
                let closed = matches!(status, "resolved" | "cancelled");
                let version = match status {
                    "icr" => 1,
                    "assigned" | "out_of_hours" | "agents_offline" => 2,
                    "in_progress" | "cancelled" => 3,
                    _ => 4,
                };
                let category = id(K_CATEGORY, campaign * CATEGORIES_PER_CAMPAIGN + n % 8);
                b.push_bind(10_001 + n as i64)
                    .push_bind(id(K_CONVERSATION, n))
                    .push_bind(id(K_CAMPAIGN, campaign))
                    .push_bind(id(K_CHANNEL, Plan::channel_of_contact(contact)))
                    .push_bind(id(K_CONTACT, contact))
                    .push_bind(status)
                    .push_bind(!closed)
                    .push_bind(version as i64)
                    .push_bind(has_agent.then(|| agent_id(campaign, n % AGENTS_PER_CAMPAIGN)))
                    .push_bind(Ts::new(started_at))
                    .push_bind(Ts::new(last))
                    .push_bind(closed.then(|| Ts::new(last)))
                    .push_bind(if status == "cancelled" {
                        Some(id(K_USER, 10))
                    } else {
                        None
                    })
                    .push_bind(match status {
                        "cancelled" => Some("administrator"),
                        "resolved" => Some("agent"),
                        _ => None,
                    })
                    .push_bind((status == "cancelled").then_some(category))
                    .push_bind(None::<Uuid>)
                    .push_bind(None::<String>);
            });
            qb.build().execute(&mut *tx).await?;
            tx.commit().await?;
        });
        done = end;
        progress("conversations", done, total, started);
    }

    let started = Instant::now();
    let chunk = 2000u64;
    let mut done = 0;
    while done < total {
        let end = (done + chunk).min(total);
        let mut events: Vec<EventRow> = Vec::with_capacity(((end - done) * 4) as usize);
        for n in done..end {
            let contact = plan.contact_of(n);
            let campaign = Plan::campaign_of_contact(contact);
            let status = plan.status_of(n);
            let conversation = id(K_CONVERSATION, n);
            let started_at = plan.started_at(n);
            let agent = agent_id(campaign, n % AGENTS_PER_CAMPAIGN);
            let event = |i: u64| id(K_EVENT, n * 4 + i);
            let at = |s: i64| Ts::new(started_at + Duration::seconds(s));
            events.push((
                event(0),
                conversation,
                at(0),
                "created",
                None,
                "icr",
                None,
                "customer",
                None,
            ));
            let handoff_to = match status {
                "icr" => None,
                "out_of_hours" => Some(("out_of_hours", None)),
                "agents_offline" => Some(("agents_offline", None)),
                "cancelled" => Some(("assigned", Some(agent))),
                _ => Some(("assigned", Some(agent))),
            };
            if let Some((to, to_agent)) = handoff_to {
                events.push((
                    event(1),
                    conversation,
                    at(10),
                    "handoff",
                    Some("icr"),
                    to,
                    to_agent,
                    "system",
                    None,
                ));
            }
            if matches!(status, "in_progress" | "resolved") {
                events.push((
                    event(2),
                    conversation,
                    at(20),
                    "first_reply",
                    Some("assigned"),
                    "in_progress",
                    Some(agent),
                    "agent",
                    Some(agent),
                ));
            }
            match status {
                "resolved" => events.push((
                    event(3),
                    conversation,
                    at(30),
                    "resolved",
                    Some("in_progress"),
                    "resolved",
                    Some(agent),
                    "agent",
                    Some(agent),
                )),
                "cancelled" => events.push((
                    event(3),
                    conversation,
                    at(30),
                    "cancelled",
                    Some("assigned"),
                    "cancelled",
                    Some(agent),
                    "administrator",
                    Some(id(K_USER, 10)),
                )),
                _ => {}
            }
        }
        on_pool!(store, |pool| {
            let mut tx = pool.begin().await?;
            for batch in events.chunks(rows_per_statement(store, 2400)) {
                let mut qb = QueryBuilder::new(
                    "insert into conversation_events (id, conversation_id, at, kind, from_status, to_status, \
                     to_agent_id, actor_kind, actor_id) ",
                );
                qb.push_values(batch, |mut b, e| {
                    b.push_bind(e.0)
                        .push_bind(e.1)
                        .push_bind(e.2)
                        .push_bind(e.3)
                        .push_bind(e.4)
                        .push_bind(e.5)
                        .push_bind(e.6)
                        .push_bind(e.7)
                        .push_bind(e.8);
                });
                qb.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        done = end;
        progress("history", done, total, started);
    }

    // The customer message that opened each conversation, and its delivery.
    let started = Instant::now();
    let chunk = 2000u64;
    let mut done = 0;
    while done < total {
        let end = (done + chunk).min(total);
        on_pool!(store, |pool| {
            let mut tx = pool.begin().await?;
            let per_statement = rows_per_statement(store, 2000) as u64;
            for from in (done..end).step_by(per_statement as usize) {
                let mut qb = QueryBuilder::new(
                    "insert into messages (id, conversation_id, direction, message_id, agent_id, text, at, \
                 author) ",
                );
                qb.push_values(from..(from + per_statement).min(end), |mut b, n| {
                    b.push_bind(id(K_MESSAGE, n))
                        .push_bind(id(K_CONVERSATION, n))
                        .push_bind("inbound")
                        .push_bind(format!("bench-opening-{n}"))
                        .push_bind(None::<Uuid>)
                        .push_bind("Hola, necesito ayuda con mi servicio")
                        .push_bind(Ts::new(plan.started_at(n)))
                        .push_bind("customer");
                });
                qb.build().execute(&mut *tx).await?;
            }
            let mut qb = QueryBuilder::new(
                "insert into inbound_messages (channel_id, message_id, conversation_id, received_at, \
                 started_conversation) ",
            );
            qb.push_values(done..end, |mut b, n| {
                let contact = plan.contact_of(n);
                b.push_bind(id(K_CHANNEL, Plan::channel_of_contact(contact)))
                    .push_bind(format!("bench-opening-{n}"))
                    .push_bind(id(K_CONVERSATION, n))
                    .push_bind(Ts::new(plan.started_at(n)))
                    .push_bind(true);
            });
            qb.build().execute(&mut *tx).await?;
            tx.commit().await?;
        });
        done = end;
        progress("messages", done, total, started);
    }

    // Later folios continue after the generated ones.
    let next = 10_001 + total as i64;
    match store {
        Store::Sqlite(pools) => {
            sqlx::query("update sqlite_sequence set seq = $1 where name = 'conversations'")
                .bind(next - 1)
                .execute(&pools.write)
                .await?;
            sqlx::query("pragma synchronous = normal")
                .execute(&pools.write)
                .await?;
            analyse(store).await?;
        }
        Store::Postgres(pg) => {
            sqlx::query("select setval(pg_get_serial_sequence('conversations', 'folio'), $1)")
                .bind(next - 1)
                .execute(&pg.pool)
                .await?;
            // The history and messages above wrote their events (triggers)
            // without cursors: number them now, so a server started on
            // the data set does not spend its first minutes doing it.
            store.sequence_events().await?;
            // The count triggers rewrote the kept totals' rows once per
            // inserted conversation, in a few long transactions: 70 to 80 MB
            // of dead versions of 300 rows. A plain vacuum frees them but
            // keeps the pages, which a Super Administrador's counts then
            // read one by one (23 ms a view at 1,000,000). A server that
            // wrote them over weeks, vacuumed as it went, has a few pages:
            // `vacuum full` rewrites the two tables to that.
            sqlx::query("vacuum full conversation_counts, agent_conversation_counts")
                .execute(&pg.pool)
                .await?;
            sqlx::query("vacuum analyze").execute(&pg.pool).await?;
        }
    }
    on_pool!(store, |pool| {
        sqlx::query("insert into settings (key, value) values ('bench_dataset', $1)")
            .bind(format!("{VERSION}:{}", plan.conversations))
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Brings the data set's statistics up to date, as after a build: the
/// planners choose by them (SQLite's `analyze`, its WAL folded back into
/// the file; PostgreSQL's `analyze`).
pub async fn analyse(store: &Store) -> anyhow::Result<()> {
    match store {
        Store::Sqlite(pools) => {
            sqlx::query("analyze").execute(&pools.write).await?;
            sqlx::query("pragma wal_checkpoint(truncate)")
                .execute(&pools.write)
                .await?;
        }
        Store::Postgres(pg) => {
            sqlx::query("analyze").execute(&pg.pool).await?;
        }
    }
    Ok(())
}
