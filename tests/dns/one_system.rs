//! One system on loopback: `boltz serve --datacenter` drives a real `boltz
//! l7` in front of real origins, steers on what that data plane reports,
//! and publishes the report for the DNS nodes of other sites; two nodes fed
//! the same reports give every client the same answer.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::exposition::check_exposition;
use crate::harness::{addrs, boltz_check, boltz_ok, Fixture, Server, GEO_CSV, Q};
use crate::l7_process::{free_port, L7};
use crate::origin::Origin;

const LIMIT: Duration = Duration::from_secs(20);

/// One DC of `datacenters.toml`: `name` at `loc`, answering `ip`, its
/// report fed from the DNS node whose API is on `api_port`, and its inside:
/// the L7 at `l7` with a pool of `origins` (health-checked every 100 ms).
fn dc(name: &str, loc: &str, ip: &str, api_port: u16, l7: &L7, origins: &[&Origin]) -> String {
    let backends: Vec<String> = origins
        .iter()
        .map(|o| format!("{{ address = \"{}\" }}", o.addr))
        .collect();
    format!(
        r#"
[datacenters.{name}]
location = {loc}
capacity = 100
ipv4 = ["{ip}"]
load = {{ url = "http://127.0.0.1:{api_port}/v1/site", interval = "100ms", stale_after = "5s" }}

[datacenters.{name}.dataplane]
interval = "200ms"

[datacenters.{name}.l7]
api = "{api}"

[datacenters.{name}.l7.pools.web]
health = {{ path = "/healthz", interval = "100ms", timeout = "1s", rise = 1, fall = 1 }}
backends = [{backends}]

[[datacenters.{name}.l7.routes]]
pool = "web"
"#,
        api = l7.api(),
        backends = backends.join(", ")
    )
}

const ZONE: &str = r#"origin = "example.com."
ttl = 300
soa = { mname = "ns1.example.com.", rname = "hostmaster.example.com.", serial = 1 }
ns = ["ns1.example.com."]

[steering]
load_interval = "1s"

[records]
www = { type = "steered", datacenters = ["fra", "iad"], ttl = 30 }
"#;

/// A fixture whose zones are `ZONE` and `datacenters`.
fn fixture(datacenters: &str) -> Fixture {
    let fx = Fixture::with_geo(ZONE, GEO_CSV);
    std::fs::write(fx.zones().join("datacenters.toml"), datacenters).unwrap();
    fx
}

/// The answer for a client in `subnet`.
fn answer(s: &Server, subnet: &str) -> Vec<String> {
    addrs(&s.query(&Q::new("www.example.com.", RecordType::A).ecs(subnet)))
}

const LONDON: &str = "81.2.69.0/24";

#[test]
fn a_site_node_drives_its_l7_and_steers_on_its_report() {
    let (a, b) = (Origin::start(), Origin::start());
    let l7_dir = tempfile::tempdir().unwrap();
    let mut l7 = L7::start(l7_dir.path(), None);
    let api_port = free_port();
    let iad = "\n[datacenters.iad]\nlocation = [38.95, -77.45]\nipv4 = [\"127.0.0.3\"]\n";
    let fx = fixture(
        &(dc(
            "fra",
            "[50.11, 8.68]",
            "127.0.0.2",
            api_port,
            &l7,
            &[&a, &b],
        ) + iad),
    );
    let api = format!("127.0.0.1:{api_port}");
    let s = Server::start(&fx, &["--datacenter", "fra", "--api", &api]);

    // The node pushes its DC's pool and route: traffic flows through L7.
    s.wait_for("the pool pushed to boltz l7", LIMIT, || {
        l7.get("/v1/pools")["pools"].get("web").is_some() && l7.fetch() == 200
    });
    s.wait_for("fra's report up on /v1/site", LIMIT, || {
        let (code, body) = s.api_get("/v1/site");
        code == 200 && body.contains("\"health\":\"up\"") && body.contains("\"datacenter\":\"fra\"")
    });
    s.wait_for("the component in sync in /v1/status", LIMIT, || {
        let st = s.status();
        st["site"]["components"][0]["state"] == "in-sync"
            && st["site"]["components"][0]["component"] == "l7"
    });
    assert_eq!(s.dc("fra")["feed_health"], "up");
    assert_eq!(answer(&s, LONDON), ["127.0.0.2"], "London → fra");
    let (code, metrics) = s.api_get("/metrics");
    assert_eq!(code, 200);
    check_exposition("boltz serve --datacenter", &metrics);
    assert!(
        metrics.contains(
            "boltz_site_component_state{dc=\"fra\",component=\"l7\",state=\"in-sync\"} 1"
        ),
        "{metrics}"
    );

    let explained = boltz_ok(
        [
            "explain",
            "www.example.com",
            "--subnet",
            LONDON,
            "--api",
            &format!("http://{api}"),
        ],
        None,
    );
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(text.contains("site fra: report up"), "{text}");
    assert!(
        text.contains(&format!("  l7 unix:{} in-sync", l7.sock().display())),
        "{text}"
    );

    // Requests through the proxy from a client in 127.0.1.0/24 (placed at
    // 50.0, 8.0 by the test's geo database): the site locates them into
    // its report's demand map.
    let from = |n: u8| {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&std::net::SocketAddr::from(([127, 0, 1, n], 0)).into())
            .unwrap();
        sock.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], l7.listen)).into())
            .unwrap();
        let s: std::net::TcpStream = sock.into();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        crate::harness::http_over(s, "www.example.com", "GET", "/", None, None).0
    };
    s.wait_for("a demand map at 50, 8 in fra's report", LIMIT, || {
        assert_eq!(from(7), 200);
        let (_, body) = s.api_get("/v1/site");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        doc["demand"].as_array().is_some_and(|cells| {
            cells
                .iter()
                .any(|c| c[0] == 50.0 && c[1] == 8.0 && c[2].as_f64().unwrap_or(0.0) > 0.0)
        })
    });

    // Its origins fail their health checks: the pool empties, the report
    // says down, and fra leaves the answers.
    let t0 = Instant::now();
    a.behaviour.health_status.store(500, Relaxed);
    b.behaviour.health_status.store(500, Relaxed);
    s.wait_for("fra out of the answers", LIMIT, || {
        answer(&s, LONDON) == ["127.0.0.3"]
    });
    eprintln!(
        "origins failing → fra out of the answers: {:?}",
        t0.elapsed()
    );
    let fra = s.dc("fra");
    assert_eq!(fra["status"], "down", "{fra}");
    assert!(
        fra["feed_reason"]
            .as_str()
            .unwrap()
            .contains("no backend takes traffic"),
        "{fra}"
    );

    // Back: fra returns (through slow start).
    a.behaviour.health_status.store(200, Relaxed);
    b.behaviour.health_status.store(200, Relaxed);
    s.wait_for("fra back in the answers", Duration::from_secs(60), || {
        answer(&s, LONDON) == ["127.0.0.2"]
    });

    // The daemon restarts empty: the node pushes again, traffic resumes.
    let t0 = Instant::now();
    l7.restart();
    s.wait_for("traffic back through the restarted L7", LIMIT, || {
        l7.fetch() == 200
    });
    eprintln!("boltz l7 restart → traffic back: {:?}", t0.elapsed());

    // A broken declaration changes nothing: the reload is refused, the
    // pool and the answers stay.
    let file = fx.zones().join("datacenters.toml");
    let good = std::fs::read_to_string(&file).unwrap();
    let broken = good.replace("pool = \"web\"", "pool = \"nope\"");
    std::fs::write(&file, &broken).unwrap();
    s.wait_for("the reload refused", LIMIT, || {
        s.log().contains("reload rejected")
    });
    assert_eq!(l7.get("/v1/routes")["routes"][0]["pool"], "web");
    assert_eq!(l7.fetch(), 200);
    assert_eq!(answer(&s, LONDON), ["127.0.0.2"]);
    let (code, text) = boltz_check(&fx.zones());
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("datacenters.toml:")
            && text.contains("routes[0].pool: no pool named \"nope\""),
        "{text}"
    );
    std::fs::write(&file, &good).unwrap();
    boltz_ok(["check".as_ref(), fx.zones().as_os_str()], None);
}

/// Two sites, each with its DNS node and its L7: both nodes read each
/// other's reports (and their own, by the same feed), so for every client
/// they give the same answer, before and after one site's pool dies.
#[test]
fn two_sites_fed_the_same_reports_answer_alike() {
    let origins = [Origin::start(), Origin::start()];
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let l7s = [
        L7::start(dirs[0].path(), None),
        L7::start(dirs[1].path(), None),
    ];
    let ports = [free_port(), free_port()];
    let fx = fixture(
        &(dc(
            "fra",
            "[50.11, 8.68]",
            "127.0.0.2",
            ports[0],
            &l7s[0],
            &[&origins[0]],
        ) + &dc(
            "iad",
            "[38.95, -77.45]",
            "127.0.0.3",
            ports[1],
            &l7s[1],
            &[&origins[1]],
        )),
    );
    let apis = ports.map(|p| format!("127.0.0.1:{p}"));
    let nodes = [
        Server::start(&fx, &["--datacenter", "fra", "--api", &apis[0]]),
        Server::start(&fx, &["--datacenter", "iad", "--api", &apis[1]]),
    ];
    let subnets: Vec<String> = GEO_CSV
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|n| !n.contains(':'))
        .map(String::from)
        .collect();
    let agree = |want_fra: bool| {
        let views: Vec<_> = nodes.iter().map(|n| n.dc("fra")).collect();
        let up = views.iter().all(|v| (v["status"] != "down") == want_fra);
        let prices: Vec<_> = nodes
            .iter()
            .map(|n| (n.dc("fra")["price"].clone(), n.dc("iad")["price"].clone()))
            .collect();
        up && prices[0] == prices[1]
            && subnets
                .iter()
                .all(|sn| answer(&nodes[0], sn) == answer(&nodes[1], sn))
    };
    for n in &nodes {
        n.wait_for("both sites reported up", LIMIT, || {
            n.dc("fra")["feed_health"] == "up" && n.dc("iad")["feed_health"] == "up"
        });
    }
    nodes[0].wait_for("both nodes agreeing", LIMIT, || agree(true));
    let fra_answers = subnets
        .iter()
        .filter(|sn| answer(&nodes[0], sn) == ["127.0.0.2"])
        .count();
    assert!(fra_answers > 0, "some client is sent to fra");

    origins[0].behaviour.health_status.store(500, Relaxed);
    nodes[0].wait_for("both nodes without fra, agreeing", LIMIT, || agree(false));
    assert!(subnets
        .iter()
        .all(|sn| answer(&nodes[1], sn) == ["127.0.0.3"]));
}
