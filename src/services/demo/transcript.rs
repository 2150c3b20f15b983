//! The demo's transcripts: what the customer, the bot and the agent said in
//! each demo conversation, consistent with its history (the bot talks
//! while it is in ICR, the agent from the first reply on, nobody after it
//! closed). Drawn from a generator seeded by the conversation's id, so the
//! rest of the demo data (drawn in order from one seed) stays as it was.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::Rng;
use crate::db::{PlannedConversation, PlannedMessage, PlannedUser};
use crate::domain::{Author, EventKind, Status};

/// What a customer writes about, and how the conversation goes.
struct Topic {
    opener: &'static str,
    choice: &'static str,
    detail: &'static str,
    agent: [&'static str; 2],
    customer: &'static str,
    thanks: &'static str,
}

const TOPICS: &[Topic] = &[
    Topic {
        opener: "Hola, buenas tardes. Quiero saber el estado de mi pedido",
        choice: "1",
        detail: "Es el pedido 48213, lo hice el lunes y no ha llegado",
        agent: [
            "Ya lo encontré: salió del almacén ayer y llega mañana antes de las 14:00.",
            "Te comparto la guía para que lo sigas: MX-48213-77. ¿Algo más en que te ayude?",
        ],
        customer: "¿Me pueden avisar cuando vaya en camino?",
        thanks: "Perfecto, muchas gracias 🙏",
    },
    Topic {
        opener: "Buen día, me aparece un cobro doble en mi tarjeta",
        choice: "2",
        detail: "Fueron dos cargos de $1,250.00 el día 3. Aquí el comprobante: https://pagos.ejemplo.mx/comprobantes/2026/11/0000048213-a9f3c2e1b7d4e5f60718293a4b5c6d7e",
        agent: [
            "Veo los dos cargos; uno es una preautorización que el banco libera en 72 horas.",
            "Si el viernes sigue apareciendo, escríbenos y lo reembolsamos de inmediato.",
        ],
        customer: "¿Entonces no tengo que hacer nada?",
        thanks: "Ok, quedo pendiente. Gracias",
    },
    Topic {
        opener: "Hola, el técnico no llegó a la cita de hoy 😕",
        choice: "3",
        detail: "La cita era de 9 a 12 en Av. Insurgentes Sur 1602, depto. 4",
        agent: [
            "Una disculpa: la ruta se retrasó. Te puedo reprogramar mañana de 9 a 12.",
            "Listo, quedó agendada. Te llegará un mensaje con el nombre del técnico.",
        ],
        customer: "Mañana sí puedo, en el mismo horario",
        thanks: "Gracias por la ayuda 👍",
    },
    Topic {
        opener: "Quiero contratar el paquete de internet de 200 megas",
        choice: "3",
        detail: "Vivo en la colonia Del Valle, CP 03100",
        agent: [
            "Sí hay cobertura en tu código postal. La instalación es gratuita este mes.",
            "Te mando el enlace para firmar el contrato; la instalación puede ser el jueves.",
        ],
        customer: "¿El precio incluye el módem?",
        thanks: "Excelente, lo firmo hoy",
    },
    Topic {
        opener: "Necesito la factura de mi último pago",
        choice: "2",
        detail: "Mi RFC es GOMA850312KX4 y el pago fue por transferencia",
        agent: [
            "Ya generé la factura; te llega al correo registrado en unos minutos.",
            "Si necesitas otro uso de CFDI me dices y la cambio.",
        ],
        customer: "¿Me la pueden mandar también en XML?",
        thanks: "Ya me llegó, gracias",
    },
];

const BOT_GREETING: &str = "¡Hola! Soy el asistente virtual de Relevo. Elige una opción:\n\
     1) Estado de mi pedido\n2) Pagos y facturas\n3) Hablar con un asesor";
const BOT_ASK: &str = "Gracias. Cuéntame un poco más para pasarte con la persona indicada.";
const BOT_ASSIGNED: &str = "Te comunico con un asesor; en un momento te atiende.";
const BOT_OUT_OF_HOURS: &str = "Nuestro horario de atención es de lunes a viernes de 8:00 a \
     20:00 y sábados de 9:00 a 14:00. Te atenderemos en cuanto abramos.";
const BOT_OFFLINE: &str = "En este momento no hay asesores disponibles. Te atenderemos en \
     cuanto se conecte uno.";
const STILL_WAITING: &str = "¿Hola? ¿Sigue alguien ahí?";

/// Writes one conversation's messages, appending to `out`.
struct Script<'a> {
    conversation: Uuid,
    out: &'a mut Vec<PlannedMessage>,
}

impl Script<'_> {
    /// A message at `at`.
    fn say(&mut self, author: Author, agent: Option<Uuid>, text: String, at: DateTime<Utc>) {
        let n = self.out.len() + 1;
        let message_id = match author {
            Author::Customer => Some(format!("demo.{}.{n}", self.conversation.simple())),
            Author::Bot => Some(format!("bot.{}.{n}", self.conversation.simple())),
            Author::Agent | Author::System => None,
        };
        self.out.push(PlannedMessage {
            author,
            agent_id: agent,
            message_id,
            text,
            at,
        });
    }

    /// Lines spread over `from..until` (strictly inside), in order.
    fn spread(
        &mut self,
        lines: Vec<(Author, Option<Uuid>, String)>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) {
        let span = (until - from).num_milliseconds().max(0);
        let parts = lines.len() as i64 + 1;
        for (i, (author, agent, text)) in lines.into_iter().enumerate() {
            let at = from + Duration::milliseconds(span * (i as i64 + 1) / parts);
            self.say(author, agent, text, at);
        }
    }
}

/// The first name of user `id`, to sign an agent's greeting.
fn first_name(users: &[PlannedUser], id: Uuid) -> &str {
    users
        .iter()
        .find(|u| u.id == id)
        .and_then(|u| u.name.split(' ').next())
        .unwrap_or("tu asesor")
}

/// The messages of `conversation` (its history already planned) as of `now`.
pub(super) fn script(
    conversation: &PlannedConversation,
    users: &[PlannedUser],
    now: DateTime<Utc>,
) -> Vec<PlannedMessage> {
    let (high, low) = conversation.state.id.as_u64_pair();
    let mut rng = Rng(high ^ low.rotate_left(17) | 1);
    let topic = &TOPICS[rng.below(TOPICS.len())];
    let mut messages = Vec::new();
    let mut script = Script {
        conversation: conversation.state.id,
        out: &mut messages,
    };
    let started = conversation.started_at.0;
    let events = &conversation.events;
    let end = |i: usize| events.get(i).map_or(now, |e| e.at);
    // The customer's first message starts the conversation; the bot
    // talks until the first transition (or until now, or its closing).
    script.say(Author::Customer, None, topic.opener.to_owned(), started);
    let mut bot = vec![
        (Author::Bot, None, BOT_GREETING.to_owned()),
        (Author::Customer, None, topic.choice.to_owned()),
        (Author::Bot, None, BOT_ASK.to_owned()),
        (Author::Customer, None, topic.detail.to_owned()),
    ];
    if let Some(handoff) = events.first().filter(|e| e.kind == EventKind::Handoff) {
        let line = match handoff.to_status {
            Status::OutOfHours => BOT_OUT_OF_HOURS,
            Status::AgentsOffline => BOT_OFFLINE,
            _ => BOT_ASSIGNED,
        };
        bot.push((Author::Bot, None, line.to_owned()));
    }
    script.spread(bot, started, end(0));
    // The agent from the first reply on, until the next transition.
    let Some(i) = events.iter().position(|e| e.kind == EventKind::FirstReply) else {
        if conversation.state.status == Status::Assigned {
            // Assigned, nobody answered yet: the customer asks again.
            let from = events.last().map_or(started, |e| e.at);
            script.spread(
                vec![(Author::Customer, None, STILL_WAITING.to_owned())],
                from,
                now,
            );
        }
        return messages;
    };
    let reply = &events[i];
    let agent = reply.to_agent;
    let greeting = format!(
        "Hola, soy {}. Con gusto te ayudo, dame un momento.",
        first_name(users, agent.unwrap_or_default())
    );
    script.say(Author::Agent, agent, greeting, reply.at);
    let closing = events
        .get(i + 1)
        .is_some_and(|e| e.kind == EventKind::Resolved);
    let mut lines = vec![
        (Author::Agent, agent, topic.agent[0].to_owned()),
        (Author::Customer, None, topic.customer.to_owned()),
        (Author::Agent, agent, topic.agent[1].to_owned()),
    ];
    if closing {
        lines.push((Author::Customer, None, topic.thanks.to_owned()));
    }
    script.spread(lines, reply.at, end(i + 1));
    messages
}

/// A long exchange after the first reply, for the demo's example of a
/// transcript of several pages: `count` more lines between the agent's
/// greeting and `now`.
pub(super) fn long_exchange(
    conversation: &mut PlannedConversation,
    count: usize,
    now: DateTime<Utc>,
) {
    let Some(greeting) = conversation
        .messages
        .iter()
        .position(|m| m.author == Author::Agent)
    else {
        return;
    };
    let agent = conversation.messages[greeting].agent_id;
    let from = conversation.messages[greeting].at;
    conversation.messages.truncate(greeting + 1);
    let lines: Vec<(Author, Option<Uuid>, String)> = (0..count)
        .map(|n| {
            if n % 2 == 0 {
                (
                    Author::Customer,
                    None,
                    format!("Paso {}: ya lo revisé, sigue igual.", n / 2 + 1),
                )
            } else {
                (
                    Author::Agent,
                    agent,
                    format!(
                        "Gracias. Probemos lo siguiente (paso {}): reinicia el equipo y espera dos minutos.",
                        n / 2 + 2
                    ),
                )
            }
        })
        .collect();
    let mut script = Script {
        conversation: conversation.state.id,
        out: &mut conversation.messages,
    };
    script.spread(lines, from, now - Duration::seconds(30));
}
