//! `keyringrs-gen OUTDIR`: writes the man pages and shell completions of `keyringrs`, generated
//! from the CLI's own clap definition (cli/src/args.rs), so they cannot drift from `--help`:
//!
//! ```text
//! OUTDIR/man/keyringrs.1, OUTDIR/man/keyringrs-<command>.1 (one per subcommand, nested ones too)
//! OUTDIR/completions/keyringrs.bash, OUTDIR/completions/_keyringrs, OUTDIR/completions/keyringrs.fish
//! ```
//!
//! Run by `make man completions deb` (packaging/package.mk). The hand-written pages
//! (pam_keyringrs.8, keyringrs-secret-service.1) live in packaging/man/.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

#[allow(dead_code)] // only the definitions are used here; main.rs of the CLI reads the fields
#[path = "../../cli/src/args.rs"]
mod args;

/// Where the CLI's behaviour is documented beyond its options (a SEE ALSO section).
const SEE_ALSO: &[(&str, &str)] = &[
    ("keyringrs-secret-service", "1"),
    ("pam_keyringrs", "8"),
    ("pam-auth-update", "8"),
    ("keyctl", "1"),
];

fn main() -> ExitCode {
    let mut argv = std::env::args_os().skip(1);
    let (Some(out), None) = (argv.next(), argv.next()) else {
        eprintln!("usage: keyringrs-gen OUTDIR");
        return ExitCode::from(2);
    };
    match generate(Path::new(&out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyringrs-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(out: &Path) -> io::Result<()> {
    let mut cmd = args::Cli::command();
    cmd.build();

    // `keyringrs help [COMMAND]` is only --help by another name: no page of its own.
    let mut man_cmd = args::Cli::command().disable_help_subcommand(true);
    man_cmd.build();
    let man = out.join("man");
    fs::create_dir_all(&man)?;
    man_pages(&man_cmd, &man)?;

    let completions = out.join("completions");
    fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "keyringrs", &completions)?;
    }
    Ok(())
}

/// The page of `cmd` (named `keyringrs` or `keyringrs-<sub>[-<subsub>]`) and of every subcommand.
fn man_pages(cmd: &clap::Command, dir: &Path) -> io::Result<()> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_owned();
    let path: PathBuf = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .section("1")
        .manual("keyringrs manual")
        .source(format!("keyringrs {}", env!("CARGO_PKG_VERSION")));
    man.render(&mut page)?;
    page.extend_from_slice(see_also(&name).as_bytes());
    fs::write(&path, page)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, dir)?;
    }
    Ok(())
}

/// A SEE ALSO section in roff: the top page points to the other pages, a subcommand's to the top.
fn see_also(name: &str) -> String {
    let mut refs: Vec<(&str, &str)> = Vec::new();
    if name != "keyringrs" {
        refs.push(("keyringrs", "1"));
    }
    refs.extend_from_slice(SEE_ALSO);
    let list = refs
        .iter()
        .map(|(page, section)| format!("\\fB{}\\fR({section})", page.replace('-', "\\-")))
        .collect::<Vec<_>>()
        .join(",\n");
    format!(".SH \"SEE ALSO\"\n{list}\n")
}
