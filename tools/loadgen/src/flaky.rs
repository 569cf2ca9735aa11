//! HTTP servers that misbehave on cue: a scheduler sets each one's [`Mode`] (serving,
//! answering an error status, rate limiting, hanging, or down: listener closed and open
//! connections reset), from a repeating cycle ([`mode_at`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use crate::clock::now_s;
use crate::load::lock;

/// A server's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// Answers this status.
    Status(u16),
    /// 429 with `Retry-After: 2`.
    RateLimited,
    /// Answers 503 after a while (longer than the client waits).
    Hang,
    /// Listener closed, open connections reset.
    Down,
}

impl Mode {
    pub fn label(self) -> String {
        match self {
            Mode::Up => "up".into(),
            Mode::Status(s) => s.to_string(),
            Mode::RateLimited => "429".into(),
            Mode::Hang => "hang".into(),
            Mode::Down => "down".into(),
        }
    }
}

/// The mode at `t` seconds into a cycle of (seconds, mode) repeated from 0.
pub fn mode_at(cycle: &[(u64, Mode)], t: f64) -> Mode {
    let period: u64 = cycle.iter().map(|(d, _)| d).sum();
    if period == 0 {
        return Mode::Up;
    }
    let mut at = t.max(0.0) % period as f64;
    for (d, m) in cycle {
        if at < *d as f64 {
            return *m;
        }
        at -= *d as f64;
    }
    Mode::Up
}

/// The answer of a failing server (counted in `counts` by what it was), or None when it
/// should serve. A hanging one answers 503 after `hang`.
pub async fn failure(
    mode: Mode,
    hang: Duration,
    counts: &Mutex<BTreeMap<String, u64>>,
) -> Option<Response> {
    let count = |what: &str| *lock(counts).entry(what.to_string()).or_default() += 1;
    match mode {
        Mode::Up => None,
        Mode::Status(s) => {
            count(&format!("{s}"));
            let code = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(
                (
                    code,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"error":"server_error"}"#,
                )
                    .into_response(),
            )
        }
        Mode::RateLimited => {
            count("429 Retry-After: 2");
            Some(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [
                        (header::RETRY_AFTER, "2"),
                        (header::CONTENT_TYPE, "application/json"),
                    ],
                    r#"{"error":"slow_down"}"#,
                )
                    .into_response(),
            )
        }
        Mode::Hang | Mode::Down => {
            count(if mode == Mode::Hang {
                "hung"
            } else {
                "down (in flight)"
            });
            if mode == Mode::Hang {
                tokio::time::sleep(hang).await;
            }
            Some(StatusCode::SERVICE_UNAVAILABLE.into_response())
        }
    }
}

/// A listener whose connections all fail at once when `kill` changes: "down" means no
/// new connection *and* none of the open keep-alive ones answering.
struct Killable {
    inner: tokio::net::TcpListener,
    kill: watch::Receiver<u64>,
}

struct KillableIo {
    stream: tokio::net::TcpStream,
    killed: Pin<Box<dyn Future<Output = ()> + Send>>,
    dead: bool,
}

impl KillableIo {
    fn check(&mut self, cx: &mut Context<'_>) -> Result<(), io::Error> {
        if !self.dead && self.killed.as_mut().poll(cx).is_ready() {
            self.dead = true;
        }
        if self.dead {
            Err(io::ErrorKind::ConnectionReset.into())
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for KillableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl axum::serve::Listener for Killable {
    type Io = KillableIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (KillableIo, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let mut rx = self.kill.clone();
                    rx.borrow_and_update();
                    let killed = Box::pin(async move {
                        let _ = rx.changed().await;
                    });
                    return (
                        KillableIo {
                            stream,
                            killed,
                            dead: false,
                        },
                        addr,
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An HTTP server on a fixed loopback port whose [`Mode`] the scheduler sets. Its
/// handlers read [`Flappy::mode`] and answer with [`failure`] when not up; `Down` is
/// done here.
pub struct Flappy {
    pub name: &'static str,
    pub addr: SocketAddr,
    router: Router,
    state: Mutex<FlapState>,
    kill: watch::Sender<u64>,
}

struct FlapState {
    mode: Mode,
    /// When the server last came back up (None while it is failing).
    up_since: Option<f64>,
    task: Option<tokio::task::JoinHandle<()>>,
    downs: u64,
}

impl Flappy {
    /// Serves `router` on a free port of 127.0.0.1, up.
    pub async fn start(name: &'static str, router: Router) -> Result<Arc<Self>, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("{name}: bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (kill, _) = watch::channel(0u64);
        let f = Arc::new(Flappy {
            name,
            addr,
            router,
            state: Mutex::new(FlapState {
                mode: Mode::Up,
                up_since: Some(now_s()),
                task: None,
                downs: 0,
            }),
            kill,
        });
        let task = f.serve(listener);
        lock(&f.state).task = Some(task);
        Ok(f)
    }

    fn serve(&self, inner: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let listener = Killable {
            inner,
            kill: self.kill.subscribe(),
        };
        let router = self.router.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        })
    }

    pub fn mode(&self) -> Mode {
        lock(&self.state).mode
    }

    /// When the server last came back up ([`crate::clock::now_s`]); None while failing.
    pub fn up_since(&self) -> Option<f64> {
        lock(&self.state).up_since
    }

    /// Times it was taken down.
    pub fn downs(&self) -> u64 {
        lock(&self.state).downs
    }

    pub async fn set_mode(&self, mode: Mode) -> Result<(), String> {
        let old = {
            let mut s = lock(&self.state);
            if s.mode == mode {
                return Ok(());
            }
            let old = s.mode;
            s.mode = mode;
            s.up_since = (mode == Mode::Up).then(now_s);
            if mode == Mode::Down {
                s.downs += 1;
                if let Some(t) = s.task.take() {
                    t.abort();
                }
                self.kill.send_modify(|e| *e += 1);
            }
            old
        };
        if old == Mode::Down {
            // Back on the same port; a moment of EADDRINUSE is retried.
            let deadline = Instant::now() + Duration::from_secs(5);
            let listener = loop {
                match tokio::net::TcpListener::bind(self.addr).await {
                    Ok(l) => break l,
                    Err(e) if Instant::now() > deadline => {
                        return Err(format!(
                            "{}: cannot listen again on {}: {e}",
                            self.name, self.addr
                        ));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            let task = self.serve(listener);
            lock(&self.state).task = Some(task);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
