//! gnome-keyring, headless and private to this run: the rig of `keyringrs-rigs` (our own
//! `dbus-daemon --session` and `gnome-keyring-daemon --foreground --unlock --components=secrets`
//! with a throwaway HOME, unlocked with a password on stdin), ready once it stores an item.

use std::path::Path;

pub use keyringrs_rigs::gnome::GnomeKeyring as Daemons;

/// The password of the login keyring this gnome-keyring writes.
pub const PASSWORD: &str = "bench-login-password";

/// Start in `dir`; ready when our daemon owns the name and answers: it stores one item.
pub fn start(dir: &Path) -> Result<Daemons, String> {
    Daemons::start_with(dir, PASSWORD, |d| {
        secret_tool_store(d, "kbench-ready", "ready", b"ready")
    })
}

/// `secret-tool store` of one service/username item.
pub fn secret_tool_store(
    d: &Daemons,
    service: &str,
    user: &str,
    secret: &[u8],
) -> Result<(), String> {
    d.store(
        "kbench",
        &[("service", service), ("username", user)],
        secret,
    )
}

/// The in-process D-Bus client: keyring-core's Secret Service store on our private bus.
#[cfg(feature = "secret-service")]
pub fn peer_store(d: &Daemons) -> Result<std::sync::Arc<keyring_core::CredentialStore>, String> {
    // libdbus reads the bus address from the environment; set before the first connection,
    // while the bench is still single-threaded.
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", d.address());
    dbus_secret_service_keyring_store::Store::new()
        .map(|s| s as std::sync::Arc<keyring_core::CredentialStore>)
        .map_err(|e| format!("Secret Service connection: {e}"))
}

#[cfg(not(feature = "secret-service"))]
pub fn peer_store(_: &Daemons) -> Result<std::sync::Arc<keyring_core::CredentialStore>, String> {
    Err(
        "built without the secret-service feature (needs libdbus-1-dev); `make bench` enables it"
            .into(),
    )
}
