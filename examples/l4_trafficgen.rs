//! Packet generator for benches/compare/l4.sh (not part of boltz): sends
//! IPv4/UDP frames out of an interface at the kernel's pace through the
//! `trafficgen` XDP program in live-frames test-run mode, each with a new
//! source port (a new flow).
//!
//! `l4_trafficgen IFACE DST_MAC SRC_IP DST_IP DST_PORT PACKETS`
//! prints `sent N in S s`.

use std::net::Ipv4Addr;
use std::time::Instant;

use boltz_l4::{dataplane, parse_mac, sys};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 7 {
        return Err("usage: l4_trafficgen IFACE DST_MAC SRC_IP DST_IP DST_PORT PACKETS".into());
    }
    let iface = &a[1];
    let dmac = parse_mac(&a[2]).ok_or("bad DST_MAC")?;
    let smac =
        parse_mac(std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))?.trim())
            .ok_or("bad interface MAC")?;
    let (src, dst): (Ipv4Addr, Ipv4Addr) = (a[3].parse()?, a[4].parse()?);
    let dport: u16 = a[5].parse()?;
    let total: u64 = a[6].parse()?;
    let ifindex = std::fs::read_to_string(format!("/sys/class/net/{iface}/ifindex"))?
        .trim()
        .parse()?;

    let payload = 22; // 64-byte frames
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&((20 + 8 + payload) as u16).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[4, 0]);
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(f.len() + payload, 0);

    let ebpf = dataplane::load_trafficgen(f.as_slice().try_into()?)?;
    let fd = dataplane::program_fd(&ebpf, dataplane::BenchProgram::TrafficGen)?;
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(1 << 20) as u32;
        sys::test_run_live(fd, &f, n, ifindex)?;
        sent += u64::from(n);
    }
    println!("sent {sent} in {:.3} s", t0.elapsed().as_secs_f64());
    Ok(())
}
