//! [`Policy`]: which PCRs (SHA-256 bank) and whether a PIN the sealed object is bound to.

use crate::Error;

/// Number of PCRs a policy may select (PCR 0..=23 of a PC client TPM).
pub const PCR_COUNT: u32 = 24;

/// What unsealing needs: the PCRs of the SHA-256 bank to hold their values at seal time, and a
/// PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Bit i = PCR i of the SHA-256 bank, i < 24.
    pub pcrs: u32,
    /// Whether the PIN is part of the policy (PolicyAuthValue).
    pub pin: bool,
}

impl Policy {
    /// A comma-separated PCR list ("7", "0,7,11", "" = none; blanks around numbers are
    /// ignored, repeats are fine) as a bit mask; a PCR above 23 is refused.
    pub fn parse_pcrs(list: &str) -> Result<u32, Error> {
        let mut mask = 0u32;
        if list.trim().is_empty() {
            return Ok(0);
        }
        for item in list.split(',') {
            let item = item.trim();
            let n: u32 = item
                .parse()
                .ok()
                .filter(|_| item.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| Error::InvalidInput(format!("{item:?} is not a PCR number")))?;
            if n >= PCR_COUNT {
                return Err(Error::InvalidInput(format!(
                    "PCR {n} out of range (0..=23)"
                )));
            }
            mask |= 1 << n;
        }
        Ok(mask)
    }

    /// The selected PCRs, ascending.
    pub fn pcr_list(&self) -> Vec<u8> {
        (0..PCR_COUNT as u8)
            .filter(|i| self.pcrs & (1 << i) != 0)
            .collect()
    }

    /// Refuse PCR bits at or above 24.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.pcrs >> PCR_COUNT != 0 {
            return Err(Error::InvalidInput(format!(
                "PCR mask {:#x} selects PCRs above 23",
                self.pcrs
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_pcrs() {
        assert_eq!(Policy::parse_pcrs("").unwrap(), 0);
        assert_eq!(Policy::parse_pcrs("7").unwrap(), 1 << 7);
        assert_eq!(Policy::parse_pcrs("0,7,11").unwrap(), 1 | 1 << 7 | 1 << 11);
        assert_eq!(Policy::parse_pcrs("7,7, 7").unwrap(), 1 << 7);
        assert_eq!(Policy::parse_pcrs("23").unwrap(), 1 << 23);
        for bad in [
            "24",
            "99",
            "-1",
            "+1",
            "a",
            "7,",
            ",7",
            "1,,2",
            "0x7",
            "4294967296",
        ] {
            assert!(
                matches!(Policy::parse_pcrs(bad), Err(Error::InvalidInput(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn pcr_list_and_check() {
        let p = Policy {
            pcrs: Policy::parse_pcrs("11,0,7").unwrap(),
            pin: false,
        };
        assert_eq!(p.pcr_list(), vec![0, 7, 11]);
        assert!(p.check().is_ok());
        assert!(Policy::default().pcr_list().is_empty());
        assert!(Policy {
            pcrs: 1 << 24,
            pin: false
        }
        .check()
        .is_err());
    }
}
