use std::collections::VecDeque;

use http_body::Body as _;

use super::*;

#[test]
fn the_budget_refuses_what_would_pass_the_cap_and_takes_back_releases() {
    let gauge = IntGauge::new("g", "g").expect("gauge");
    let budget = Budget::new(100, gauge.clone());
    assert!(budget.try_charge(60));
    assert!(!budget.try_charge(41), "61..=101 would pass the cap");
    assert!(budget.try_charge(40));
    assert_eq!((budget.remaining(), gauge.get()), (0, 100));
    budget.release(70);
    assert_eq!((budget.remaining(), gauge.get()), (70, 30));
    assert!(!budget.try_charge(usize::MAX), "no overflow");
}

/// A request body that yields the frames it is given, then ends (or stays open).
struct Script {
    frames: VecDeque<Frame<Bytes>>,
    ends: bool,
}

impl http_body::Body for Script {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        match self.frames.pop_front() {
            Some(f) => Poll::Ready(Some(Ok(f))),
            None if self.ends => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ends && self.frames.is_empty()
    }
}

fn shared(cap: usize) -> Arc<Shared> {
    let metrics = Metrics::new();
    let limits = RequestLimits {
        max_inflight_request_bytes: cap,
        ..RequestLimits::default()
    };
    RequestLimitsLayer::new(&limits, &metrics).shared
}

fn message(len: usize) -> Vec<u8> {
    let mut m = vec![0u8];
    m.extend_from_slice(&(len as u32).to_be_bytes());
    m.extend(std::iter::repeat_n(7u8, len));
    m
}

fn body(shared: &Arc<Shared>, shape: Shape, chunks: &[&[u8]], ends: bool) -> LimitedBody {
    let script = Script {
        frames: chunks
            .iter()
            .map(|c| Frame::data(Bytes::copy_from_slice(c)))
            .collect(),
        ends,
    };
    LimitedBody::new(Body::new(script), shared.clone(), shape)
}

fn poll(b: &mut LimitedBody) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    Pin::new(b).poll_frame(&mut cx)
}

#[tokio::test]
async fn a_unary_message_is_handed_on_only_once_its_stream_ends() {
    let shared = shared(1 << 20);
    let m = message(10);
    let mut open = body(&shared, Shape::Unary, &[&m[..8], &m[8..]], false);
    let Poll::Ready(Some(Ok(first))) = poll(&mut open) else {
        panic!("the first part passes");
    };
    assert_eq!(first.data_ref().map(Bytes::len), Some(8));
    assert!(
        poll(&mut open).is_pending(),
        "the last part waits for the end"
    );
    assert_eq!(shared.budget.remaining(), (1 << 20) - 15);
    drop(open);
    assert_eq!(shared.budget.remaining(), 1 << 20, "dropped: released");

    let mut ended = body(&shared, Shape::Unary, &[&m[..8], &m[8..]], true);
    assert!(matches!(poll(&mut ended), Poll::Ready(Some(Ok(_)))));
    assert!(matches!(poll(&mut ended), Poll::Ready(Some(Ok(_)))));
    assert!(matches!(poll(&mut ended), Poll::Ready(None)));
}

#[tokio::test]
async fn a_prefix_announcing_more_than_is_left_is_refused_at_once() {
    let shared = shared(1000);
    let m = message(2000);
    let mut b = body(&shared, Shape::Unary, &[&m[..5]], false);
    match poll(&mut b) {
        Poll::Ready(Some(Err(s))) => assert_eq!(s.code(), tonic::Code::ResourceExhausted),
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(shared.over_budget.get(), 1);
    assert_eq!(shared.budget.remaining(), 1000);
}

#[tokio::test]
async fn a_streaming_request_gives_back_each_message_once_whole() {
    let shared = shared(1 << 20);
    let (a, b) = (message(100), message(50));
    let mut both = a.clone();
    both.extend_from_slice(&b[..20]);
    let mut s = body(&shared, Shape::Streaming, &[&both], false);
    assert!(matches!(poll(&mut s), Poll::Ready(Some(Ok(_)))));
    assert_eq!(
        shared.budget.remaining(),
        (1 << 20) - 20,
        "only the second message's first 20 bytes are held"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_not_whole_within_the_timeout_is_refused() {
    let shared = shared(1 << 20);
    let m = message(10);
    let mut b = body(&shared, Shape::Unary, &[&m[..8]], false);
    assert!(matches!(poll(&mut b), Poll::Ready(Some(Ok(_)))));
    assert!(poll(&mut b).is_pending());
    tokio::time::advance(shared.request_timeout).await;
    match poll(&mut b) {
        Poll::Ready(Some(Err(s))) => assert_eq!(s.code(), tonic::Code::DeadlineExceeded),
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(shared.too_slow.get(), 1);
    assert_eq!(shared.budget.remaining(), 1 << 20);
}
