//! Servers under test as child processes: ward itself and the baseline, started on free
//! loopback ports, optionally pinned to a CPU, killed (by their own pid) when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::baseline::BASELINE_ENV;
use crate::client::Client;

/// A child process we started; killed when dropped.
pub struct Server {
    pub name: &'static str,
    child: Child,
    pub grpc: SocketAddr,
    /// ward's admin port (`/readyz`, `/metrics`); none for the baseline.
    pub admin: Option<SocketAddr>,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `cmd` with its stderr to `log` (stdin and stdout closed).
    pub fn spawn(
        name: &'static str,
        mut cmd: Command,
        grpc: SocketAddr,
        admin: Option<SocketAddr>,
        log: PathBuf,
    ) -> std::io::Result<Server> {
        let logfile = std::fs::File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logfile)
            .spawn()?;
        Ok(Server {
            name,
            child,
            grpc,
            admin,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        crate::procfs::proc_status_kib(self.pid(), "VmRSS:")
    }

    /// Times a thread of the server went to sleep (see [`crate::procfs::sleeps`]).
    pub fn sleeps(&self) -> u64 {
        crate::procfs::sleeps(self.pid())
    }

    /// CPU time used by every thread of the process so far.
    pub fn cpu(&self) -> Duration {
        crate::procfs::process_cpu(&self.pid().to_string())
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits (up to `within`) until the admin port answers `/readyz` with 200; at once
    /// for a server without one.
    pub async fn wait_ready(
        &self,
        client: &reqwest::Client,
        within: Duration,
    ) -> Result<(), String> {
        let Some(admin) = self.admin else {
            return Ok(());
        };
        let deadline = Instant::now() + within;
        loop {
            if let Ok(r) = client.get(format!("http://{admin}/readyz")).send().await
                && r.status().as_u16() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} never became ready\n{}",
                    self.name,
                    self.log_tail(15)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `n` clients, each on its own HTTP/2 connection, retried for up to 20 s while the
    /// server starts.
    pub async fn connect(&self, n: usize) -> Result<Vec<Client>, String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut clients = Vec::with_capacity(n);
        while clients.len() < n {
            match Client::connect(self.grpc).await {
                Ok(c) => clients.push(c),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!(
                        "{} never accepted a connection: {e}\n{}",
                        self.name,
                        self.log_tail(10)
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        Ok(clients)
    }
}

/// A free port on 127.0.0.1 (free when asked: bound and let go).
pub fn free_port() -> Result<SocketAddr, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map_err(|e| e.to_string())
}

/// `program`, pinned to CPU 0 (with `taskset`) when `pin`.
pub fn pinned(pin: bool, program: &Path) -> Command {
    if pin {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Whether servers and load generator can each have a CPU: two or more CPUs and
/// `taskset`.
pub fn can_pin() -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus >= 2 && Command::new("taskset").arg("-V").output().is_ok()
}

/// Pins every thread of this process to `cpu`.
pub fn pin_self(cpu: usize) -> Result<(), String> {
    let st = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("taskset exited with {st}"))
    }
}

/// `ward serve` with `config`, on the given ports, logging JSON at `rust_log`
/// (pinned to CPU 0 when `pin`). More arguments and environment may be added.
pub fn ward_command(
    pin: bool,
    bin: &Path,
    config: &Path,
    grpc: SocketAddr,
    admin: SocketAddr,
    rust_log: &str,
) -> Command {
    let mut c = pinned(pin, bin);
    c.arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--grpc-addr")
        .arg(grpc.to_string())
        .arg("--admin-addr")
        .arg(admin.to_string())
        .arg("--log-format")
        .arg("json")
        .env("RUST_LOG", rust_log);
    c
}

/// The baseline: this binary re-executed (its `main` calls
/// [`crate::baseline::serve_if_asked`] first), logging to `dir/baseline.log`.
pub fn spawn_baseline(pin: bool, dir: &Path) -> Result<Server, String> {
    let grpc = free_port()?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = pinned(pin, &me);
    cmd.env(BASELINE_ENV, grpc.to_string());
    Server::spawn("baseline", cmd, grpc, None, dir.join("baseline.log"))
        .map_err(|e| format!("starting the baseline: {e}"))
}
