//! Rigs shared by the end-to-end tests (`keyringrs-tests`) and the bench (`keyringrs-bench`): a
//! private D-Bus session bus, and a real, headless gnome-keyring-daemon on one. Every process is
//! our child and is killed on drop. Errors are messages: the bench turns them into n/a rows, the
//! tests into panics.

pub mod bus;
pub mod gnome;
pub mod swtpm;

/// Why `what` could not be started: "not installed" when the program is not there.
pub fn spawn_err(what: &str, e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!("{what} not installed")
    } else {
        format!("{what}: {e}")
    }
}
