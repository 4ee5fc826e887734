//! `boltz l4`: the L4 data plane. An XDP program (`bpf/balancer.c`) sends
//! each VIP's packets to a backend by a Maglev table and a connection table,
//! IP-in-IP encapsulated (DSR) or by MAC rewrite; this module is its control
//! plane: the table builder ([`maglev`]), the shared byte layouts ([`abi`]),
//! raw `bpf(2)` calls ([`sys`]), neighbour warming ([`neigh`]), loading and pinning ([`dataplane`]), the
//! service model ([`service`]), the state machine that writes the tables
//! ([`control`]) and the local API ([`api`]).

pub mod abi;
pub mod api;
pub mod control;
pub mod dataplane;
pub mod maglev;
pub mod neigh;
pub mod service;
pub mod sys;
