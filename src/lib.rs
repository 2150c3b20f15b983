//! Relevo: the administration console of an omnichannel customer-conversation
//! platform. See the README for how to run it and `../shared/spec` for the
//! product contract.

pub mod auth;
pub mod autocancel;
pub mod bulk;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod live;
pub mod ops;
pub mod routes;
pub mod routing;
pub mod service;
pub mod simulator;
pub mod startup;
pub mod telemetry;
