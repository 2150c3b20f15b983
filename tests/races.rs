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
    a_first_reply_whose_message_cannot_be_stored_leaves_the_conversation_assigned,
    cancels_and_messages_racing_freely_leave_no_message_after_a_closing,
    an_agent_reply_read_before_a_cancellation_is_not_stored_on_it,
);

const CAMPAIGN: &str = "Ventas Hogar";

/// Rounds of the race, and the time they may take at most (the machine is
/// shared: the bound is generous).
const ROUNDS: usize = 12;
const TIME_LIMIT: Duration = Duration::from_secs(120);

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

/// Runs `$body` with `$pool` bound to the pool that writes `$app`'s database.
macro_rules! on_write_pool {
    ($app:expr, |$pool:ident| $body:expr) => {
        match &$app.store {
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

/// A channel of Ventas Hogar with its token, and an integration token.
struct Api {
    campaign: Uuid,
    channel: Uuid,
    channel_token: String,
    token: String,
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
    let (_, token) = app
        .store
        .create_integration_token(CAMPAIGN, "pruebas", relevo::db::Ts::now())
        .await
        .unwrap()
        .expect("campaign exists");
    Api {
        campaign,
        channel,
        channel_token,
        token,
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
                // One after the other: sent together, both could wait in
                // one lane's batch and leave the other lane free.
                let mut plugs = Vec::new();
                for (waiting, plug) in [(1, "plug-1"), (2, "plug-2")] {
                    plugs.push(tokio::spawn(delivery(
                        good,
                        plug.into(),
                        format!("from-{plug}"),
                    )));
                    until_waiting_for(&app, "contacts", waiting).await;
                }
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
                // up: the cancel and the message are then one batch. Each is
                // known to be queued (the group commit counts them) before
                // the next is sent.
                let held = pools.write.acquire().await.unwrap();
                let queued = common::writes_queued(&app.store);
                let first = send_message(
                    &app,
                    &api,
                    format!("race-{round}-x"),
                    format!("5215541{round:04}"),
                );
                common::until_writes_queued(&app.store, queued + 1).await;
                let store = app.store.clone();
                let cancelling = tokio::spawn(async move { store.apply_transition(&cancel).await });
                common::until_writes_queued(&app.store, queued + 2).await;
                let message = send_message(&app, &api, second.clone(), from.clone());
                common::until_writes_queued(&app.store, queued + 3).await;
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

/// The trigger that makes every agent message fail to insert, standing for
/// any failure of that write (`raise` in each dialect).
const FAIL_AGENT_MESSAGES_SQLITE: &str = "create trigger fail_agent_messages \
    before insert on messages when new.direction = 'outbound' \
    begin select raise(abort, 'injected failure'); end";
const FAIL_AGENT_MESSAGES_POSTGRES: &str = "create function fail_agent_messages() \
    returns trigger language plpgsql as $$ begin raise exception 'injected failure'; end $$; \
    create trigger fail_agent_messages before insert on messages for each row \
    when (new.direction = 'outbound') execute function fail_agent_messages()";

/// An agent's first reply moves the conversation to En atención and stores
/// the reply together: when the reply cannot be stored, the conversation is
/// still Asignada, as it was, and the agent's retry is its first reply.
async fn a_first_reply_whose_message_cannot_be_stored_leaves_the_conversation_assigned(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    // Open all day, one connected agent: the hand-off assigns to them.
    app.execute_id(
        "delete from campaign_schedules where campaign_id = $1",
        api.campaign,
    )
    .await;
    app.execute_id(
        "insert into campaign_schedules (campaign_id, weekday, opens_at, closes_at) values \
         ($1, 0, '00:00', '00:00'), ($1, 1, '00:00', '00:00'), ($1, 2, '00:00', '00:00'), \
         ($1, 3, '00:00', '00:00'), ($1, 4, '00:00', '00:00'), ($1, 5, '00:00', '00:00'), \
         ($1, 6, '00:00', '00:00')",
        api.campaign,
    )
    .await;
    app.execute_id(
        "update users set connected = false where id in \
         (select user_id from campaign_members where campaign_id = $1)",
        api.campaign,
    )
    .await;
    let agent = app
        .uuids_where(
            "select m.user_id from campaign_members m join users u on u.id = m.user_id \
             join campaigns p on p.id = m.campaign_id \
             where p.name = $1 and u.role = 'agent' and u.active order by u.id",
            CAMPAIGN,
        )
        .await[0];
    let (status, body) = app
        .api_call(
            reqwest::Method::POST,
            &format!("/api/v1/agents/{agent}/presence"),
            Some(&api.token),
            Some(json!({"connected": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = customer(&app, &app.client, &api, "reply-1", "5215588880000").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = id_of(&body, "conversation_id");
    let (status, body) = app
        .api_call(
            reqwest::Method::POST,
            &format!("/api/v1/conversations/{id}/handoff"),
            Some(&api.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["status"].as_str(), id_of(&body, "agent_id")),
        (Some("assigned"), agent)
    );
    let path = format!("/api/v1/conversations/{id}");
    let (_, before) = app
        .api_call(reqwest::Method::GET, &path, Some(&api.token), None)
        .await;

    on_write_pool!(app, |pool| sqlx::raw_sql(match backend {
        Backend::Sqlite => FAIL_AGENT_MESSAGES_SQLITE,
        Backend::Postgres => FAIL_AGENT_MESSAGES_POSTGRES,
    })
    .execute(pool)
    .await
    .map(drop)
    .expect("install the failure"));
    let reply = json!({"agent_id": agent, "text": "Hola, soy tu asesor"});
    let (status, body) = app
        .api_call(
            reqwest::Method::POST,
            &format!("{path}/agent-messages"),
            Some(&api.token),
            Some(reply.clone()),
        )
        .await;
    assert!(status.is_server_error(), "{status}: {body}");
    let (_, after) = app
        .api_call(reqwest::Method::GET, &path, Some(&api.token), None)
        .await;
    assert_eq!(after["status"], "assigned", "{after}");
    assert_eq!(after, before, "a reply that failed changed nothing");

    on_write_pool!(app, |pool| sqlx::raw_sql(match backend {
        Backend::Sqlite => "drop trigger fail_agent_messages",
        Backend::Postgres =>
            "drop trigger fail_agent_messages on messages; drop function fail_agent_messages()",
    })
    .execute(pool)
    .await
    .map(drop)
    .expect("remove the failure"));
    let (status, body) = app
        .api_call(
            reqwest::Method::POST,
            &format!("{path}/agent-messages"),
            Some(&api.token),
            Some(reply),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "in_progress");
    assert_eq!(body["version"], before["version"].as_i64().unwrap() + 1);
    let (_, now) = app
        .api_call(reqwest::Method::GET, &path, Some(&api.token), None)
        .await;
    let kinds: Vec<&str> = now["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "handoff", "first_reply"]);
    let outbound: Vec<&str> = now["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "outbound")
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(outbound, ["Hola, soy tu asesor"]);
}

/// Cancels and customer messages on the same conversations, left to race
/// with no forced order: each cancel is stamped just before its message is
/// sent, and either may commit first. Whatever the order, no inbound message
/// is stored on a cancelled conversation after its closing, and a message
/// that came after the cancel started a new conversation linked to it.
/// Before closings were kept from going back before the activity already
/// recorded, a message that committed first (stamped a moment after the
/// cancel's instant) showed after the closing on both backends.
async fn cancels_and_messages_racing_freely_leave_no_message_after_a_closing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    let administrator = app
        .uuids_where("select id from users where email = $1", common::SUPER_EMAIL)
        .await[0];
    const PAIRS: usize = 40;
    let started = Instant::now();
    let mut conversations = Vec::new();
    for n in 0..PAIRS {
        let from = format!("+52155{n:08}");
        let first = Outcome::of_api(
            customer(&app, &app.client, &api, &format!("libre-{n}-a"), &from).await,
        );
        conversations.push((first.conversation, from));
    }
    let mut races = Vec::new();
    for (n, (conversation, from)) in conversations.iter().enumerate() {
        let cancel = cancel_of(&app, *conversation, administrator).await;
        let message = send_message(&app, &api, format!("libre-{n}-b"), from.clone());
        let store = app.store.clone();
        let applied = tokio::spawn(async move { store.apply_transition(&cancel).await });
        races.push((message, applied));
    }
    for (message, applied) in races {
        let (status, body) = message.await.expect("message task");
        assert!(status.is_success(), "{status}: {body}");
        applied
            .await
            .expect("cancel task")
            .expect("store")
            .expect("nothing else changes these conversations");
        assert!(started.elapsed() < TIME_LIMIT, "the races took too long");
    }
    assert_eq!(
        count(&app, LATE_MESSAGES).await,
        0,
        "messages after a closing"
    );
    for (n, (conversation, _)) in conversations.iter().enumerate() {
        let (stored_on, reactivates, _) = stored_on(&app, &format!("libre-{n}-b")).await;
        assert!(
            stored_on == *conversation || reactivates == Some(*conversation),
            "message {n} went to {stored_on}, which reactivates {reactivates:?}"
        );
    }
}

/// An agent's reply computed while the conversation was En Proceso, written
/// after an administrator cancelled it: nothing is stored on the cancelled
/// conversation (the service then reads it again and refuses the reply).
/// The reply used to be written whatever had committed since it was read.
async fn an_agent_reply_read_before_a_cancellation_is_not_stored_on_it(backend: Backend) {
    use relevo::domain::Scope;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let id = app
        .uuids_where(
            "select id from conversations where status = $1 order by folio limit 1",
            "in_progress",
        )
        .await[0];
    let administrator = app
        .uuids_where("select id from users where email = $1", common::SUPER_EMAIL)
        .await[0];
    let read = app
        .store
        .conversation_state(&Scope::All, id)
        .await
        .unwrap()
        .expect("conversation");
    let agent = read.agent_id.expect("an agent attends it");
    let cancel = cancel_of(&app, id, administrator).await;
    app.store
        .apply_transition(&cancel)
        .await
        .unwrap()
        .expect("applied");
    let written = app
        .store
        .record_agent_message(&read, agent, "¿Sigue ahí?", relevo::db::Ts::now())
        .await
        .unwrap();
    assert!(
        !written,
        "the reply must not be written on the cancelled conversation"
    );
    let after_closing = app
        .uuids_where(
            "select m.id from messages m join conversations c on c.id = m.conversation_id \
             where m.direction = $1 and c.status = 'cancelled' and m.at > c.closed_at",
            "outbound",
        )
        .await;
    assert!(after_closing.is_empty(), "{after_closing:?}");
}

/// Statements of `app`'s database waiting for any lock, table or row.
async fn waiting_for_locks(app: &TestApp) -> i64 {
    let Store::Postgres(pg) = &app.store else {
        unreachable!("PostgreSQL only")
    };
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity \
         where datname = current_database() and wait_event_type = 'Lock'",
    )
    .fetch_one(&pg.pool)
    .await
    .expect("pg_stat_activity")
}

/// Found by the fuzzer (a 500 once in a while): adding a sub-category locks
/// its category and then, writing its audit row, shares the campaign's key;
/// moving a category locks the campaign and then updates the category. When
/// both held their first lock, PostgreSQL broke the deadlock by failing one
/// of them. The parent locks now leave the key shareable, so they queue.
/// PostgreSQL only: SQLite's one writer never interleaves two writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(relevo_postgres),
    ignore = "PostgreSQL not available: set TEST_POSTGRES_URL or install postgresql"
)]
async fn a_new_subcategory_and_a_category_move_at_the_same_moment_both_succeed_on_postgres() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let campaign = app.campaign_id(CAMPAIGN).await;
    let actor = app
        .uuids_where("select id from users where email = $1", common::SUPER_EMAIL)
        .await[0];
    let second = app
        .uuids_where(
            "select id from closure_categories where campaign_id = \
             (select id from campaigns where name = $1) order by position offset 1 limit 1",
            CAMPAIGN,
        )
        .await[0];
    // The sub-category's insert waits behind a held lock, after its
    // category is locked…
    let held = hold(&app, "closure_subcategories").await;
    let name = relevo::domain::admin::Name::parse("Subcategoría de la carrera").unwrap();
    let store = app.store.clone();
    let create = tokio::spawn(async move {
        store
            .create_subcategory(actor, campaign, second, &name, relevo::db::Ts::now())
            .await
    });
    until_waiting_for(&app, "closure_subcategories", 1).await;
    // …while the move locks the campaign and waits for the category.
    let store = app.store.clone();
    let move_up = tokio::spawn(async move {
        store
            .move_category(
                actor,
                campaign,
                second,
                relevo::db::Direction::Up,
                relevo::db::Ts::now(),
            )
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while waiting_for_locks(&app).await < 2 {
        assert!(Instant::now() < deadline, "the move came to wait");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    held.rollback().await.unwrap();
    let created = create.await.unwrap();
    let moved = move_up.await.unwrap();
    assert!(
        matches!(created, Ok(Ok(_))),
        "the sub-category was created: {created:?}"
    );
    assert!(
        matches!(moved, Ok(Ok(true))),
        "the category moved: {moved:?}"
    );
    let first = app
        .uuids_where(
            "select id from closure_categories where campaign_id = \
             (select id from campaigns where name = $1) order by position limit 1",
            CAMPAIGN,
        )
        .await[0];
    assert_eq!(first, second, "the moved category is first now");
}
