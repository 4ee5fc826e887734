//! The simulated clients: resolvers at random routable IPv4 addresses the
//! geo database locates (drawn uniformly from the address space it covers,
//! so a network's share of clients is its share of addresses), or the
//! networks of a CSV with demand weights. Each is placed once, by the same
//! lookup the server does (its /24 as ECS), and keeps that cell.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use boltz_core::hash::splitmix64;
use boltz_gslb::{GeoDb, Placement};
use boltz_steer::LatLon;

/// One resolver and the demand behind it.
#[derive(Clone, Debug)]
pub struct Client {
    /// The address its queries carry as ECS.
    pub addr: IpAddr,
    /// Where the database puts it.
    pub location: LatLon,
    /// Hash of its cell (the draw's client part).
    pub cell: u64,
    /// Relative demand weight (1 for sampled clients).
    pub weight: f64,
    /// The interval phase of its cache expiry.
    pub phase: u32,
}

/// A client population that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientsError {
    /// The database covers no IPv4 address with a location.
    #[error("{0}: the database locates no IPv4 network; nothing to draw clients from")]
    Empty(String),
    /// A CSV line is not `network,weight`.
    #[error("{0}")]
    Csv(String),
}

/// `n` clients at random located addresses of `geo`, deterministic for a
/// seed.
pub fn sample(geo: &GeoDb, n: usize, seed: u64) -> Result<Vec<Client>, ClientsError> {
    let nets: Vec<ipnet::Ipv4Net> = geo
        .ipv4_networks()
        .into_iter()
        .filter_map(|n| match n {
            ipnet::IpNet::V4(v4) => Some(v4),
            ipnet::IpNet::V6(_) => None,
        })
        .collect();
    // Cumulative address counts: a uniform address of the covered space.
    let mut cum = Vec::with_capacity(nets.len());
    let mut total: u64 = 0;
    for n in &nets {
        total += 1u64 << (32 - u32::from(n.prefix_len()));
        cum.push(total);
    }
    if total == 0 {
        return Err(ClientsError::Empty(geo.path().display().to_string()));
    }
    let mut state = seed;
    let mut out = Vec::with_capacity(n);
    let mut tries = 0usize;
    while out.len() < n && tries < n * 20 {
        tries += 1;
        let r = next(&mut state) % total;
        let k = cum.partition_point(|&c| c <= r);
        let before = if k == 0 { 0 } else { cum[k - 1] };
        let addr = u32::from(nets[k].network()) + (r - before) as u32;
        if let Some(c) = place(geo, IpAddr::V4(Ipv4Addr::from(addr)), 1.0, &mut state) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Clients from a CSV of `network,weight` lines (`#` comments and a header
/// allowed): one client at each network's first address, with its weight.
pub fn from_csv(geo: &GeoDb, path: &Path, seed: u64) -> Result<Vec<Client>, ClientsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientsError::Csv(format!("{}: {e}", path.display())))?;
    let mut state = seed;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("network") {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        let mut f = line.split(',');
        let net: ipnet::IpNet = f
            .next()
            .unwrap_or("")
            .trim()
            .parse()
            .map_err(|e| ClientsError::Csv(format!("{at}: network: {e}")))?;
        let weight: f64 = match f.next() {
            Some(w) => w
                .trim()
                .parse()
                .ok()
                .filter(|w: &f64| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| ClientsError::Csv(format!("{at}: weight must be a number ≥ 0")))?,
            None => 1.0,
        };
        match place(geo, net.network(), weight, &mut state) {
            Some(c) => out.push(c),
            None => {
                return Err(ClientsError::Csv(format!(
                    "{at}: {net} is not located by the database"
                )))
            }
        }
    }
    Ok(out)
}

/// The next number of a splitmix64 sequence.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    splitmix64(*state)
}

/// The client at `addr` if the database locates it.
fn place(geo: &GeoDb, addr: IpAddr, weight: f64, state: &mut u64) -> Option<Client> {
    let p = Placement::of(Some(geo), addr);
    Some(Client {
        addr,
        location: p.geo?,
        cell: p.cell_hash,
        weight,
        phase: (next(state) >> 32) as u32,
    })
}
