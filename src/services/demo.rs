//! The demo data set of `relevo demo`: a realistic contact centre built in
//! memory (deterministically, from a fixed seed) and then written in one
//! transaction. Every conversation's history is produced by the real
//! transition functions, so the demo never shows a state the rules forbid.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use crate::db::{
    DemoPlan, PlannedCampaign, PlannedCategory, PlannedChannel, PlannedContact,
    PlannedConversation, PlannedMessage, PlannedUser, Ts,
};

mod transcript;
use crate::domain::conversation::{self as rules, Transition};
use crate::domain::{
    AgentCandidate, CategoryRef, ChannelKind, Conversation, HandoffOutcome, Lookup, Role, Status,
    SubcategoryRef,
};

/// The demo Super Administrador's e-mail.
pub const SUPER_ADMIN_EMAIL: &str = "super@relevo.demo";
/// The demo Administrador's e-mail.
pub const ADMIN_EMAIL: &str = "admin@relevo.demo";
/// The demo Super Administrador's password.
pub const SUPER_ADMIN_PASSWORD: &str = "relevo-super-2026";
/// The demo Administrador's password.
pub const ADMIN_PASSWORD: &str = "relevo-admin-2026";

/// A small deterministic generator (xorshift64*), so every demo looks the same.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn uuid(&mut self) -> Uuid {
        Uuid::from_u64_pair(self.next(), self.next())
    }
}

const FIRST_NAMES: &[&str] = &[
    "María",
    "José",
    "Guadalupe",
    "Juan",
    "Fernanda",
    "Luis",
    "Sofía",
    "Carlos",
    "Valeria",
    "Miguel",
    "Daniela",
    "Alejandro",
    "Ximena",
    "Jorge",
    "Regina",
    "Ricardo",
    "Camila",
    "Eduardo",
    "Renata",
    "Francisco",
    "Mariana",
    "Javier",
    "Andrea",
    "Roberto",
    "Paola",
    "Héctor",
    "Lucía",
    "Arturo",
    "Itzel",
    "Raúl",
];

const LAST_NAMES: &[&str] = &[
    "Hernández",
    "García",
    "Martínez",
    "López",
    "González",
    "Pérez",
    "Rodríguez",
    "Sánchez",
    "Ramírez",
    "Cruz",
    "Flores",
    "Gómez",
    "Morales",
    "Vázquez",
    "Reyes",
    "Jiménez",
    "Torres",
    "Díaz",
    "Gutiérrez",
    "Ruiz",
    "Mendoza",
    "Aguilar",
    "Ortiz",
    "Castillo",
    "Romero",
    "Núñez",
];

/// Area codes of Mexico City, Guadalajara, Monterrey, Puebla, Mérida, Querétaro.
const AREA_CODES: &[&str] = &["55", "33", "81", "222", "999", "442"];

const CAMPAIGNS: &[(&str, &[ChannelKind])] = &[
    (
        "Ventas Hogar",
        &[
            ChannelKind::Whatsapp,
            ChannelKind::Messenger,
            ChannelKind::Web,
        ],
    ),
    (
        "Soporte Técnico",
        &[
            ChannelKind::Whatsapp,
            ChannelKind::Telegram,
            ChannelKind::Web,
        ],
    ),
    ("Cobranza", &[ChannelKind::Whatsapp, ChannelKind::Messenger]),
    (
        "Atención a Clientes",
        &[
            ChannelKind::Whatsapp,
            ChannelKind::Instagram,
            ChannelKind::Messenger,
        ],
    ),
    (
        "Seguros Auto",
        &[ChannelKind::Whatsapp, ChannelKind::Telegram],
    ),
];

const CATEGORIES: &[(&str, &[&str])] = &[
    (
        "Cliente no responde",
        &[
            "Sin respuesta tras 24 h",
            "Abandonó el flujo del bot",
            "Número equivocado",
        ],
    ),
    (
        "Atendida por otro medio",
        &["Llamada telefónica", "Sucursal", "Correo electrónico"],
    ),
    ("Conversación duplicada", &[]),
    ("Spam o abuso", &["Publicidad", "Lenguaje ofensivo"]),
    (
        "Fuera de cobertura",
        &["Zona sin servicio", "Producto no disponible"],
    ),
    (
        "Flujo atascado",
        &["Error del bot", "Transferencia fallida"],
    ),
    ("Prueba interna", &[]),
];

const COMMENTS: &[&str] = &[
    "El cliente ya fue atendido por teléfono.",
    "Sin respuesta desde ayer; se cierra para reiniciar el flujo.",
    "Duplicada con otra conversación del mismo cliente.",
    "El bot se quedó en el menú de pagos.",
    "Cliente pide hablar con su asesor de siempre.",
    "Carga de trabajo: se reparte al turno vespertino.",
];

fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn person_name(rng: &mut Rng) -> String {
    format!(
        "{} {} {}",
        rng.pick(FIRST_NAMES),
        rng.pick(LAST_NAMES),
        rng.pick(LAST_NAMES)
    )
}

fn email_of(name: &str, taken: &mut Vec<String>) -> String {
    let mut words = crate::domain::text::fold(name)
        .split(' ')
        .map(|w| {
            w.chars()
                .map(|c| if c == 'ñ' { 'n' } else { c })
                .collect::<String>()
        })
        .collect::<Vec<_>>();
    words.truncate(2);
    let base = words.join(".");
    let mut email = format!("{base}@relevo.demo");
    let mut n = 2;
    while taken.contains(&email) {
        email = format!("{base}{n}@relevo.demo");
        n += 1;
    }
    taken.push(email.clone());
    email
}

// long: a data-plan builder read top to bottom (campaigns, users, channels, categories, contacts, conversations) drawing from one seeded Rng in order; the draw order is the demo data.
/// Builds the demo plan. `hashes` are the argon2 hashes of the Super
/// Administrador's and the Administrador's passwords, made by the caller on a
/// blocking thread.
pub fn plan(now: DateTime<Utc>, super_admin_hash: String, admin_hash: String) -> DemoPlan {
    let mut rng = Rng(0x5EED_2026_1126_0001);
    let mut campaigns = Vec::new();
    let mut channels = Vec::new();
    let mut categories = Vec::new();
    let mut users = Vec::new();
    let mut taken = vec![SUPER_ADMIN_EMAIL.to_owned(), ADMIN_EMAIL.to_owned()];

    for (index, (name, kinds)) in CAMPAIGNS.iter().enumerate() {
        let id = rng.uuid();
        let mut schedule: Vec<(i32, String, String)> = (0..5)
            .map(|d| (d, "08:00".to_owned(), "20:00".to_owned()))
            .collect();
        schedule.push((5, "09:00".to_owned(), "14:00".to_owned()));
        campaigns.push(PlannedCampaign {
            id,
            name: (*name).to_owned(),
            timezone: "America/Mexico_City".to_owned(),
            schedule,
        });
        for kind in kinds.iter() {
            channels.push(PlannedChannel {
                id: rng.uuid(),
                campaign_id: id,
                kind: *kind,
                name: format!("{} {}", kind.label(), name),
                token_hash: token_hash(&rng.uuid().to_string()),
            });
        }
        for (position, (category, subs)) in CATEGORIES.iter().enumerate() {
            categories.push(PlannedCategory {
                id: rng.uuid(),
                campaign_id: id,
                name: (*category).to_owned(),
                position: position as i32,
                // One deactivated category shows that history keeps its name.
                active: !(index == 0 && *category == "Prueba interna"),
                subcategories: subs.iter().map(|s| (rng.uuid(), (*s).to_owned())).collect(),
            });
        }
        for _ in 0..4 {
            let name = person_name(&mut rng);
            let email = email_of(&name, &mut taken);
            users.push(PlannedUser {
                id: rng.uuid(),
                email,
                name,
                role: Role::Agent,
                connected: rng.below(3) != 0,
                password_hash: None,
                campaigns: vec![id],
            });
        }
    }
    users.push(PlannedUser {
        id: rng.uuid(),
        email: SUPER_ADMIN_EMAIL.to_owned(),
        name: "Carlos Ramírez Ortega".to_owned(),
        role: Role::SuperAdmin,
        connected: false,
        password_hash: Some(super_admin_hash),
        campaigns: Vec::new(),
    });
    users.push(PlannedUser {
        id: rng.uuid(),
        email: ADMIN_EMAIL.to_owned(),
        name: "Laura Méndez Soto".to_owned(),
        role: Role::Admin,
        connected: false,
        password_hash: Some(admin_hash),
        campaigns: vec![campaigns[0].id, campaigns[1].id],
    });
    let admin_ids: Vec<Uuid> = users
        .iter()
        .filter(|u| u.role.may_use_console())
        .map(|u| u.id)
        .collect();

    let mut contacts: Vec<PlannedContact> = Vec::new();
    for _ in 0..260 {
        let channel = rng.pick(&channels);
        let external_id = if channel.kind == ChannelKind::Web {
            format!("web-{:06x}", rng.next() % 0xFF_FFFF)
        } else {
            let area = rng.pick(AREA_CODES);
            let rest = 10 - area.len();
            let number = rng.next() % 10u64.pow(rest as u32);
            format!("52{area}{number:0rest$}")
        };
        let name = (channel.kind != ChannelKind::Web || rng.below(2) == 0)
            .then(|| format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES)));
        contacts.push(PlannedContact {
            id: rng.uuid(),
            channel_id: channel.id,
            external_id,
            name,
        });
    }

    let mut conversations = Vec::new();
    // Status mix: mostly closed history, a healthy queue of open ones.
    let mix: &[(Status, usize)] = &[
        (Status::Icr, 40),
        (Status::Assigned, 40),
        (Status::InProgress, 60),
        (Status::OutOfHours, 20),
        (Status::AgentsOffline, 20),
        (Status::Resolved, 140),
        (Status::Cancelled, 80),
    ];
    for &(target, count) in mix {
        for _ in 0..count {
            let contact = &contacts[rng.below(contacts.len())];
            let channel = channels
                .iter()
                .find(|c| c.id == contact.channel_id)
                .expect("contact channel exists");
            // Open conversations are recent; closed ones spread over 30 days.
            let age_minutes = if target.is_open() {
                rng.below(60 * 8) as i64 + 1
            } else {
                rng.below(60 * 24 * 30) as i64 + 60
            };
            let started = now - Duration::minutes(age_minutes);
            conversations.push(build_conversation(
                &mut rng,
                target,
                contact,
                channel.campaign_id,
                started,
                now,
                &users,
                &categories,
                &admin_ids,
            ));
        }
    }
    // A customer who writes after a cancellation starts over in a new
    // conversation linked to the cancelled one.
    let cancelled: Vec<(Uuid, Uuid, Uuid, Uuid, DateTime<Utc>)> = conversations
        .iter()
        .filter(|c: &&PlannedConversation| c.state.status == Status::Cancelled)
        .take(12)
        .map(|c| {
            let closed = c.events.last().map_or(c.started_at.0, |e| e.at);
            (
                c.state.id,
                c.state.contact_id,
                c.state.channel_id,
                c.state.campaign_id,
                closed,
            )
        })
        .collect();
    for (previous, contact_id, channel_id, campaign_id, closed_at) in cancelled {
        let started = (closed_at + Duration::minutes(5 + rng.below(120) as i64)).min(now);
        let contact = contacts
            .iter()
            .find(|k| k.id == contact_id && k.channel_id == channel_id)
            .expect("contact exists");
        let mut next = build_conversation(
            &mut rng,
            Status::Icr,
            contact,
            campaign_id,
            started,
            now,
            &users,
            &categories,
            &admin_ids,
        );
        next.reactivates = Some(previous);
        conversations.push(next);
    }
    conversations.push(past_retention(
        &contacts,
        &channels,
        campaigns[0].id,
        now,
        &users,
        &categories,
        &admin_ids,
    ));
    conversations.sort_by_key(|c| c.started_at);
    add_transcripts(&mut conversations, &users, campaigns[0].id, now);

    DemoPlan {
        campaigns,
        users,
        channels,
        categories,
        contacts,
        conversations,
    }
}

/// A conversation of `campaign_id` resolved longer ago than the default
/// retention of transcripts: its texts are purged when the server starts,
/// so the demo shows what a purged transcript looks like. Drawn from a
/// generator of its own (the rest of the demo keeps its draws).
fn past_retention(
    contacts: &[PlannedContact],
    channels: &[PlannedChannel],
    campaign_id: Uuid,
    now: DateTime<Utc>,
    users: &[PlannedUser],
    categories: &[PlannedCategory],
    admins: &[Uuid],
) -> PlannedConversation {
    let days = i64::from(crate::domain::transcript::DEFAULT_RETENTION_DAYS) + 20;
    let contact = contacts
        .iter()
        .find(|k| {
            channels
                .iter()
                .any(|h| h.id == k.channel_id && h.campaign_id == campaign_id)
        })
        .expect("the first campaign has contacts");
    build_conversation(
        &mut Rng(0x5EED_2026_0180_0001),
        Status::Resolved,
        contact,
        campaign_id,
        now - Duration::days(days),
        now,
        users,
        categories,
        admins,
    )
}

/// Every conversation's transcript, and, in the first campaign, one
/// conversation long enough to page through.
fn add_transcripts(
    conversations: &mut [PlannedConversation],
    users: &[PlannedUser],
    campaign_id: Uuid,
    now: DateTime<Utc>,
) {
    for conversation in conversations.iter_mut() {
        conversation.messages = transcript::script(conversation, users, now);
    }
    if let Some(long) = conversations.iter_mut().find(|c| {
        c.state.campaign_id == campaign_id
            && c.state.status == Status::InProgress
            && now - c.started_at.0 > Duration::hours(2)
    }) {
        transcript::long_exchange(long, 70, now);
    }
}

// long: one conversation walked from ICR to its target through the real transitions; every step draws from the one seeded Rng in order, and that order is the demo data, so it reads best (and stays reproducible) top to bottom.
/// Walks one conversation from ICR to `target` through the real transitions.
#[allow(clippy::too_many_arguments)]
fn build_conversation(
    rng: &mut Rng,
    target: Status,
    contact: &PlannedContact,
    campaign_id: Uuid,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
    users: &[PlannedUser],
    categories: &[PlannedCategory],
    admins: &[Uuid],
) -> PlannedConversation {
    let agents: Vec<Uuid> = users
        .iter()
        .filter(|u| u.role == Role::Agent && u.campaigns.contains(&campaign_id))
        .map(|u| u.id)
        .collect();
    let mut state = Conversation {
        id: rng.uuid(),
        folio: 0,
        campaign_id,
        channel_id: contact.channel_id,
        contact_id: contact.id,
        status: Status::Icr,
        version: 1,
        agent_id: None,
    };
    let mut events = Vec::new();
    let mut at = started;
    let mut step = |rng: &mut Rng| {
        at = (at + Duration::seconds(20 + rng.below(900) as i64)).min(now);
        at
    };
    let mut apply = |state: &mut Conversation, t: Result<Transition, _>| {
        let t: Transition = t.expect("demo follows the transition rules");
        *state = t.applied_to(state);
        events.push(t);
    };
    let agent = *rng.pick(&agents);
    let handoff_to = match target {
        Status::OutOfHours => Some(HandoffOutcome::OutOfHours),
        Status::AgentsOffline => Some(HandoffOutcome::AgentsOffline),
        Status::Icr => None,
        Status::Cancelled if rng.below(3) == 0 => None,
        _ => Some(HandoffOutcome::Assign(agent)),
    };
    if let Some(outcome) = handoff_to {
        let t = step(rng);
        let next = rules::handoff(&state, outcome, t);
        apply(&mut state, next);
    }
    if matches!(target, Status::InProgress | Status::Resolved)
        || (target == Status::Cancelled && state.status == Status::Assigned && rng.below(2) == 0)
    {
        let t = step(rng);
        let next = rules::first_reply(&state, agent, t);
        apply(&mut state, next);
    }
    if target == Status::Assigned && rng.below(4) == 0 {
        let other = *rng.pick(&agents);
        if other != agent {
            let t = step(rng);
            let candidate = Lookup::Found(AgentCandidate {
                id: other,
                role: Role::Agent,
                active: true,
                connected: true,
                in_campaign: true,
            });
            let comment = *rng.pick(COMMENTS);
            let next = rules::reassign(
                &state,
                *rng.pick(admins),
                candidate,
                rules::OfflineAgent::Confirmed,
                comment,
                t,
            );
            apply(&mut state, next);
        }
    }
    let campaign_categories: Vec<&PlannedCategory> = categories
        .iter()
        .filter(|c| c.campaign_id == campaign_id)
        .collect();
    let closure = |rng: &mut Rng| {
        let category = *rng.pick(&campaign_categories);
        let sub = if category.subcategories.is_empty() || rng.below(3) == 0 {
            Lookup::NotChosen
        } else {
            let (id, _) = rng.pick(&category.subcategories);
            Lookup::Found(SubcategoryRef {
                id: *id,
                category_id: category.id,
                active: true,
            })
        };
        // History may name a category that was deactivated later.
        let category = Lookup::Found(CategoryRef {
            id: category.id,
            campaign_id,
            active: true,
        });
        let comment = if rng.below(2) == 0 {
            *rng.pick(COMMENTS)
        } else {
            ""
        };
        (category, sub, comment)
    };
    match target {
        Status::Resolved => {
            let t = step(rng);
            let (category, sub, comment) = if rng.below(2) == 0 {
                closure(rng)
            } else {
                (Lookup::NotChosen, Lookup::NotChosen, "")
            };
            let next = rules::resolve(&state, agent, category, sub, comment, t);
            apply(&mut state, next);
        }
        Status::Cancelled => {
            let t = step(rng);
            let (category, sub, comment) = closure(rng);
            let next = rules::cancel(&state, *rng.pick(admins), category, sub, comment, t);
            apply(&mut state, next);
        }
        _ => {}
    }
    PlannedConversation {
        state,
        started_at: Ts::new(started),
        reactivates: None,
        events,
        messages: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_covers_every_status_and_links_reactivations() {
        let plan = plan(Utc::now(), String::new(), String::new());
        for status in Status::ALL {
            assert!(
                plan.conversations.iter().any(|c| c.state.status == *status),
                "no demo conversation in {status}"
            );
        }
        assert!(plan.conversations.iter().any(|c| c.reactivates.is_some()));
        assert!(plan.conversations.len() >= 400);
    }

    #[test]
    fn demo_transcripts_follow_each_conversations_history() {
        use crate::domain::{Author, EventKind};
        let now = Utc::now();
        let plan = plan(now, String::new(), String::new());
        for c in &plan.conversations {
            let first = c.messages.first().expect("every conversation has messages");
            assert_eq!((first.author, first.at), (Author::Customer, c.started_at.0));
            assert!(c.messages.windows(2).all(|w| w[0].at <= w[1].at));
            assert!(c.messages.iter().all(|m| m.at <= now));
            if let Some(closing) = c.events.iter().find(|e| e.closes()) {
                assert!(
                    c.messages.iter().all(|m| m.at <= closing.at),
                    "after closing"
                );
            }
            let handoff = c.events.first().map(|e| e.at);
            for m in &c.messages {
                match m.author {
                    Author::Bot => assert!(handoff.is_none_or(|h| m.at <= h), "bot after ICR"),
                    Author::Agent => {
                        let reply = c.events.iter().find(|e| e.kind == EventKind::FirstReply);
                        assert!(reply.is_some_and(|r| r.at <= m.at && r.to_agent == m.agent_id));
                    }
                    Author::Customer => assert!(m.agent_id.is_none()),
                    Author::System => panic!("the demo sends no nudges"),
                }
            }
        }
        for author in [Author::Customer, Author::Bot, Author::Agent] {
            assert!(
                plan.conversations
                    .iter()
                    .any(|c| c.messages.iter().any(|m| m.author == author))
            );
        }
        // One transcript of several pages, and one older than the retention.
        let longest = plan.conversations.iter().map(|c| c.messages.len()).max();
        assert!(
            longest > Some(50),
            "more than a page of the conversation page"
        );
        let retention = chrono::Duration::days(180);
        assert!(
            plan.conversations
                .iter()
                .any(|c| now - c.started_at.0 > retention)
        );
    }
}
