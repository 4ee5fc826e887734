//! A pool outside the proxy, for simulators (`boltz simulate servers`):
//! the real [`Backend`](crate::backend) state and the real picker of the
//! catalogue, driven on a simulated clock. Requests are counted in and
//! out and their latencies booked exactly as the proxy books them, so a
//! pick reads the same in-flight counts and PeakEWMA estimates it would
//! read in `boltz l7`.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::backend::{AdminState, Backend, InFlight};
use crate::pick::{Algorithm, PickContext, PickOptions, Picker};

/// Backends with the proxy's default tuning, and a picker over them.
#[derive(Debug)]
pub struct SimPool {
    backends: Vec<Arc<Backend>>,
    picker: Picker,
    /// The pools' default `ewma_decay`, in ns.
    tau_ns: f64,
}

/// One request counted in flight on a backend until [`SimPool::finish`].
#[derive(Debug)]
pub struct Held {
    backend: usize,
    _counted: InFlight,
}

impl SimPool {
    /// A pool of `capacity.len()` backends of weight 1 balanced by
    /// `algorithm` (a catalogue name, e.g. `boltzmann`); `capacity` is each
    /// backend's concurrency, what `boltzmann` counts as fully loaded.
    pub fn new(algorithm: &str, capacity: &[f64]) -> Result<SimPool, String> {
        let algorithm: Algorithm = algorithm.parse().map_err(|e| format!("{e}"))?;
        let backends: Vec<Arc<Backend>> = (0..capacity.len())
            .map(|i| {
                let addr = SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16));
                Arc::new(Backend::new(addr, 1.0, AdminState::Up))
            })
            .collect();
        let opts = PickOptions {
            workers: 1,
            capacity: capacity.to_vec(),
            ..PickOptions::default()
        };
        Ok(SimPool {
            picker: Picker::new(algorithm, &backends, opts),
            backends,
            tau_ns: crate::config::d_decay().as_nanos() as f64,
        })
    }

    /// The backend the picker chooses at simulated time `now_ns`.
    pub fn pick(&self, now_ns: u64) -> Option<usize> {
        self.picker.pick(&self.backends, &PickContext::at(now_ns))
    }

    /// Counts a request in on backend `i`.
    pub fn start(&self, i: usize) -> Held {
        Held {
            backend: i,
            _counted: self.backends[i].start(),
        }
    }

    /// Counts it out, booking its latency as a success.
    pub fn finish(&self, held: Held, latency_ns: u64, now_ns: u64) {
        self.backends[held.backend].record(latency_ns, false, now_ns, self.tau_ns);
        drop(held);
    }

    /// Requests in flight on backend `i`.
    pub fn in_flight(&self, i: usize) -> u32 {
        self.backends[i].in_flight()
    }
}

/// Makes the calling thread's picks repeatable.
pub fn reseed(seed: u64) {
    crate::pick::reseed(seed);
}
