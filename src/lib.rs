//! Librarian: collects photos with JSON labels, validates both, reads the barcodes, and
//! stores each accepted record under a UUID.

pub mod app;
pub mod auth;
pub mod blocking;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod describe;
pub mod extract;
pub mod fetch;
pub mod http;
pub mod imaging;
pub mod jobs;
pub mod metrics;
#[cfg(feature = "amqp")]
pub mod mongo;
pub mod notify;
pub mod orphans;
pub mod pipeline;
pub mod privacy;
pub mod worker;
