//! Keeps the kernel's neighbour entries for backends resolved. The XDP
//! program finds a backend's next hop with `bpf_fib_lookup`, which reads the
//! neighbour table but cannot fill it; a backend without an entry would see
//! its packets dropped (counted as `drop_no_neigh`). Before a table that
//! names a backend goes live, and every few seconds after, the control
//! plane sends one empty UDP datagram to the backend's discard port (9),
//! which makes the kernel resolve (and refresh) the entry.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Probes `addrs` and waits up to `wait` for their IPv4 ARP entries.
pub fn warm(addrs: &[IpAddr], wait: Duration) {
    for &a in addrs {
        let bind: SocketAddr = if a.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
            .parse()
            .expect("literal");
        if let Ok(s) = UdpSocket::bind(bind) {
            let _ = s.send_to(&[], SocketAddr::new(a, 9));
        }
    }
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let arp = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
        let missing = addrs.iter().any(|a| a.is_ipv4() && !resolved(&arp, *a));
        if !missing {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `/proc/net/arp` text has a complete entry (flags 0x2) for `a`.
fn resolved(arp: &str, a: IpAddr) -> bool {
    let want = a.to_string();
    arp.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 4 && f[0] == want && f[2] == "0x2"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_net_arp() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 10.77.0.11       0x1         0x2         02:00:00:00:00:0b     *        eth0\n\
                 10.77.0.12       0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        assert!(resolved(t, "10.77.0.11".parse().unwrap()));
        assert!(!resolved(t, "10.77.0.12".parse().unwrap()));
        assert!(!resolved(t, "10.77.0.13".parse().unwrap()));
    }
}
