//! The byte stream under each gRPC connection: answers copied into h2's write buffer, and
//! the answers of checks that finish together sent in one write.
//!
//! h2 copies a DATA frame into its 16 KiB write buffer only when the payload is at most
//! 256 bytes or the socket cannot take vectored writes; otherwise it chains the payload
//! and flushes it before it can queue the next frame. ward's allowed answers (identity
//! headers, `headers_to_remove`, dynamic metadata) are 300–600 bytes, so with vectored
//! writes every answer became its own `writev`. Reporting the stream as not vectored
//! lets h2 copy them (BENCHMARKS.md, change 1).
//!
//! Without vectored writes h2 still chains a payload of 1 024 bytes or more, and an
//! answer carrying a purpose token (SPEC §8) is about that size: [`SplitData`] hands h2
//! a longer answer as several DATA frames of at most [`COPIED_DATA_MAX`] bytes, each
//! copied, so those answers batch too (workload (f) in BENCHMARKS.md).
//!
//! Copying is not enough for answers to leave together. Each check runs in its own task
//! and wakes the connection's task when its answer is queued; Tokio runs a task woken
//! that way next (its LIFO slot), so the connection's task wrote each answer alone, one
//! `sendto` per check under load. [`Coalescing`] makes the first write after a flush
//! wait for one turn of the other ready tasks: the checks that finish meanwhile queue
//! their answers, and one write carries them all. The wait is one pass of the run queue,
//! never a timer; when nothing else is ready the write goes out on the next poll.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::body::Body;
use tonic::codegen::{Bytes, http};
use tonic::transport::server::Connected;

/// A stream that forwards everything to `S`, reports no vectored-write support, and
/// lets the other ready tasks run once before the first write of each flush.
#[derive(Debug)]
pub struct Coalescing<S> {
    inner: S,
    /// This flush has already given the other tasks their turn.
    yielded: bool,
}

impl<S> Coalescing<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            yielded: false,
        }
    }

    /// The first write after a flush: wakes this task and returns `Pending`, so the
    /// scheduler puts it behind the tasks already ready. The next call writes, as do the
    /// later ones of the same flush.
    fn take_turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalescing<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalescing<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::task::ready!(self.take_turn(cx));
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        // Callers that ignore `is_write_vectored` still get a correct (single-slice) write.
        let buf = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        self.poll_write(cx, buf)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.yielded = false;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for Coalescing<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// The largest DATA payload h2 copies into its write buffer on a stream without
/// vectored writes (it chains payloads of `CHAIN_THRESHOLD_WITHOUT_VECTORED_IO` = 1 024
/// bytes or more).
pub const COPIED_DATA_MAX: usize = 1023;

/// A response body whose data frames are at most [`COPIED_DATA_MAX`] bytes: a longer
/// one is cut (without copying) and handed out piece by piece.
pub struct SplitData {
    inner: Body,
    rest: Bytes,
}

impl SplitData {
    pub fn new(inner: Body) -> Self {
        Self {
            inner,
            rest: Bytes::new(),
        }
    }

    /// Wraps a response's body: the map of the gRPC port's `map_response` layer.
    pub fn response(res: http::Response<Body>) -> http::Response<Body> {
        res.map(|b| Body::new(SplitData::new(b)))
    }

    /// The first piece of `data`, keeping the rest for the next polls.
    fn piece(&mut self, mut data: Bytes) -> Frame<Bytes> {
        if data.len() > COPIED_DATA_MAX {
            self.rest = data.split_off(COPIED_DATA_MAX);
        }
        Frame::data(data)
    }
}

impl http_body::Body for SplitData {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        if !self.rest.is_empty() {
            let rest = std::mem::take(&mut self.rest);
            return Poll::Ready(Some(Ok(self.piece(rest))));
        }
        match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(Ok(self.piece(data)))),
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => Poll::Ready(other),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(rest));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(rest));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn forwards_bytes_both_ways_and_reports_no_vectored_writes() {
        let (a, b) = tokio::io::duplex(64);
        let mut a = Coalescing::new(a);
        let mut b = Coalescing::new(b);
        assert!(!a.is_write_vectored());
        let n = a
            .write_vectored(&[IoSlice::new(b""), IoSlice::new(b"ping"), IoSlice::new(b"!")])
            .await
            .unwrap();
        assert_eq!(n, 4, "one slice per call: the first non-empty one");
        a.write_all(b"!").await.unwrap();
        a.shutdown().await.unwrap();
        let mut got = String::new();
        b.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "ping!");
    }

    /// A waker that counts its wakes.
    struct Wakes(AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_first_write_of_each_flush_waits_one_turn_and_wakes_its_task() {
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut s = Coalescing::new(Vec::new());
        let mut write = |s: &mut Coalescing<Vec<u8>>, bytes: &[u8]| {
            Pin::new(s).poll_write(&mut cx, bytes).map(Result::unwrap)
        };
        assert_eq!(write(&mut s, b"one"), Poll::Pending);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "woken to run again");
        assert!(s.inner.is_empty(), "nothing written yet");
        assert_eq!(write(&mut s, b"one"), Poll::Ready(3));
        assert_eq!(write(&mut s, b"two"), Poll::Ready(3), "the same flush");
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut s).poll_flush(&mut cx).is_ready());
        assert_eq!(
            write(&mut s, b"three"),
            Poll::Pending,
            "a new flush waits again"
        );
        assert_eq!(write(&mut s, b"three"), Poll::Ready(5));
        assert_eq!(s.inner, b"onetwothree");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
    }

    /// A sink that counts the writes it is given and the bytes they carry.
    #[derive(Clone, Default)]
    struct CountedWrites(Arc<(AtomicUsize, AtomicUsize)>);

    impl CountedWrites {
        fn writes_and_bytes(&self) -> (usize, usize) {
            (
                self.0.0.load(Ordering::SeqCst),
                self.0.1.load(Ordering::SeqCst),
            )
        }
    }

    impl AsyncWrite for CountedWrites {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.0.0.fetch_add(1, Ordering::SeqCst);
            self.0.1.fetch_add(buf.len(), Ordering::SeqCst);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Answers queued by check tasks for one connection, as h2 holds them.
    #[derive(Default)]
    struct Queue {
        answers: Vec<u8>,
        queued: usize,
        connection: Option<std::task::Waker>,
    }

    /// The connection's side, as h2 drives it: on each poll, take every queued answer
    /// into the write buffer, write it all, flush; then wait to be woken.
    struct Connection<W> {
        queue: Arc<Mutex<Queue>>,
        expected: usize,
        buf: Vec<u8>,
        io: W,
    }

    impl<W: AsyncWrite + Unpin> std::future::Future for Connection<W> {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let this = &mut *self;
            loop {
                let all_queued = {
                    let mut q = this.queue.lock().unwrap();
                    this.buf.append(&mut q.answers);
                    q.connection = Some(cx.waker().clone());
                    q.queued == this.expected
                };
                if this.buf.is_empty() {
                    return if all_queued {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    };
                }
                while !this.buf.is_empty() {
                    let n = std::task::ready!(Pin::new(&mut this.io).poll_write(cx, &this.buf));
                    this.buf.drain(..n.unwrap());
                }
                std::task::ready!(Pin::new(&mut this.io).poll_flush(cx)).unwrap();
            }
        }
    }

    /// `checks` tasks made ready together each queue a 100-byte answer and wake the
    /// connection's task, which writes to `io`, on one Tokio worker as ward's gRPC port
    /// runs them when it has one core.
    async fn answer_together(io: impl AsyncWrite + Unpin + Send + 'static, checks: usize) {
        let queue = Arc::new(Mutex::new(Queue::default()));
        let connection = tokio::spawn(Connection {
            queue: queue.clone(),
            expected: checks,
            buf: Vec::new(),
            io,
        });
        // Spawned from a task on the worker, so that they wait in its run queue together,
        // once the connection waits for answers. Nothing awaits them one by one (that
        // would put its own task between them): the connection ends when all have
        // answered.
        let checks = tokio::spawn(async move {
            while queue.lock().unwrap().connection.is_none() {
                tokio::task::yield_now().await;
            }
            for _ in 0..checks {
                let queue = queue.clone();
                tokio::spawn(async move {
                    let mut q = queue.lock().unwrap();
                    q.answers.extend_from_slice(&[7; 100]);
                    q.queued += 1;
                    if let Some(w) = q.connection.take() {
                        w.wake();
                    }
                });
            }
        });
        checks.await.unwrap();
        connection.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn answers_of_checks_that_finish_together_leave_in_one_write() {
        const CHECKS: usize = 32;
        let counted = CountedWrites::default();
        answer_together(Coalescing::new(counted.clone()), CHECKS).await;
        let (writes, bytes) = counted.writes_and_bytes();
        assert_eq!(bytes, CHECKS * 100, "every answer arrives");
        assert!(
            writes <= 2,
            "{writes} writes for {CHECKS} answers made ready together"
        );

        // Without the turn, the connection's task runs as soon as a check wakes it
        // (Tokio's LIFO slot) and writes that answer alone: what the turn is for.
        let plain = CountedWrites::default();
        answer_together(plain.clone(), CHECKS).await;
        let (writes, bytes) = plain.writes_and_bytes();
        assert_eq!(bytes, CHECKS * 100);
        assert!(
            writes >= CHECKS / 4,
            "the plain stream made only {writes} writes: this test no longer shows the turn's effect"
        );
    }

    #[tokio::test]
    async fn a_long_answer_leaves_as_pieces_h2_copies_and_arrives_whole() {
        use http_body_util::BodyExt;
        let payload: Vec<u8> = (0..2_600u32).map(|i| (i % 251) as u8).collect();
        let trailers = {
            let mut t = http::HeaderMap::new();
            t.insert("grpc-status", http::HeaderValue::from_static("0"));
            t
        };
        let frames = vec![
            Ok::<_, tonic::Status>(Frame::data(Bytes::from(payload.clone()))),
            Ok(Frame::data(Bytes::from_static(b"tail"))),
            Ok(Frame::trailers(trailers.clone())),
        ];
        let inner = Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)));
        let mut body = SplitData::new(inner);
        let (mut sizes, mut data, mut got_trailers) = (Vec::new(), Vec::new(), None);
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("no error");
            match frame.into_data() {
                Ok(d) => {
                    sizes.push(d.len());
                    data.extend_from_slice(&d);
                }
                Err(f) => got_trailers = f.into_trailers().ok(),
            }
        }
        assert_eq!(
            sizes,
            [1023, 1023, 554, 4],
            "at most COPIED_DATA_MAX bytes a frame"
        );
        let mut want = payload;
        want.extend_from_slice(b"tail");
        assert_eq!(data, want, "every byte, in order");
        assert_eq!(got_trailers, Some(trailers), "trailers pass untouched");
        assert!(body.rest.is_empty(), "nothing held back");
    }
}
