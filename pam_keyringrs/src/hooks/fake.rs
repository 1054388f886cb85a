//! A libpam stand-in for the hooks' unit tests: items, data and what was logged or shown.

use zeroize::Zeroizing;

use crate::handle::{Installed, Level, Pam, Stash};

/// libpam stand-in: items, data and what was logged or shown.
#[derive(Default)]
pub(super) struct Fake {
    pub(super) user: Option<String>,
    pub(super) authtok: Option<Vec<u8>>,
    pub(super) stash: Option<Stash>,
    pub(super) key: Option<Installed>,
    pub(super) tty: Option<String>,
    pub(super) env: Vec<(String, String)>,
    pub(super) logged: std::cell::RefCell<Vec<(Level, String)>>,
    pub(super) shown: std::cell::RefCell<Vec<String>>,
}

impl Pam for Fake {
    fn user(&self) -> Option<String> {
        self.user.clone()
    }
    fn authtok(&self) -> Option<Zeroizing<Vec<u8>>> {
        self.authtok.clone().map(Zeroizing::new)
    }
    fn old_authtok(&self) -> Option<Zeroizing<Vec<u8>>> {
        None
    }
    fn tty(&self) -> Option<String> {
        self.tty.clone()
    }
    fn env(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
    fn log(&self, level: Level, msg: &str) {
        self.logged.borrow_mut().push((level, msg.to_owned()));
    }
    fn info(&self, msg: &str) {
        self.shown.borrow_mut().push(msg.to_owned());
    }
    fn stash_password(&mut self, stash: Stash) {
        self.stash = Some(stash);
    }
    fn take_password(&mut self, _user: &str) -> Option<Stash> {
        self.stash.take()
    }
    fn record_key(&mut self, key: Installed) {
        self.key = Some(key);
    }
    fn take_key(&mut self) -> Option<Installed> {
        self.key.take()
    }
}

pub(super) fn fake(user: &str, authtok: Option<&[u8]>) -> Fake {
    Fake {
        user: Some(user.into()),
        authtok: authtok.map(<[u8]>::to_vec),
        ..Fake::default()
    }
}
