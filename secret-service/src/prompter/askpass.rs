//! The askpass program (`$KEYRINGRS_ASKPASS`, e.g. /usr/bin/ssh-askpass): the last resort. It
//! gets the prompt text as its argument and prints the password; a non-zero exit is a cancel.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{Cancel, Dialog, Reply, Texts};

/// The longest password read from the program.
const MAX: u64 = 4096;

#[derive(Debug)]
pub(crate) struct Askpass {
    program: PathBuf,
    texts: Texts,
    env: Vec<(String, String)>,
    cancel: Arc<Cancel>,
}

impl Askpass {
    /// The program named by `$KEYRINGRS_ASKPASS`, run with the caller's display variables.
    pub(crate) fn from_env(
        texts: &Texts,
        env: Vec<(String, String)>,
        cancel: Arc<Cancel>,
    ) -> Result<Askpass, String> {
        let program = std::env::var_os("KEYRINGRS_ASKPASS")
            .filter(|p| !p.is_empty())
            .ok_or("no $KEYRINGRS_ASKPASS is set")?;
        Ok(Askpass {
            program: program.into(),
            texts: texts.clone(),
            env,
            cancel,
        })
    }
}

impl Dialog for Askpass {
    fn name(&self) -> String {
        format!("the askpass program {}", self.program.display())
    }

    fn ask(&mut self, warning: Option<&str>) -> Result<Reply, String> {
        let text = match warning {
            Some(w) => format!("{w}\n{}", self.texts.prompt_line()),
            None => self.texts.prompt_line(),
        };
        let mut cmd = Command::new(&self.program);
        cmd.arg(text)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        self.cancel.watch_child(child.id());
        // Read into one buffer allocated up front, so no copy of the password is left behind by
        // a reallocation; wiped on drop.
        let mut pw = Zeroizing::new(Vec::with_capacity(MAX as usize + 1));
        let read = child
            .stdout
            .take()
            .map(|out| out.take(MAX).read_to_end(&mut pw));
        self.cancel.unwatch_child();
        let status = child
            .wait()
            .map_err(|e| format!("waiting for {}: {e}", self.program.display()))?;
        if !status.success() {
            return Ok(Reply::Cancelled);
        }
        match read {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("reading from {}: {e}", self.program.display())),
            None => return Err("no pipe".into()),
        }
        if let Some(end) = pw.iter().position(|&b| b == b'\n') {
            pw.truncate(end);
        }
        Ok(Reply::Secret(pw))
    }
}
