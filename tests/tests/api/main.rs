//! Integration tests against moto and the Google emulator, through the handlers.
//! Each module proves one part of the contract (docs/api.md's sections, `infra/openapi.yaml`).

mod account;
mod events;
mod exchange;
mod faults;
mod http_conventions;
mod hygiene;
mod lifetime;
mod openapi;
mod phones;
mod publisher;
mod risc;
mod template;
mod tokens;
mod upgrade;
mod verifier;
mod worker;
