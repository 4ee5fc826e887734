//! Harness for the site tests: a site declaration pointing at a real
//! `boltz l7` (`tests/support/l7_process.rs`), and the reconcile loop or
//! report of `boltz-site` running on a runtime of the test's own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use boltz_site::{ComponentStatus, Shared, Site};
use tokio::sync::watch;

use crate::origin::Origin;

/// `datacenters.toml` of one DC, `fra`, whose L7 is `api` with one pool of
/// `origins` (health-checked on `/healthz` every 100 ms) and a route to it.
pub fn declaration(api: &str, origins: &[&Origin], token_file: Option<&str>) -> String {
    let backends: Vec<String> = origins
        .iter()
        .map(|o| format!("{{ address = \"{}\" }}", o.addr))
        .collect();
    let token = token_file.map_or(String::new(), |t| format!("token_file = \"{t}\"\n"));
    format!(
        r#"[datacenters.fra]
location = [50.11, 8.68]
capacity = 1000
ipv4 = ["127.0.0.1"]

[datacenters.fra.dataplane]
interval = "200ms"

[datacenters.fra.l7]
api = "{api}"
{token}
[datacenters.fra.l7.pools.web]
health = {{ path = "/healthz", interval = "100ms", timeout = "1s", rise = 1, fall = 1 }}
backends = [{}]

[[datacenters.fra.l7.routes]]
pool = "web"
"#,
        backends.join(", ")
    )
}

/// A site's loops on a runtime of their own; the declaration can be
/// replaced (a reload).
pub struct Running {
    pub rt: tokio::runtime::Runtime,
    pub desired: watch::Sender<Arc<Site>>,
    pub dir: PathBuf,
}

impl Running {
    pub fn new(dir: &Path, text: &str) -> Running {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let site = load(dir, text);
        let (desired, _) = watch::channel(Arc::new(site));
        Running {
            rt,
            desired,
            dir: dir.to_path_buf(),
        }
    }

    pub fn reconcile(&self) -> Shared {
        let rx = self.desired.subscribe();
        let _g = self.rt.enter();
        boltz_site::spawn_reconcile(boltz_site::Kind::L7, rx)
    }

    /// Replaces the declaration (as a reload does).
    pub fn declare(&self, text: &str) {
        self.desired.send_replace(Arc::new(load(&self.dir, text)));
    }
}

/// `text` written as `dir/datacenters.toml` and checked: DC `fra`.
pub fn load(dir: &Path, text: &str) -> Site {
    let file = dir.join("datacenters.toml");
    std::fs::write(&file, text).unwrap();
    boltz_site::load(&file, "fra").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

pub fn status(s: &Shared) -> ComponentStatus {
    s.lock().unwrap().clone()
}
