//! The UDP transport built for throughput: one socket per worker thread,
//! all bound to the same address with `SO_REUSEPORT` so the kernel spreads
//! flows over them, each drained in batches with `recvmmsg` and answered in
//! batches with `sendmmsg`. Workers are plain threads running a blocking
//! loop: no task per query, no async machinery, buffers allocated once.
//! A socket bound to the wildcard address answers from the address each
//! query was sent to (packet info), so one `--listen 0.0.0.0:53` serves
//! every address of the host, anycast ones included.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tracing::debug;

use super::handler::Handler;
use super::transport::Transport;

/// Datagrams per `recvmmsg`/`sendmmsg` call.
const BATCH: usize = 32;
/// Largest query accepted; bigger datagrams are dropped (a query this size
/// is not a query).
const MAX_QUERY: usize = 4096;

/// Binds `n` sockets to `addr` with `SO_REUSEPORT`. With port 0 the first
/// socket picks the port and the others join it.
pub fn bind_reuseport(addr: SocketAddr, n: usize) -> io::Result<Vec<UdpSocket>> {
    let mut socks = Vec::with_capacity(n.max(1));
    let mut at = addr;
    for _ in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(at), Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_port(true)?;
        if at.is_ipv6() {
            s.set_only_v6(true)?;
        }
        // Room for bursts while a worker is busy with a batch.
        let _ = s.set_recv_buffer_size(4 << 20);
        dont_fragment(&s, at.is_ipv6());
        if at.ip().is_unspecified() {
            packet_info(&s, at.is_ipv6())?;
        }
        s.bind(&at.into())?;
        let sock: UdpSocket = s.into();
        at = sock.local_addr()?;
        socks.push(sock);
    }
    Ok(socks)
}

/// Sets DF on responses and ignores learned path MTUs (`PMTUDISC_PROBE`),
/// as RFC 9715 recommends for DNS over UDP: a response is never fragmented
/// on the way (fragments are a cache-poisoning vector), a spoofed ICMP
/// "fragmentation needed" cannot shrink what we send, and answers that do
/// not fit the 1232-byte EDNS limit go TC and then TCP. For IPv4 a DF
/// packet also carries IP ID 0, which spares the kernel a per-packet
/// hashed ID. Best effort: a kernel without the option keeps its default.
fn dont_fragment(s: &Socket, v6: bool) {
    let (level, name, value) = if v6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_PROBE,
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        )
    };
    if let Err(e) = set_int(s, level, name, value) {
        debug!(error = %e, "PMTUDISC_PROBE not set");
    }
}

/// `setsockopt` of an int option.
fn set_int(
    s: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a valid socket fd and a pointer to a live c_int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// On a socket bound to the wildcard address, asks the kernel for each
/// query's destination address (IP_PKTINFO, IPV6_RECVPKTINFO): the worker
/// hands it back with the answer, so the answer leaves from the address
/// the query was sent to. Without it the kernel would pick the source by
/// route, and a resolver (or an anycast client) drops an answer from an
/// address it did not ask.
fn packet_info(s: &Socket, v6: bool) -> io::Result<()> {
    if v6 {
        set_int(s, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)
    } else {
        set_int(s, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
    }
}

/// Room for one packet-info control message (cmsghdr + in6_pktinfo, the
/// larger), 8-byte aligned.
const CONTROL: usize = 64;

/// Makes a received IP_PKTINFO usable to send with: the interface index
/// cleared, so the kernel routes the answer and uses `ipi_spec_dst` (the
/// address the query came to) as its source. IPv6 keeps the index (a
/// link-local destination needs it).
fn reply_control(hdr: &mut libc::msghdr) {
    // SAFETY: msg_control/msg_controllen describe a buffer the kernel filled
    // with control messages; CMSG_FIRSTHDR/NXTHDR stay within it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                let info = libc::CMSG_DATA(c).cast::<libc::in_pktinfo>();
                (*info).ipi_ifindex = 0;
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
}

/// Starts one worker thread per socket.
pub fn spawn_workers(
    socks: Vec<UdpSocket>,
    handler: Arc<Handler>,
) -> io::Result<Vec<std::thread::JoinHandle<()>>> {
    socks
        .into_iter()
        .enumerate()
        .map(|(i, sock)| {
            let h = handler.clone();
            std::thread::Builder::new()
                .name(format!("boltz-udp-{i}"))
                .spawn(move || worker(&sock, &h))
        })
        .collect()
}

fn sockaddr_to_ip(sa: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(sa.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
            let a = unsafe { &*(sa as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 for AF_INET6.
            let a = unsafe { &*(sa as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::new(IpAddr::V6(ip), u16::from_be(a.sin6_port)))
        }
        _ => None,
    }
}

fn worker(sock: &UdpSocket, handler: &Handler) {
    let fd = sock.as_raw_fd();
    // Bound to the wildcard: each query's destination comes with it.
    let wildcard = sock.local_addr().is_ok_and(|a| a.ip().is_unspecified());
    let mut control = vec![[0u64; CONTROL / 8]; BATCH];
    let mut bufs = vec![[0u8; MAX_QUERY]; BATCH];
    let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1232)).collect();
    // SAFETY (all zeroed C structs below): plain-old-data, valid when zero.
    let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
    let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    let mut out_iov: [libc::iovec; BATCH] = unsafe { zeroed() };
    let mut out_msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    loop {
        for i in 0..BATCH {
            iov[i] = libc::iovec {
                iov_base: bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_QUERY,
            };
            msgs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            if wildcard {
                msgs[i].msg_hdr.msg_control = control[i].as_mut_ptr().cast();
                msgs[i].msg_hdr.msg_controllen = CONTROL as _;
            } else {
                msgs[i].msg_hdr.msg_control = std::ptr::null_mut();
                msgs[i].msg_hdr.msg_controllen = 0;
            }
            msgs[i].msg_hdr.msg_flags = 0;
        }
        // SAFETY: every msghdr points at live buffers owned by this frame.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                debug!(error = %e, "recvmmsg");
            }
            continue;
        }
        let mut k = 0;
        for i in 0..n as usize {
            let len = msgs[i].msg_len as usize;
            if msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                handler.metrics.count_dropped();
                continue;
            }
            let Some(peer) = sockaddr_to_ip(&names[i]) else {
                continue;
            };
            if !handler.handle_into(&bufs[i][..len], peer.ip(), Transport::Udp, &mut outs[k]) {
                continue;
            }
            out_iov[k] = libc::iovec {
                iov_base: outs[k].as_mut_ptr().cast(),
                iov_len: outs[k].len(),
            };
            // The peer's address, and with a wildcard socket the query's
            // destination as the answer's source.
            out_msgs[k].msg_hdr = msgs[i].msg_hdr;
            if wildcard {
                reply_control(&mut out_msgs[k].msg_hdr);
            }
            out_msgs[k].msg_hdr.msg_iov = &mut out_iov[k];
            out_msgs[k].msg_hdr.msg_iovlen = 1;
            out_msgs[k].msg_hdr.msg_flags = 0;
            k += 1;
        }
        let mut sent = 0;
        while sent < k {
            // SAFETY: out_msgs[sent..k] point at live response buffers.
            let r =
                unsafe { libc::sendmmsg(fd, out_msgs[sent..].as_mut_ptr(), (k - sent) as u32, 0) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // One unsendable reply (e.g. unreachable peer) must not stop
                // the rest of the batch.
                debug!(error = %e, "sendmmsg");
                sent += 1;
            } else {
                sent += r as usize;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sockopt(s: &UdpSocket, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut v: libc::c_int = -1;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid fd, `v` and `len` outlive the call.
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                level,
                name,
                (&raw mut v).cast(),
                &raw mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        v
    }

    #[test]
    fn sockets_share_a_port_and_send_with_df() {
        let v4 = bind_reuseport("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        assert_eq!(v4[0].local_addr().unwrap(), v4[1].local_addr().unwrap());
        for s in &v4 {
            let mode = sockopt(s, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER);
            assert_eq!(mode, libc::IP_PMTUDISC_PROBE);
        }
        if let Ok(v6) = bind_reuseport("[::1]:0".parse().unwrap(), 1) {
            let mode = sockopt(&v6[0], libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER);
            assert_eq!(mode, libc::IPV6_PMTUDISC_PROBE);
        }
    }
}
