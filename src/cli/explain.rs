//! `boltz explain NAME --client IP [--subnet P]`: the steering table for one
//! client, computed offline from the zone files and the geo database, or
//! fetched from a running server's API (then with live health, load and
//! prices).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use boltz_gslb::{explain, parse_explain_args, Explanation, GeoDb, World, ZoneSet};

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The steered name, e.g. www.example.com.
    name: String,
    /// The client (or resolver) address.
    #[arg(long)]
    client: Option<String>,
    /// Explain as if the resolver sent this ECS subnet, e.g. 81.2.69.0/24.
    #[arg(long)]
    subnet: Option<String>,
    /// A or AAAA.
    #[arg(long = "type", default_value = "A")]
    qtype: String,
    /// Zone file or directory (offline mode).
    #[arg(long, default_value = "zones")]
    zones: PathBuf,
    /// Geo database (offline mode).
    #[arg(long, default_value = "geoip/demo.mmdb")]
    geoip: PathBuf,
    /// Ask a running server instead, e.g. http://127.0.0.1:5380.
    #[arg(long)]
    api: Option<String>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: ExplainArgs) -> anyhow::Result<ExitCode> {
    let e = match &a.api {
        Some(url) => remote(url, &a)?,
        None => {
            let (client, subnet, family) =
                parse_explain_args(a.client.as_deref(), a.subnet.as_deref(), Some(&a.qtype))
                    .map_err(anyhow::Error::msg)?;
            let zones =
                ZoneSet::load(&a.zones).map_err(|d| anyhow::anyhow!("zones do not load:\n{d}"))?;
            let geo = GeoDb::open(&a.geoip)
                .with_context(|| format!("geo database {}", a.geoip.display()))?;
            let world = World::cold(Arc::new(zones));
            explain(&world, Some(&geo), &a.name, client, subnet, family)
                .map_err(anyhow::Error::msg)?
        }
    };
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        out!("{}", e.render());
    }
    Ok(ExitCode::SUCCESS)
}

fn remote(url: &str, a: &ExplainArgs) -> anyhow::Result<Explanation> {
    let mut q = vec![("name", a.name.clone()), ("type", a.qtype.clone())];
    if let Some(c) = &a.client {
        q.push(("client", c.clone()));
    }
    if let Some(s) = &a.subnet {
        q.push(("subnet", s.clone()));
    }
    let url = format!("{}/v1/explain", url.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(&url)
            .query(&q)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let body = resp.text().await?;
        if !status.is_success() {
            anyhow::bail!("{url}: {status}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("{url}: unexpected answer"))
    })
}
