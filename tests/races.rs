//! Races between customer messages, agents' replies and status changes, on
//! both backends: whatever the timing, what is stored must be what one
//! write after the other would have left.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestApp, spawn_app};
use relevo::db::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

on_both_backends!(
    a_customer_message_racing_a_cancellation_never_lands_on_the_cancelled_conversation,
);

const CAMPAIGN: &str = "Ventas Hogar";

/// Rounds of the race, and the time they may take at most (the machine is
/// shared: the bound is generous).
const ROUNDS: usize = 12;
const TIME_LIMIT: Duration = Duration::from_secs(120);

/// On SQLite, the pause after a write is sent for it to be queued.
const QUEUED: Duration = Duration::from_millis(100);

/// Inbound messages stored on a cancelled conversation after its closing:
/// each one is a customer message that started no new conversation.
const LATE_MESSAGES: &str = "select count(*) from messages m \
    join conversations c on c.id = m.conversation_id \
    where c.status = 'cancelled' and m.direction = 'inbound' and m.at > c.closed_at";

/// Runs `$body` with `$pool` bound to the pool that reads `$app`'s database.
macro_rules! on_read_pool {
    ($app:expr, |$pool:ident| $body:expr) => {
        match &$app.store {
            Store::Sqlite(pools) => {
                let $pool = &pools.read;
                $body
            }
            Store::Postgres(pg) => {
                let $pool = &pg.pool;
                $body
            }
        }
    };
}

/// A channel of Ventas Hogar with its token.
struct Api {
    campaign: Uuid,
    channel: Uuid,
    channel_token: String,
}

async fn api(app: &TestApp) -> Api {
    let campaign = app.campaign_id(CAMPAIGN).await;
    let channel = app
        .store
        .channels()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.1 == campaign && c.3)
        .expect("an active channel")
        .0;
    let channel_token = app
        .store
        .rotate_channel_token(channel)
        .await
        .unwrap()
        .expect("channel exists");
    Api {
        campaign,
        channel,
        channel_token,
    }
}

fn id_of(value: &Value, key: &str) -> Uuid {
    value[key]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

/// A customer message on the fixture's channel, with `client`.
async fn customer(
    app: &TestApp,
    client: &reqwest::Client,
    api: &Api,
    message_id: &str,
    from: &str,
) -> (StatusCode, Value) {
    let response = client
        .post(app.url(&format!("/api/v1/channels/{}/messages", api.channel)))
        .bearer_auth(&api.channel_token)
        .json(&json!({"message_id": message_id, "from": from, "name": "Cliente Carrera", "text": "¿Siguen ahí?"}))
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    on_read_pool!(app, |pool| sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("query"))
}

/// The conversation a stored message went to, and what that one reactivates.
async fn stored_on(app: &TestApp, message_id: &str) -> (Uuid, Option<Uuid>, String) {
    on_read_pool!(app, |pool| sqlx::query_as(
        "select c.id, c.reactivates_id, c.status from messages m \
         join conversations c on c.id = m.conversation_id \
         where m.message_id = $1 and m.direction = 'inbound'"
    )
    .bind(message_id)
    .fetch_one(pool)
    .await
    .expect("the message is stored"))
}

/// Sends a customer message on the fixture's channel in a task of its own.
fn send_message(
    app: &TestApp,
    api: &Api,
    message_id: String,
    from: String,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let request = common::new_client()
        .post(app.url(&format!("/api/v1/channels/{}/messages", api.channel)))
        .bearer_auth(&api.channel_token)
        .json(&json!({"message_id": message_id, "from": from, "text": "¿Siguen ahí?"}));
    tokio::spawn(async move {
        let response = request.send().await.expect("message");
        let status = response.status();
        (status, response.json::<Value>().await.expect("json"))
    })
}

/// Waits until `n` statements of `app` wait for the lock the test holds on
/// `table` (bounded).
async fn until_waiting_for(app: &TestApp, table: &str, n: i64) {
    let Store::Postgres(pg) = &app.store else {
        unreachable!("PostgreSQL only")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_locks l join pg_class c on c.oid = l.relation \
             where l.database = (select oid from pg_database where datname = current_database()) \
             and c.relname = $1 and not l.granted",
        )
        .bind(table)
        .fetch_one(&pg.pool)
        .await
        .expect("pg_locks");
        if waiting >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} of {n} statements came to wait for {table}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Takes an exclusive lock on `table` (reads pass, writes wait) in a
/// transaction of its own, held until
/// it is rolled back.
async fn hold(app: &TestApp, table: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let Store::Postgres(pg) = &app.store else {
        unreachable!("PostgreSQL only")
    };
    let mut held = pg.pool.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "lock table {table} in exclusive mode"
    )))
    .execute(&mut *held)
    .await
    .unwrap();
    held
}

/// The administrator's cancel of conversation `id`, as the console computes
/// it now (not applied).
async fn cancel_of(app: &TestApp, id: Uuid, administrator: Uuid) -> relevo::domain::Transition {
    use relevo::domain::{Lookup, Scope, conversation};
    let current = app
        .store
        .conversation_state(&Scope::All, id)
        .await
        .unwrap()
        .expect("conversation");
    let category = app
        .store
        .closure_options(current.campaign_id)
        .await
        .unwrap()[0]
        .id;
    let category = app.store.category_ref(category).await.unwrap().unwrap();
    conversation::cancel(
        &current,
        administrator,
        Lookup::Found(category),
        Lookup::NotChosen,
        "",
        chrono::Utc::now(),
    )
    .expect("an open conversation can be cancelled")
}

/// What a delivery answered: whether it started a conversation, which one
/// it went to, the one it reactivates, and the answer as shown.
struct Outcome {
    started: bool,
    conversation: Uuid,
    reactivates: Option<Uuid>,
    shown: String,
}

impl Outcome {
    fn of_api((status, body): (StatusCode, Value)) -> Outcome {
        assert!(status.is_success(), "{status}: {body}");
        Outcome {
            started: status == StatusCode::CREATED,
            conversation: id_of(&body, "conversation_id"),
            reactivates: body["reactivates_id"].as_str().map(|s| s.parse().unwrap()),
            shown: body.to_string(),
        }
    }

    fn of_store(outcome: relevo::db::InboundOutcome) -> Outcome {
        Outcome {
            started: outcome.started_conversation,
            conversation: outcome.conversation_id,
            reactivates: outcome.reactivates_id,
            shown: format!("{outcome:?}"),
        }
    }
}

/// A customer writes again while an administrator cancels the conversation,
/// the cancel committing after the delivery read the conversation as open
/// and before it wrote the message, round after round. The message starts a
/// new conversation in ICR linked to the cancelled one, never lands on it:
/// PostgreSQL used to store it on the cancelled conversation, stamped after
/// its closing, and start nothing.
///
/// The interleaving is forced rather than hoped for. On PostgreSQL a lock on
/// `messages` holds the delivery between its look-up and its write while
/// the cancel commits (a transition does not write `messages`), in its
/// batch on even rounds, alone on odd ones (its batch failed on another
/// delivery's missing channel). On SQLite a delivery's look-up and write
/// are one transaction on the one write connection, so nothing can commit
/// in between: the nearest case is the cancel just before the message in
/// the same group commit, not yet committed when the message looks the
/// conversation up.
///
/// The cancel is computed before the message arrives, as when an
/// administrator confirms just before the customer writes: a cancel stamped
/// after the message would hide a message written after it.
async fn a_customer_message_racing_a_cancellation_never_lands_on_the_cancelled_conversation(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    let administrator = app
        .uuids_where("select id from users where email = $1", common::ADMIN_EMAIL)
        .await[0];
    let good = relevo::db::ChannelAuth {
        id: api.channel,
        campaign_id: api.campaign,
        active: true,
    };
    let delivery = |channel: relevo::db::ChannelAuth, message_id: String, from: String| {
        let store = app.store.clone();
        let message = relevo::db::InboundMessage {
            message_id,
            from,
            name: None,
            text: "¿Siguen ahí?".into(),
        };
        async move {
            store
                .record_customer_message(&channel, &message, relevo::db::Ts::now())
                .await
        }
    };
    // Two messages processed already: their retries write nothing, so they
    // can hold both PostgreSQL lanes at their first statement.
    for plug in ["plug-1", "plug-2"] {
        delivery(good, plug.into(), format!("from-{plug}"))
            .await
            .unwrap();
    }
    assert_eq!(count(&app, LATE_MESSAGES).await, 0, "none to begin with");

    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        assert!(
            started.elapsed() < TIME_LIMIT,
            "the race took too long: {round} rounds in {:?}",
            started.elapsed()
        );
        let from = format!("5215540{round:04}");
        let (status, body) =
            customer(&app, &app.client, &api, &format!("race-{round}-a"), &from).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let open = id_of(&body, "conversation_id");
        let cancel = cancel_of(&app, open, administrator).await;
        let second = format!("race-{round}-b");
        let outcome = match &app.store {
            Store::Postgres(_) if round % 2 == 0 => {
                let held = hold(&app, "messages").await;
                let message = send_message(&app, &api, second.clone(), from.clone());
                until_waiting_for(&app, "messages", 1).await;
                app.store
                    .apply_transition(&cancel)
                    .await
                    .unwrap()
                    .expect("the cancel applies");
                held.rollback().await.unwrap();
                Outcome::of_api(message.await.unwrap())
            }
            Store::Postgres(_) => {
                // Both lanes wait at their first statement, retrying the
                // plugs; the message and one whose channel does not exist
                // queue behind them, so they are one batch, which fails on
                // the missing channel before any write: each then runs alone.
                let contacts = hold(&app, "contacts").await;
                let messages = hold(&app, "messages").await;
                let plugs: Vec<_> = ["plug-1", "plug-2"]
                    .into_iter()
                    .map(|plug| tokio::spawn(delivery(good, plug.into(), format!("from-{plug}"))))
                    .collect();
                until_waiting_for(&app, "contacts", 2).await;
                let broken = relevo::db::ChannelAuth {
                    id: Uuid::now_v7(),
                    ..good
                };
                let mut both = Box::pin(async {
                    tokio::join!(
                        delivery(broken, format!("race-{round}-x"), from.clone()),
                        delivery(good, second.clone(), from.clone()),
                    )
                });
                // One poll queues both (a delivery queues as it is first polled).
                tokio::select! {
                    biased;
                    _ = &mut both => panic!("answered while every lane was held"),
                    _ = std::future::ready(()) => {}
                }
                contacts.rollback().await.unwrap();
                let answered = async {
                    until_waiting_for(&app, "messages", 1).await;
                    app.store
                        .apply_transition(&cancel)
                        .await
                        .unwrap()
                        .expect("the cancel applies");
                    messages.rollback().await.unwrap();
                };
                let ((failed, racer), ()) = tokio::join!(both, answered);
                assert!(failed.is_err(), "a channel that does not exist: {failed:?}");
                for plug in plugs {
                    assert!(plug.await.unwrap().unwrap().replayed);
                }
                Outcome::of_store(racer.expect("the message is recorded"))
            }
            Store::Sqlite(pools) => {
                // Hold the one writer while a first delivery (its batch then
                // waits for the writer), the cancel and the message queue
                // up: the cancel and the message are then one batch. Nothing
                // signals that a write is queued; the pauses give each one
                // ample time to be.
                let held = pools.write.acquire().await.unwrap();
                let first = send_message(
                    &app,
                    &api,
                    format!("race-{round}-x"),
                    format!("5215541{round:04}"),
                );
                tokio::time::sleep(QUEUED).await;
                let store = app.store.clone();
                let cancelling = tokio::spawn(async move { store.apply_transition(&cancel).await });
                tokio::time::sleep(QUEUED).await;
                let message = send_message(&app, &api, second.clone(), from.clone());
                tokio::time::sleep(QUEUED).await;
                drop(held);
                assert_eq!(first.await.unwrap().0, StatusCode::CREATED);
                cancelling
                    .await
                    .unwrap()
                    .unwrap()
                    .expect("the cancel applies");
                Outcome::of_api(message.await.unwrap())
            }
        };
        outcomes.push((second, open, outcome));
    }
    assert_eq!(
        count(&app, LATE_MESSAGES).await,
        0,
        "customer messages stored on a conversation after it was cancelled, of {ROUNDS}"
    );
    for (second, open, outcome) in outcomes {
        let shown = &outcome.shown;
        assert!(outcome.started, "a new conversation: {shown}");
        assert_eq!(outcome.reactivates, Some(open), "{shown}");
        let (on, reactivates, status) = stored_on(&app, &second).await;
        assert_eq!(on, outcome.conversation, "{shown}");
        assert_eq!((reactivates, status.as_str()), (Some(open), "icr"));
    }
}
