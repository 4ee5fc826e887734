//! The policies compared, each one a zone: the operator's zone file with
//! its `[steering]` table changed, compiled by the server's own zone
//! compiler and run by the server's own control plane. So "balance" is
//! exactly what `boltz serve` does with that file.

use std::path::Path;

use boltz_gslb::ZoneSet;

/// A steering policy the simulator can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The zone as written (the controller `boltz serve` runs).
    Zone,
    /// The first controller with its defaults: fixed-step dual ascent,
    /// T following global utilisation, target 0.85.
    Step,
    /// The first controller at a fixed T of 0.1.
    StepCold,
    /// Boltzmann softening at T = 0.1 and no load prices at all.
    FixedT,
    /// The nearest DC, always (what gdnsd's distance mode does).
    Nearest,
    /// No controller: the decentralised agent model (`agents`), DCs that
    /// delegate, pull and shut down on their own.
    Agents,
    /// The zone as written, but its DCs' feeds carry no demand map: the
    /// `balance` controller gropes by per-DC Newton steps.
    Newton,
}

impl Policy {
    /// Every policy, in table order.
    pub const ALL: [Policy; 7] = [
        Policy::Nearest,
        Policy::FixedT,
        Policy::Step,
        Policy::StepCold,
        Policy::Agents,
        Policy::Newton,
        Policy::Zone,
    ];

    /// Its name in tables, files and `--policies`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Zone => "balance",
            Policy::Step => "step",
            Policy::StepCold => "step-t0.1",
            Policy::FixedT => "fixed-t0.1",
            Policy::Nearest => "nearest",
            Policy::Agents => "agents",
            Policy::Newton => "newton",
        }
    }

    /// Whether the DCs' feeds carry where their demand comes from.
    pub fn maps_demand(self) -> bool {
        self != Policy::Newton
    }

    /// The policy of a name.
    pub fn parse(s: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == s)
    }

    /// `[steering]` keys this policy sets over the zone's.
    fn overrides(self) -> &'static [(&'static str, Setting)] {
        use Setting::*;
        match self {
            // Agents do not use the zone's steering (the run asks the
            // agent model instead of the decision).
            Policy::Zone | Policy::Agents | Policy::Newton => &[],
            Policy::Step => &[
                ("controller", Str("step")),
                ("temperature", Str("utilisation")),
                ("target_utilisation", Num(0.85)),
                ("price_step", Num(0.5)),
            ],
            Policy::StepCold => &[
                ("controller", Str("step")),
                ("temperature", Num(0.1)),
                ("target_utilisation", Num(0.85)),
                ("price_step", Num(0.5)),
            ],
            Policy::FixedT => &[
                ("controller", Str("step")),
                ("temperature", Num(0.1)),
                ("price_step", Num(0.0)),
            ],
            Policy::Nearest => &[
                ("controller", Str("step")),
                ("temperature", Num(0.001)),
                ("price_step", Num(0.0)),
            ],
        }
    }
}

/// A value of a `[steering]` key.
#[derive(Clone, Copy, Debug)]
enum Setting {
    Str(&'static str),
    Num(f64),
}

/// The zone of `text` (from `file`) as `policy` runs it, with every steered
/// name's TTL set to `ttl` seconds (resolvers cache for the scenario's
/// lag). Errors are the zone compiler's, `file:line:col`.
pub fn zone_for(file: &Path, text: &str, policy: Policy, ttl: u32) -> Result<ZoneSet, String> {
    // The zone as written must compile: its errors name real lines.
    ZoneSet::parse_one(file, text).map_err(|d| d.to_string())?;
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let steering = doc
        .entry("steering")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(t) = steering {
        for (k, v) in policy.overrides() {
            let v = match *v {
                Setting::Str(s) => toml::Value::String(s.into()),
                Setting::Num(x) => toml::Value::Float(x),
            };
            t.insert((*k).into(), v);
        }
    }
    // Every DC reports through a feed, as a site's DNS node does: the run
    // hands each interval's report over in-process (no polling), so the
    // URL is never fetched. Unsmoothed, so a report is the interval's
    // load. A DC with its own feed keeps its settings.
    if let Some(toml::Value::Table(dcs)) = doc.get_mut("datacenters") {
        for (_, dc) in dcs.iter_mut() {
            if let toml::Value::Table(dc) = dc {
                dc.entry("load").or_insert_with(|| {
                    let mut feed = toml::Table::new();
                    feed.insert("url".into(), "http://simulated.invalid/v1/site".into());
                    feed.insert("smoothing".into(), toml::Value::Float(1.0));
                    toml::Value::Table(feed)
                });
            }
        }
    }
    if let Some(toml::Value::Table(records)) = doc.get_mut("records") {
        for (_, v) in records.iter_mut() {
            set_steered_ttl(v, ttl);
        }
    }
    let text = toml::to_string(&doc).map_err(|e| e.to_string())?;
    let zone = ZoneSet::parse_one(file, &text).map_err(|d| d.to_string())?;
    Ok(ZoneSet::new(vec![zone]))
}

fn set_steered_ttl(v: &mut toml::Value, ttl: u32) {
    match v {
        toml::Value::Array(items) => items.iter_mut().for_each(|i| set_steered_ttl(i, ttl)),
        toml::Value::Table(t) if t.get("type").and_then(|x| x.as_str()) == Some("steered") => {
            t.insert("ttl".into(), toml::Value::Integer(i64::from(ttl)));
        }
        _ => {}
    }
}
