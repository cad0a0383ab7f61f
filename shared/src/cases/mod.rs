//! The use cases: what the service does, in terms of the ports only. Nothing here
//! knows HTTP, SQS, streams or AWS types, so one use case serves every entry point
//! (an HTTP handler, a queue batch, a direct invocation) alike.

pub mod access;
pub mod calendar;
pub mod disconnect;
pub mod grants;
pub mod lifecycle;
pub mod security;
pub mod sign_in;
pub mod sweep;
mod token_cache;

#[cfg(test)]
mod tests;

pub use access::{AccessTokens, TokenCache, Vended};
pub use calendar::{CalendarEvents, Created, NewEvent};
pub use disconnect::Disconnect;
pub use security::SecurityEvents;
pub use sign_in::{SignIn, SignedIn};
pub use sweep::{Backfilled, Sweeper, Swept};
