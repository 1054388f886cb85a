//! The secret-service group's client: raw Secret Service calls as libsecret makes them, over a
//! plain session.

use super::*;

// ---------------------------------------------------------------------------------------------
// The client: raw calls as libsecret makes them, over a plain session.

pub(super) type Secret = (OwnedObjectPath, Vec<u8>, Vec<u8>, String);

#[derive(Debug)]
pub(super) struct Client {
    pub(super) conn: Connection,
    pub(super) session: OwnedObjectPath,
}

impl Client {
    pub(super) fn new(address: &str) -> Result<Client, String> {
        let conn = connect(address)?;
        let (_, session): (OwnedValue, OwnedObjectPath) = call(
            &conn,
            SERVICE,
            I_SERVICE,
            "OpenSession",
            &("plain", DValue::from("")),
        )?;
        Ok(Client { conn, session })
    }

    /// SearchItems(attributes) then GetSecrets(found, session); exactly one item, whose secret
    /// must be `expect`.
    pub(super) fn lookup(
        &self,
        attributes: &HashMap<String, String>,
        expect: &str,
    ) -> Result<(), String> {
        let (found, locked): (Vec<OwnedObjectPath>, Vec<OwnedObjectPath>) = call(
            &self.conn,
            SERVICE,
            I_SERVICE,
            "SearchItems",
            &(attributes,),
        )?;
        if found.len() != 1 {
            return Err(format!(
                "SearchItems found {} unlocked and {} locked items, not 1",
                found.len(),
                locked.len()
            ));
        }
        let secrets: HashMap<OwnedObjectPath, Secret> = call(
            &self.conn,
            SERVICE,
            I_SERVICE,
            "GetSecrets",
            &(&found, &self.session),
        )?;
        match secrets.get(&found[0]) {
            Some(s) if s.2 == expect.as_bytes() => Ok(()),
            Some(_) => Err("GetSecrets: a wrong secret".into()),
            None => Err("GetSecrets: no secret".into()),
        }
    }

    /// CreateItem(properties, secret, replace=true) in the default collection.
    pub(super) fn create(
        &self,
        attributes: HashMap<String, String>,
        label: &str,
        secret: &str,
    ) -> Result<(), String> {
        let props: HashMap<&str, DValue> = HashMap::from([
            (
                "org.freedesktop.Secret.Item.Attributes",
                DValue::from(attributes),
            ),
            ("org.freedesktop.Secret.Item.Label", DValue::from(label)),
        ]);
        let s: Secret = (
            self.session.clone(),
            Vec::new(),
            secret.as_bytes().to_vec(),
            "text/plain".into(),
        );
        let (_item, prompt): (OwnedObjectPath, OwnedObjectPath) = call(
            &self.conn,
            ALIAS,
            I_COLLECTION,
            "CreateItem",
            &(props, s, true),
        )?;
        if prompt.as_str() == "/" {
            Ok(())
        } else {
            Err(format!(
                "CreateItem asked for a prompt ({})",
                prompt.as_str()
            ))
        }
    }
}

pub(super) fn call<B, R>(
    conn: &Connection,
    path: &str,
    iface: &str,
    method: &str,
    body: &B,
) -> Result<R, String>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
    R: serde::de::DeserializeOwned + zbus::zvariant::Type,
{
    conn.call_method(Some(DEST), path, Some(iface), method, body)
        .and_then(|m| m.body().deserialize::<R>())
        .map_err(|e| format!("{method}: {e}"))
}
