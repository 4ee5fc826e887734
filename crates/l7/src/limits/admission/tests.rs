//! Tests of admission: no cap, a cap without and with a queue, timeouts,
//! resizing in place, lifting the cap, and configuration checks.

use super::*;

fn cfg(max: Option<u32>, queue: u32, timeout_ms: u64) -> AdmissionConfig {
    AdmissionConfig {
        max_in_flight: max,
        queue,
        queue_timeout: Duration::from_millis(timeout_ms),
    }
}

#[tokio::test]
async fn admission_without_a_cap_admits_everyone() {
    let a = Admission::new(&AdmissionConfig::default());
    assert_eq!(a.max_in_flight(), None);
    for _ in 0..100 {
        assert!(a.enter().await.unwrap().is_none());
    }
}

#[tokio::test]
async fn admission_caps_and_refuses_without_a_queue() {
    let a = Admission::new(&cfg(Some(2), 0, 1000));
    let p1 = a.enter().await.unwrap().unwrap();
    let _p2 = a.enter().await.unwrap().unwrap();
    assert_eq!(a.enter().await.unwrap_err(), Full);
    drop(p1);
    assert!(a.enter().await.unwrap().is_some());
}

#[tokio::test]
async fn admission_queue_waits_for_a_permit_and_is_bounded() {
    let a = Arc::new(Admission::new(&cfg(Some(1), 1, 60_000)));
    let held = a.enter().await.unwrap().unwrap();
    let waiter = tokio::spawn({
        let a = a.clone();
        async move { a.enter().await.map(|p| p.is_some()) }
    });
    while a.waiting() == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(a.enter().await.unwrap_err(), Full, "queue of one is full");
    drop(held);
    assert_eq!(waiter.await.unwrap(), Ok(true));
    assert_eq!(a.waiting(), 0);
}

#[tokio::test]
async fn admission_wait_times_out_and_leaves_the_queue() {
    let a = Admission::new(&cfg(Some(1), 5, 20));
    let _held = a.enter().await.unwrap().unwrap();
    assert_eq!(a.enter().await.unwrap_err(), Full);
    assert_eq!(a.waiting(), 0);
    // A caller that gives up first also leaves the queue.
    let a = Admission::new(&cfg(Some(1), 5, 60_000));
    let _held = a.enter().await.unwrap().unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(10), a.enter())
        .await
        .is_err());
    assert_eq!(a.waiting(), 0);
}

async fn fill(a: &Admission) -> Vec<OwnedSemaphorePermit> {
    let mut v = Vec::new();
    while let Ok(Some(p)) = a.enter().await {
        v.push(p);
    }
    v
}

#[tokio::test]
async fn admission_resizes_in_place() {
    let a = Admission::new(&cfg(Some(3), 0, 1000));
    let mut held = fill(&a).await;
    assert_eq!(held.len(), 3);
    a.set(&cfg(Some(1), 0, 1000));
    assert_eq!(a.max_in_flight(), Some(1));
    // The three stay valid; nothing new until only one is held.
    held.pop();
    assert!(a.enter().await.is_err());
    held.pop();
    assert!(a.enter().await.is_err());
    held.pop();
    assert_eq!(fill(&a).await.len(), 1);
    a.set(&cfg(Some(4), 0, 1000));
    assert_eq!(fill(&a).await.len(), 4);

    // Shrink then grow while permits are out: the debt is cancelled.
    let held = fill(&a).await;
    assert_eq!(held.len(), 4);
    a.set(&cfg(Some(1), 0, 1000));
    a.set(&cfg(Some(2), 0, 1000));
    drop(held);
    assert_eq!(fill(&a).await.len(), 2);
    // Lifted and put back: the same size.
    a.set(&cfg(None, 0, 1000));
    assert!(a.enter().await.unwrap().is_none());
    a.set(&cfg(Some(2), 0, 1000));
    assert_eq!(fill(&a).await.len(), 2);
}

#[tokio::test]
async fn lifting_the_cap_releases_waiters() {
    let a = Arc::new(Admission::new(&cfg(Some(1), 3, 60_000)));
    let _held = a.enter().await.unwrap().unwrap();
    let waiter = tokio::spawn({
        let a = a.clone();
        async move { a.enter().await.map(|p| p.is_some()) }
    });
    while a.waiting() == 0 {
        tokio::task::yield_now().await;
    }
    a.set(&cfg(None, 0, 1000));
    assert_eq!(waiter.await.unwrap(), Ok(false));
}

#[test]
fn admission_config_parses_and_validates() {
    let c: AdmissionConfig =
        toml::from_str("max_in_flight = 10\nqueue = 5\nqueue_timeout = \"250ms\"").unwrap();
    assert_eq!(c, cfg(Some(10), 5, 250));
    let d: AdmissionConfig = toml::from_str("").unwrap();
    assert_eq!(d, AdmissionConfig::default());
    assert_eq!(d.queue_timeout, Duration::from_secs(1));
    assert!(toml::from_str::<AdmissionConfig>("queue_timeout = 5").is_err());
    assert!(toml::from_str::<AdmissionConfig>("max = 5").is_err());
    let e = cfg(Some(0), 0, 1).validate("pools.p.backends[0].admission");
    assert_eq!(
        e,
        ["pools.p.backends[0].admission.max_in_flight: must be at least 1"]
    );
    let e = cfg(None, 3, 0).validate("a");
    assert!(
        e[0].starts_with("a.queue: ") && e[1].starts_with("a.queue_timeout: "),
        "{e:?}"
    );
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(
        json,
        r#"{"max_in_flight":10,"queue":5,"queue_timeout":"250ms"}"#
    );
}
