//! [`Tcti`]: which TPM to talk to, as tpm2-tools spells it.

use std::fmt;
use std::str::FromStr;

use tss_esapi::tcti_ldr::TctiNameConf;

use crate::Error;

/// The TCTI when neither TPM2TOOLS_TCTI nor TCTI says: the kernel's resource manager.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// Longest TCTI string accepted.
const MAX_TCTI_LEN: usize = 512;

/// The TCTI kinds tss-esapi can open.
const KINDS: [&str; 4] = ["device", "swtpm", "mssim", "tabrmd"];

/// A validated TCTI configuration string ("device:/dev/tpmrm0", "swtpm:host=..,port=..",
/// "mssim:...", "tabrmd:...").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcti(String);

impl Tcti {
    /// TPM2TOOLS_TCTI, then TCTI, else "device:/dev/tpmrm0" (as tpm2-tools reads them; an
    /// empty variable counts as unset).
    pub fn from_env() -> Result<Tcti, Error> {
        for var in ["TPM2TOOLS_TCTI", "TCTI"] {
            match std::env::var_os(var) {
                Some(v) if !v.is_empty() => {
                    let s = v
                        .into_string()
                        .map_err(|_| Error::InvalidTcti(format!("{var} is not valid UTF-8")))?;
                    return Tcti::parse(&s);
                }
                _ => {}
            }
        }
        Tcti::parse(DEFAULT_TCTI)
    }

    /// Validate `s`: a known kind, no NUL or control characters, bounded length, and a form
    /// tss-esapi's TCTI loader parses (host and port for swtpm/mssim).
    pub fn parse(s: &str) -> Result<Tcti, Error> {
        if s.is_empty() {
            return Err(Error::InvalidTcti("empty".into()));
        }
        if s.len() > MAX_TCTI_LEN {
            return Err(Error::InvalidTcti(format!(
                "{} bytes, longer than {MAX_TCTI_LEN}",
                s.len()
            )));
        }
        if s.chars().any(char::is_control) {
            return Err(Error::InvalidTcti(
                "contains NUL or control characters".into(),
            ));
        }
        let kind = s.split(':').next().unwrap_or_default();
        if !KINDS.contains(&kind) {
            return Err(Error::InvalidTcti(format!(
                "{s:?}: unknown kind {kind:?} (device, swtpm, mssim or tabrmd)"
            )));
        }
        if kind == "device" {
            if let Some(path) = s.strip_prefix("device:") {
                if !path.starts_with('/') {
                    return Err(Error::InvalidTcti(format!(
                        "{s:?}: the device is not an absolute path"
                    )));
                }
            }
        }
        let conf =
            TctiNameConf::from_str(s).map_err(|e| Error::InvalidTcti(format!("{s:?}: {e}")))?;
        // What the loader would be given must be representable too (a valid host name).
        std::ffi::CString::try_from(conf).map_err(|e| Error::InvalidTcti(format!("{s:?}: {e}")))?;
        Ok(Tcti(s.to_owned()))
    }

    /// The string as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// tss-esapi's form of it (validated by [`Tcti::parse`]).
    pub(crate) fn name_conf(&self) -> Result<TctiNameConf, Error> {
        TctiNameConf::from_str(&self.0)
            .map_err(|e| Error::InvalidTcti(format!("{:?}: {e}", self.0)))
    }

    /// The device node, for a device TCTI ("device" alone is tss-esapi's default, /dev/tpm0).
    pub(crate) fn device(&self) -> Option<&str> {
        match self.0.as_str() {
            "device" => Some("/dev/tpm0"),
            s => s.strip_prefix("device:"),
        }
    }
}

impl fmt::Display for Tcti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_kinds() {
        for s in [
            "device:/dev/tpmrm0",
            "device",
            "swtpm:host=127.0.0.1,port=2321",
            "swtpm:port=2321",
            "mssim:host=localhost,port=2321",
            "tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=system",
            "tabrmd",
        ] {
            let t = Tcti::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(t.as_str(), s);
            assert_eq!(t.to_string(), s);
        }
    }

    #[test]
    fn refuses_bad_forms() {
        for s in [
            "",
            "libtpms",
            "devicex:/dev/tpm0",
            "device:dev/tpm0",
            "device:/dev/tpm\0rm0",
            "swtpm:host=127.0.0.1,port=2321\n",
            "swtpm:host=127.0.0.1,port=99999",
            "swtpm:host=bad_host!,port=1",
            "mssim:port=abc",
        ] {
            assert!(
                matches!(Tcti::parse(s), Err(Error::InvalidTcti(_))),
                "{s:?} accepted"
            );
        }
        let long = format!("device:/{}", "a".repeat(600));
        assert!(matches!(Tcti::parse(&long), Err(Error::InvalidTcti(_))));
    }

    #[test]
    fn from_env_order() {
        // The only test of this binary that touches the environment.
        std::env::remove_var("TPM2TOOLS_TCTI");
        std::env::remove_var("TCTI");
        assert_eq!(Tcti::from_env().unwrap().as_str(), DEFAULT_TCTI);
        std::env::set_var("TCTI", "swtpm:host=127.0.0.1,port=2321");
        assert_eq!(
            Tcti::from_env().unwrap().as_str(),
            "swtpm:host=127.0.0.1,port=2321"
        );
        std::env::set_var("TPM2TOOLS_TCTI", "mssim:port=2321");
        assert_eq!(Tcti::from_env().unwrap().as_str(), "mssim:port=2321");
        std::env::set_var("TPM2TOOLS_TCTI", "");
        assert_eq!(
            Tcti::from_env().unwrap().as_str(),
            "swtpm:host=127.0.0.1,port=2321"
        );
        std::env::set_var("TPM2TOOLS_TCTI", "bogus");
        assert!(matches!(Tcti::from_env(), Err(Error::InvalidTcti(_))));
        std::env::remove_var("TPM2TOOLS_TCTI");
        std::env::remove_var("TCTI");
    }

    #[test]
    fn device_path() {
        assert_eq!(
            Tcti::parse("device:/dev/tpmrm0").unwrap().device(),
            Some("/dev/tpmrm0")
        );
        assert_eq!(Tcti::parse("swtpm:port=1").unwrap().device(), None);
    }
}
