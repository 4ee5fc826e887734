//! `boltz l7` balancing with real origins on loopback: spread, weights,
//! PeakEWMA and `boltzmann` avoiding a slow backend, outlier ejection and
//! return, a killed backend under load, panic mode, drain, and backends
//! added through the API getting an even spread over reused connections.

use std::time::Duration;

use crate::harness::{backends_toml, load, Origin, Proxy};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn proxy(pool_extra: &str, backends: &str) -> Proxy {
    Proxy::start(&format!(
        r#"
workers = 2
[[listeners]]
address = "127.0.0.1:0"
[pools.web]
{pool_extra}
{backends}
[[routes]]
pool = "web"
"#
    ))
}

fn share(counts: &std::collections::HashMap<u16, usize>, o: &Origin) -> f64 {
    let total: usize = counts.values().sum();
    *counts.get(&o.addr.port()).unwrap_or(&0) as f64 / total as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_backends_get_an_even_spread() {
    let os = [Origin::start(), Origin::start(), Origin::start()];
    // Equal backends take the same 10 ms, as in `weights_are_respected`:
    // P2C weighs latency, and sub-millisecond answers would let the
    // scheduling noise of a busy two-core test machine decide the spread.
    os.iter().for_each(|o| o.set_delay(10));
    let p = proxy("", &backends_toml(&[&os[0], &os[1], &os[2]], &[]));
    let (counts, failed) = load(&client(), &p.url("/"), 3000, 12).await;
    assert_eq!(failed, 0);
    for o in &os {
        let s = share(&counts, o);
        assert!(
            (0.25..0.42).contains(&s),
            "share {s} of {} in {counts:?}",
            o.addr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_are_respected() {
    for lb in [
        "smooth-weighted-round-robin",
        "weighted-round-robin",
        "random",
        "p2c-peak-ewma",
    ] {
        let os = [Origin::start(), Origin::start(), Origin::start()];
        let p = proxy(
            &format!("lb = \"{lb}\""),
            &backends_toml(&[&os[0], &os[1], &os[2]], &[1.0, 2.0, 3.0]),
        );
        // P2C weighs latency too: weights decide among backends whose
        // latencies agree within its margin. Give them all the same 10 ms,
        // so scheduling noise of a busy test machine stays well inside it.
        let p2c = lb == "p2c-peak-ewma";
        if p2c {
            os.iter().for_each(|o| o.set_delay(10));
        }
        let n = if p2c { 900 } else { 3000 };
        let (counts, failed) = load(&client(), &p.url("/"), n, 1).await;
        assert_eq!(failed, 0);
        let (a, b, c) = (
            share(&counts, &os[0]),
            share(&counts, &os[1]),
            share(&counts, &os[2]),
        );
        let tol = if p2c { 0.07 } else { 0.05 };
        assert!((a - 1.0 / 6.0).abs() < tol, "{lb}: {a} {b} {c}");
        assert!((b - 2.0 / 6.0).abs() < tol, "{lb}: {a} {b} {c}");
        assert!((c - 3.0 / 6.0).abs() < tol, "{lb}: {a} {b} {c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_gets_less_traffic() {
    let os = [Origin::start(), Origin::start(), Origin::start()];
    os[2].set_delay(30);
    let p = proxy("", &backends_toml(&[&os[0], &os[1], &os[2]], &[]));
    let (counts, failed) = load(&client(), &p.url("/"), 1500, 8).await;
    assert_eq!(failed, 0);
    let slow = share(&counts, &os[2]);
    assert!(slow < 0.05, "the slow backend took {slow} of {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boltzmann_gives_a_slow_origin_a_smaller_share_and_loses_nothing() {
    // With the latency term (the default) the 40 ms origin is all but
    // avoided; on load alone (capacity 4 each) it holds more requests in
    // flight for longer (Little's law), which is what pushes it down.
    for (extra, most) in [
        ("", 0.1),
        ("boltzmann = { latency_weight = 0, capacity = 4 }", 0.25),
    ] {
        let os = [Origin::start(), Origin::start(), Origin::start()];
        os[0].set_delay(5);
        os[1].set_delay(5);
        os[2].set_delay(40);
        let p = proxy(
            &format!("lb = \"boltzmann\"\n{extra}"),
            &backends_toml(&[&os[0], &os[1], &os[2]], &[]),
        );
        let (counts, failed) = load(&client(), &p.url("/"), 1200, 8).await;
        assert_eq!(failed, 0, "{extra}: {counts:?}");
        let (a, b, slow) = (
            share(&counts, &os[0]),
            share(&counts, &os[1]),
            share(&counts, &os[2]),
        );
        assert!(
            slow < most && a > slow && b > slow,
            "{extra}: the slow origin took {slow} ({a}, {b}) of {counts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_answering_500_is_ejected_and_comes_back() {
    let os = [Origin::start(), Origin::start(), Origin::start()];
    os[0].set_status(500);
    let p = proxy(
        "outlier = { consecutive_5xx = 3, base_ejection = \"1s\" }\nretry = { retries = 0 }",
        &backends_toml(&[&os[0], &os[1], &os[2]], &[]),
    );
    let c = client();
    let (_, failed) = load(&c, &p.url("/"), 300, 4).await;
    assert!(
        failed <= 6,
        "failed {failed}: ejected after 3 errors (per thread race at most a few more)"
    );
    let (_, v) = p.api("GET", "/v1/pools/web", None);
    let b0 = &v["backends"][0];
    assert_eq!(b0["ejected"], true, "{v}");
    assert!(b0["ejections"].as_u64().unwrap() >= 1);
    let before = os[0].requests();
    let (_, failed) = load(&c, &p.url("/"), 200, 4).await;
    assert_eq!(failed, 0, "no traffic to the ejected backend");
    assert_eq!(os[0].requests(), before);
    // Healed: after the ejection time it gets traffic again. All take the
    // same 10 ms (see `equal_backends_get_an_even_spread`), so the two-core
    // host's scheduling noise cannot starve the returning backend.
    os[0].set_status(200);
    os.iter().for_each(|o| o.set_delay(10));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (counts, failed) = load(&c, &p.url("/"), 600, 4).await;
    assert_eq!(failed, 0);
    assert!(share(&counts, &os[0]) > 0.05, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_costs_under_a_tenth_of_a_percent_of_requests() {
    let os = vec![Origin::start(), Origin::start(), Origin::start()];
    let p = proxy(
        "outlier = { consecutive_connect_failures = 2 }",
        &backends_toml(&[&os[0], &os[1], &os[2]], &[]),
    );
    let c = client();
    let url = p.url("/");
    let run = tokio::spawn({
        let c = c.clone();
        async move { load(&c, &url, 6000, 8).await }
    });
    while os[0].requests() < 500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut os = os;
    os.remove(0).kill();
    let (counts, failed) = run.await.unwrap();
    let total: usize = counts.values().sum::<usize>() + failed;
    assert_eq!(total, 6000);
    assert!(
        (failed as f64) < 0.001 * total as f64,
        "{failed} of {total} failed"
    );
    let (_, m) = p.api("GET", "/metrics", None);
    assert!(m.as_str().unwrap().contains("boltz_l7_retries_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_mode_balances_over_all_when_too_few_are_healthy() {
    let os = [Origin::start(), Origin::start(), Origin::start()];
    os[0]
        .behaviour
        .health_status
        .store(503, std::sync::atomic::Ordering::Relaxed);
    os[1]
        .behaviour
        .health_status
        .store(503, std::sync::atomic::Ordering::Relaxed);
    let p = proxy(
        "health = { path = \"/healthz\", interval = \"100ms\", timeout = \"1s\", rise = 1, fall = 1 }\npanic_threshold = 0.5",
        &backends_toml(&[&os[0], &os[1], &os[2]], &[]),
    );
    crate::harness::until("two backends down", Duration::from_secs(5), || {
        let (_, v) = p.api("GET", "/v1/pools/web", None);
        v["backends"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["health"] == "down")
            .count()
            == 2
    });
    crate::harness::until("panic mode", Duration::from_secs(5), || {
        p.api("GET", "/v1/pools/web", None).1["panic"] == true
    });
    let (counts, failed) = load(&client(), &p.url("/"), 900, 6).await;
    assert_eq!(failed, 0);
    for o in &os {
        assert!(
            share(&counts, o) > 0.15,
            "panic spreads over all: {counts:?}"
        );
    }
    let (_, m) = p.api("GET", "/metrics", None);
    assert!(m
        .as_str()
        .unwrap()
        .contains("boltz_l7_pool_panic{pool=\"web\"} 1"));
    // One backend back: 2 of 3 healthy is above the threshold; the down one
    // gets nothing.
    os[1]
        .behaviour
        .health_status
        .store(200, std::sync::atomic::Ordering::Relaxed);
    crate::harness::until("panic over", Duration::from_secs(5), || {
        p.api("GET", "/v1/pools/web", None).1["panic"] == false
    });
    let before = os[0].requests();
    let (_, failed) = load(&client(), &p.url("/"), 300, 6).await;
    assert_eq!(failed, 0);
    assert_eq!(
        os[0].requests(),
        before,
        "a down backend outside panic mode gets nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_in_flight_requests_and_sends_no_new_ones() {
    let os = [Origin::start(), Origin::start()];
    let p = proxy(
        "lb = \"round-robin\"",
        &backends_toml(&[&os[0], &os[1]], &[]),
    );
    let c = client();
    // Hold a streamed response on each backend.
    let mut held = Vec::new();
    for _ in 0..2 {
        let r = c.get(p.url("/hold")).send().await.unwrap();
        held.push(r);
    }
    let body = format!(
        r#"{{"version": 2, "lb": "round-robin", "backends": [
            {{"address": "{}", "state": "drain"}}, {{"address": "{}"}}]}}"#,
        os[0].addr, os[1].addr
    );
    let (code, v) = p.api("PUT", "/v1/pools/web", Some(&body));
    assert_eq!(code, 200, "{v}");
    let before = os[0].requests();
    let (_, failed) = load(&c, &p.url("/"), 200, 4).await;
    assert_eq!(failed, 0);
    assert_eq!(
        os[0].requests(),
        before,
        "a draining backend gets no new request"
    );
    for o in &os {
        o.behaviour.release.notify_waiters();
        o.behaviour.release.notify_one();
    }
    for r in held {
        assert_eq!(
            r.text().await.unwrap(),
            "first;second",
            "in-flight responses finish"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_added_by_the_api_get_reused_connections_and_an_even_spread() {
    let os = [
        Origin::start(),
        Origin::start(),
        Origin::start(),
        Origin::start(),
    ];
    let p = proxy("", &backends_toml(&[&os[0]], &[]));
    let c = client();
    let (_, failed) = load(&c, &p.url("/"), 100, 4).await;
    assert_eq!(failed, 0);
    let list: Vec<String> = os
        .iter()
        .map(|o| format!("{{\"address\": \"{}\"}}", o.addr))
        .collect();
    let (code, v) = p.api(
        "PUT",
        "/v1/pools/web",
        Some(&format!(
            "{{\"version\": 5, \"backends\": [{}]}}",
            list.join(",")
        )),
    );
    assert_eq!(code, 200, "{v}");
    // The same latency everywhere (see `equal_backends_get_an_even_spread`).
    os.iter().for_each(|o| o.set_delay(10));
    let (counts, failed) = load(&c, &p.url("/"), 4000, 8).await;
    assert_eq!(failed, 0);
    for o in &os {
        let s = share(&counts, o);
        assert!((0.17..0.33).contains(&s), "{s} for {}: {counts:?}", o.addr);
        let conns = o.connections.load(std::sync::atomic::Ordering::Relaxed);
        // 2 workers × 8 concurrent requests at most, not one per request.
        assert!(
            conns <= 16,
            "{} opened {conns} connections for ~1000 requests",
            o.addr
        );
    }
    let (_, v) = p.api("GET", "/v1/pools/web", None);
    assert_eq!(v["version"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_update_under_load_loses_nothing_and_keeps_state() {
    let os = [Origin::start(), Origin::start(), Origin::start()];
    let p = proxy("", &backends_toml(&[&os[0], &os[1]], &[]));
    let c = client();
    let url = p.url("/");
    let run = tokio::spawn({
        let c = c.clone();
        async move { load(&c, &url, 5000, 8).await }
    });
    let mut version = 1;
    while !run.is_finished() {
        version += 1;
        let third = if version % 2 == 0 {
            format!(", {{\"address\": \"{}\"}}", os[2].addr)
        } else {
            String::new()
        };
        let body = format!(
            "{{\"version\": {version}, \"backends\": [{{\"address\": \"{}\", \"weight\": {}}}, {{\"address\": \"{}\"}}{third}]}}",
            os[0].addr,
            1 + version % 3,
            os[1].addr
        );
        let (code, v) = p.api("PUT", "/v1/pools/web", Some(&body));
        assert_eq!(code, 200, "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (counts, failed) = run.await.unwrap();
    assert_eq!(failed, 0, "{counts:?}");
    assert!(version > 5, "{version} updates happened under load");
    let (_, v) = p.api("GET", "/v1/pools/web", None);
    let kept = v["backends"][0]["requests"].as_u64().unwrap();
    assert_eq!(
        kept,
        os[0].requests(),
        "the backend's counters survived every update"
    );
    assert!(v["backends"][0]["ewma_ms"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affinity_by_header_and_cookie_sticks_and_bounded_load_spills() {
    let os = [Origin::start(), Origin::start(), Origin::start()];
    let c = client();
    for (lb, key) in [
        ("ring-hash", "hash_on = { header = \"x-user\" }"),
        ("maglev", "hash_on = { cookie = \"sid\" }"),
    ] {
        let p = proxy(
            &format!("lb = \"{lb}\"\n{key}"),
            &backends_toml(&[&os[0], &os[1], &os[2]], &[]),
        );
        let send = |user: usize| {
            let req = c.get(p.url("/"));
            if lb == "ring-hash" {
                req.header("x-user", format!("user-{user}"))
            } else {
                req.header("cookie", format!("theme=dark; sid=s{user}"))
            }
        };
        let mut owner = std::collections::HashMap::new();
        let mut used = std::collections::HashSet::new();
        for round in 0..3 {
            for user in 0..60 {
                let r = send(user).send().await.unwrap();
                let port: u16 = r.headers()["x-backend"].to_str().unwrap().parse().unwrap();
                used.insert(port);
                if round == 0 {
                    owner.insert(user, port);
                } else {
                    assert_eq!(owner[&user], port, "{lb}: user {user} moved");
                }
            }
        }
        assert_eq!(used.len(), 3, "{lb}: keys spread over all backends");
    }
    // Bounded load: one hot key with many requests in flight spills over.
    os[0].set_delay(50);
    os[1].set_delay(50);
    os[2].set_delay(50);
    let p = proxy(
        "lb = \"ring-hash\"\nhash_on = { header = \"x-user\" }\nbounded_load = 1.25",
        &backends_toml(&[&os[0], &os[1], &os[2]], &[]),
    );
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let req = c.get(p.url("/")).header("x-user", "hot");
        tasks.push(tokio::spawn(async move {
            req.send().await.unwrap().headers()["x-backend"]
                .to_str()
                .unwrap()
                .to_string()
        }));
    }
    let mut seen = std::collections::HashSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap());
    }
    assert!(
        seen.len() >= 2,
        "a hot key is spread once its backend is over the bound: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backend_answers_503_and_the_breaker_shows_in_the_api() {
    let o = Origin::start();
    let p = proxy(
        "admission = { max_in_flight = 1, queue = 0 }\nbreaker = { failure_rate = 0.5, min_requests = 4, open_for = \"30s\" }\nretry = { retries = 0 }",
        &backends_toml(&[&o], &[]),
    );
    let c = client();
    let held = c.get(p.url("/hold")).send().await.unwrap();
    let r = c.get(p.url("/")).send().await.unwrap();
    let status = r.status();
    assert_eq!(
        status,
        503,
        "in-flight limit 1, no queue: {}",
        r.text().await.unwrap()
    );
    o.behaviour.release.notify_one();
    assert_eq!(held.text().await.unwrap(), "first;second");
    o.set_status(500);
    // With the held request's success that makes 4 outcomes, 3 failed.
    for _ in 0..3 {
        let r = c.get(p.url("/")).send().await.unwrap();
        let status = r.status();
        assert_eq!(status, 500, "{}", r.text().await.unwrap());
    }
    let (_, v) = p.api("GET", "/v1/pools/web", None);
    assert_eq!(v["backends"][0]["breaker"], "open", "{v}");
    let before = o.requests();
    assert_eq!(
        c.get(p.url("/")).send().await.unwrap().status(),
        503,
        "an open breaker sends nothing"
    );
    assert_eq!(o.requests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upstreams_are_multiplexed() {
    let os = [Origin::start(), Origin::start()];
    let p = proxy("upstream = \"h2c\"", &backends_toml(&[&os[0], &os[1]], &[]));
    let (counts, failed) = load(&client(), &p.url("/"), 600, 8).await;
    assert_eq!(failed, 0);
    assert_eq!(counts.len(), 2);
    for o in &os {
        assert_eq!(o.last_headers.lock().unwrap()[":version"], "HTTP/2.0");
        let conns = o.connections.load(std::sync::atomic::Ordering::Relaxed);
        assert!(conns <= 2, "one h2 connection per worker, not {conns}");
    }
}
