//! `ward token`: development tokens, their JWKS, and API-key hashes.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use ward::devtoken::{self, SigningKey};

use crate::TokenCmd;

pub fn token(cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Sign {
            key,
            alg,
            iss,
            aud,
            sub,
            claims,
            ttl,
            cnf_key,
            cnf_alg,
            cnf_cert,
            encrypt_to,
            encrypt_alg,
            encrypt_enc,
        } => {
            let key = SigningKey::from_file(&key, &alg)?;
            let ttl = ward::config::parse_duration(&ttl).map_err(anyhow::Error::msg)?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut body = serde_json::json!({
                "iss": iss,
                "sub": sub,
                "aud": if aud.len() == 1 { serde_json::json!(aud[0]) } else { serde_json::json!(aud) },
                "iat": now,
                "exp": now + ttl.as_secs(),
            });
            for c in &claims {
                let (name, json) = c
                    .split_once('=')
                    .with_context(|| format!("claim `{c}` is not `name=<json>`"))?;
                let value: serde_json::Value = serde_json::from_str(json).with_context(|| {
                    format!("claim `{name}`: the value is not JSON (quote strings: '\"x\"')")
                })?;
                body[name] = value;
            }
            if let Some(k) = cnf_key {
                let k = SigningKey::from_file(&k, &cnf_alg)?;
                body["cnf"] = serde_json::json!({ "jkt": k.thumbprint() });
            }
            if let Some(c) = cnf_cert {
                let pem = std::fs::read_to_string(&c)
                    .with_context(|| format!("reading {}", c.display()))?;
                body["cnf"] =
                    serde_json::json!({ "x5t#S256": devtoken::certificate_thumbprint(&pem)? });
            }
            let token = key.sign(&body)?;
            let token = match &encrypt_to {
                None => token,
                Some(path) => {
                    let recipient = std::fs::read(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    devtoken::encrypt_to(
                        &token,
                        &recipient,
                        encrypt_alg.as_deref(),
                        encrypt_enc.as_deref(),
                    )?
                }
            };
            println!("{token}");
            Ok(())
        }
        TokenCmd::Jwks { key, alg } => {
            let key = SigningKey::from_file(&key, &alg)?;
            println!("{}", serde_json::to_string_pretty(&key.jwks())?);
            Ok(())
        }
        TokenCmd::Dpop {
            key,
            alg,
            method,
            url,
            token,
        } => {
            let key = SigningKey::from_file(&key, &alg)?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            println!("{}", key.dpop_proof(&method, &url, token.as_deref(), now)?);
            Ok(())
        }
        TokenCmd::HashKey => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the key from stdin")?;
            let key = line.strip_suffix('\n').unwrap_or(&line);
            let key = key.strip_suffix('\r').unwrap_or(key);
            if key.is_empty() {
                bail!("no key on stdin");
            }
            println!("{}", devtoken::api_key_sha256(key)?);
            Ok(())
        }
    }
}
