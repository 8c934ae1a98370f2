//! Plain timing loops for the per-message codec work outside the fan-out loop:
//!
//! * `parse connect+subscribe frame`: a centrifuge-js style first frame (connect with an HS256
//!   JWT, then a subscribe, newline-separated, `id` last) through `split_lines` + `Command::parse`,
//!   as `ClientSession::on_frame` does;
//! * `encode publication push`: `reply::push(channel, "pub", &Publication)` with a ~100-byte
//!   payload and an offset — done once per publication per channel, shared by every subscriber;
//! * `verify HS256 connection JWT`: `TokenVerifier::verify_connection` with
//!   `client.token.hmac_secret_key` set (signature, `exp`, claims extraction).
//!
//! Each case is calibrated to ~200 ms per sample, 7 samples after a warm-up; prints the median
//! and the best ns/op. About 2 s per case.
//!
//! Run: `cargo bench --bench codec` (timing), or `cargo bench --bench codec -- 10000` for exactly
//! 10,000 ops per case (one sample). Instructions per op under callgrind: run the binary with a
//! fixed count, e.g. `valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.codec
//! target/release/deps/codec-<hash> 10000`, then `callgrind_annotate --inclusive=yes
//! /tmp/cg.codec | grep -E 'verify_connection|Command::parse|reply::push'` and divide each
//! function's inclusive Ir by 10,000 (or by its call count).

use std::hint::black_box;
use std::time::{Duration, Instant};

use gyre::auth::TokenVerifier;
use gyre::config::Settings;
use gyre::domain::{unix_now, Payload, Publication};
use gyre::protocol::command::Command;
use gyre::protocol::frame::split_lines;
use gyre::protocol::reply::push;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "bench-secret";
const SAMPLES: usize = 7;
const SAMPLE_TIME: Duration = Duration::from_millis(200);

/// Runs `op` in calibrated batches; prints median and best ns/op. With a fixed iteration count
/// (first argument), runs exactly that many ops once instead (for callgrind: a fixed amount of
/// work, so instruction counts are repeatable).
fn bench(name: &str, fixed: Option<u64>, mut op: impl FnMut()) {
    if let Some(iterations) = fixed {
        let started = Instant::now();
        for _ in 0..iterations {
            op();
        }
        let per_op = started.elapsed().as_nanos() as f64 / iterations.max(1) as f64;
        println!("{name:<36} {per_op:>10.1} ns/op ({iterations} ops, one sample)");
        return;
    }
    // Warm-up and calibration: how many iterations fill one sample.
    let mut iterations = 1u64;
    loop {
        let started = Instant::now();
        for _ in 0..iterations {
            op();
        }
        let elapsed = started.elapsed();
        if elapsed >= SAMPLE_TIME / 4 {
            let per_op = elapsed.as_secs_f64() / iterations as f64;
            iterations = ((SAMPLE_TIME.as_secs_f64() / per_op) as u64).max(1);
            break;
        }
        iterations *= 4;
    }
    let mut samples: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                op();
            }
            started.elapsed().as_nanos() as f64 / iterations as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    println!(
        "{name:<36} {:>10.1} ns/op (median of {SAMPLES} x {iterations} ops; best {:.1} ns/op)",
        samples[SAMPLES / 2],
        samples[0]
    );
}

fn main() {
    let fixed: Option<u64> = std::env::args().skip(1).find_map(|a| a.parse().ok());
    let now = unix_now();
    let token = encode(
        &Header::default(),
        &json!({"sub": "42", "exp": now + 3600, "info": {"name": "Alice"}}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign token");

    // What centrifuge-js sends first when a subscription exists before `connect()`.
    let frame = format!(
        "{{\"connect\":{{\"token\":\"{token}\",\"name\":\"js\"}},\"id\":1}}\n{{\"subscribe\":{{\"channel\":\"news\",\"flag\":1}},\"id\":2}}"
    );
    bench("parse connect+subscribe frame", fixed, || {
        let lines = split_lines(black_box(&frame)).expect("two lines");
        for line in lines {
            black_box(Command::parse(line).expect("valid command"));
        }
    });

    let data = format!(r#"{{"n":12345,"text":"{}"}}"#, "x".repeat(80));
    let publication = Publication { data: Payload::from(data.as_str()), offset: 42, ..Default::default() };
    bench("encode publication push", fixed, || {
        black_box(push(black_box("news"), "pub", black_box(&publication)).expect("JSON data"));
    });

    let mut settings = Settings::default();
    settings.client.token.hmac_secret_key = SECRET.to_owned();
    let verifier = TokenVerifier::from_settings(&settings).expect("verifier");
    verifier.verify_connection(&token, now).expect("token verifies");
    bench("verify HS256 connection JWT", fixed, || {
        black_box(verifier.verify_connection(black_box(&token), now).expect("token verifies"));
    });
}
