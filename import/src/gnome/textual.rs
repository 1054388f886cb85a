//! gnome-keyring's textual keyring format (a GKeyFile, written for a blank password).

use std::collections::BTreeMap;
use std::path::Path;

use zeroize::Zeroizing;

use super::{Format, Item, Keyring, Why, MAX_ATTRIBUTES, MAX_FILE_LEN, MAX_ITEMS, MAX_STRING_LEN};
use libkeyring::{Error, Result};

/// GKeyFile string unescaping: `\s \n \t \r \\`; anything else after `\` is refused.
fn unescape(v: &[u8], what: &str) -> std::result::Result<String, Why> {
    let mut out = Vec::with_capacity(v.len());
    let mut it = v.iter();
    while let Some(&c) = it.next() {
        if c != b'\\' {
            out.push(c);
            continue;
        }
        out.push(match it.next() {
            Some(b's') => b' ',
            Some(b'n') => b'\n',
            Some(b't') => b'\t',
            Some(b'r') => b'\r',
            Some(b'\\') => b'\\',
            Some(&o) => return Err(format!("{what}: unknown escape \\{}", o as char)),
            None => return Err(format!("{what}: ends with a lone backslash")),
        });
    }
    String::from_utf8(out).map_err(|_| format!("{what} is not UTF-8"))
}

fn hex_decode(v: &[u8], what: &str) -> std::result::Result<Vec<u8>, Why> {
    if v.len() % 2 != 0 {
        return Err(format!("{what}: odd number of hex digits"));
    }
    let digit = |c: u8| -> std::result::Result<u8, Why> {
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("{what}: not a hex digit: {:?}", c as char))
    };
    v.chunks_exact(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// A group's keys and raw values (the last of a repeated key wins, as in GKeyFile).
type Group<'a> = BTreeMap<String, &'a [u8]>;

/// Parse the textual (blank-password) format.
pub fn parse_textual(path: &Path, bytes: &[u8]) -> Result<Keyring> {
    textual(bytes).map_err(|why| {
        Error::corrupt(
            path,
            format!("not a valid gnome-keyring file (no GnomeKeyring magic, and as a textual keyring: {why})"),
        )
    })
}

fn textual(bytes: &[u8]) -> std::result::Result<Keyring, Why> {
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(format!("larger than {MAX_FILE_LEN} bytes"));
    }
    let mut groups: Vec<(String, Group<'_>)> = Vec::new();
    for (no, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let no = no + 1;
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() || trimmed[0] == b'#' {
            continue;
        }
        if trimmed[0] == b'[' {
            if trimmed.last() != Some(&b']') || trimmed.len() < 3 {
                return Err(format!("line {no}: malformed group header"));
            }
            let name = std::str::from_utf8(&trimmed[1..trimmed.len() - 1])
                .map_err(|_| format!("line {no}: group name is not UTF-8"))?;
            if groups.len() > 4 * MAX_ITEMS {
                return Err(format!("more than {} groups", 4 * MAX_ITEMS));
            }
            groups.push((name.to_string(), Group::new()));
            continue;
        }
        let eq = line
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| format!("line {no}: neither a group, a key=value pair nor a comment"))?;
        let key = std::str::from_utf8(line[..eq].trim_ascii())
            .map_err(|_| format!("line {no}: key is not UTF-8"))?;
        let value = &line[eq + 1..];
        if value.len() > 2 * MAX_STRING_LEN + 2 {
            return Err(format!(
                "line {no}: value longer than {MAX_STRING_LEN} bytes"
            ));
        }
        let (_, group) = groups
            .last_mut()
            .ok_or_else(|| format!("line {no}: key before the first group"))?;
        group.insert(key.to_string(), value);
    }
    let mut keyring: Option<Keyring> = None;
    let mut items: Vec<(u32, Item)> = Vec::new();
    let mut attrs: Vec<(u32, String, Group<'_>)> = Vec::new();
    let time = |g: &Group<'_>, k: &str, what: &str| -> std::result::Result<i64, Why> {
        match g.get(k) {
            None => Ok(0),
            Some(v) => std::str::from_utf8(v.trim_ascii())
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| format!("{what}: {k} is not a number")),
        }
    };
    let string = |g: &Group<'_>, k: &str, what: &str| -> std::result::Result<String, Why> {
        match g.get(k) {
            None => Ok(String::new()),
            Some(v) => {
                let v = v.trim_ascii_start();
                if v.len() > MAX_STRING_LEN {
                    return Err(format!("{what}: {k} longer than {MAX_STRING_LEN} bytes"));
                }
                unescape(v, &format!("{what}: {k}"))
            }
        }
    };
    for (name, g) in &groups {
        if name == "keyring" {
            keyring = Some(Keyring {
                format: Format::Textual,
                name: string(g, "display-name", "[keyring]")?,
                created: time(g, "ctime", "[keyring]")?,
                modified: time(g, "mtime", "[keyring]")?,
                items: Vec::new(),
            });
        } else if let Ok(id) = name.parse::<u32>() {
            if items.len() >= MAX_ITEMS {
                return Err(format!("more than {MAX_ITEMS} items"));
            }
            if items.iter().any(|(i, _)| *i == id) {
                return Err(format!("item [{id}] twice"));
            }
            let what = format!("[{id}]");
            let secret = match (g.get("secret"), g.get("binary-secret")) {
                (Some(_), Some(_)) => return Err(format!("{what}: both secret and binary-secret")),
                (Some(v), None) => v.to_vec(),
                (None, Some(v)) => hex_decode(v.trim_ascii(), &format!("{what}: binary-secret"))?,
                (None, None) => Vec::new(),
            };
            if secret.len() > MAX_STRING_LEN {
                return Err(format!("{what}: secret longer than {MAX_STRING_LEN} bytes"));
            }
            let item_type = match g.get("item-type") {
                None => 0,
                Some(v) => std::str::from_utf8(v.trim_ascii())
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .ok_or_else(|| format!("{what}: item-type is not a number"))?,
            };
            items.push((
                id,
                Item {
                    item_type,
                    label: string(g, "display-name", &what)?,
                    attributes: BTreeMap::new(),
                    secret: Zeroizing::new(secret),
                    created: time(g, "ctime", &what)?,
                    modified: time(g, "mtime", &what)?,
                },
            ));
        } else if let Some((id, sub)) = name.split_once(':') {
            let Ok(id) = id.parse::<u32>() else {
                continue;
            };
            if sub.starts_with("attribute") {
                attrs.push((id, name.clone(), g.clone()));
            }
            // `N:aclK` groups (application access lists) are not imported.
        }
        // Other groups are ignored.
    }
    let mut keyring = keyring.ok_or_else(|| Why::from("no [keyring] group"))?;
    for (id, gname, g) in attrs {
        let what = format!("[{gname}]");
        let item = items
            .iter_mut()
            .find(|(i, _)| *i == id)
            .map(|(_, it)| it)
            .ok_or_else(|| format!("{what}: attribute of a missing item [{id}]"))?;
        if item.attributes.len() >= MAX_ATTRIBUTES {
            return Err(format!("[{id}]: more than {MAX_ATTRIBUTES} attributes"));
        }
        let name = string(&g, "name", &what)?;
        if !g.contains_key("name") {
            return Err(format!("{what}: no name"));
        }
        let ty = g.get("type").map(|v| v.trim_ascii()).unwrap_or(b"string");
        let value = match ty {
            b"string" => string(&g, "value", &what)?,
            b"uint32" => std::str::from_utf8(g.get("value").copied().unwrap_or(b"").trim_ascii())
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or_else(|| format!("{what}: uint32 value is not a number"))?
                .to_string(),
            other => {
                return Err(format!(
                    "{what}: unknown type {:?}",
                    String::from_utf8_lossy(other)
                ))
            }
        };
        if item.attributes.insert(name.clone(), value).is_some() {
            return Err(format!("[{id}]: attribute {name:?} twice"));
        }
    }
    keyring.items = items.into_iter().map(|(_, it)| it).collect();
    Ok(keyring)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gkeyfile_escapes() {
        assert_eq!(unescape(br"\sa\\b\nc\td\r", "x").unwrap(), " a\\b\nc\td\r");
        assert!(unescape(br"\q", "x").is_err());
        assert!(unescape(b"a\\", "x").is_err());
    }

    #[test]
    fn textual_sample() {
        let text = b"[keyring]\ndisplay-name=Login\nctime=0\nmtime=5\n\n[2]\nitem-type=0\ndisplay-name=\\sA\nsecret= raw\\s\nmtime=7\nctime=6\n\n[2:attribute0]\nname=port\ntype=uint32\nvalue=22\n\n[2:acl0]\ndisplay-name=x\n\n[3]\ndisplay-name=B\nbinary-secret=FF00\n";
        let k = textual(text).unwrap();
        assert_eq!(k.name, "Login");
        assert_eq!(k.items.len(), 2);
        assert_eq!(k.items[0].label, " A");
        assert_eq!(&k.items[0].secret[..], b" raw\\s");
        assert_eq!(k.items[0].attributes["port"], "22");
        assert_eq!((k.items[0].created, k.items[0].modified), (6, 7));
        assert_eq!(&k.items[1].secret[..], &[0xff, 0]);
    }
}
