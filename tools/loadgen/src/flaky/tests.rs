use axum::routing::get;

use super::*;

const CYCLE: &[(u64, Mode)] = &[(10, Mode::Up), (5, Mode::Status(503)), (5, Mode::Down)];

#[test]
fn a_cycle_repeats() {
    assert_eq!(mode_at(CYCLE, 0.0), Mode::Up);
    assert_eq!(mode_at(CYCLE, 9.99), Mode::Up);
    assert_eq!(mode_at(CYCLE, 10.0), Mode::Status(503));
    assert_eq!(mode_at(CYCLE, 17.5), Mode::Down);
    assert_eq!(mode_at(CYCLE, 20.0), Mode::Up);
    assert_eq!(mode_at(CYCLE, 31.0), Mode::Status(503));
    assert_eq!(mode_at(CYCLE, -4.0), Mode::Up);
    assert_eq!(mode_at(&[], 3.0), Mode::Up);
}

#[test]
fn labels() {
    let all = [
        Mode::Up,
        Mode::Status(500),
        Mode::RateLimited,
        Mode::Hang,
        Mode::Down,
    ];
    let labels: Vec<String> = all.iter().map(|m| m.label()).collect();
    assert_eq!(labels, ["up", "500", "429", "hang", "down"]);
}

#[tokio::test]
async fn failures_answer_and_are_counted() {
    let counts = Mutex::new(BTreeMap::new());
    let hang = Duration::from_millis(1);
    assert!(failure(Mode::Up, hang, &counts).await.is_none());
    let r = failure(Mode::Status(500), hang, &counts)
        .await
        .expect("an answer");
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let r = failure(Mode::RateLimited, hang, &counts)
        .await
        .expect("an answer");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()),
        Some(&b"2"[..])
    );
    let r = failure(Mode::Hang, hang, &counts).await.expect("an answer");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let got: Vec<(String, u64)> = lock(&counts).clone().into_iter().collect();
    assert_eq!(
        got,
        [
            ("429 Retry-After: 2".to_string(), 1),
            ("500".to_string(), 1),
            ("hung".to_string(), 1)
        ]
    );
}

#[tokio::test]
async fn a_server_goes_down_and_comes_back_on_its_port() {
    let f = Flappy::start(
        "test server",
        Router::new().route("/", get(|| async { "hello" })),
    )
    .await
    .expect("started");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = format!("http://{}/", f.addr);
    let get_text = || async {
        let r = http
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        r.text().await
    };
    assert_eq!(get_text().await.expect("up"), "hello");
    assert!(f.up_since().is_some());

    f.set_mode(Mode::Down).await.expect("down");
    assert_eq!((f.mode(), f.downs(), f.up_since()), (Mode::Down, 1, None));
    assert!(get_text().await.is_err(), "a down server answered");

    f.set_mode(Mode::Up).await.expect("up again");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match get_text().await {
            Ok(t) => {
                assert_eq!(t, "hello");
                break;
            }
            Err(e) if Instant::now() > deadline => panic!("never came back: {e}"),
            Err(_) => tokio::task::yield_now().await,
        }
    }
    assert!(f.up_since().is_some());
}
