//! ID-token verification with a warm JWKS cache: what every authenticated request
//! pays once the container is warm (header check, cached key lookup, RS256 signature,
//! claim checks). Run with `cargo bench -p integration-tests --bench verify`.
//!
//! The Google emulator signs the token and serves the JWKS over loopback HTTP; the
//! first verification fetches it, every measured one hits the cache.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use google_emulator::{Emulator, EmulatorConfig};
use shared::google::{IdTokenVerifier, JwksCache};
use shared::outbound;
use shared::types::IdToken;

fn verify(c: &mut Criterion) {
    let google = Emulator::start_blocking(EmulatorConfig::default());
    let verifier = IdTokenVerifier::new(
        &google.client_id(),
        JwksCache::new(
            google.jwks_url(),
            outbound::http_client(Duration::from_secs(5)),
            Duration::from_secs(5),
        ),
        None,
    );
    let token = IdToken::parse(&google.id_token("bench-user")).expect("the emulator mints well-formed tokens");
    // One core, as in a Lambda container: a current-thread runtime.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let identity = runtime
        .block_on(verifier.verify(&token))
        .expect("the emulator's token verifies");
    assert_eq!(identity.sub().as_str(), "bench-user");
    let jwks_fetches = google.hits().jwks;

    let mut group = c.benchmark_group("id_token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_warm_jwks", |b| {
        // One `block_on` per batch, so the runtime's entry cost is not measured.
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iterations {
                    black_box(verifier.verify(black_box(&token)).await.expect("verifies"));
                }
                start.elapsed()
            })
        })
    });
    group.finish();

    assert_eq!(
        google.hits().jwks,
        jwks_fetches,
        "the JWKS must stay cached while measuring"
    );
}

criterion_group!(benches, verify);
criterion_main!(benches);
