//! The byte stream under each gRPC connection, with vectored writes turned off, and
//! answers cut into DATA frames h2 copies.
//!
//! h2 copies a DATA frame into its 16 KiB write buffer only when the payload is at most
//! 256 bytes or the socket cannot take vectored writes; otherwise it chains the payload
//! and flushes it before it can queue the next frame. ward's allowed answers (identity
//! headers, `headers_to_remove`, dynamic metadata) are 300–600 bytes, so with vectored
//! writes every answer became its own `writev`. Reporting the stream as not vectored
//! lets h2 copy them and send many answers per syscall: measured on a cached-token
//! load, 2.0 → ~1 write per check and +34 % checks/s (BENCHMARKS.md).
//!
//! Without vectored writes h2 still chains a payload of 1 024 bytes or more, and an
//! answer carrying a purpose token (SPEC §8) is about that size: [`SplitData`] hands h2
//! a longer answer as several DATA frames of at most [`COPIED_DATA_MAX`] bytes, each
//! copied, so those answers batch too (workload (f) in BENCHMARKS.md).

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::body::Body;
use tonic::codegen::{Bytes, http};
use tonic::transport::server::Connected;

/// A stream that forwards everything to `S` but reports no vectored-write support.
#[derive(Debug)]
pub struct Unvectored<S>(pub S);

impl<S: AsyncRead + Unpin> AsyncRead for Unvectored<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Unvectored<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        // Callers that ignore `is_write_vectored` still get a correct (single-slice) write.
        let buf = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for Unvectored<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.connect_info()
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn forwards_bytes_both_ways_and_reports_no_vectored_writes() {
        let (a, b) = tokio::io::duplex(64);
        let mut a = Unvectored(a);
        let mut b = Unvectored(b);
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
