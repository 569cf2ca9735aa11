//! The README's promises, run as written: the quickstart block verbatim, and the
//! first-screen `ward serve` on the bundled example config (then SIGTERM, exit 0).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::bin::Serve;
use common::wait_until;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md")
}

/// The bash block between the quickstart markers.
fn quickstart_block(readme: &str) -> String {
    let start = readme
        .find("<!-- quickstart:begin -->")
        .expect("quickstart begin marker");
    let end = readme
        .find("<!-- quickstart:end -->")
        .expect("quickstart end marker");
    let block = &readme[start..end];
    let body = block.split("```bash\n").nth(1).expect("a bash block");
    body.split("```").next().expect("closed block").to_string()
}

#[test]
fn quickstart_runs_verbatim() {
    let script = quickstart_block(&readme());
    let out = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(&script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "quickstart failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // The allowed check, as the README shows it.
    let shown = readme();
    let expected = shown
        .split("The first check prints:\n\n```text\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("expected output block");
    assert!(
        stdout.contains(expected),
        "README's output block is not what ward prints:\n{stdout}"
    );
    // The denied check.
    assert!(
        stdout.contains("route: admin\nstatus: 401\nreason: missing_credential"),
        "{stdout}"
    );
    assert!(stdout.contains("denied as expected"), "{stdout}");
    // No token in the output.
    assert!(
        !stdout.contains("eyJ"),
        "a token leaked into ward check output"
    );
}

#[test]
fn first_screen_serve_starts_on_the_example_and_stops_on_sigterm() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ward = Serve::start(root, Path::new("examples/quickstart.yaml"), &[]);
    let readyz = format!("http://{}/readyz", ward.admin_addr);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(wait_until(
        "/readyz answers 200",
        Duration::from_secs(10),
        async || reqwest::get(&readyz).await.is_ok_and(|r| r.status() == 200),
    ));
    let status = ward.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn the_cases_excerpt_is_verbatim_from_a_tested_file() {
    let readme = readme();
    let start = readme
        .find("<!-- cases-excerpt:begin -->")
        .expect("begin marker");
    let end = readme
        .find("<!-- cases-excerpt:end -->")
        .expect("end marker");
    let block = readme[start..end]
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a yaml block");
    let file = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies/keycloak.cases.yaml"),
    )
    .expect("cases file");
    let body = block.strip_prefix("cases:\n").expect("starts with cases:");
    assert!(file.contains("cases:\n"), "the file has a cases list");
    assert!(
        file.contains(body),
        "README excerpt is not in keycloak.cases.yaml:\n{body}"
    );
}

/// The YAML block after `marker` in the README.
fn yaml_after(readme: &str, marker: &str) -> String {
    let at = readme
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in the README"));
    readme[at..]
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a yaml block after the marker")
        .to_string()
}

#[test]
fn the_purpose_token_examples_load_as_written() {
    let readme = readme();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("signing")).expect("mkdir");
    let key = testkeys::Key::generate(jsonwebtoken::Algorithm::ES256);
    std::fs::write(dir.path().join("signing/current.pem"), key.key_file()).expect("key file");
    let env = std::collections::HashMap::<String, String>::new();
    for marker in ["<!-- purpose-gateway -->", "<!-- purpose-service -->"] {
        let yaml = yaml_after(&readme, marker);
        if let Err(e) = ward::config::load_str(&yaml, dir.path(), &env) {
            panic!("the README's {marker} block does not load:\n{e}\n{yaml}");
        }
    }
}

/// The bash block between the DPoP markers.
fn dpop_block(readme: &str) -> String {
    let start = readme
        .find("<!-- dpop:begin -->")
        .expect("dpop begin marker");
    let end = readme.find("<!-- dpop:end -->").expect("dpop end marker");
    let body = readme[start..end]
        .split("```bash\n")
        .nth(1)
        .expect("a bash block");
    body.split("```").next().expect("closed block").to_string()
}

#[test]
fn the_dpop_example_runs_verbatim() {
    let out = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(dpop_block(&readme()))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("decision: allow\nroute: admin\nstatus: 200"),
        "{stdout}"
    );
    assert!(
        stdout.contains("status: 401\nreason: invalid_token\ndetail: DPoP proof required"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"www_authenticate: DPoP algs=""#),
        "{stdout}"
    );
    assert!(stdout.contains("denied as expected"), "{stdout}");
    assert!(
        !stdout.contains("eyJ"),
        "a token leaked into ward check output"
    );
}

/// The bash block after `marker` in the README.
fn bash_after(readme: &str, marker: &str) -> String {
    let at = readme
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in the README"));
    readme[at..]
        .split("```bash\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a bash block after the marker")
        .to_string()
}

/// The ES512 and `--encrypt-to` examples of "Command line", run as written (with
/// openssl making the keys), then the nested token they print checked by `ward check`
/// against a provider that trusts the ES512 key and decrypts with the RSA key.
#[test]
fn the_es512_and_encryption_examples_run_as_written() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!in_ci, "CI=true and openssl is not installed");
        eprintln!("SKIPPED: the README's key examples need openssl");
        return;
    }
    let readme = readme();
    let es512 = bash_after(&readme, "For example, ES512:");
    let encrypt = bash_after(&readme, "To try a provider's `decryption`");
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = Path::new(env!("CARGO_BIN_EXE_ward"))
        .parent()
        .expect("the binary's directory")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(format!("{es512}\n{encrypt}"))
        .current_dir(dir.path())
        .env("PATH", &path)
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the examples failed:\n{stdout}\n{stderr}"
    );
    // The first block prints a signed ES512 token, the second a nested one.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0].split('.').count(), 3, "{stdout}");
    assert_eq!(lines[1].split('.').count(), 5, "{stdout}");
    let config = "providers:\n  - name: dev\n    jwt:\n      issuer: https://dev.ward.local\n      audiences: [api]\n      jwks_file: jwks.json\n      algorithms: [ES512]\n      decryption: { keys: [ { kid: enc, alg: RSA-OAEP-256, key_file: enc.pem } ] }\nroutes:\n  - name: all\n    match: { path_prefix: / }\n    providers: [dev]\n";
    std::fs::write(dir.path().join("ward.yaml"), config).expect("config");
    for token in &lines {
        let out = Command::new(env!("CARGO_BIN_EXE_ward"))
            .args([
                "check",
                "--config",
                "ward.yaml",
                "--method",
                "GET",
                "--path",
                "/x",
                "-H",
            ])
            .arg(format!("authorization: Bearer {token}"))
            .current_dir(dir.path())
            .output()
            .expect("ward check");
        let shown = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{shown}");
        assert!(shown.contains("x-auth-subject: alice"), "{shown}");
    }
}

/// Sets every time and the hash of a `/status` document to one value: what changes from
/// run to run (and with any edit of the example config's files).
fn timeless(mut doc: serde_json::Value) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    let clock = ["generated_at", "loaded_at", "held_since", "age_seconds"];
                    if (clock.contains(&k.as_str()) && !v.is_null()) || k == "hash" {
                        *v = serde_json::Value::from("…");
                    } else {
                        walk(v);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut doc);
    doc
}

#[test]
fn the_status_example_is_what_ward_answers() {
    let readme = readme();
    let at = readme.find("<!-- status-json -->").expect("status marker");
    let block = readme[at..]
        .split("```json\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a json block after the marker");
    let shown: serde_json::Value = serde_json::from_str(block).expect("the README's JSON");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ward = Serve::start(root, Path::new("examples/quickstart.yaml"), &[]);
    let url = format!("http://{}/status", ward.admin_addr);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let answered: serde_json::Value = rt.block_on(async {
        reqwest::get(&url)
            .await
            .expect("GET /status")
            .json()
            .await
            .expect("JSON")
    });
    assert!(ward.terminate().success());
    assert_eq!(
        timeless(shown),
        timeless(answered.clone()),
        "the README's /status example is not what ward answers:\n{answered:#}"
    );
}

#[test]
fn the_telemetry_example_loads_as_written() {
    let yaml = yaml_after(&readme(), "<!-- telemetry-example -->");
    let env = std::collections::HashMap::<String, String>::new();
    let config = ward::config::load_str(&yaml, Path::new("."), &env)
        .unwrap_or_else(|e| panic!("the README's telemetry block does not load:\n{e}\n{yaml}"));
    let telemetry = config.telemetry().expect("a telemetry section");
    assert_eq!(telemetry.sample_ratio, 0.01);
    assert_eq!(telemetry.service_name, "ward", "the default");
}
