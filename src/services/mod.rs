//! The work behind the console and the API: conversation operations, the
//! router that chooses an agent, automatic cancellation, bulk jobs, the demo
//! data set, the traffic simulator, operations commands, the event feed (its sequencer and purge), the retention of
//! transcripts and authentication bookkeeping. Services use the Store and the domain rules; they know
//! nothing of HTTP.

pub mod auth;
pub mod auto_cancel;
pub mod bulk;
pub mod conversations;
pub mod demo;
pub mod error;
pub mod events;
pub mod ops;
pub mod router;
pub mod simulator;
pub mod transcripts;
pub mod webhooks;
