use std::path::PathBuf;

use super::*;

fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("datacenters.toml");
    std::fs::write(&file, text).unwrap();
    (dir, file)
}

const GOOD: &str = r#"
[datacenters.fra]
location = [50.11, 8.68]
capacity = 9000
ipv4 = ["192.0.2.10"]
ipv6 = ["2001:db8::10"]

[datacenters.fra.dataplane]
interval = "2s"
degraded_below = 0.6

[datacenters.fra.l4]
api = "unix:/run/l4-fra.sock"
[[datacenters.fra.l4.services]]
vip = "tcp:192.0.2.10:80"
capacity_pps = 100000
backends = [{ address = "10.1.0.11", weight = 2 }, { address = "10.1.0.12" }]

[datacenters.fra.l7]
api = "http://127.0.0.1:5391"
[datacenters.fra.l7.pools.web]
lb = "least-request"
backends = [{ address = "10.1.0.21:8080" }, { address = "10.1.0.22:8080", weight = 3 }]
[[datacenters.fra.l7.routes]]
path = "/"
pool = "web"

[datacenters.iad]
location = [38.95, -77.45]
ipv4 = ["192.0.2.20"]
"#;

#[test]
fn a_site_is_read_with_its_inside() {
    let (_d, file) = write(GOOD);
    let sites = check_file(&file).unwrap();
    assert_eq!(sites.len(), 2);
    let fra = load(&file, "fra").unwrap();
    assert_eq!(fra.capacity, 9000.0);
    assert_eq!(fra.dataplane.interval, Duration::from_secs(2));
    assert_eq!(fra.dataplane.degraded_below, 0.6);
    let l4 = fra.l4.as_ref().unwrap();
    assert_eq!(l4.api.to_string(), "unix:/run/l4-fra.sock");
    let svc = &l4.services["tcp:192.0.2.10:80"];
    // Canonical: defaults filled in the way boltz l4 reports them.
    assert_eq!(svc.spec["capacity_pps"].as_f64(), Some(100000.0));
    assert!(svc.spec.get("ring_size").is_some(), "{}", svc.spec);
    assert!(svc.spec.get("version").is_none());
    let l7 = fra.l7.as_ref().unwrap();
    assert_eq!(l7.api.to_string(), "http://127.0.0.1:5391");
    assert_eq!(l7.pools["web"].backends.len(), 2);
    assert_eq!(l7.routes[0].pool, "web");
}

#[test]
fn a_dc_without_an_inside_cannot_be_run() {
    let (_d, file) = write(GOOD);
    let e = load(&file, "iad").unwrap_err().to_string();
    assert!(e.contains("datacenters.iad declares no l4 or l7"), "{e}");
    let e = load(&file, "sin").unwrap_err().to_string();
    assert!(e.contains("no datacenters.sin"), "{e}");
}

/// Every message of `text`'s check, each with its line.
fn problems(text: &str) -> Vec<(usize, String)> {
    let (_d, file) = write(text);
    check_file(&file)
        .unwrap_err()
        .0
        .into_iter()
        .map(|d| (d.line, d.message))
        .collect()
}

#[test]
fn a_vip_must_be_an_answer_address() {
    let text = GOOD.replace("vip = \"tcp:192.0.2.10:80\"", "vip = \"tcp:192.0.2.99:80\"");
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].1.contains("datacenters.fra.l4.services[0].vip: 192.0.2.99 is not one of the datacenter's answer addresses"),
        "{p:?}"
    );
    assert!((14..=17).contains(&p[0].0), "at the service's table: {p:?}");
}

#[test]
fn a_route_to_an_unknown_pool_is_named_where_it_is() {
    let text = GOOD.replace("pool = \"web\"", "pool = \"api\"");
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].1
            .contains("datacenters.fra.l7.routes[0].pool: no pool named \"api\""),
        "{p:?}"
    );
    assert_eq!(p[0].0, 24, "{p:?}");
}

#[test]
fn bodies_are_checked_by_the_components_own_parsers() {
    let text = GOOD
        .replace("capacity_pps = 100000", "capacity_pps = -1")
        .replace("weight = 3 }", "weight = 3, colour = 1 }");
    let p = problems(&text);
    let all = format!("{p:?}");
    assert!(
        all.contains("datacenters.fra.l4.services[0].capacity_pps"),
        "{all}"
    );
    assert!(
        all.contains("datacenters.fra.l7.pools.web.backends[1].colour"),
        "{all}"
    );
    assert_eq!(
        p.len(),
        2,
        "the route to the broken pool is not reported too: {all}"
    );
    let text = GOOD.replace("lb = \"least-request\"", "lb = \"fastest\"");
    let all = format!("{:?}", problems(&text));
    assert!(all.contains("datacenters.fra.l7.pools.web.lb"), "{all}");
    let text = GOOD.replace(
        "{ address = \"10.1.0.21:8080\" }",
        "{ address = \"10.1.0.21:8080\", weight = -2 }",
    );
    let all = format!("{:?}", problems(&text));
    assert!(
        all.contains("datacenters.fra.l7.pools.web.backends[0].weight"),
        "{all}"
    );
}

#[test]
fn endpoints_thresholds_and_keys_are_checked() {
    let text = GOOD
        .replace("api = \"unix:/run/l4-fra.sock\"", "api = \"tcp://x\"")
        .replace(
            "degraded_below = 0.6",
            "degraded_below = 0.6\ndown_below = 0.8",
        )
        .replace("interval = \"2s\"", "interval = \"2 fortnights\"");
    let all = format!("{:?}", problems(&text));
    assert!(all.contains("datacenters.fra.l4.api"), "{all}");
    assert!(
        all.contains("down_below (0.8) is above degraded_below (0.6)"),
        "{all}"
    );
    assert!(all.contains("datacenters.fra.dataplane.interval"), "{all}");
    let text = GOOD.replace(
        "[datacenters.fra.l7]\n",
        "[datacenters.fra.l7]\ncolour = 1\n",
    );
    let p = problems(&text);
    assert!(
        p[0].1.contains("unknown field `colour`") && p[0].0 == 20,
        "{p:?}"
    );
}

#[test]
fn a_token_file_is_read_beside_the_declaration() {
    let text = GOOD.replace(
        "api = \"http://127.0.0.1:5391\"",
        "api = \"http://127.0.0.1:5391\"\ntoken_file = \"l7.token\"",
    );
    let (d, file) = write(&text);
    // Each site's token is on that site's machine: check does not read it.
    check_file(&file).unwrap();
    let e = load(&file, "fra").unwrap_err().to_string();
    assert!(
        e.contains("datacenters.fra.l7.token_file: cannot read"),
        "{e}"
    );
    std::fs::write(d.path().join("l7.token"), "s3cret\n").unwrap();
    let fra = load(&file, "fra").unwrap();
    match &fra.l7.unwrap().api {
        Endpoint::Tcp { token, .. } => assert_eq!(token.as_deref(), Some("s3cret")),
        other => panic!("{other}"),
    }
}
