//! What the transports tell the handler: which one a query came over, and
//! how large its response may be there.

/// Our EDNS UDP payload size: 1232 avoids IP fragmentation on any path
/// (DNS flag day 2020).
pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;

/// The transport a query arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: responses limited by the client's EDNS payload (512 without).
    Udp,
    /// TCP: responses up to 64 KiB.
    Tcp,
}

/// The largest response allowed: TCP's 64 KiB, or over UDP the client's
/// EDNS payload size clamped to [512, ours] (512 without EDNS).
pub fn response_limit(transport: Transport, client_payload: Option<u16>, ours: u16) -> usize {
    match (transport, client_payload) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, Some(p)) => usize::from(p.clamp(512, ours.max(512))),
        (Transport::Udp, None) => 512,
    }
}
