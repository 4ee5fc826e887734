//! `boltz l7` at the protocol edges, with real clients and origins on
//! loopback: forwarding headers and hop-by-hop removal, h2c and TLS (ALPN
//! h2 and http/1.1), streamed bodies, a slow-header client cut off, a
//! request over its time answered 504, rate limiting, routing, malformed API bodies, and graceful shutdown of the
//! real binary with a request in flight.

use std::io::{Read, Write};
use std::time::Duration;

use crate::harness::{backends_toml, Origin, Proxy};

fn proxy_with(extra_top: &str, pool_extra: &str, backends: &str, routes: &str) -> Proxy {
    Proxy::start(&format!(
        r#"
workers = 2
{extra_top}
[[listeners]]
address = "127.0.0.1:0"
[pools.web]
{pool_extra}
{backends}
{routes}
"#
    ))
}

const DEFAULT_ROUTE: &str = "[[routes]]\npool = \"web\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_added_and_hop_by_hop_ones_removed() {
    let o = Origin::start();
    let p = proxy_with("", "", &backends_toml(&[&o], &[]), DEFAULT_ROUTE);
    let c = reqwest::Client::new();
    let r = c
        .get(p.url("/x?y=1"))
        .header("x-forwarded-for", "192.0.2.1")
        .header("connection", "x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("x-end-to-end", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(
        h.get("x-drop-me").is_none(),
        "a header the origin's Connection names is removed"
    );
    assert!(
        h["via"].to_str().unwrap().ends_with("1.1 boltz"),
        "{:?}",
        h.get("via")
    );
    let seen = o.last_headers.lock().unwrap().clone();
    assert_eq!(seen["x-forwarded-for"], "192.0.2.1, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(
        seen["forwarded"],
        format!("for=127.0.0.1;proto=http;host=\"127.0.0.1\"")
    );
    assert_eq!(seen["via"], "1.1 boltz");
    assert_eq!(seen["x-end-to-end"], "kept");
    assert!(
        !seen.contains_key("x-hop") && !seen.contains_key("keep-alive"),
        "{seen:?}"
    );
    assert_eq!(seen["host"], p.addrs[0].to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served() {
    let o = Origin::start();
    let p = proxy_with("", "", &backends_toml(&[&o], &[]), DEFAULT_ROUTE);
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for _ in 0..20 {
        let r = c.get(p.url("/")).send().await.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), 200);
    }
    let seen = o.last_headers.lock().unwrap().clone();
    assert_eq!(seen["via"], "2 boltz");
    assert!(
        seen.contains_key("host"),
        "an h2 authority becomes Host upstream: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_negotiate_h2_or_http1_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let o = Origin::start();
    let p = Proxy::start(&format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
tls = {{ cert = "{d}/cert.pem", key = "{d}/key.pem" }}
[pools.web]
{b}
[[routes]]
pool = "web"
"#,
        d = dir.path().display(),
        b = backends_toml(&[&o], &[])
    ));
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let url = format!("https://localhost:{}/", p.addrs[0].port());
    for (http1, want) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(root.clone())
            .resolve("localhost", p.addrs[0]);
        if http1 {
            b = b.http1_only();
        }
        let r = b.build().unwrap().get(&url).send().await.unwrap();
        assert_eq!(r.version(), want);
        assert_eq!(r.status(), 200);
        assert_eq!(o.last_headers.lock().unwrap()["x-forwarded-proto"], "https");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_in_both_directions() {
    let o = Origin::start();
    let p = proxy_with("", "", &backends_toml(&[&o], &[]), DEFAULT_ROUTE);
    let c = reqwest::Client::new();
    // The first chunk arrives while the origin still holds the second.
    let mut r = c.get(p.url("/hold")).send().await.unwrap();
    let first = r.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"first;");
    o.behaviour.release.notify_one();
    assert_eq!(&r.chunk().await.unwrap().unwrap()[..], b"second");
    // A large upload reaches the origin whole.
    let big = vec![7u8; 8 << 20];
    let r = c.post(p.url("/up")).body(big).send().await.unwrap();
    assert_eq!(
        r.text().await.unwrap(),
        format!("{} {}", o.addr.port(), 8 << 20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_client_is_cut_off() {
    let o = Origin::start();
    let p = proxy_with(
        "[timeouts]\nheader = \"500ms\"",
        "",
        &backends_toml(&[&o], &[]),
        DEFAULT_ROUTE,
    );
    let addr = p.addrs[0];
    let outcome = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
        // Trickle a header byte every 100 ms, never finishing the head.
        for _ in 0..30 {
            std::thread::sleep(Duration::from_millis(100));
            if s.write_all(b"X").is_err() {
                return "closed";
            }
        }
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) | Err(_) => "closed",
            Ok(n) if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408") => "closed",
            Ok(_) => "answered",
        }
    })
    .await
    .unwrap();
    assert_eq!(outcome, "closed");
    assert_eq!(o.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_its_time_gets_504_and_the_connection_lives_on() {
    let o = Origin::start();
    let p = proxy_with(
        "[timeouts]\nrequest = \"300ms\"",
        "retry = { retries = 0 }",
        &backends_toml(&[&o], &[]),
        DEFAULT_ROUTE,
    );
    let h1 = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for c in [&h1, &h2] {
        o.set_delay(3000);
        let t = std::time::Instant::now();
        let r = c.get(p.url("/")).send().await.unwrap();
        let took = t.elapsed();
        assert_eq!(r.status(), 504, "{:?}", r.version());
        // Cut off by its own deadline, not by the backend's answer.
        assert!(took < Duration::from_millis(2500), "{took:?}");
        assert!(took >= Duration::from_millis(300), "{took:?}");
        r.text().await.unwrap();
        // The same client connection serves the next request.
        o.set_delay(0);
        let r = c.get(p.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // A request right after a timed-out one gets its full time again.
    o.set_delay(150);
    for _ in 0..3 {
        assert_eq!(h1.get(p.url("/")).send().await.unwrap().status(), 200);
    }
    let (_, m) = p.api("GET", "/metrics", None);
    let m = m.as_str().unwrap_or_default().to_string();
    assert!(
        m.lines()
            .any(|l| l == "boltz_l7_local_answers_total{reason=\"timeout\"} 2"),
        "{m}"
    );
    // The requests cut off by their limit are counted out again: the
    // in-flight gauge comes back to 0.
    crate::harness::until("in flight back to 0", Duration::from_secs(3), || {
        let (_, m) = p.api("GET", "/metrics", None);
        m.as_str()
            .unwrap_or_default()
            .lines()
            .any(|l| l == "boltz_l7_in_flight 0")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_pick_pools_and_rate_limits_answer_429() {
    let (a, b) = (Origin::start(), Origin::start());
    let p = Proxy::start(&format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
[pools.web]
{}
[pools.api]
{}
[[routes]]
host = "api.example"
path = "/v1"
pool = "api"
rate_limit = {{ rps = 1, burst = 3 }}
[[routes]]
host = "www.example"
pool = "web"
"#,
        backends_toml(&[&a], &[]),
        backends_toml(&[&b], &[])
    ));
    let c = reqwest::Client::new();
    let get = |host: &'static str, path: &'static str| {
        let c = c.clone();
        let url = p.url(path);
        async move { c.get(url).header("host", host).send().await.unwrap() }
    };
    assert_eq!(
        get("www.example", "/v1").await.headers()["x-backend"],
        a.addr.port().to_string()
    );
    let mut codes = Vec::new();
    for _ in 0..5 {
        let r = get("api.example", "/v1/users").await;
        if r.status() == 429 {
            let wait: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(wait >= 1);
        } else {
            assert_eq!(r.headers()["x-backend"], b.addr.port().to_string());
        }
        codes.push(r.status().as_u16());
    }
    assert_eq!(codes, [200, 200, 200, 429, 429], "burst of 3, then limited");
    assert_eq!(get("api.example", "/v2").await.status(), 404, "no route");
}

#[test]
fn malformed_api_bodies_are_refused_naming_the_field() {
    let o = Origin::start();
    let p = proxy_with("", "", &backends_toml(&[&o], &[]), DEFAULT_ROUTE);
    let cases = [
        ("not json", "body"),
        ("[]", "body"),
        ("{\"backends\": []}", "version"),
        ("{\"version\": 0, \"backends\": []}", "version"),
        ("{\"version\": 2}", "backends"),
        (
            "{\"version\": 2, \"backends\": [{\"address\": \"nonsense\"}]}",
            "backends[0].address",
        ),
        (
            "{\"version\": 2, \"backends\": [{\"address\": \"127.0.0.1:1\", \"wieght\": 2}]}",
            "backends[0]",
        ),
        (
            "{\"version\": 2, \"backends\": [{\"address\": \"127.0.0.1:1\", \"weight\": -2}]}",
            "backends[0].weight",
        ),
        (
            "{\"version\": 2, \"lb\": \"fastest\", \"backends\": []}",
            "lb",
        ),
        (
            "{\"version\": 2, \"breaker\": {\"failure_rate\": 3}, \"backends\": []}",
            "breaker.failure_rate",
        ),
    ];
    for (body, field) in cases {
        let (code, v) = p.api("PUT", "/v1/pools/web", Some(body));
        assert_eq!(code, 400, "{body}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains(field),
            "{body}: {v} should name {field}"
        );
    }
    let (code, v) = p.api(
        "PUT",
        "/v1/routes",
        Some("{\"routes\": [{\"pool\": \"nope\"}]}"),
    );
    assert_eq!(code, 400);
    assert!(
        v["error"].as_str().unwrap().contains("routes[0].pool"),
        "{v}"
    );
    // A stale version is a conflict; the pool is unchanged by all of this.
    let ok = format!(
        "{{\"version\": 3, \"backends\": [{{\"address\": \"{}\"}}]}}",
        o.addr
    );
    assert_eq!(p.api("PUT", "/v1/pools/web", Some(&ok)).0, 200);
    assert_eq!(
        p.api("PUT", "/v1/pools/web", Some(&ok.replace("3,", "2,")))
            .0,
        409
    );
    assert_eq!(p.api("GET", "/v1/pools/web", None).1["version"], 3);
    assert_eq!(
        p.api("DELETE", "/v1/pools/web", None).0,
        400,
        "a route still uses it"
    );
}

#[test]
fn the_binary_drains_in_flight_requests_on_sigterm() {
    let o = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("l7.toml");
    std::fs::write(
        &cfg,
        format!(
            "workers = 1\n[[listeners]]\naddress = \"127.0.0.1:{port}\"\n[pools.web]\n{}\n[[routes]]\npool = \"web\"\n",
            backends_toml(&[&o], &[])
        ),
    )
    .unwrap();
    let sock = dir.path().join("api.sock");
    let mut child = std::process::Command::new(crate::BOLTZ)
        .args(["l7", "--config"])
        .arg(&cfg)
        .arg("--api")
        .arg(format!("unix:{}", sock.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert!(line.starts_with("ready listen=127.0.0.1:"), "{line}");
    o.set_delay(800);
    let req = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp
    });
    crate::harness::until(
        "the request to reach the origin",
        Duration::from_secs(5),
        || o.requests() == 1,
    );
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let resp = req.join().unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200"),
        "in-flight request finished: {resp:?}"
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn check_accepts_the_example_and_names_where_a_file_is_wrong() {
    let root = env!("CARGO_MANIFEST_DIR");
    let ok = std::process::Command::new(crate::BOLTZ)
        .args(["l7", "--check", "--config"])
        .arg(format!("{root}/deploy/l7.example.toml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[listeners]]\naddress = \"127.0.0.1:80\"\n[pools.web]\nlb = \"fastest\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::BOLTZ)
        .args(["l7", "--check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:4:6"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let o = Origin::start();
    let p = proxy_with(
        "[timeouts]\nidle = \"300ms\"",
        "",
        &backends_toml(&[&o], &[]),
        DEFAULT_ROUTE,
    );
    let addr = p.addrs[0];
    let closed = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // Say nothing: the proxy hangs up (read returns 0) well before 5 s.
        matches!(s.read(&mut buf), Ok(0))
    })
    .await
    .unwrap();
    assert!(closed, "the idle connection was closed by the proxy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_and_metrics_report_the_traffic() {
    let (a, b) = (Origin::start(), Origin::start());
    let p = proxy_with(
        "capacity_rps = 1000",
        "",
        &backends_toml(&[&a, &b], &[]),
        DEFAULT_ROUTE,
    );
    let c = reqwest::Client::new();
    // Keep traffic flowing over a few sampler ticks (every 200 ms here).
    let url = p.url("/");
    let load = tokio::spawn(async move { crate::harness::load(&c, &url, 3000, 4).await });
    let mut seen = serde_json::Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (code, v) = p.api("GET", "/v1/load", None);
        assert_eq!(code, 200);
        if v["requests_per_second"].as_f64().unwrap_or(0.0) > 0.0 {
            seen = v;
            break;
        }
    }
    let (_, failed) = load.await.unwrap();
    assert_eq!(failed, 0);
    let rps = seen["requests_per_second"]
        .as_f64()
        .expect("a rate while traffic flowed");
    assert!(
        (seen["utilisation"].as_f64().unwrap() - rps / 1000.0).abs() < 1e-9,
        "{seen}"
    );
    assert!(seen["latency_p50_ms"].as_f64().unwrap() > 0.0, "{seen}");
    assert!(seen["latency_p99_ms"].as_f64().unwrap() >= seen["latency_p50_ms"].as_f64().unwrap());
    assert_eq!(seen["error_rate"], 0.0);
    let backends = seen["pools"]["web"]["backends"].as_object().unwrap();
    assert!(
        backends.contains_key(&a.addr.to_string()) && backends.contains_key(&b.addr.to_string())
    );
    let (_, m) = p.api("GET", "/metrics", None);
    let m = m.as_str().unwrap().to_string();
    assert!(m.contains("boltz_l7_requests_total 3000"), "{m}");
    assert!(
        m.contains("boltz_l7_responses_total{class=\"2xx\"} 3000"),
        "{m}"
    );
    assert!(m.contains(&format!(
        "boltz_l7_backend_up{{pool=\"web\",backend=\"{}\"}} 1",
        a.addr
    )));
    crate::exposition::check_exposition("boltz l7 /metrics", &m);
}
