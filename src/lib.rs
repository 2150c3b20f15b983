//! Relevo: the administration console of an omnichannel customer-conversation
//! platform. See the README for how to run it and `ARCHITECTURE.md` for how
//! the code is laid out.

pub mod app;
pub mod cli;
pub mod compression;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod live;
pub mod services;
pub mod telemetry;
