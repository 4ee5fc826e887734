//! The price loop: every zone's load interval, each DC's smoothed
//! utilisation moves its price μ one bounded step
//! ([`update_price`](crate::steer::update_price)), and the snapshot is
//! republished.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;

use super::Control;
use crate::steer::update_price;

impl Control {
    /// One step of the price loop for every zone whose load interval has
    /// elapsed. Called from a ticker; `now` is passed for tests.
    /// Returns when the next zone is due.
    pub fn tick(&self, now: Instant) -> Instant {
        let mut inner = self.lock();
        let zones = inner.zones.clone();
        let mut changed = false;
        let mut next = now + Duration::from_secs(1);
        for zone in &zones.zones {
            let zname = zone.origin_str();
            let interval = zone.steering.load_interval;
            match inner.last_price_update.get(&zname) {
                Some(t) if now.duration_since(*t) < interval => {
                    next = next.min(*t + interval);
                    continue;
                }
                _ => next = next.min(now + interval),
            }
            inner.last_price_update.insert(zname.clone(), now);
            for dc in &zone.datacenters {
                if let Some(st) = inner.dcs.get_mut(&(zname.clone(), dc.name.clone())) {
                    let rho = st.load.current(now).utilisation;
                    let mu = update_price(st.mu, rho, &zone.steering.price);
                    if mu != st.mu {
                        if (mu > 0.0) != (st.mu > 0.0) {
                            info!(zone = %zname, dc = %dc.name, mu, utilisation = rho, "price {}", if mu > 0.0 { "raised" } else { "back to zero" });
                        }
                        st.mu = mu;
                    }
                }
            }
            changed = true;
        }
        if changed {
            self.publish(&inner);
        }
        next
    }

    /// Runs the price ticker forever. It sleeps until the next zone is due
    /// (at most a second, so zones added by a reload start promptly) rather
    /// than polling: every wake-up can preempt a DNS worker on its core.
    pub async fn run_ticker(self: Arc<Self>) {
        loop {
            let next = self.tick(Instant::now());
            tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        }
    }
}
