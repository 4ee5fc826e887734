//! `boltz l4` end to end in network namespaces: a client, the balancer
//! (generic XDP on its veth) and three backends running `boltz l4 decap`,
//! all on one bridge. UDP datagrams and TCP connections to the VIP must land
//! on the backends the Maglev table predicts, established connections must
//! survive a reweight, 50 table swaps under traffic and a daemon restart
//! must lose nothing. The namespaces, the bpffs mount and every process are
//! removed at the end, also when an assertion fails. Needs root, `ip` and an
//! XDP build; elsewhere the test says why it skips.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boltz_l4::{abi, parse_spec, Vip};

use crate::lan::{in_ns, missing, Daemon, Lan};

const VIP: &str = "10.77.1.100";
const LB: &str = "10.77.0.2";
const CLIENT: &str = "10.77.0.10";
const BACKENDS: [&str; 3] = ["10.77.0.11", "10.77.0.12", "10.77.0.13"];

/// Everything the test creates; dropping it removes all of it (the daemon
/// first, then the namespaces and the bpffs).
struct World {
    daemon: Option<Daemon>,
    lan: Lan,
}

impl World {
    fn sock(&self) -> PathBuf {
        self.lan.dir.path().join("l4.sock")
    }

    fn build() -> World {
        let mut lan = Lan::new("bz");
        lan.host("c", CLIENT);
        lan.host("l", LB);
        for (b, addr) in ["b1", "b2", "b3"].into_iter().zip(BACKENDS) {
            lan.host(b, addr);
            lan.decap_backend(b, VIP);
        }
        lan.exec(
            &lan.ns("c"),
            &["ip", "route", "add", &format!("{VIP}/32"), "via", LB],
        );
        World { daemon: None, lan }
    }

    fn start_daemon(&mut self) {
        let api = format!("unix:{}", self.sock().display());
        let state = self.lan.dir.path().join("state.json");
        self.daemon = Some(self.lan.l4("l", &api, &state, &["--flood-limit", "0"]));
    }

    fn kill_daemon(&mut self) {
        // SIGKILL: the hardest stop; the pinned link must keep forwarding.
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
    }

    fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let s = UnixStream::connect(self.sock()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        crate::api::http_over(s, "l4", method, path, Some(body), None)
    }

    fn put(&self, vip: &str, body: &str) {
        let (code, text) = self.http("PUT", &format!("/v1/services/{vip}"), body);
        let log = self
            .daemon
            .as_ref()
            .map(|d| format!("{}: {}", d.name, d.log()));
        assert_eq!(code, 200, "PUT {vip}: {text}\n{log:?}");
    }

    /// Runs `f` on a thread in host `n`'s namespace.
    fn in_ns<T: Send + 'static>(&self, n: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_ns(&self.lan.ns_path(n), f)
    }
}

/// UDP and TCP servers on the VIP inside each backend namespace; each
/// answers with its backend number.
fn start_servers(w: &World, stop: &Arc<AtomicBool>) {
    for (i, b) in ["b1", "b2", "b3"].into_iter().enumerate() {
        let (udp, tcp) = w.in_ns(b, || {
            (
                UdpSocket::bind((VIP, 5000)).unwrap(),
                TcpListener::bind((VIP, 6000)).unwrap(),
            )
        });
        let tag = b'1' + i as u8;
        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let s = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = udp.recv_from(&mut buf) {
                    buf[0] = tag;
                    let _ = udp.send_to(&buf[..n.max(1)], from);
                }
            }
        });
        std::thread::spawn(move || {
            for conn in tcp.incoming() {
                let Ok(mut c) = conn else { return };
                std::thread::spawn(move || {
                    let mut b = [0u8; 1];
                    while c.read_exact(&mut b).is_ok() {
                        if c.write_all(&[tag]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
}

fn spec_body(version: u64, weights: [u32; 3]) -> String {
    let backends: Vec<String> = BACKENDS
        .iter()
        .zip(weights)
        .map(|(a, w)| format!(r#"{{"address":"{a}","weight":{w}}}"#))
        .collect();
    format!(
        r#"{{"version":{version},"backends":[{}]}}"#,
        backends.join(",")
    )
}

/// The backend number (1..=3) the first table sends a flow to.
fn predicted(vip: &str, body: &str, src: SocketAddr, dport: u16, proto: u8) -> u8 {
    let v: Vip = vip.parse().unwrap();
    let spec = parse_spec(&v, body.as_bytes()).unwrap();
    let table = spec.table(None).unwrap();
    let key = abi::flow_key(src.ip(), src.port(), VIP.parse().unwrap(), dport, proto);
    b'1' + table[abi::flow_hash(&key) as usize % table.len()] as u8
}

/// One request/answer on a TCP connection: the backend number.
fn tcp_ask(c: &mut TcpStream) -> std::io::Result<u8> {
    c.write_all(b"?")?;
    let mut b = [0u8; 1];
    c.read_exact(&mut b)?;
    Ok(b[0])
}

/// One UDP request/answer from a fresh source port; None when lost.
fn udp_ask(sock: &UdpSocket) -> Option<u8> {
    let mut buf = [0u8; 64];
    sock.send_to(b"?", (VIP, 5000)).ok()?;
    match sock.recv_from(&mut buf) {
        Ok((n, _)) if n > 0 => Some(buf[0]),
        _ => None,
    }
}

#[test]
fn balancer_in_namespaces() {
    if let Some(why) = missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let mut w = World::build();
    w.start_daemon();
    let stop = Arc::new(AtomicBool::new(false));
    start_servers(&w, &stop);

    let udp_vip = format!("udp:{VIP}:5000");
    let tcp_vip = format!("tcp:{VIP}:6000");
    let v1 = spec_body(1, [1, 1, 1]);
    w.put(&udp_vip, &v1);
    w.put(&tcp_vip, &v1);

    // 1. UDP: 300 flows (source ports) land where the table says.
    let socks: Vec<UdpSocket> = w.in_ns("c", || {
        (0..300)
            .map(|_| UdpSocket::bind((CLIENT, 0)).unwrap())
            .collect()
    });
    let mut split = [0u32; 3];
    for s in &socks {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let Some(got) = udp_ask(s) else {
            panic!(
                "no UDP answer; balancer counters:\n{}",
                w.http("GET", "/metrics", "").1
            );
        };
        let want = predicted(
            &udp_vip,
            &v1,
            s.local_addr().unwrap(),
            5000,
            abi::IPPROTO_UDP,
        );
        assert_eq!(got, want, "flow from {}", s.local_addr().unwrap());
        split[(got - b'1') as usize] += 1;
    }
    assert!(split.iter().all(|&n| n > 60), "UDP split {split:?}");

    // 2. TCP: 60 connections, each on its predicted backend, kept open.
    let mut conns: Vec<(TcpStream, u8)> = w
        .in_ns("c", || {
            (0..60)
                .map(|_| TcpStream::connect((VIP, 6000)).unwrap())
                .collect::<Vec<_>>()
        })
        .into_iter()
        .map(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let got = tcp_ask(&mut c).expect("a TCP answer");
            let want = predicted(
                &tcp_vip,
                &v1,
                c.local_addr().unwrap(),
                6000,
                abi::IPPROTO_TCP,
            );
            assert_eq!(got, want, "TCP connection from {}", c.local_addr().unwrap());
            (c, got)
        })
        .collect();

    // 3. Reweight 1:1:1 -> 5:1:1 (and drain backend 3): established
    // connections keep their backend, new ones avoid the drained one.
    w.put(
        &tcp_vip,
        &spec_body(2, [5, 1, 1]).replace(r#""weight":1}]"#, r#""weight":1,"state":"drain"}]"#),
    );
    for (c, was) in &mut conns {
        let got = tcp_ask(c).expect("an established connection survives the reweight");
        assert_eq!(got, *was);
    }
    let fresh: Vec<u8> = w.in_ns("c", || {
        (0..60)
            .map(|_| tcp_ask(&mut TcpStream::connect((VIP, 6000)).unwrap()).unwrap())
            .collect()
    });
    assert!(
        !fresh.contains(&b'3'),
        "a drained backend got a new connection"
    );

    // 4. 50 table swaps while UDP traffic flows: nothing lost.
    let sent = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let run = Arc::new(AtomicBool::new(true));
    let traffic = {
        let socks: Vec<UdpSocket> = w.in_ns("c", || {
            (0..64)
                .map(|_| UdpSocket::bind((CLIENT, 0)).unwrap())
                .collect()
        });
        let (sent, lost, run) = (sent.clone(), lost.clone(), run.clone());
        std::thread::spawn(move || {
            for s in &socks {
                s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            }
            let mut i = 0;
            while run.load(Ordering::Relaxed) {
                sent.fetch_add(1, Ordering::Relaxed);
                if udp_ask(&socks[i % socks.len()]).is_none() {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        })
    };
    let t0 = Instant::now();
    for version in 2..52u64 {
        let w1 = 1 + (version % 5) as u32;
        w.put(&udp_vip, &spec_body(version, [w1, 1, 2]));
    }
    let swap_time = t0.elapsed();

    // 5. Kill the daemon under traffic, keep sending, restart: nothing lost,
    // and the restarted daemon knows the services (next version applies).
    w.kill_daemon();
    std::thread::sleep(Duration::from_millis(500));
    w.start_daemon();
    let (code, list) = w.http("GET", "/v1/services", "");
    assert_eq!(code, 200);
    assert!(
        list.contains("udp:10.77.1.100:5000") && list.contains("\"version\":51"),
        "{list}"
    );
    w.put(&udp_vip, &spec_body(52, [1, 1, 1]));
    std::thread::sleep(Duration::from_millis(300));
    run.store(false, Ordering::Relaxed);
    traffic.join().unwrap();
    let (sent, lost) = (sent.load(Ordering::Relaxed), lost.load(Ordering::Relaxed));
    eprintln!(
        "50 swaps in {swap_time:?}; {sent} UDP exchanges during swaps and restart, {lost} lost"
    );
    assert!(sent > 200, "traffic ran ({sent} exchanges)");
    assert_eq!(lost, 0, "datagrams lost during swaps or the restart");

    // 6. The API reports load in the shape boltz serve reads.
    std::thread::sleep(Duration::from_millis(2100));
    let (code, load) = w.http("GET", "/v1/load", "");
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&load).unwrap();
    assert!(doc["utilisation"].is_number(), "{load}");
    assert!(
        doc["vips"][&udp_vip]["packets"].as_u64().unwrap() > 0,
        "{load}"
    );
    let (code, metrics) = w.http("GET", "/metrics", "");
    assert_eq!(code, 200);
    assert!(metrics.contains("boltz_l4_vip_packets_total{vip=\"udp:10.77.1.100:5000\"}"));
    crate::exposition::check_exposition("boltz l4 /metrics", &metrics);
    let (code, err) = w.http(
        "PUT",
        &format!("/v1/services/{udp_vip}"),
        r#"{"version":99,"backends":[{"address":"x"}]}"#,
    );
    assert_eq!(code, 400);
    assert!(err.contains("backends[0].address"), "{err}");
    let (code, err) = w.http(
        "PUT",
        &format!("/v1/services/{udp_vip}"),
        &spec_body(3, [1, 1, 1]),
    );
    assert_eq!(code, 409, "{err}");

    stop.store(true, Ordering::Relaxed);
}
