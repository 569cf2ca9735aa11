//! The README's promises, run as written: the quickstart block verbatim, and the
//! first-screen `ward serve` on the bundled example config (then SIGTERM, exit 0).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args([
            "serve",
            "--config",
            "examples/quickstart.yaml",
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ward serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let admin = loop {
        assert!(Instant::now() < deadline, "ward did not log its addresses");
        let line = lines.next().expect("ward exited early").expect("read log");
        let v: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if v["message"] == "ward serving" {
            break v["admin"].as_str().expect("admin addr").to_string();
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ready = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = reqwest::get(format!("http://{admin}/readyz")).await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(ready, "/readyz never became 200");
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "ward did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn the_cases_excerpt_is_verbatim_from_a_tested_file() {
    let readme = readme();
    let start = readme.find("<!-- cases-excerpt:begin -->").expect("begin marker");
    let end = readme.find("<!-- cases-excerpt:end -->").expect("end marker");
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
    assert!(file.contains(body), "README excerpt is not in keycloak.cases.yaml:\n{body}");
}
