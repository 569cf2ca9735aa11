//! The http_edge bench's rig: its options, `ward serve` with its plain-HTTP listener, one
//! nginx with the four front ends and the upstream, and wrk runs read back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use loadgen::process::{Server, free_port, ward_command};
use serde_json::json;

#[path = "../common/mod.rs"]
mod common;

/// The bench's options.
pub struct Opts {
    pub reps: usize,
    pub duration: Duration,
    pub connections: usize,
    pub ward_bin: PathBuf,
}

impl Opts {
    pub fn parse(args: &[String]) -> Result<Opts, String> {
        let mut o = Opts {
            reps: 3,
            duration: Duration::from_secs(5),
            connections: 32,
            ward_bin: PathBuf::from(env!("CARGO_BIN_EXE_ward")),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} takes a value"));
            match a.as_str() {
                "--quick" => {
                    o.reps = 1;
                    o.duration = Duration::from_secs(1);
                    o.connections = 8;
                }
                "--reps" => o.reps = value(a)?.parse().map_err(|e| format!("--reps: {e}"))?,
                "--duration" => {
                    let s: f64 = value(a)?.parse().map_err(|e| format!("--duration: {e}"))?;
                    o.duration = Duration::from_secs_f64(s);
                }
                "--connections" => {
                    o.connections = value(a)?
                        .parse()
                        .map_err(|e| format!("--connections: {e}"))?;
                }
                "--ward-bin" => o.ward_bin = value(a)?.into(),
                other => return Err(format!("unknown option {other}")),
            }
        }
        if o.reps == 0 || o.connections == 0 || o.duration.is_zero() {
            return Err("--reps, --connections and --duration must be above 0".into());
        }
        Ok(o)
    }
}

/// The front ends nginx serves, each on a port of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    Ward,
    WardNoKeepalive,
    Stub,
    Local,
}

impl Front {
    pub const ALL: [Front; 4] = [
        Front::Ward,
        Front::WardNoKeepalive,
        Front::Stub,
        Front::Local,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Front::Ward => "ward",
            Front::WardNoKeepalive => "ward-no-keepalive",
            Front::Stub => "stub",
            Front::Local => "local",
        }
    }
}

/// One wrk run, read from its `--latency` report, with what the machine did meanwhile.
pub struct WrkRun {
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub non_2xx: u64,
    pub errors: u64,
    /// ward's CPU time per request (zero on the front ends that do not ask ward).
    pub ward_cpu_per_req: Duration,
    /// nginx's CPU time per request.
    pub nginx_cpu_per_req: Duration,
    /// CPU time of everything but ward, nginx, wrk and this process, as a share of the
    /// machine over the run: another build on the machine shows here.
    pub other_load: f64,
}

/// ward, nginx and the token every request carries; everything stops when dropped.
pub struct Rig {
    dir: tempfile::TempDir,
    _ward: Server,
    nginx: std::process::Child,
    ports: [u16; 4],
    token: String,
    pub nginx_version: String,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.nginx.kill();
        let _ = self.nginx.wait();
    }
}

fn which(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(format!(
            "{name} is not installed (apt-get install -y nginx wrk, as .ci/run does)"
        ))
}

impl Rig {
    pub async fn start(opts: &Opts) -> Result<Rig, String> {
        let nginx_bin = which("nginx")?;
        which("wrk")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let key = common::key(ward::authn::jwt::Alg::RS256);
        let token = key
            .sign(&common::claims(common::ISS, common::AUD, 1))
            .map_err(|e| e.to_string())?;
        let http = free_port()?;
        let yaml = format!(
            "server:\n  http_addr: {http}\nproviders:\n  - name: corp\n    jwt:\n      issuer: {}\n      audiences: [{}]\n      jwks_file: jwks.json\n      algorithms: [RS256]\n      claims: {{ roles: roles, scopes: scope }}\nroutes:\n  - name: api\n    match: {{ path_prefix: /api }}\n    providers: [corp]\n    require: {{ roles_any: [orders-reader] }}\n",
            common::ISS,
            common::AUD
        );
        std::fs::write(
            dir.path().join("jwks.json"),
            json!(common::jwks_of(&[&key])).to_string(),
        )
        .map_err(|e| e.to_string())?;
        let config = dir.path().join("ward.yaml");
        std::fs::write(&config, yaml).map_err(|e| e.to_string())?;
        let (grpc, admin) = (free_port()?, free_port()?);
        let cmd = ward_command(false, &opts.ward_bin, &config, grpc, admin, "warn");
        let ward = Server::spawn("ward", cmd, grpc, Some(admin), dir.path().join("ward.log"))
            .map_err(|e| format!("starting ward: {e}"))?;
        ward.wait_ready(&reqwest::Client::new(), Duration::from_secs(20))
            .await?;

        let ports = [free_port()?, free_port()?, free_port()?, free_port()?].map(|a| a.port());
        let (upstream, stub) = (free_port()?, free_port()?);
        let conf = nginx_conf(dir.path(), http, upstream, stub, ports)?;
        std::fs::write(dir.path().join("nginx.conf"), conf).map_err(|e| e.to_string())?;
        let p = dir.path().display().to_string();
        let log = std::fs::File::create(dir.path().join("nginx.out")).map_err(|e| e.to_string())?;
        let nginx = Command::new(&nginx_bin)
            .args([
                "-p",
                &p,
                "-c",
                &format!("{p}/nginx.conf"),
                "-e",
                &format!("{p}/error.log"),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting nginx: {e}"))?;
        let version = Command::new(&nginx_bin)
            .arg("-v")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stderr)
                    .trim()
                    .replace("nginx version: ", "")
            })
            .unwrap_or_default();
        let rig = Rig {
            dir,
            _ward: ward,
            nginx,
            ports,
            token,
            nginx_version: version,
        };
        for port in ports {
            rig.wait_listening(port).await?;
        }
        Ok(rig)
    }

    async fn wait_listening(&self, port: u16) -> Result<(), String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if std::time::Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
                return Err(format!("nginx never listened on {port}:\n{log}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// One wrk run against `front`, every request carrying the cached token.
    pub async fn wrk(&self, front: Front, opts: &Opts) -> Result<WrkRun, String> {
        let port = self.ports[Front::ALL.iter().position(|f| *f == front).unwrap_or(0)];
        let pids = [self._ward.pid(), self.nginx.id()];
        let cpu = |pid: u32| loadgen::procfs::process_cpu(&pid.to_string());
        let (ward0, nginx0, children0) = (cpu(pids[0]), cpu(pids[1]), children_cpu());
        let noise = loadgen::procfs::Noise::start(&pids);
        let started = std::time::Instant::now();
        let out = tokio::process::Command::new("wrk")
            .args(["-t1", "--latency"])
            .arg(format!("-c{}", opts.connections))
            .arg(format!("-d{}s", opts.duration.as_secs_f64().ceil() as u64))
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(format!("http://127.0.0.1:{port}/api/orders/42"))
            .output()
            .await
            .map_err(|e| format!("wrk: {e}"))?;
        let wall = started.elapsed();
        let wrk_cpu = children_cpu().saturating_sub(children0);
        let other = noise.foreign(&pids).saturating_sub(wrk_cpu);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut run = parse_wrk(&text).ok_or(format!("cannot read wrk's report:\n{text}"))?;
        let requests = (run.rps * opts.duration.as_secs_f64().ceil()).max(1.0);
        run.ward_cpu_per_req = cpu(pids[0]).saturating_sub(ward0).div_f64(requests);
        run.nginx_cpu_per_req = cpu(pids[1]).saturating_sub(nginx0).div_f64(requests);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        run.other_load = other.as_secs_f64() / (wall.as_secs_f64() * cpus);
        Ok(run)
    }
}

/// CPU time of this process's waited-for children (wrk), from `/proc/self/stat`.
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): cutime and cstime are the
    // 14th and 15th after it, in clock ticks (100 per second on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [13, 14]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// nginx's main config: the shipped server block twice (with and without keep-alive to
/// ward), the two baselines, the auth stub and the upstream.
fn nginx_conf(
    dir: &Path,
    ward: SocketAddr,
    upstream: SocketAddr,
    stub: SocketAddr,
    [ward_port, no_keepalive_port, stub_port, local_port]: [u16; 4],
) -> Result<String, String> {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("proxies/nginx/ward.conf"),
    )
    .map_err(|e| format!("proxies/nginx/ward.conf: {e}"))?;
    let replace = |text: &str, from: &str, to: &str| -> Result<String, String> {
        if text.matches(from).count() != 1 {
            return Err(format!("proxies/nginx/ward.conf must say `{from}` once"));
        }
        Ok(text.replace(from, to))
    };
    let with_addrs =
        |listen: u16, ward_upstream: &str, app_upstream: &str| -> Result<String, String> {
            let t = replace(
                &shipped,
                "server 127.0.0.1:9003;",
                &format!("server {ward};"),
            )?;
            let t = replace(&t, "server 127.0.0.1:8080;", &format!("server {upstream};"))?;
            let t = replace(
                &t,
                "listen 127.0.0.1:8000;",
                &format!("listen 127.0.0.1:{listen};"),
            )?;
            let t = replace(
                &t,
                "upstream ward {",
                &format!("upstream {ward_upstream} {{"),
            )?;
            let t = replace(
                &t,
                "proxy_pass http://ward/auth/nginx;",
                &format!("proxy_pass http://{ward_upstream}/auth/nginx;"),
            )?;
            let t = replace(&t, "upstream app {", &format!("upstream {app_upstream} {{"))?;
            replace(
                &t,
                "proxy_pass http://app;",
                &format!("proxy_pass http://{app_upstream};"),
            )
        };
    let keepalive = with_addrs(ward_port, "ward", "app")?;
    let no_keepalive = replace(
        &with_addrs(no_keepalive_port, "ward_nk", "app_nk")?,
        "    keepalive 32;\n",
        "",
    )?;
    let d = dir.display();
    Ok(format!(
        r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 8192;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;

{keepalive}
{no_keepalive}
  upstream stub {{ server {stub}; keepalive 32; }}
  upstream app_base {{ server {upstream}; keepalive 32; }}

  # The auth stub: answers 200 at once.
  server {{ listen {stub}; location / {{ return 200; }} }}
  # The upstream every front end proxies allowed requests to.
  server {{ listen {upstream}; location / {{ return 200 "ok"; }} }}

  # auth_request to the stub, over a kept-alive connection as ward's.
  server {{
    listen 127.0.0.1:{stub_port};
    location = /_auth {{
      internal;
      proxy_pass http://stub/auth/nginx;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header Host $host;
    }}
    location / {{
      auth_request /_auth;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://app_base;
    }}
  }}

  # auth_request to an internal location: no hop.
  server {{
    listen 127.0.0.1:{local_port};
    location = /_auth {{ internal; return 200; }}
    location / {{
      auth_request /_auth;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://app_base;
    }}
  }}
}}
"#
    ))
}

/// Requests/sec, the 50th and 99th latency percentiles, non-2xx answers and socket
/// errors from wrk's `--latency` report.
fn parse_wrk(text: &str) -> Option<WrkRun> {
    let mut run = WrkRun {
        rps: f64::NAN,
        p50: Duration::ZERO,
        p99: Duration::ZERO,
        non_2xx: 0,
        errors: 0,
        ward_cpu_per_req: Duration::ZERO,
        nginx_cpu_per_req: Duration::ZERO,
        other_load: 0.0,
    };
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => run.rps = v.parse().ok()?,
            (Some("50%"), Some(v)) => run.p50 = wrk_duration(v)?,
            (Some("99%"), Some(v)) => run.p99 = wrk_duration(v)?,
            (Some("Non-2xx"), _) => run.non_2xx = line.rsplit(' ').next()?.parse().ok()?,
            (Some("Socket"), _) => {
                run.errors = line
                    .split(',')
                    .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    (!run.rps.is_nan()).then_some(run)
}

/// `512.00us`, `1.23ms`, `2.00s`.
fn wrk_duration(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}
