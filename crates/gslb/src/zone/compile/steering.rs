//! The `[steering]` table: defaults for what is left out, and a check of
//! every setting (temperature, distance scale, prices, load interval,
//! epoch, all-down policy, unknown-location rule).

use std::net::IpAddr;
use std::time::Duration;

use toml::Spanned;

use super::Ctx;
use std::collections::HashMap;

use hickory_proto::rr::LowerName;

use crate::steer::{Controller, LatLon, PriceParams, Temperature};
use crate::zone::model::SteeringDef;
use crate::zone::{AllDown, Node, Steering, UnknownLocation};

pub(super) fn steering(cx: &mut Ctx<'_>, def: Option<&Spanned<SteeringDef>>) -> Steering {
    let mut s = default_steering();
    let Some(def) = def else { return s };
    let d = def.get_ref();
    numbers(cx, d, &mut s);
    if let Some(t) = &d.temperature {
        if let Some(fixed) = fixed_temperature(cx, t, s.temperature) {
            s.temperature = fixed;
        }
    }
    if let Some(li) = &d.load_interval {
        match boltz_core::duration::parse_duration(li.get_ref()) {
            Ok(v) if v >= Duration::from_millis(10) => s.load_interval = v,
            Ok(_) => cx.err(li.span(), "steering.load_interval must be at least 10ms"),
            Err(m) => cx.err(li.span(), format!("steering.load_interval: {m}")),
        }
    }
    if let Some(c) = &d.controller {
        match c.get_ref().as_str() {
            "balance" => s.price.controller = Controller::Balance,
            "step" => s.price.controller = Controller::Step,
            other => cx.err(
                c.span(),
                format!("steering.controller must be \"balance\" or \"step\", not {other:?}"),
            ),
        }
    }
    if let Some(l) = &d.demand_lag {
        match l.get_ref() {
            toml::Value::String(a) if a == "auto" => {}
            toml::Value::Integer(n) if (1..=MAX_LAG).contains(n) => {
                s.price.lag = *n as u32;
                s.auto_lag = false;
            }
            other => cx.err(
                l.span(),
                format!("steering.demand_lag must be \"auto\" or a whole number of load intervals from 1 to {MAX_LAG}, not {other}"),
            ),
        }
    }
    let slow = match &d.slow_start {
        Some(v) => match boltz_core::duration::parse_duration(v.get_ref()) {
            Ok(v) => v,
            Err(m) => {
                cx.err(v.span(), format!("steering.slow_start: {m}"));
                DEFAULT_SLOW_START
            }
        },
        None => DEFAULT_SLOW_START,
    };
    s.price.slow_start = intervals(slow, s.load_interval);
    if let Some(e) = &d.epoch {
        if *e.get_ref() < 0 {
            cx.err(e.span(), "steering.epoch must be ≥ 0");
        } else {
            s.epoch = *e.get_ref() as u64;
        }
    }
    if let Some(a) = &d.all_down {
        if let Some(policy) = all_down(cx, a) {
            s.all_down = policy;
        }
    }
    if let Some(u) = &d.unknown_location {
        if let Some(rule) = unknown_location(cx, u) {
            s.unknown_location = rule;
        }
    }
    s
}

/// The default ρ*: high enough that the settled distance stays near the
/// capacity-respecting optimum, low enough that the settled band (4 % under
/// it) and a step's overshoot keep every DC under capacity.
const DEFAULT_TARGET: f64 = 0.97;
/// The default T while load feeds are fresh: within 1.5 % of the optimum's
/// distance in the standard world, and the fastest to settle there
/// (`simulate/results/2026-12-07-sweep.txt`: 7 intervals from a cold start
/// at 0.1 with a step of 3, against 11 at 0.05 and 17 at 0.1 with a step of 1).
const DEFAULT_T_MIN: f64 = 0.1;
/// The default largest move of a price in one step: the distance energy
/// between far DCs, so a price can cross a region in a step when demand
/// there is stiff (the step is Newton's; this only bounds it).
const DEFAULT_STEP: f64 = 3.0;
/// How long a returning DC ramps by default.
const DEFAULT_SLOW_START: Duration = Duration::from_secs(30);
/// The default load interval.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// The largest demand lag, in load intervals.
const MAX_LAG: i64 = 60;

/// Whole load intervals in `d`, rounded up.
fn intervals(d: Duration, interval: Duration) -> u32 {
    let n = d.as_secs_f64() / interval.as_secs_f64().max(1e-3);
    n.ceil().clamp(0.0, 1e6) as u32
}

/// `demand_lag = "auto"`: answers are cached for up to the longest steered
/// TTL, so demand answers a price after that many load intervals (at
/// least one: a load sample is taken over the interval after the price).
pub(super) fn auto_lag(nodes: &HashMap<LowerName, Node>, interval: Duration) -> u32 {
    let ttl = nodes
        .values()
        .filter_map(|n| n.steered.as_ref())
        .map(|s| s.ttl)
        .max()
        .unwrap_or(0);
    intervals(Duration::from_secs(u64::from(ttl)), interval).clamp(1, MAX_LAG as u32)
}

/// A zone's steering without a `[steering]` table.
fn default_steering() -> Steering {
    Steering {
        temperature: Temperature::Auto {
            min: DEFAULT_T_MIN,
            max: 1.0,
        },
        distance_scale_km: 2000.0,
        price: PriceParams {
            controller: Controller::Balance,
            target_utilisation: DEFAULT_TARGET,
            step: DEFAULT_STEP,
            max: 20.0,
            lag: 1,
            slow_start: intervals(DEFAULT_SLOW_START, DEFAULT_INTERVAL),
        },
        auto_lag: true,
        load_interval: DEFAULT_INTERVAL,
        all_down: AllDown::ServeAll,
        unknown_location: UnknownLocation::WeightOnly,
        epoch: 0,
        degraded_ttl_factor: 0.5,
    }
}

/// The numeric settings: automatic temperature bounds, distance scale,
/// price parameters and the degraded TTL factor.
fn numbers(cx: &mut Ctx<'_>, d: &SteeringDef, s: &mut Steering) {
    let (mut tmin, mut tmax) = (DEFAULT_T_MIN, 1.0);
    positive(cx, &d.temperature_min, "temperature_min", false, &mut tmin);
    positive(cx, &d.temperature_max, "temperature_max", false, &mut tmax);
    positive(
        cx,
        &d.distance_scale_km,
        "distance_scale_km",
        false,
        &mut s.distance_scale_km,
    );
    positive(
        cx,
        &d.target_utilisation,
        "target_utilisation",
        false,
        &mut s.price.target_utilisation,
    );
    positive(cx, &d.price_step, "price_step", true, &mut s.price.step);
    positive(cx, &d.price_max, "price_max", true, &mut s.price.max);
    positive(
        cx,
        &d.degraded_ttl_factor,
        "degraded_ttl_factor",
        false,
        &mut s.degraded_ttl_factor,
    );
    if s.degraded_ttl_factor > 1.0 {
        if let Some(v) = &d.degraded_ttl_factor {
            cx.err(v.span(), "steering.degraded_ttl_factor must be in (0, 1]");
        }
    }
    if tmin > tmax {
        if let Some(v) = &d.temperature_min {
            cx.err(
                v.span(),
                format!("steering.temperature_min {tmin} is above temperature_max {tmax}"),
            );
        }
    }
    s.temperature = Temperature::Auto {
        min: tmin,
        max: tmax,
    };
}

/// Stores `v` in `out` if it is finite and positive (or zero, when allowed).
fn positive(
    cx: &mut Ctx<'_>,
    v: &Option<Spanned<f64>>,
    what: &str,
    allow_zero: bool,
    out: &mut f64,
) {
    if let Some(v) = v {
        let x = *v.get_ref();
        if !x.is_finite() || x < 0.0 || (!allow_zero && x == 0.0) {
            let bound = if allow_zero { "≥ 0" } else { "> 0" };
            cx.err(
                v.span(),
                format!("steering.{what} must be {bound} (got {x})"),
            );
        } else {
            *out = x;
        }
    }
}

/// `temperature`: `Some` for a fixed number or `"utilisation"` (the first
/// design's automatic T, for comparisons), `None` for `"auto"` (keep the
/// automatic bounds) or an error.
fn fixed_temperature(
    cx: &mut Ctx<'_>,
    t: &Spanned<toml::Value>,
    bounds: Temperature,
) -> Option<Temperature> {
    match t.get_ref() {
        toml::Value::String(a) if a == "auto" => None,
        toml::Value::String(a) if a == "utilisation" => {
            // `numbers` has set the automatic bounds; this only changes
            // what they follow.
            match bounds {
                Temperature::Auto { min, max } => Some(Temperature::Utilisation { min, max }),
                other => Some(other),
            }
        }
        toml::Value::Float(x) if *x > 0.0 && x.is_finite() => Some(Temperature::Fixed(*x)),
        toml::Value::Integer(x) if *x > 0 => Some(Temperature::Fixed(*x as f64)),
        other => {
            cx.err(
                t.span(),
                format!("steering.temperature must be \"auto\", \"utilisation\" or a number > 0 (got {other})"),
            );
            None
        }
    }
}

/// `all_down`: `"serve-all"`, `"servfail"` or `{ fallback = [addresses] }`.
fn all_down(cx: &mut Ctx<'_>, a: &Spanned<toml::Value>) -> Option<AllDown> {
    match a.get_ref() {
        toml::Value::String(v) if v == "serve-all" => Some(AllDown::ServeAll),
        toml::Value::String(v) if v == "servfail" => Some(AllDown::ServFail),
        toml::Value::Table(t) if t.len() == 1 && t.contains_key("fallback") => {
            let mut addrs = Vec::new();
            match &t["fallback"] {
                toml::Value::Array(items) => {
                    for i in items {
                        match i.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                            Some(ip) => addrs.push(ip),
                            None => cx.err(
                                a.span(),
                                format!("steering.all_down.fallback: `{i}` is not an IP address"),
                            ),
                        }
                    }
                }
                _ => cx.err(
                    a.span(),
                    "steering.all_down.fallback must be a list of addresses",
                ),
            }
            if addrs.is_empty() {
                cx.err(
                    a.span(),
                    "steering.all_down: fallback needs at least one address",
                );
            }
            Some(AllDown::Fallback(addrs))
        }
        other => {
            cx.err(
                a.span(),
                format!("steering.all_down must be \"serve-all\", \"servfail\" or {{ fallback = [...] }} (got {other})"),
            );
            None
        }
    }
}

/// `unknown_location`: `"weight"` or `[latitude, longitude]`.
fn unknown_location(cx: &mut Ctx<'_>, u: &Spanned<toml::Value>) -> Option<UnknownLocation> {
    match u.get_ref() {
        toml::Value::String(v) if v == "weight" => Some(UnknownLocation::WeightOnly),
        toml::Value::Array(items) if items.len() == 2 => {
            let f = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
            match (f(&items[0]), f(&items[1])) {
                (Some(lat), Some(lon))
                    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
                {
                    Some(UnknownLocation::At(LatLon { lat, lon }))
                }
                _ => {
                    cx.err(
                        u.span(),
                        "steering.unknown_location must be [latitude, longitude] in range",
                    );
                    None
                }
            }
        }
        other => {
            cx.err(
                u.span(),
                format!("steering.unknown_location must be \"weight\" or [latitude, longitude] (got {other})"),
            );
            None
        }
    }
}
