//! Bounded work per request on the gRPC port (SPEC §7): what one client can make ward
//! hold while its requests arrive.
//!
//! tonic reads a gRPC message into one buffer until the whole length-prefixed message is
//! there (up to [`MAX_CHECK_REQUEST_BYTES`](super::grpc::MAX_CHECK_REQUEST_BYTES) for a
//! Check), so a client that announces large messages and sends most of each pins that
//! memory for as long as it keeps the streams open. [`RequestLimitsLayer`] wraps every
//! request body on the port (Check, health, reflection) in a [`LimitedBody`] that:
//!
//! - charges each body byte to one [`Budget`] shared by all connections as it arrives,
//!   and refuses the request with RESOURCE_EXHAUSTED when a byte would take the budget
//!   past `server.max_inflight_request_bytes`, or as soon as a message's 5-byte prefix
//!   announces more than the budget has left (it could not arrive whole anyway);
//! - refuses it with DEADLINE_EXCEEDED when it has not arrived whole within
//!   `server.request_timeout`;
//! - gives its bytes back when the request is decoded, refused or dropped (the client
//!   resets the stream or closes the connection).
//!
//! Bytes are charged as they arrive rather than reserved from the announced length: a
//! reservation would let a client hold the whole budget with a few 5-byte prefixes and
//! no data, refusing everyone else's checks for free; charging what is really held means
//! an attacker must send (and keep sending, past the deadline) what it wants to pin.
//!
//! For a unary request (Check, health) the message is handed to tonic only once the
//! stream has ended: tonic decodes it as soon as its last byte arrives and then waits for
//! the end of the stream, so a client that sends a whole message and never ends the
//! stream would otherwise hold a decoded copy, uncharged. The deadline runs from the
//! stream's opening to its end. Reflection streams carry many messages for as long as
//! the client likes: each message must arrive within the deadline from its first byte,
//! and its bytes are given back once it is whole.
//!
//! The number of streams per connection is HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS,
//! set on the server builder in [`super::run`]; HTTP/2 flow control bounds what a
//! connection can have buffered below this layer.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Frame, SizeHint};
use prometheus::{IntCounter, IntGauge};
use tokio::time::{Instant, Sleep};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{Bytes, Service, http};

use crate::config::RequestLimits;
use crate::metrics::Metrics;

/// Length of the gRPC message prefix: a compression flag and a big-endian u32 length.
const PREFIX: usize = 5;

// === impl Budget ===

/// Bytes of requests being received, over every connection, against a cap.
pub struct Budget {
    cap: usize,
    used: AtomicUsize,
    /// `ward_inflight_request_bytes`, moved with `used`.
    gauge: IntGauge,
}

impl Budget {
    pub fn new(cap: usize, gauge: IntGauge) -> Self {
        gauge.set(0);
        Self {
            cap,
            used: AtomicUsize::new(0),
            gauge,
        }
    }

    /// What is left under the cap.
    pub fn remaining(&self) -> usize {
        self.cap.saturating_sub(self.used.load(Ordering::Relaxed))
    }

    /// Takes `n` bytes from the budget, or nothing if that would pass the cap.
    pub fn try_charge(&self, n: usize) -> bool {
        let charged = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&total| total <= self.cap)
            })
            .is_ok();
        if charged {
            self.gauge.add(n as i64);
        }
        charged
    }

    /// Gives back `n` bytes charged before.
    pub fn release(&self, n: usize) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::Relaxed);
            self.gauge.sub(n as i64);
        }
    }
}

// === impl RequestLimitsLayer ===

/// What every wrapped body shares.
struct Shared {
    budget: Budget,
    request_timeout: Duration,
    /// `ward_check_rejected_total{reason="inflight_bytes"}`.
    over_budget: IntCounter,
    /// `ward_check_rejected_total{reason="receive_timeout"}`.
    too_slow: IntCounter,
}

/// A tower layer for tonic's server that puts every request body under the limits.
#[derive(Clone)]
pub struct RequestLimitsLayer {
    shared: Arc<Shared>,
}

impl RequestLimitsLayer {
    pub fn new(limits: &RequestLimits, metrics: &Metrics) -> Self {
        let rejected = |reason: &str| metrics.check_rejected.with_label_values(&[reason]);
        Self {
            shared: Arc::new(Shared {
                budget: Budget::new(
                    limits.max_inflight_request_bytes,
                    metrics.inflight_request_bytes.clone(),
                ),
                request_timeout: limits.request_timeout,
                over_budget: rejected("inflight_bytes"),
                too_slow: rejected("receive_timeout"),
            }),
        }
    }
}

impl<S> tower::Layer<S> for RequestLimitsLayer {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// A service whose request bodies are [`LimitedBody`]s.
#[derive(Clone)]
pub struct Limited<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<http::Request<Body>> for Limited<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // Reflection is ward's only method whose client sends a stream of messages.
        let shape = if req.uri().path().starts_with("/grpc.reflection.") {
            Shape::Streaming
        } else {
            Shape::Unary
        };
        let shared = self.shared.clone();
        self.inner
            .call(req.map(|body| Body::new(LimitedBody::new(body, shared, shape))))
    }
}

// === impl LimitedBody ===

/// How many messages the client sends on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// One: the request must be whole (message and end of stream) within the deadline.
    Unary,
    /// Any number: each must be whole within the deadline from its first byte.
    Streaming,
}

/// Where the body is in the gRPC framing.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// Reading a prefix: `got` of its bytes so far.
    Prefix { got: usize, bytes: [u8; PREFIX] },
    /// Reading a message body: `left` bytes to go.
    Message { left: usize },
}

/// A request body under the limits; see the module documentation.
pub struct LimitedBody {
    inner: Body,
    shared: Arc<Shared>,
    shape: Shape,
    framing: Framing,
    /// Bytes of the current (streaming) or whole (unary) request received so far.
    partial: usize,
    /// Bytes charged to the budget.
    held: usize,
    /// When the request (or the current message) must be whole; `None` when nothing is
    /// awaited.
    deadline: Option<Instant>,
    /// The timer for `deadline`, made only when the body has to wait.
    sleep: Option<Pin<Box<Sleep>>>,
    /// A unary request's last message frame, held back until the stream ends.
    held_back: Option<Frame<Bytes>>,
    /// Refused or finished: nothing more is read.
    done: bool,
}

impl LimitedBody {
    fn new(inner: Body, shared: Arc<Shared>, shape: Shape) -> Self {
        let deadline = match shape {
            Shape::Unary => Some(Instant::now() + shared.request_timeout),
            Shape::Streaming => None,
        };
        Self {
            inner,
            shared,
            shape,
            framing: Framing::Prefix {
                got: 0,
                bytes: [0; PREFIX],
            },
            partial: 0,
            held: 0,
            deadline,
            sleep: None,
            held_back: None,
            done: false,
        }
    }

    /// Walks `data` through the framing and charges what the request now holds.
    /// Returns whether a message became whole in it.
    fn on_data(&mut self, data: &[u8]) -> Result<bool, Status> {
        let mut rest = data;
        let mut whole = false;
        while !rest.is_empty() {
            if self.partial == 0 && self.shape == Shape::Streaming {
                self.deadline = Some(Instant::now() + self.shared.request_timeout);
                self.sleep = None;
            }
            let n = match &mut self.framing {
                Framing::Prefix { got, bytes } => {
                    let n = (PREFIX - *got).min(rest.len());
                    bytes[*got..*got + n].copy_from_slice(&rest[..n]);
                    *got += n;
                    if *got == PREFIX {
                        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
                        self.framing = Framing::Message { left: len as usize };
                        // Refused now rather than after receiving most of it.
                        if len as usize > self.shared.budget.remaining() {
                            return Err(self.refuse_over_budget());
                        }
                    }
                    n
                }
                Framing::Message { left } => {
                    let n = (*left).min(rest.len());
                    *left -= n;
                    n
                }
            };
            rest = &rest[n..];
            self.partial += n;
            if let Framing::Message { left: 0 } = self.framing {
                whole = true;
                self.framing = Framing::Prefix {
                    got: 0,
                    bytes: [0; PREFIX],
                };
                if self.shape == Shape::Streaming {
                    // Handed to the service as it is decoded: no longer held here.
                    self.partial = 0;
                    self.deadline = None;
                    self.sleep = None;
                }
            }
        }
        self.charge(self.partial)?;
        Ok(whole)
    }

    /// Brings the charge to `target` bytes.
    fn charge(&mut self, target: usize) -> Result<(), Status> {
        if target > self.held {
            if !self.shared.budget.try_charge(target - self.held) {
                return Err(self.refuse_over_budget());
            }
        } else {
            self.shared.budget.release(self.held - target);
        }
        self.held = target;
        Ok(())
    }

    fn refuse_over_budget(&mut self) -> Status {
        self.finish();
        self.shared.over_budget.inc();
        Status::resource_exhausted("too many request bytes in flight")
    }

    fn refuse_too_slow(&mut self) -> Status {
        self.finish();
        self.shared.too_slow.inc();
        Status::deadline_exceeded("request not received within request_timeout")
    }

    /// Stops reading and gives the request's bytes back.
    fn finish(&mut self) {
        self.done = true;
        self.deadline = None;
        self.sleep = None;
        self.held_back = None;
        self.shared.budget.release(self.held);
        self.held = 0;
    }

    /// Whether the deadline has passed; registers for a wake-up when it has not.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.deadline else {
            return false;
        };
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        sleep.as_mut().poll(cx).is_ready()
    }
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    if this.poll_deadline(cx) {
                        return Poll::Ready(Some(Err(this.refuse_too_slow())));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(frame) => frame,
            };
            match frame {
                Some(Ok(frame)) if frame.is_data() => {
                    let Some(data) = frame.data_ref() else {
                        continue;
                    };
                    let whole = match this.on_data(data) {
                        Ok(whole) => whole,
                        Err(status) => return Poll::Ready(Some(Err(status))),
                    };
                    if this.held_back.is_some() {
                        // More data after a unary request's message: pass it all on and
                        // let the service refuse it.
                        let earlier = this.held_back.replace(frame);
                        return Poll::Ready(earlier.map(Ok));
                    }
                    if whole && this.shape == Shape::Unary && !this.inner.is_end_stream() {
                        this.held_back = Some(frame);
                        continue;
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Some(Ok(trailers)) => {
                    // The end of the request.
                    this.deadline = None;
                    this.sleep = None;
                    if let Some(last) = this.held_back.take() {
                        // Trailers are rare on requests; tonic reads them after the
                        // message, so they wait one more poll.
                        this.held_back = Some(trailers);
                        return Poll::Ready(Some(Ok(last)));
                    }
                    return Poll::Ready(Some(Ok(trailers)));
                }
                Some(Err(e)) => {
                    this.finish();
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    this.deadline = None;
                    this.sleep = None;
                    if let Some(last) = this.held_back.take() {
                        return Poll::Ready(Some(Ok(last)));
                    }
                    this.done = true;
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.held_back.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LimitedBody {
    fn drop(&mut self) {
        self.shared.budget.release(self.held);
    }
}

#[cfg(test)]
mod tests;
