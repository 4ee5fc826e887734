//! What an operator asks of the state owner through the local API: drain
//! or undrain a DC, pin or release its utilisation, read every DC's health.

use std::collections::HashMap;

use tracing::{info, warn};

use super::{Control, ControlError, DcState, Inner, Key};
use boltz_health::{Health, HealthStatus};

impl Control {
    /// Keys of DCs named `dc`, optionally limited to one zone.
    pub(super) fn keys_for(
        inner: &Inner,
        dc: &str,
        zone: Option<&str>,
    ) -> Result<Vec<Key>, ControlError> {
        let zone = match zone {
            Some(z) => {
                let zs = inner
                    .zones
                    .by_origin(z)
                    .ok_or_else(|| ControlError::NoSuchZone(z.to_string()))?;
                Some(zs.origin_str())
            }
            None => None,
        };
        let keys: Vec<Key> = inner
            .dcs
            .keys()
            .filter(|(z, d)| d == dc && zone.as_ref().is_none_or(|want| want == z))
            .cloned()
            .collect();
        if keys.is_empty() {
            return Err(ControlError::NoSuchDatacenter(dc.to_string()));
        }
        Ok(keys)
    }

    /// Applies `change` to the DC named `dc` in every zone (or in one),
    /// then publishes; returns how many zones have it.
    fn change_dc(
        &self,
        dc: &str,
        zone: Option<&str>,
        mut change: impl FnMut(&Key, &mut DcState) -> Result<(), ControlError>,
    ) -> Result<usize, ControlError> {
        let mut inner = self.lock();
        let keys = Self::keys_for(&inner, dc, zone)?;
        for k in &keys {
            if let Some(st) = inner.dcs.get_mut(k) {
                change(k, st)?;
            }
        }
        self.publish(&mut inner);
        Ok(keys.len())
    }

    /// Drains (or undrains) a DC in every zone, or in one.
    pub fn set_drain(
        &self,
        dc: &str,
        zone: Option<&str>,
        drained: bool,
    ) -> Result<usize, ControlError> {
        self.change_dc(dc, zone, |k, st| {
            if st.drained != drained {
                warn!(zone = %k.0, dc = %k.1, drained, "admin drain changed");
            }
            st.drained = drained;
            Ok(())
        })
    }

    /// Sets (Some) or clears (None) an operator override of a DC's
    /// utilisation. It acts through the price at the next load interval.
    pub fn set_load(
        &self,
        dc: &str,
        zone: Option<&str>,
        utilisation: Option<f64>,
    ) -> Result<usize, ControlError> {
        self.change_dc(dc, zone, |k, st| {
            st.load
                .set_override(utilisation)
                .map_err(|e| ControlError::InvalidUtilisation(e.to_string()))?;
            st.fresh = true;
            info!(zone = %k.0, dc = %k.1, ?utilisation, "load override");
            Ok(())
        })
    }

    /// Sets a DC's health as a probe would report it: what an offline
    /// driver (`boltz simulate`) uses for a DC that fails and recovers.
    pub fn set_health(
        &self,
        dc: &str,
        zone: Option<&str>,
        up: bool,
    ) -> Result<usize, ControlError> {
        self.change_dc(dc, zone, |_, st| {
            st.health.state = if up { Health::Up } else { Health::Down };
            Ok(())
        })
    }

    /// Health details of every DC (for the status API).
    pub fn health_of(&self) -> HashMap<Key, HealthStatus> {
        let inner = self.lock();
        inner
            .dcs
            .iter()
            .map(|(k, v)| (k.clone(), v.health.clone()))
            .collect()
    }
}
