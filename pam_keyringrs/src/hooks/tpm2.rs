//! A login without a password (autologin, fingerprint, smartcard, an ssh key) opens the store
//! with a TPM2 keyslot added with `keyringrs slot add NAME --tpm2 --pam` (docs/PAM.md "Logins
//! without a password"). The store's files are read as the user (the hook's fs ids); the TPM
//! work runs in a child that has become the user entirely (uid, gid and groups: `tss` gives
//! /dev/tpmrm0) and is killed after `tpm2_timeout=`. Whatever happens, the login goes on.

use std::time::Instant;

use keyringrs_tpm2::{Account as TpmUser, SlotError, Unsealer};
use libkeyring::sys::creds::Account;
use libkeyring::{Error, Opened, Store, Tpm2Slot};

use super::Log;
use crate::handle::{Level, Pam};
use crate::options::Options;

/// The store of `account` and its TPM2 keyslots for logins, if it has any (quietly None
/// otherwise: most logins without a password have nothing to open).
pub(super) fn login_slots<P: Pam>(
    log: &Log<P>,
    opts: &Options,
    account: &Account,
) -> Option<(Store, Vec<Tpm2Slot>)> {
    let user = &account.name;
    let path = opts.store_path(user, &account.home);
    let store = match Store::open(&path) {
        Ok(s) => s,
        Err(Error::NoStore(_)) => {
            log.debug(&format!("no store at {} for {user}", path.display()));
            return None;
        }
        Err(e) => {
            log.error(&format!("opening store {} of {user}", path.display()), &e);
            return None;
        }
    };
    match store.tpm2_slots(true) {
        Ok(s) if s.is_empty() => {
            log.debug(&format!(
                "no TPM2 keyslot for logins in store {} of {user} (`keyringrs slot add NAME \
                 --tpm2 --pam` adds one)",
                path.display()
            ));
            None
        }
        Ok(s) => Some((store, s)),
        Err(e) => {
            log.error(&format!("the TPM2 keyslots of {user}, left locked"), &e);
            None
        }
    }
}

/// Open `store` with one of `slots` (from [`login_slots`]), the TPM work as the user.
pub(super) fn open<P: Pam>(
    log: &Log<P>,
    opts: &Options,
    account: &Account,
    store: Store,
    slots: &[Tpm2Slot],
) -> Option<(Store, Opened)> {
    let user = &account.name;
    let tpm = Unsealer {
        tcti: opts.tpm2_tcti.clone(),
        within: opts.tpm2_timeout,
        as_user: Some(TpmUser {
            name: account.name.clone(),
            uid: account.uid,
            gid: account.gid,
        }),
    };
    let started = Instant::now();
    // A PIN cannot be asked at a login without a password: such slots are not tried.
    match tpm.open(&store, slots, &mut |_| None) {
        Ok((opened, slot)) => {
            log.at(
                Level::Info,
                &format!(
                    "{user} logged in without a password: the store opened with its TPM2 \
                     keyslot {} ({} at {} in {} ms)",
                    slot.name,
                    slot.binding.pcr_text(),
                    tpm.tcti,
                    started.elapsed().as_millis()
                ),
            );
            Some((store, opened))
        }
        Err(e) => {
            let level = match &e {
                SlotError::Tpm(keyringrs_tpm2::Error::Timeout(_)) => Level::Warning,
                e if e.slot_refused() => Level::Notice,
                _ => Level::Warning,
            };
            log.at(
                level,
                &format!(
                    "the TPM2 keyslot of {user} did not open ({e}; {} ms): store left locked, \
                     `keyringrs unlock` opens it with a password",
                    started.elapsed().as_millis()
                ),
            );
            None
        }
    }
}
