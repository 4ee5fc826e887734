//! Load feeds: boltz polls a DC's load URL (a real local HTTP server here),
//! smooths it, prices the DC when it runs above target, and falls back to
//! the static value when the feed goes stale.

use std::time::Duration;

use crate::harness::*;

#[test]
fn feed_drives_utilisation_and_price_and_goes_stale() {
    let feed = HttpServer::with_body(0, r#"{"utilisation": 1.5, "requests_per_second": 1}"#);
    let load = format!(
        r#"load = {{ url = "http://{}/v1/load", interval = "50ms", timeout = "40ms", stale_after = "400ms", smoothing = 1.0, fallback = 0.25 }}"#,
        feed.addr
    );
    let steering =
        "target_utilisation = 0.8\nprice_step = 0.2\nprice_max = 1.0\nload_interval = \"100ms\"\ndemand_lag = 1";
    let fx = Fixture::new(&zone_toml(steering, &[("fra", &load)], ""));
    let srv = fx.serve();

    srv.wait_for("feed utilisation", Duration::from_secs(10), || {
        let dc = srv.dc("fra");
        dc["load_source"] == "feed" && dc["utilisation"] == 1.5
    });
    srv.wait_for("price at max", Duration::from_secs(10), || {
        srv.dc("fra")["price"] == 1.0
    });

    // requests_per_second is used (÷ capacity 1000) when utilisation is absent.
    feed.set_body(r#"{"requests_per_second": 200}"#);
    srv.wait_for("rate-based utilisation", Duration::from_secs(10), || {
        srv.dc("fra")["utilisation"] == 0.2
    });
    srv.wait_for("price back to 0", Duration::from_secs(10), || {
        srv.dc("fra")["price"] == 0.0
    });

    // Feed gone: after stale_after the static fallback applies.
    feed.stop();
    srv.wait_for("stale fallback", Duration::from_secs(10), || {
        let dc = srv.dc("fra");
        dc["load_source"] == "stale" && dc["utilisation"] == 0.25
    });
}
