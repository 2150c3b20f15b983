//! One matrix of customer-message cases over the three writers of a
//! delivery: SQLite's (group commit), PostgreSQL's alone (the path of a
//! batch that could not commit) and PostgreSQL's batch. Every case asserts
//! what it stores and answers, and the rows each writer leaves are compared:
//! the writers share one description of a delivery, so they must agree.

mod common;

use common::{Backend, TestApp, spawn_app};
use relevo::db::{ChannelAuth, InboundMessage, InboundOutcome, Store, Ts};
use relevo::domain::{Actor, EventKind, Status, Transition};
use uuid::Uuid;

/// id, status, is_open, version, agent_id, reactivates_id, and whether the
/// activity equals the last message's time.
type ConversationColumns = (Uuid, String, i64, i64, Option<Uuid>, Option<Uuid>, i64);

const CAMPAIGN: &str = "Ventas Hogar";

/// One of the three writers of a customer message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    Sqlite,
    PostgresAlone,
    PostgresBatch,
}

/// A case's rows for its contact, without ids or instants: conversations by
/// folio (reactivations as positions in that list), their history kinds,
/// messages and delivery records.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    contact_name: Option<String>,
    /// (status, open, version, has agent, reactivates (position), activity
    /// is its latest message's instant)
    conversations: Vec<(String, bool, i64, bool, Option<usize>, bool)>,
    /// Per conversation, its history kinds, oldest first.
    history: Vec<Vec<String>>,
    /// (conversation position, text), oldest first.
    messages: Vec<(usize, String)>,
    /// (message id, conversation position, started it)
    deliveries: Vec<(String, usize, bool)>,
}

/// What every case records: its answers, in order, and the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    /// (started, reactivates (position), replayed, conversation position)
    answers: Vec<(bool, Option<usize>, bool, usize)>,
    snapshot: Snapshot,
}

struct Harness {
    app: TestApp,
    writer: Writer,
    channel: ChannelAuth,
    category: Uuid,
}

impl Harness {
    async fn start(writer: Writer) -> Option<Harness> {
        let backend = match writer {
            Writer::Sqlite => Backend::Sqlite,
            Writer::PostgresAlone | Writer::PostgresBatch => Backend::Postgres,
        };
        let app = spawn_app(backend).await?;
        let campaign = app.campaign_id(CAMPAIGN).await;
        let channel = app
            .store
            .channels()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.1 == campaign)
            .map(|c| c.0)
            .expect("the campaign has a channel");
        let category = app
            .uuids_where(
                "select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
                 where p.name = $1 and c.active order by c.position",
                CAMPAIGN,
            )
            .await[0];
        Some(Harness {
            app,
            writer,
            channel: ChannelAuth {
                id: channel,
                campaign_id: campaign,
                active: true,
            },
            category,
        })
    }

    async fn deliver(&self, from: &str, message_id: &str, name: Option<&str>) -> InboundOutcome {
        let message = InboundMessage {
            message_id: message_id.into(),
            from: from.into(),
            name: name.map(str::to_owned),
            text: format!("Hola ({message_id})"),
        };
        let store = &self.app.store;
        let before = store.deliveries_batched();
        let outcome = match self.writer {
            Writer::Sqlite | Writer::PostgresBatch => {
                store
                    .record_customer_message(&self.channel, &message, Ts::now())
                    .await
            }
            Writer::PostgresAlone => {
                store
                    .record_customer_message_alone(&self.channel, &message, Ts::now())
                    .await
            }
        }
        .expect("delivered");
        let batched = store.deliveries_batched() - before;
        match self.writer {
            Writer::PostgresBatch => assert_eq!(batched, 1, "the batch writer wrote it"),
            Writer::Sqlite | Writer::PostgresAlone => assert_eq!(batched, 0),
        }
        outcome
    }

    /// The conversation row of `id`, as the domain sees it.
    async fn domain(&self, id: Uuid) -> relevo::domain::Conversation {
        let folio = self
            .conversation_ids()
            .await
            .into_iter()
            .find(|(c, _)| *c == id)
            .map(|(_, folio)| folio)
            .expect("a conversation of the case");
        self.app
            .store
            .conversation(&relevo::domain::Scope::All, folio)
            .await
            .unwrap()
            .unwrap()
            .to_domain()
    }

    /// Applies `to` (a hand-off or a cancellation) to conversation `id`.
    async fn transition(&self, id: Uuid, kind: EventKind, to: Status, agent: Option<Uuid>) {
        let c = self.domain(id).await;
        let closes = to.is_final();
        let t = Transition {
            conversation_id: c.id,
            campaign_id: c.campaign_id,
            expected_version: c.version,
            kind,
            from_status: c.status,
            to_status: to,
            from_agent: c.agent_id,
            to_agent: agent,
            category_id: closes.then_some(self.category),
            subcategory_id: None,
            comment: closes.then(|| "Cancelada en la prueba".to_owned()),
            actor: Actor::System,
            at: chrono::Utc::now(),
        };
        self.app
            .store
            .apply_transition(&t)
            .await
            .unwrap()
            .expect("no conflict");
    }

    /// An active agent of the campaign.
    async fn agent(&self) -> Uuid {
        self.app
            .uuids_where(
                "select u.id from users u join campaign_members m on m.user_id = u.id \
                 join campaigns p on p.id = m.campaign_id \
                 where p.name = $1 and u.role = 'agent' and u.active order by u.email",
                CAMPAIGN,
            )
            .await[0]
    }

    /// The conversations of the case's contacts (every contact of a case
    /// has a phone starting with the case's prefix), by folio.
    async fn conversation_ids(&self) -> Vec<(Uuid, i64)> {
        rows(
            &self.app.store,
            "select c.id, c.folio from conversations c join contacts k on k.id = c.contact_id \
             where k.external_id like $1 order by c.folio",
            &self.prefix_pattern(),
        )
        .await
    }

    fn prefix_pattern(&self) -> String {
        format!("{PREFIX}%")
    }

    async fn snapshot(&self) -> Snapshot {
        let pattern = self.prefix_pattern();
        let store = &self.app.store;
        let ids: Vec<Uuid> = self
            .conversation_ids()
            .await
            .into_iter()
            .map(|c| c.0)
            .collect();
        let position = |id: Uuid| ids.iter().position(|c| *c == id).expect("of the case");
        let names: Vec<(Option<String>,)> = rows(
            store,
            "select name from contacts where external_id like $1 order by external_id",
            &pattern,
        )
        .await;
        let conversations: Vec<ConversationColumns> = rows(
            store,
            "select c.id, c.status, cast(case when c.is_open then 1 else 0 end as bigint), \
             c.version, c.agent_id, c.reactivates_id, \
             cast(case when c.last_activity_at = (select max(m.at) from messages m \
             where m.conversation_id = c.id) then 1 else 0 end as bigint) \
             from conversations c join contacts k on k.id = c.contact_id \
             where k.external_id like $1 order by c.folio",
            &pattern,
        )
        .await;
        let events: Vec<(Uuid, String)> = rows(
            store,
            "select e.conversation_id, e.kind from conversation_events e \
             join conversations c on c.id = e.conversation_id \
             join contacts k on k.id = c.contact_id \
             where k.external_id like $1 order by c.folio, e.at, e.id",
            &pattern,
        )
        .await;
        let messages: Vec<(Uuid, String)> = rows(
            store,
            "select m.conversation_id, m.text from messages m \
             join conversations c on c.id = m.conversation_id \
             join contacts k on k.id = c.contact_id \
             where k.external_id like $1 order by m.at, m.id",
            &pattern,
        )
        .await;
        let deliveries: Vec<(String, Uuid, i64)> = rows(
            store,
            "select d.message_id, d.conversation_id, \
             cast(case when d.started_conversation then 1 else 0 end as bigint) \
             from inbound_messages d join conversations c on c.id = d.conversation_id \
             join contacts k on k.id = c.contact_id \
             where k.external_id like $1 order by d.message_id",
            &pattern,
        )
        .await;
        let mut history = vec![Vec::new(); ids.len()];
        for (conversation, kind) in events {
            history[position(conversation)].push(kind);
        }
        Snapshot {
            contact_name: names.into_iter().next().and_then(|n| n.0),
            conversations: conversations
                .into_iter()
                .map(|(_, status, open, version, agent, reactivates, current)| {
                    (
                        status,
                        open == 1,
                        version,
                        agent.is_some(),
                        reactivates.map(position),
                        current == 1,
                    )
                })
                .collect(),
            history,
            messages: messages
                .into_iter()
                .map(|(c, text)| (position(c), text))
                .collect(),
            deliveries: deliveries
                .into_iter()
                .map(|(id, c, started)| (id, position(c), started == 1))
                .collect(),
        }
    }

    /// `answers` with ids as positions among the case's conversations.
    async fn recorded(&self, answers: &[InboundOutcome]) -> Recorded {
        let ids: Vec<Uuid> = self
            .conversation_ids()
            .await
            .into_iter()
            .map(|c| c.0)
            .collect();
        let position = |id: Uuid| ids.iter().position(|c| *c == id).expect("of the case");
        Recorded {
            answers: answers
                .iter()
                .map(|a| {
                    (
                        a.started_conversation,
                        a.reactivates_id.map(position),
                        a.replayed,
                        position(a.conversation_id),
                    )
                })
                .collect(),
            snapshot: self.snapshot().await,
        }
    }
}

/// Every case's contacts have phones starting with this (none of the demo
/// data's do).
const PREFIX: &str = "5219900";

/// Rows of `sql` (one text argument) on either backend.
async fn rows<T>(store: &Store, sql: &'static str, arg: &str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
{
    match store {
        Store::Sqlite(pools) => sqlx::query_as(sql)
            .bind(arg)
            .fetch_all(&pools.read)
            .await
            .unwrap(),
        Store::Postgres(pg) => sqlx::query_as(sql)
            .bind(arg)
            .fetch_all(&pg.pool)
            .await
            .unwrap(),
    }
}

/// The cases, each on a fresh application, run by one writer.
async fn run_cases(writer: Writer) -> Option<Vec<(&'static str, Recorded)>> {
    let mut results = Vec::new();
    for case in CASES {
        let harness = Harness::start(writer).await?;
        let recorded = (case.run)(&harness).await;
        (case.check)(&recorded);
        results.push((case.name, recorded));
    }
    Some(results)
}

struct Case {
    name: &'static str,
    run: for<'h> fn(&'h Harness) -> std::pin::Pin<Box<dyn Future<Output = Recorded> + 'h>>,
    check: fn(&Recorded),
}

const CUSTOMER: &str = "5219900000001";

const CASES: &[Case] = &[
    Case {
        name: "a first message starts a conversation in ICR",
        run: |h| {
            Box::pin(async move {
                let first = h.deliver(CUSTOMER, "d-first", Some("Ana")).await;
                h.recorded(&[first]).await
            })
        },
        check: |r| {
            assert_eq!(r.answers, vec![(true, None, false, 0)]);
            assert_eq!(r.snapshot.contact_name.as_deref(), Some("Ana"));
            // Routing (schedule, agents online) is the router's later
            // hand-off: the delivery itself always starts in ICR.
            assert_eq!(
                r.snapshot.conversations,
                vec![("icr".into(), true, 1, false, None, true)]
            );
            assert_eq!(r.snapshot.history, vec![vec!["created".to_owned()]]);
            assert_eq!(r.snapshot.deliveries, vec![("d-first".into(), 0, true)]);
        },
    },
    Case {
        name: "a message to an open conversation appends, keeping status and version",
        run: |h| {
            Box::pin(async move {
                let first = h.deliver(CUSTOMER, "d-1", Some("Ana")).await;
                let second = h.deliver(CUSTOMER, "d-2", None).await;
                h.recorded(&[first, second]).await
            })
        },
        check: |r| {
            assert_eq!(
                r.answers,
                vec![(true, None, false, 0), (false, None, false, 0)]
            );
            assert_eq!(
                r.snapshot.contact_name.as_deref(),
                Some("Ana"),
                "no name leaves the stored one"
            );
            assert_eq!(
                r.snapshot.conversations,
                vec![("icr".into(), true, 1, false, None, true)]
            );
            assert_eq!(r.snapshot.messages.len(), 2);
            assert_eq!(
                r.snapshot.deliveries,
                vec![("d-1".into(), 0, true), ("d-2".into(), 0, false)]
            );
        },
    },
    Case {
        name: "a message to a conversation waiting for agents appends to it",
        run: |h| {
            Box::pin(async move {
                let first = h.deliver(CUSTOMER, "d-1", None).await;
                h.transition(
                    first.conversation_id,
                    EventKind::Handoff,
                    Status::AgentsOffline,
                    None,
                )
                .await;
                let second = h.deliver(CUSTOMER, "d-2", Some("Ana María")).await;
                h.recorded(&[first, second]).await
            })
        },
        check: |r| {
            assert_eq!(r.answers[1], (false, None, false, 0));
            assert_eq!(
                r.snapshot.contact_name.as_deref(),
                Some("Ana María"),
                "a new name refreshes the contact"
            );
            assert_eq!(
                r.snapshot.conversations,
                vec![("agents_offline".into(), true, 2, false, None, true)]
            );
            assert_eq!(
                r.snapshot.history,
                vec![vec!["created".to_owned(), "handoff".to_owned()]]
            );
        },
    },
    Case {
        name: "a message to an assigned conversation keeps its agent",
        run: |h| {
            Box::pin(async move {
                let first = h.deliver(CUSTOMER, "d-1", None).await;
                let agent = h.agent().await;
                h.transition(
                    first.conversation_id,
                    EventKind::Handoff,
                    Status::Assigned,
                    Some(agent),
                )
                .await;
                let second = h.deliver(CUSTOMER, "d-2", None).await;
                h.recorded(&[first, second]).await
            })
        },
        check: |r| {
            assert_eq!(r.answers[1], (false, None, false, 0));
            assert_eq!(
                r.snapshot.conversations,
                vec![("assigned".into(), true, 2, true, None, true)]
            );
        },
    },
    Case {
        name: "a message after a cancellation starts a conversation linked to it",
        run: |h| {
            Box::pin(async move {
                let first = h.deliver(CUSTOMER, "d-1", None).await;
                h.transition(
                    first.conversation_id,
                    EventKind::Cancelled,
                    Status::Cancelled,
                    None,
                )
                .await;
                let second = h.deliver(CUSTOMER, "d-2", None).await;
                h.recorded(&[first, second]).await
            })
        },
        check: |r| {
            assert_eq!(r.answers[1], (true, Some(0), false, 1));
            let conversations = &r.snapshot.conversations;
            assert_eq!(conversations.len(), 2);
            assert_eq!(
                (conversations[0].0.as_str(), conversations[0].1),
                ("cancelled", false)
            );
            assert_eq!(
                conversations[1],
                ("icr".into(), true, 1, false, Some(0), true)
            );
            assert_eq!(r.snapshot.history[1], vec!["created".to_owned()]);
            assert_eq!(
                r.snapshot.messages,
                vec![(0, "Hola (d-1)".into()), (1, "Hola (d-2)".into())]
            );
        },
    },
    Case {
        name: "a repeated message id writes nothing and answers the first outcome",
        run: |h| {
            Box::pin(async move {
                let first = h.deliver(CUSTOMER, "d-1", None).await;
                h.transition(
                    first.conversation_id,
                    EventKind::Cancelled,
                    Status::Cancelled,
                    None,
                )
                .await;
                let second = h.deliver(CUSTOMER, "d-2", None).await;
                let append = h.deliver(CUSTOMER, "d-3", None).await;
                // Retries of each, with another name: nothing changes.
                let again_start = h.deliver(CUSTOMER, "d-2", Some("Otra")).await;
                let again_append = h.deliver(CUSTOMER, "d-3", Some("Otra")).await;
                h.recorded(&[first, second, append, again_start, again_append])
                    .await
            })
        },
        check: |r| {
            assert_eq!(r.answers[3], (true, Some(0), true, 1));
            assert_eq!(r.answers[4], (false, None, true, 1));
            assert_eq!(r.snapshot.contact_name, None, "a replay leaves the contact");
            assert_eq!(r.snapshot.messages.len(), 3);
            assert_eq!(r.snapshot.deliveries.len(), 3);
        },
    },
    Case {
        name: "two customers' messages go to their own conversations",
        run: |h| {
            Box::pin(async move {
                let a = h.deliver(CUSTOMER, "d-a", None).await;
                let b = h.deliver("5219900000002", "d-b", None).await;
                let a2 = h.deliver(CUSTOMER, "d-a2", None).await;
                h.recorded(&[a, b, a2]).await
            })
        },
        check: |r| {
            assert_eq!(
                r.answers,
                vec![
                    (true, None, false, 0),
                    (true, None, false, 1),
                    (false, None, false, 0)
                ]
            );
        },
    },
];

async fn the_three_writers_store_the_same_rows(writers: &[Writer]) {
    let mut by_writer = Vec::new();
    for writer in writers {
        // None: PostgreSQL is not configured (outside CI).
        if let Some(results) = run_cases(*writer).await {
            by_writer.push((*writer, results));
        }
    }
    let Some((reference, expected)) = by_writer.first() else {
        return;
    };
    for (writer, results) in &by_writer[1..] {
        for ((name, want), (_, got)) in expected.iter().zip(results) {
            assert_eq!(got, want, "{name}: {writer:?} differs from {reference:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_writer_passes_every_case_and_they_agree() {
    the_three_writers_store_the_same_rows(&[
        Writer::Sqlite,
        Writer::PostgresAlone,
        Writer::PostgresBatch,
    ])
    .await;
}
