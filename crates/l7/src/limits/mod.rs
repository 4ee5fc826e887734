//! Admission control and budgets of `boltz l7`, all lock-free on the
//! request path, one limiter per file (each with its configuration):
//!
//! - `token_bucket`: a GCRA token bucket for a route's request rate.
//! - `retry_budget`: a Finagle-style retry budget that keeps retries to a
//!   fraction of the traffic.
//! - `concurrency`: a Gradient2 adaptive concurrency limiter that shrinks
//!   when latency rises above its long-term floor.
//! - `admission`: a per-backend in-flight cap with a bounded, time-limited
//!   wait queue.

mod admission;
mod concurrency;
mod retry_budget;
mod token_bucket;

pub use admission::{Admission, AdmissionConfig};
pub use concurrency::{ConcurrencyConfig, ConcurrencyLimiter, ConcurrencyPermit};
pub use retry_budget::{RetryBudget, RetryConfig};
pub use token_bucket::{retry_after_secs, RateLimitConfig, TokenBucket};
