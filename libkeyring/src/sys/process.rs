//! Which process is which, across time: a pid with its start time (field 22 of
//! `/proc/PID/stat`, in clock ticks since boot) and its pid namespace names one process for the
//! life of the machine, as polkit names its subjects; a pid alone may be reused.

/// One process, as another process can later check it is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    pub pid: i32,
    /// Field 22 of `/proc/PID/stat`.
    pub start: u64,
    /// The inode of `/proc/PID/ns/pid`: the pid is meaningful only inside this namespace.
    pub pid_ns: u64,
}

/// What `/proc/PID/stat` says: (state, start time). The command name (field 2) may hold spaces
/// and parentheses, so the fields are counted after its last `)`.
fn stat(pid: &str) -> Option<(char, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(text: &str) -> Option<(char, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3) come fields 4..: the start time is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn pid_ns(pid: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|m| m.ino())
}

/// The calling process.
pub fn current() -> Option<Process> {
    let (_, start) = stat("self")?;
    Some(Process {
        // SAFETY: getpid has no preconditions and cannot fail.
        pid: unsafe { libc::getpid() },
        start,
        pid_ns: pid_ns("self")?,
    })
}

/// Process `pid` as it is now (None: no such process, or its `/proc` entry is hidden).
pub fn of(pid: i32) -> Option<Process> {
    let (state, start) = stat(&pid.to_string())?;
    if matches!(state, 'Z' | 'X') {
        return None;
    }
    Some(Process {
        pid,
        start,
        pid_ns: pid_ns("self")?,
    })
}

/// The leader of process `pid`'s session (field 6 of `/proc/PID/stat`, what `getsid` answers),
/// as it is now: for a process of a login without logind's help, the login's own process.
pub fn session_leader(pid: &str) -> Option<Process> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    of(session_field(&text)?)
}

/// Field 6 (session) of a `/proc/PID/stat` line.
fn session_field(stat: &str) -> Option<i32> {
    stat[stat.rfind(')')? + 1..]
        .split_ascii_whitespace()
        .nth(3)?
        .parse()
        .ok()
        .filter(|&s| s > 0)
}

impl Process {
    /// Some(false) when this process has certainly ended (no such pid, a zombie, or the pid now
    /// names a process started at another time); Some(true) when it runs; None when this caller
    /// cannot tell: another pid namespace than the one it was recorded in.
    ///
    /// `kill(pid, 0)` answers for any pid (EPERM still means it exists), so this works for a
    /// process of another uid; where `/proc/PID/stat` is hidden from the caller (`hidepid`),
    /// a zombie or a reused pid counts as running, the cautious side.
    pub fn running(&self) -> Option<bool> {
        if pid_ns("self")? != self.pid_ns {
            return None;
        }
        if self.pid <= 0 {
            return Some(false);
        }
        if !self.exists() {
            return Some(false);
        }
        match stat(&self.pid.to_string()) {
            Some((state, start)) => Some(start == self.start && !matches!(state, 'Z' | 'X')),
            // Hidden, or it ended between the two looks.
            None => Some(self.exists()),
        }
    }

    fn exists(&self) -> bool {
        // SAFETY: signal 0 only checks that the pid exists and may be signalled; nothing is sent.
        let rc = unsafe { libc::kill(self.pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_field_is_read_after_the_command_name() {
        assert_eq!(
            session_field("42 (a) b (c) S 1 42 77 0 -1 4194560"),
            Some(77)
        );
        assert_eq!(session_field("42 (x) S 1 42 0 0"), None, "no session");
        assert_eq!(session_field("42 (x"), None);
    }

    #[test]
    fn this_process_runs_and_a_reused_pid_or_an_ended_one_does_not() {
        let me = current().expect("own /proc entry");
        assert_eq!(me.running(), Some(true));
        let reused = Process {
            start: me.start + 1,
            ..me
        };
        assert_eq!(reused.running(), Some(false), "another start time");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let zombie = (0..500).find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(2));
            let (state, start) = stat(&pid.to_string())?;
            (state == 'Z').then_some(start)
        });
        let ended = Process {
            pid,
            start: zombie.expect("the child became a zombie"),
            pid_ns: me.pid_ns,
        };
        assert_eq!(ended.running(), Some(false), "a zombie");
        child.wait().unwrap();
        assert_eq!(ended.running(), Some(false), "reaped");
        let elsewhere = Process {
            pid_ns: me.pid_ns + 1,
            ..me
        };
        assert_eq!(elsewhere.running(), None, "another pid namespace");
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let fields: Vec<String> = (4..=52).map(|n| n.to_string()).collect();
        let line = format!("77 (a) Z (b) S {}\n", fields.join(" "));
        assert_eq!(parse_stat(&line), Some(('S', 22)));
        assert_eq!(parse_stat("77 (sh) Z 1 2"), None, "cut short");
        assert_eq!(parse_stat("no parenthesis"), None);
    }
}
