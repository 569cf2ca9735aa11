//! `ward check` (one request, decided offline and explained, a minted token shown as its
//! claims) and `ward test` (a table of requests with expected outcomes).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use ward::config::{self, ProcessEnv};
use ward::decision::Report;
use ward::{CheckInput, Ward};

use crate::CheckArgs;

pub fn check(args: CheckArgs) -> ExitCode {
    match run_check(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ward: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_check(args: CheckArgs) -> anyhow::Result<bool> {
    let path = args.config.path();
    let config = config::load_file(&path, &ProcessEnv)
        .map_err(|e| anyhow::anyhow!("invalid config:\n{}", crate::render(&path, &e)))?;
    let mut headers = Vec::new();
    for (i, h) in args.headers.iter().enumerate() {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("-H argument {} is not `name: value`", i + 1))?;
        let value = value.strip_prefix(' ').unwrap_or(value);
        headers.push((name.trim().to_ascii_lowercase(), value.to_string()));
    }
    let mut context = Vec::new();
    for c in &args.context {
        let (k, v) = c
            .split_once('=')
            .with_context(|| format!("context `{c}` is not `key=value`"))?;
        context.push((k.to_string(), v.to_string()));
    }
    let mut input =
        CheckInput::from_pairs(&args.method, &args.host, &args.path, &headers, &context);
    input.source_principal = args.source_principal.as_deref().unwrap_or("");
    input.source_certificate = args.source_certificate.as_deref().unwrap_or("");
    input.stream_id = "ward-check";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let (d, config) = rt.block_on(async {
        let ward = Ward::new(config)?;
        anyhow::Ok((ward.check(&input).await, ward.config()))
    })?;
    // A token ward minted is shown as its claims: the token itself would be a live
    // credential for the upstream.
    let minted = ward::policytest::read_minted(&config, &d)?;
    let mut report = Report::new(&d);
    if let Some(m) = &minted {
        report = report.with_minted(&m.header, &m.claims);
    }
    let mut out = crate::stdout();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report.to_json())?)?;
    } else {
        write!(out, "{}", report.to_text())?;
    }
    out.flush()?;
    Ok(d.is_allow())
}

/// `ward test`: runs `cases` against `config`, prints the report; exit 0 when every case
/// passes, 1 when one fails, 2 when either file is unusable.
pub fn test(config: &Path, cases: &Path, trusted: &[(String, PathBuf)]) -> ExitCode {
    let mut out = crate::stdout();
    match ward::policytest::run_trusting(config, cases, &ProcessEnv, trusted, &mut out) {
        Ok(s) if s.failed == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
