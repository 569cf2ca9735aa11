//! The real `ward` binary: one-shot commands (`validate`, `check`, `token`, `test`) run to
//! completion, and `ward serve` as a child process whose JSON log lines are collected.

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `ward <args>` in `dir`, stdin closed, with none of the variables that change what it
/// does inherited (`WARD_CONFIG`, `WARD_TEST_ISSUER`, `RUST_LOG`).
pub fn ward(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ward"));
    c.current_dir(dir)
        .args(args)
        .env_remove("WARD_CONFIG")
        .env_remove("WARD_TEST_ISSUER")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

/// Runs `c` to completion.
pub fn run(mut c: Command) -> Output {
    c.output().expect("run ward")
}

/// Output bytes as text; fails the test if they are not UTF-8.
pub fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("utf-8 output")
}

/// `ward <args>` in `dir`: exit code, stdout, stderr.
pub fn ward_out(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = run(ward(dir, args));
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Like [`ward_out`], with `stdin` written to the command's standard input.
pub fn ward_stdin(dir: &Path, args: &[&str], stdin: &[u8]) -> (Option<i32>, String, String) {
    let mut c = ward(dir, args);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn ward");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("ward output");
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Whether `out` holds exactly `line` as one of its lines.
pub fn has_line(out: &str, line: &str) -> bool {
    out.lines().any(|l| l == line)
}

/// `ward serve` as a child process on ephemeral ports, logging JSON to a pipe that a
/// thread reads line by line. Killed on drop if still running.
pub struct Serve {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// The gRPC address ward logged in its `ward serving` line.
    pub grpc_addr: String,
    /// The admin address ward logged in its `ward serving` line.
    pub admin_addr: String,
    /// The plain-HTTP address it logged (`off` when the config sets none).
    pub http_addr: String,
}

impl Serve {
    /// Starts `ward serve --config <config> --grpc-addr 127.0.0.1:0 --admin-addr
    /// 127.0.0.1:0 --log-format json` in `dir` with `env` set, and waits (at most 20 s)
    /// for its `ward serving` log line.
    pub fn start(dir: &Path, config: &Path, env: &[(&str, &str)]) -> Serve {
        let config = config.to_str().expect("a UTF-8 config path");
        let mut c = ward(
            dir,
            &[
                "serve",
                "--config",
                config,
                "--grpc-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ],
        );
        c.envs(env.iter().copied()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn ward serve");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let reader = {
            let lines = lines.clone();
            let stderr = child.stderr.take().expect("stderr");
            std::thread::spawn(move || {
                for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                    lines.lock().expect("lock").push(l);
                }
            })
        };
        let mut serve = Serve {
            child,
            lines,
            reader: Some(reader),
            grpc_addr: String::new(),
            admin_addr: String::new(),
            http_addr: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let serving = serve.lines().iter().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                if v["message"] != "ward serving" {
                    return None;
                }
                let addr = |k: &str| v[k].as_str().map(str::to_string);
                Some((addr("grpc")?, addr("admin")?, addr("http")?))
            });
            if let Some((grpc, admin, http)) = serving {
                (serve.grpc_addr, serve.admin_addr, serve.http_addr) = (grpc, admin, http);
                return serve;
            }
            if let Some(status) = serve.child.try_wait().expect("wait") {
                panic!("ward exited early ({status}): {:?}", serve.lines());
            }
            assert!(
                Instant::now() < deadline,
                "ward did not log its addresses: {:?}",
                serve.lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id of `ward serve`, to read its `/proc/PID/status`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line ward wrote to stderr so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    /// Sends SIGTERM and waits (at most 15 s) for ward to exit; once this returns, every
    /// line ward logged is in [`Serve::lines`].
    pub fn terminate(&mut self) -> ExitStatus {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success(), "kill -TERM failed: {killed}");
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "ward did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().expect("log reader");
        }
        status
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
