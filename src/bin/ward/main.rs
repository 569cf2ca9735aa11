//! The `ward` binary: the command line over the library. `serve` (with logging setup and
//! signals) and `validate` are in [`serve`], `check` and `test` in [`check`], the
//! development-token commands in [`token`], `ward status` in [`status`]. Config is loaded before anything is bound: a
//! bad config is one clear message and a non-zero exit, never a half-started server.

mod check;
mod serve;
mod status;
mod token;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "ward", version, about = "Envoy external-authorization server")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// Config file [default: $WARD_CONFIG, then ./ward.yaml]
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn path(&self) -> PathBuf {
        self.config
            .clone()
            .or_else(|| std::env::var_os("WARD_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("ward.yaml"))
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve Envoy's Authorization/Check over gRPC, plus the admin HTTP endpoints (and
    /// plain-HTTP authorization for nginx, Caddy, Traefik and Envoy's http_service, when
    /// server.http_addr or --http-addr is set).
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Overrides server.grpc_addr.
        #[arg(long)]
        grpc_addr: Option<std::net::SocketAddr>,
        /// Overrides server.admin_addr.
        #[arg(long)]
        admin_addr: Option<std::net::SocketAddr>,
        /// Overrides server.http_addr (plain-HTTP authorization; off unless one is set).
        #[arg(long)]
        http_addr: Option<std::net::SocketAddr>,
        /// Log format [default: text on a terminal, json otherwise]
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Check a config; exit 0 when valid, 1 with every error (path and line) otherwise.
    Validate {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Decide one request offline and explain it; exit 0 allow, 1 deny, 2 error.
    Check(CheckArgs),
    /// Run a table of requests with expected outcomes; exit 0 all pass, 1 a failure, 2 error.
    Test {
        #[command(flatten)]
        config: ConfigArg,
        /// The cases file (see docs/policy-testing.md).
        cases: PathBuf,
        /// Run against a production config: the JWT provider PROVIDER verifies with the
        /// public half of this development key instead of its own keys (repeatable).
        #[arg(long = "trust-dev-key", value_name = "PROVIDER=PEM", value_parser = parse_trust)]
        trust_dev_key: Vec<(String, PathBuf)>,
    },
    /// Print the proxy-side settings the config implies (owned headers to remove at the
    /// edge, headers ward reads, ext_authz timeout); exit 1 on an invalid config.
    Render {
        /// `envoy`, `istio` or `envoy-gateway`.
        #[arg(value_parser = ["envoy", "istio", "envoy-gateway"])]
        target: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Development tokens and API-key hashes.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Print what a running ward holds (its admin `/status`: config and last reload,
    /// providers with their keys and last fetches, routes); exit 1 when it cannot be read.
    Status {
        /// ward's admin listener: `HOST:PORT`, or a base URL such as `http://HOST:PORT`.
        #[arg(long)]
        admin_addr: String,
        /// `text` for a terminal, `json` for the document itself.
        #[arg(long, value_enum, default_value = "text")]
        output: StatusOutput,
        /// How long to wait for the answer.
        #[arg(long, default_value = "10s")]
        timeout: String,
    },
}

/// What `ward status` prints.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum StatusOutput {
    Text,
    Json,
}

#[derive(Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[arg(long, default_value = "GET")]
    method: String,
    /// Request path, query string included.
    #[arg(long)]
    path: String,
    #[arg(long, default_value = "")]
    host: String,
    /// A request header, `name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// An Envoy context extension, `key=value` (repeatable).
    #[arg(long = "ctx")]
    context: Vec<String>,
    /// The peer's principal (SPIFFE ID), as Envoy's source.principal.
    #[arg(long)]
    source_principal: Option<String>,
    /// The peer certificate as Envoy sends it (URL-encoded PEM), for `mesh` providers.
    #[arg(long)]
    source_certificate: Option<String>,
    /// Print the decision as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub(crate) enum TokenCmd {
    /// Sign a development JWT; prints only the token.
    Sign {
        /// Private key PEM (for HS*: a file holding the secret).
        #[arg(long)]
        key: PathBuf,
        /// RS256/384/512, PS256/384/512, ES256/384/512, EdDSA, Ed25519, HS256/384/512.
        #[arg(long, default_value = "RS256")]
        alg: String,
        #[arg(long)]
        iss: String,
        /// Audience (repeatable).
        #[arg(long, required = true)]
        aud: Vec<String>,
        #[arg(long)]
        sub: String,
        /// Extra claim `name=<json>`, e.g. --claim 'roles=["admin"]' (repeatable).
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// Lifetime, e.g. 1h.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Bind the token to this private key (PEM) for DPoP: `cnf.jkt` is its thumbprint.
        #[arg(long, conflicts_with = "cnf_cert")]
        cnf_key: Option<PathBuf>,
        /// The algorithm of `--cnf-key`.
        #[arg(long, default_value = "ES256")]
        cnf_alg: String,
        /// Bind the token to this client certificate (PEM): `cnf.x5t#S256` is its hash.
        #[arg(long)]
        cnf_cert: Option<PathBuf>,
        /// Encrypt the signed token to this public key (a JWK or a `PUBLIC KEY` PEM): a
        /// nested JWT for a provider with `decryption`.
        #[arg(long)]
        encrypt_to: Option<PathBuf>,
        /// RSA-OAEP-256 (default for RSA), ECDH-ES, ECDH-ES+A128KW, ECDH-ES+A256KW
        /// (default for EC).
        #[arg(long, requires = "encrypt_to")]
        encrypt_alg: Option<String>,
        /// A128GCM or A256GCM (default).
        #[arg(long, requires = "encrypt_to")]
        encrypt_enc: Option<String>,
    },
    /// Print the public JWKS for a key; its kid is the one `sign` puts in tokens.
    Jwks {
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "RS256")]
        alg: String,
    },
    /// Read an API key on stdin and print its SHA-256 for `api_key.keys[].sha256`.
    HashKey,
    /// Make a DPoP proof (RFC 9449) for one request; prints only the proof.
    Dpop {
        /// The private key the token is bound to (PEM).
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "ES256")]
        alg: String,
        /// The request's method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// The request's URL (its query is not part of the proof).
        #[arg(long)]
        url: String,
        /// The access token sent with the proof (its hash becomes `ath`).
        #[arg(long)]
        token: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Json,
    Text,
}

/// mimalloc, not the system allocator: the token cache holds ~100 000 small long-lived
/// blocks allocated between the short-lived ones of each request, and glibc's arenas
/// keep the pages those pin resident. See BENCHMARKS.md (memory).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_max_object_size` in mimalloc 3's mimalloc.h.
const MI_OPTION_ARENA_MAX_OBJECT_SIZE: libmimalloc_sys::mi_option_t = 45;

/// The largest block mimalloc takes from its arenas, in KiB. A larger one is mapped from
/// the OS on its own and unmapped when it is freed.
const ARENA_MAX_OBJECT_KIB: std::ffi::c_long = 1024;

/// Large buffers go back to the OS as soon as they are freed; the rest after mimalloc's
/// purge delay (1 s).
///
/// A check allocates nothing near 1 MiB. Request buffers that size come from clients
/// that send huge CheckRequests, the attack `tests/limits.rs` replays: once refused,
/// their memory must leave at once, or the next streams' buffers pile up on top of it
/// (the test's peak rose from 93 to 147 MiB). The small blocks of ordinary checks keep
/// the delay: purging those at once (the former setting, a delay of 0) returned pages
/// that the next check faulted in again, ~0.3 page faults and 0.05 `madvise` calls per
/// check under load (BENCHMARKS.md, change 14).
fn map_large_buffers_from_the_os() {
    // SAFETY: sets one integer option; mimalloc's options are safe to set at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_MAX_OBJECT_SIZE, ARENA_MAX_OBJECT_KIB) }
}

/// How often a serving ward gives the allocator the chance to return freed ranges.
const RETURN_FREED_MEMORY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Returns the freed ranges whose purge delay has passed, once a second, busy or idle.
///
/// mimalloc purges only when it is next called: an idle ward would keep what the last
/// checks freed for as long as it stays idle. This tick is that next call.
pub(crate) async fn return_freed_memory() {
    let mut tick = tokio::time::interval(RETURN_FREED_MEMORY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // SAFETY: `mi_collect` takes no pointer; it frees this thread's empty pages and
        // purges the ranges whose delay has passed, as any allocation may.
        unsafe { libmimalloc_sys::mi_collect(false) }
    }
}

fn main() -> ExitCode {
    map_large_buffers_from_the_os();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve {
            config,
            grpc_addr,
            admin_addr,
            http_addr,
            log_format,
        } => {
            let addrs = serve::Addrs {
                grpc: grpc_addr,
                admin: admin_addr,
                http: http_addr,
            };
            exit(serve::serve(&config.path(), addrs, log_format))
        }
        Cmd::Validate { config } => serve::validate(&config.path()),
        Cmd::Check(args) => check::check(args),
        Cmd::Test {
            config,
            cases,
            trust_dev_key,
        } => check::test(&config.path(), &cases, &trust_dev_key),
        Cmd::Render { target, config } => serve::render(&target, &config.path()),
        Cmd::Token { cmd } => exit(token::token(cmd)),
        Cmd::Status {
            admin_addr,
            output,
            timeout,
        } => exit(status::status(&admin_addr, output, &timeout)),
    }
}

/// Standard output for a reader that may leave early (`ward check … | head`): once the
/// pipe is closed the rest is dropped, and the command still ends with its own exit code
/// (the decision's, the cases') instead of a panic.
pub(crate) struct Stdout {
    out: std::io::StdoutLock<'static>,
    closed: bool,
}

pub(crate) fn stdout() -> Stdout {
    Stdout {
        out: std::io::stdout().lock(),
        closed: false,
    }
}

impl Stdout {
    fn absorb<T>(&mut self, r: std::io::Result<T>, all: T) -> std::io::Result<T> {
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(all)
            }
            r => r,
        }
    }
}

impl std::io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let r = self.out.write(buf);
        self.absorb(r, buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.out.flush();
        self.absorb(r, ())
    }
}

/// Every error of a config file, one per line, each prefixed with the file (and line).
pub(crate) fn render(path: &Path, errors: &ward::ConfigErrors) -> String {
    errors
        .0
        .iter()
        .map(|e| match e.line {
            Some(_) => format!("{}:{e}", path.display()),
            None if e.path.is_empty() => e.message.clone(),
            None => format!("{}: {e}", path.display()),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn exit(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ward: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `PROVIDER=PEM` of `ward test --trust-dev-key`.
fn parse_trust(arg: &str) -> Result<(String, PathBuf), String> {
    match arg.split_once('=') {
        Some((p, pem)) if !p.is_empty() && !pem.is_empty() => Ok((p.to_string(), pem.into())),
        _ => Err(format!("`{arg}` is not PROVIDER=PEM")),
    }
}
