//! `ward status --admin-addr ADDR`: what a running ward holds, read from its admin
//! listener's `/status` and printed for a terminal (or, with `--output json`, as the
//! JSON document itself).

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};

use crate::StatusOutput;

/// The `/status` URL for `--admin-addr`: `HOST:PORT` or a base URL.
fn url(addr: &str) -> String {
    let base = if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    format!("{}/status", base.trim_end_matches('/'))
}

/// Why a request failed, without reqwest's rendering of the URL.
fn cause(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

pub(crate) fn status(admin_addr: &str, output: StatusOutput, timeout: &str) -> anyhow::Result<()> {
    let timeout: Duration =
        ward::config::parse_duration(timeout).map_err(|e| anyhow!("--timeout {timeout:?}: {e}"))?;
    let url = url(admin_addr);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    let (code, body) = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow!("HTTP client: {}", cause(&e)))?;
        let resp = client
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot reach ward's admin listener at {url}: {} \
                     (is `ward serve` running with this --admin-addr?)",
                    cause(&e)
                )
            })?;
        let code = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| anyhow!("{url}: reading the answer: {}", cause(&e)))?;
        Ok::<_, anyhow::Error>((code, body))
    })?;
    if code != reqwest::StatusCode::OK {
        let first: String = body
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        bail!("{url} answered {code}: {first}");
    }
    let doc: ward::status::Status = serde_json::from_str(&body)
        .map_err(|e| anyhow!("{url} did not answer a ward status document: {e}"))?;
    let mut out = crate::stdout();
    match output {
        StatusOutput::Json => {
            writeln!(out, "{}", body.trim_end())?;
        }
        StatusOutput::Text => {
            if doc.schema != ward::status::SCHEMA {
                bail!(
                    "{url} answered status schema {}, which this ward ({}) does not read \
                     (schema {}): use --output json",
                    doc.schema,
                    env!("CARGO_PKG_VERSION"),
                    ward::status::SCHEMA
                );
            }
            write!(out, "{}", doc.text())?;
        }
    }
    out.flush()?;
    Ok(())
}
