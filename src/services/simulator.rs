//! The demo's traffic simulator: customers write (new conversations, follow-
//! ups and reactivations), the bot answers and hands off, agents connect and
//! disconnect, reply and resolve, so the Mensajes table moves by itself and
//! conversations have transcripts.
//!
//! Every step goes through the same service and router code as the
//! integration API, so the simulator can never produce a state the rules
//! forbid. It never panics: a failed step is logged and the next one runs.
//! It stops when the store's pools close.

use std::time::Duration;

use uuid::Uuid;

use crate::db::{InboundMessage, Store};
use crate::domain::{Scope, Status};
use crate::services::conversations::{self, ServiceError};

/// Environment variable with the rate in events per second (0 disables).
pub const RATE_VAR: &str = "RELEVO_SIMULATOR_RATE";
/// A gentle default: one event every two seconds.
pub const DEFAULT_RATE: f64 = 0.5;
/// The fastest accepted rate.
const MAX_RATE: f64 = 50.0;

const TEXTS: &[&str] = &[
    "Hola, buenas tardes",
    "Quiero información sobre mi pedido",
    "¿Me pueden ayudar con un pago? 🙏",
    "No me llegó el técnico 😕",
    "Necesito hablar con un asesor",
    "Gracias 👍",
    "¿Cuál es el horario de atención?",
    "Ya hice la transferencia",
    "Mi número de cliente es 48213",
    "Sigo esperando respuesta",
];

const REPLIES: &[&str] = &[
    "Hola, con gusto te ayudo.",
    "Permíteme revisar tu caso.",
    "Listo, ya quedó registrado.",
    "¿Me confirmas tu número de cliente?",
];

const BOT_TURNS: &[&str] = &[
    "¡Hola! Soy el asistente virtual. ¿En qué te puedo ayudar?",
    "Elige una opción:\n1) Estado de mi pedido\n2) Pagos y facturas\n3) Hablar con un asesor",
    "Gracias. Te comunico con un asesor en un momento.",
];

const NAMES: &[&str] = &[
    "Ana Torres",
    "Luis Gómez",
    "Marta Ruiz",
    "Pedro Salas",
    "Itzel Cruz",
    "Raúl Ortiz",
    "Sofía Núñez",
    "Jorge Ibarra",
];

/// The rate configured in [`RATE_VAR`]: [`DEFAULT_RATE`] when unset or
/// invalid (logged), 0 to disable, capped at a sane maximum.
pub fn rate_from_env() -> f64 {
    match std::env::var(RATE_VAR) {
        Err(_) => DEFAULT_RATE,
        Ok(raw) if raw.trim().is_empty() => DEFAULT_RATE,
        Ok(raw) => match raw.trim().parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate >= 0.0 => rate.min(MAX_RATE),
            _ => {
                tracing::warn!(value = %raw, "{RATE_VAR} is not a number of events per second; using the default");
                DEFAULT_RATE
            }
        },
    }
}

/// A small generator (xorshift64*), seeded at random; no need for more.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        Rng(Uuid::new_v4().as_u64_pair().0 | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

/// Starts the simulator at `rate` events per second (nothing when 0).
pub fn spawn(store: Store, rate: f64) {
    if rate <= 0.0 {
        tracing::info!("traffic simulator off");
        return;
    }
    tracing::info!(rate, "traffic simulator on");
    let period = Duration::from_secs_f64(1.0 / rate);
    tokio::spawn(async move {
        let mut rng = Rng::seeded();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if store.is_closed() {
                break;
            }
            match step(&store, &mut rng).await {
                Ok(()) => {}
                // Races with administrators or the router are normal here.
                Err(ServiceError::NotAllowed(_) | ServiceError::Busy) => {
                    tracing::debug!("simulated step lost a race")
                }
                Err(e) => tracing::warn!(error = ?e, "simulated step failed"),
            }
        }
        tracing::info!("traffic simulator stopped");
    });
}

/// One random event.
async fn step(store: &Store, rng: &mut Rng) -> Result<(), ServiceError> {
    let all = Scope::All;
    match rng.below(100) {
        0..30 => customer_writes(store, rng).await,
        30..40 => {
            let icr = store.recent_in_status(Status::Icr, 20).await?;
            if let Some(c) = rng.pick(&icr) {
                let text = rng.pick(BOT_TURNS).copied().unwrap_or("Hola");
                let turn = format!("sim-bot-{}", Uuid::now_v7());
                conversations::bot_message(store, &all, c.id, &turn, text).await?;
            }
            Ok(())
        }
        40..55 => {
            let icr = store.recent_in_status(Status::Icr, 20).await?;
            if let Some(c) = rng.pick(&icr) {
                crate::services::router::handoff(store, &all, c.id).await?;
            }
            Ok(())
        }
        55..65 => {
            let agents = store.agents_presence().await?;
            if let Some(&(agent, connected)) = rng.pick(&agents) {
                conversations::set_presence(store, &all, agent, !connected).await?;
            }
            Ok(())
        }
        65..85 => {
            // A first reply (Asignada), or a later one (En Proceso).
            let status = if rng.below(2) == 0 {
                Status::Assigned
            } else {
                Status::InProgress
            };
            let attending = store.recent_in_status(status, 20).await?;
            if let Some(c) = rng.pick(&attending)
                && let Some(agent) = c.agent_id
            {
                let text = rng.pick(REPLIES).copied().unwrap_or("Hola");
                conversations::agent_reply(store, &all, c.id, agent, text).await?;
            }
            Ok(())
        }
        _ => {
            let attending = store.recent_in_status(Status::InProgress, 30).await?;
            if let Some(c) = rng.pick(&attending)
                && let Some(agent) = c.agent_id
            {
                let options = store.closure_options(c.campaign_id).await?;
                let category = rng.pick(&options).filter(|_| rng.below(2) == 0);
                let subcategory = category
                    .and_then(|cat| rng.pick(&cat.subcategories))
                    .map(|(id, _)| *id);
                conversations::resolve(
                    store,
                    &all,
                    c.id,
                    agent,
                    category.map(|cat| cat.id),
                    subcategory,
                    "",
                )
                .await?;
            }
            Ok(())
        }
    }
}

/// A customer writes on a random channel: a known contact (continuing or
/// reactivating) or a new one.
async fn customer_writes(store: &Store, rng: &mut Rng) -> Result<(), ServiceError> {
    let channels: Vec<_> = store
        .channels()
        .await?
        .into_iter()
        .filter(|c| c.3)
        .collect();
    let Some(&(channel_id, campaign_id, kind, _)) = rng.pick(&channels) else {
        return Ok(());
    };
    let known = store.recent_contacts(channel_id, 40).await?;
    let (from, name) = match rng.pick(&known).filter(|_| rng.below(10) < 6) {
        Some((from, name)) => (from.clone(), name.clone()),
        None if kind == crate::domain::ChannelKind::Web => {
            (format!("web-{:06x}", rng.next() % 0xFF_FFFF), None)
        }
        None => (
            format!("5255{:08}", rng.next() % 100_000_000),
            rng.pick(NAMES).map(|n| (*n).to_owned()),
        ),
    };
    let message = InboundMessage {
        message_id: format!("sim-{}", Uuid::now_v7()),
        from,
        name,
        text: rng.pick(TEXTS).copied().unwrap_or("Hola").to_owned(),
    };
    let channel = crate::db::ChannelAuth {
        id: channel_id,
        campaign_id,
        active: true,
    };
    conversations::customer_message(store, &channel, &message).await?;
    Ok(())
}
