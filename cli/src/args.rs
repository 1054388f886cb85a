//! The command line's definition (clap derive): parsed in main.rs, and read by xtask-gen to
//! generate the man page and shell completions. Only definitions here, no behaviour.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Login-unlocked encrypted secret store.
///
/// Secrets are encrypted on disk and readable only while this session holds the store's key in
/// the kernel session keyring (put there at login by pam_keyringrs, or by `keyringrs unlock`).
///
/// Exit codes: 0 ok, 1 other error, 2 usage, 3 locked, 4 no such entry, 5 wrong password,
/// 6 no store, 7 corrupt store, 8 access denied, 9 quota or disk full.
#[derive(Parser, Debug)]
#[command(name = "keyringrs", version)]
pub struct Cli {
    /// Store directory [default: $XDG_DATA_HOME/keyringrs or ~/.local/share/keyringrs]
    #[arg(long, global = true, env = "KEYRINGRS_STORE", value_name = "PATH")]
    pub store: Option<PathBuf>,

    /// Argon2id memory in KiB for new or upgraded keyslots [default: 65536]
    #[arg(long, global = true, env = "KEYRINGRS_KDF_MEMORY", value_name = "KIB")]
    pub kdf_memory: Option<u32>,

    /// Argon2id iterations for new or upgraded keyslots [default: 3]
    #[arg(long, global = true, env = "KEYRINGRS_KDF_TIME", value_name = "N")]
    pub kdf_time: Option<u32>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a store (asks for the password twice on a tty) and leave it unlocked
    Init {
        /// Read the password as one line from stdin
        #[arg(long)]
        password_stdin: bool,
        /// Where the key goes: session (@s, default) or user (@u, shared by all your processes)
        #[arg(long, value_enum, default_value = "session")]
        scope: ScopeArg,
        /// Also add a recovery key and print it once (keep it away from the computer)
        #[arg(long)]
        recovery_key: bool,
    },
    /// Unlock the store for this session (checks the password even if already unlocked)
    ///
    /// The password is asked on the terminal, or read from stdin with --password-stdin. Without
    /// a terminal in a graphical session (a script, a desktop launcher), the desktop's own
    /// password dialog is shown through keyringrs-secret-service instead; the key then goes to
    /// the user keyring, held by this login until it ends (docs/SECRET-SERVICE.md).
    Unlock {
        /// Read the password as one line from stdin
        #[arg(long)]
        password_stdin: bool,
        /// Lock again automatically after SECS seconds
        #[arg(long, value_name = "SECS")]
        timeout: Option<u32>,
        /// Where the key goes: session (@s, default) or user (@u, shared by all your processes)
        #[arg(long, value_enum, default_value = "session")]
        scope: ScopeArg,
        /// Unlock with the recovery key instead of a password (from the tty, or one line of
        /// stdin with --password-stdin)
        #[arg(long)]
        recovery_key: bool,
        /// Unlock with a TPM2 keyslot of this machine (`slot add --tpm2`): nothing is asked,
        /// unless the slot has a PIN. The TPM is /dev/tpmrm0 unless TPM2TOOLS_TCTI or TCTI
        /// names another (e.g. swtpm:host=127.0.0.1,port=2321)
        #[arg(long, conflicts_with = "recovery_key")]
        tpm2: bool,
    },
    /// Lock the store (the key is invalidated; locking a locked store succeeds)
    Lock,
    /// Show store path, id, locked/unlocked, and the entry count if unlocked
    Status,
    /// Store a secret read from stdin (one trailing newline stripped unless --raw)
    Set {
        service: String,
        username: String,
        /// Keep stdin bytes exactly
        #[arg(long)]
        raw: bool,
    },
    /// Print a secret exactly (plus a newline only when stdout is a tty)
    Get { service: String, username: String },
    /// Delete an entry
    Delete { service: String, username: String },
    /// List entries as SERVICE<TAB>USERNAME lines (\\, tab and newline escaped)
    List,
    /// Change the password: old, then new (with --password-stdin: two lines)
    Passwd {
        /// Read old and new password as two lines from stdin
        #[arg(long)]
        password_stdin: bool,
        /// Also replace the master key and reseal every entry (after a leak of the key, an
        /// old password or a header backup; other logins must unlock again)
        #[arg(long)]
        rotate: bool,
    },
    /// After an admin reset of the login password: the store's previous password, then the
    /// current login password (asked once); rewraps the store to it and unlocks this session
    Resync {
        /// Read previous and current password as two lines from stdin
        #[arg(long)]
        password_stdin: bool,
        /// Open the store with the recovery key instead of the previous password
        #[arg(long)]
        recovery_key: bool,
    },
    /// Add or remove the recovery key (asks for the store password first)
    #[command(subcommand)]
    RecoveryKey(RecoveryKeyCommand),
    /// The store's keyslots
    #[command(subcommand)]
    Slot(SlotCommand),
    /// Import secrets from another store (docs/IMPORT.md); the store must be unlocked
    ///
    /// The source is never changed; importing it again adds nothing (an item equal in label,
    /// attributes and secret to an entry is skipped); an item whose place is taken by other
    /// content is kept as a separate entry, never overwriting; all or nothing per run; items
    /// keep their creation and modification times where the source has them. Reports
    /// `N new, M already there, K conflicting`. Exits 5 for a wrong keyring password (or
    /// portal secret), 7 for a damaged source.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Verify the store without changing anything (like fsck -n)
    ///
    /// Prints one line per problem, `PATH: what is wrong`, and exits 0 when there is none, 7
    /// otherwise. Locked, it checks what needs no key (which files there are, their types,
    /// owners, modes, sizes, the header's checksum) and says what it could not check;
    /// unlocked, also the header MAC, every entry, the journal's records and the index.
    Check,
    /// Repair a damaged store (unlocked): keep what authenticates, set the rest aside
    ///
    /// Keeps every entry that opens and every journal record that authenticates before the
    /// damage, moves every damaged file into `damaged/<time>/` inside the store (never deletes
    /// one), rebuilds the index, and prints what was kept and what was set aside. Running it
    /// again changes nothing. Waits up to 10 s for a writer; refused on a network filesystem.
    Repair,
}

#[derive(Subcommand, Debug)]
pub enum RecoveryKeyCommand {
    /// Print a new recovery key once, on stdout alone on its line (it replaces an earlier one)
    Add {
        /// Read the store password (or recovery key) as one line from stdin
        #[arg(long)]
        password_stdin: bool,
        /// Open the store with the recovery key instead of a password
        #[arg(long)]
        recovery_key: bool,
    },
    /// Remove the recovery key
    Remove {
        /// Read the store password (or recovery key) as one line from stdin
        #[arg(long)]
        password_stdin: bool,
        /// Open the store with the recovery key instead of a password
        #[arg(long)]
        recovery_key: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SlotCommand {
    /// List the keyslots: index, name, kind, key-derivation cost, when added (never a secret)
    List,
    /// Add another password as keyslot NAME: the store password, then the new one (twice on a
    /// tty; with --password-stdin: two lines). With --tpm2: a key sealed to this machine's TPM2
    /// instead of a password (the store password, then the PIN with --pin)
    Add {
        name: String,
        /// Also try it at login: a password the login hands to PAM (e.g. an autologin's disk
        /// passphrase); with --tpm2, a login that gives no password (autologin, fingerprint,
        /// smartcard) opens the store with the TPM
        #[arg(long)]
        pam: bool,
        /// Seal the slot's key to this machine's TPM2 (/dev/tpmrm0, or TPM2TOOLS_TCTI / TCTI)
        #[arg(long)]
        tpm2: bool,
        /// With --tpm2: bind the key to these PCRs of the SHA-256 bank (e.g. "7" or "0,7"): a
        /// change of their values (another OS booted, Secure Boot changed) keeps the slot shut.
        /// Default: none (bound to the TPM only)
        #[arg(long, value_name = "LIST", requires = "tpm2")]
        pcrs: Option<String>,
        /// With --tpm2: the TPM also asks a PIN (typed at unlock; a login without a password
        /// cannot give one, so --pin and --pam do not go together)
        #[arg(long, requires = "tpm2", conflicts_with = "pam")]
        pin: bool,
        #[arg(long)]
        password_stdin: bool,
        /// Open the store with the recovery key instead of a password
        #[arg(long)]
        recovery_key: bool,
    },
    /// Remove keyslot NAME (never the last one that opens the store, nor the last password or
    /// recovery key beside a TPM2 slot)
    Remove {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        /// Open the store with the recovery key instead of a password
        #[arg(long)]
        recovery_key: bool,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ScopeArg {
    Session,
    User,
}

/// Where `keyringrs import` reads from.
#[derive(Subcommand, Debug)]
pub enum ImportSource {
    /// A gnome-keyring keyring file: binary (asks the keyring password) or textual (a
    /// blank-password keyring: asks nothing)
    #[command(name = "gnome-keyring")]
    GnomeKeyring {
        /// The keyring file [default: ~/.local/share/keyrings/login.keyring]
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// Read the keyring password as one line from stdin
        #[arg(long)]
        password_stdin: bool,
        /// List what would be imported (labels and attribute names, never secrets); write nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// A libsecret (or oo7) file keyring, as Flatpak apps keep theirs: with --app-id, opened
    /// with that app's Secret portal secret from this store; else asks the file's password
    #[command(name = "libsecret-file")]
    LibsecretFile {
        /// The keyring file [default: with --app-id, ~/.var/app/ID/data/keyrings/default.keyring;
        /// else $XDG_DATA_HOME/keyrings/default.keyring or ~/.local/share/keyrings/default.keyring]
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// The Flatpak app whose keyring it is: its password is the app's Secret portal secret,
        /// kept in this store (imported with gnome-keyring's login keyring, or minted by
        /// keyringrs-secret-service); nothing is asked
        #[arg(long, value_name = "ID", conflicts_with = "password_stdin")]
        app_id: Option<String>,
        /// Read the keyring password as one line from stdin
        #[arg(long)]
        password_stdin: bool,
        /// List what would be imported (labels and attribute names, never secrets); write nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// The running Secret Service provider on the session bus (gnome-keyring, KWallet, KeePassXC,
    /// oo7...): every item of every collection, unlocking through its own prompt
    #[command(name = "secret-service")]
    SecretService {
        /// Only this collection: its label, the last element of its path, or an alias (`login`)
        #[arg(long, value_name = "NAME")]
        collection: Option<String>,
        /// List what would be imported (labels and attribute names, never secrets); write nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// python-keyring-keyutils' plaintext `user` keys `SERVICE:USERNAME` in @s and @u
    Keyutils {
        /// After a successful import, invalidate the imported plaintext keys
        #[arg(long)]
        remove: bool,
        /// List what would be imported (never secrets); write and remove nothing
        #[arg(long)]
        dry_run: bool,
    },
}
