//! Says so when the build lacks `--cfg poly1305_force_soft` (the workspace's
//! `.cargo/config.toml` sets it; a `RUSTFLAGS` of one's own replaces that): without it every
//! entry is authenticated by Poly1305's AVX2 backend, whose per-message set-up makes each `get`
//! ~1.2 µs slower (docs/PERFORMANCE.md, "Where the microseconds go").

fn main() {
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let flags: Vec<&str> = flags.split('\x1f').collect();
    let soft = flags
        .windows(2)
        .any(|w| w[0] == "--cfg" && w[1] == "poly1305_force_soft")
        || flags.contains(&"--cfg=poly1305_force_soft");
    if !soft {
        println!(
            "cargo:warning=built without --cfg poly1305_force_soft (RUSTFLAGS replaces \
             .cargo/config.toml): every get costs ~1.2 µs more, see docs/PERFORMANCE.md"
        );
    }
}
