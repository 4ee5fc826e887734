//! The floor under any HTTP proxy on this machine: a TCP relay that does a
//! proxy's system calls and nothing else.
//!
//! ```text
//! l7_floor --listen 127.0.0.1:18414 --backend 127.0.0.1:18401 [--backend …] [--threads 2]
//! ```
//!
//! Each client connection is paired with its own backend connection (the
//! backends taken in turn) and bytes are copied both ways as they come: per
//! request that is one read and one write on each side plus a share of an
//! `epoll_wait`, exactly what boltz, haproxy and nginx do on a kept-alive
//! HTTP/1.1 exchange, but with no parsing, no header rewriting and no
//! balancing decision. `benches/compare/l7.sh` runs it as the `floor` setup:
//! its req/s is what a proxy with zero user-space cost would reach while
//! sharing the CPUs with wrk and the backends, so it bounds the ratio any
//! real proxy can reach over another.
//!
//! Each of the `--threads` threads has its own `SO_REUSEPORT` listener and a
//! level-triggered epoll loop (raw `libc`, no runtime). Backend connections
//! are made with a blocking connect when the client connects; relayed writes
//! wait for the socket when it is full (the messages here are small). Not a
//! product: a measuring stick.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    listen: SocketAddr,
    #[arg(long, required = true)]
    backend: Vec<SocketAddr>,
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

fn ctl(ep: RawFd, op: i32, fd: RawFd) {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: fd as u64,
    };
    // SAFETY: plain epoll_ctl on descriptors this thread owns.
    unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) };
}

/// Writes all of `data`, waiting (poll) while the socket is full.
fn write_all(s: &mut TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match s.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut p = libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one pollfd on a descriptor we own.
                unsafe { libc::poll(&mut p, 1, 1000) };
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn run(args: &Args, worker: usize) -> std::io::Result<()> {
    let l = listener(args.listen)?;
    // SAFETY: creating an epoll instance.
    let ep = unsafe { libc::epoll_create1(0) };
    if ep < 0 {
        return Err(std::io::Error::last_os_error());
    }
    ctl(ep, libc::EPOLL_CTL_ADD, l.as_raw_fd());
    // fd -> (its stream, its peer's fd)
    let mut conns: HashMap<RawFd, (TcpStream, RawFd)> = HashMap::new();
    let mut next = worker;
    let mut buf = vec![0u8; 16 * 1024];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    loop {
        // SAFETY: the buffer holds `events.len()` entries.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events[..n as usize] {
            let fd = ev.u64 as RawFd;
            if fd == l.as_raw_fd() {
                while let Ok((c, _)) = l.accept() {
                    let b = args.backend[next % args.backend.len()];
                    next += 1;
                    let Ok(up) = TcpStream::connect(b) else {
                        continue;
                    };
                    for s in [&c, &up] {
                        s.set_nonblocking(true)?;
                        s.set_nodelay(true)?;
                    }
                    let (cf, uf) = (c.as_raw_fd(), up.as_raw_fd());
                    ctl(ep, libc::EPOLL_CTL_ADD, cf);
                    ctl(ep, libc::EPOLL_CTL_ADD, uf);
                    conns.insert(cf, (c, uf));
                    conns.insert(uf, (up, cf));
                }
                continue;
            }
            let Some((s, peer)) = conns.get_mut(&fd) else {
                continue;
            };
            let peer = *peer;
            let got = match s.read(&mut buf) {
                Ok(0) => None,
                Ok(k) => Some(k),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => None,
            };
            let ok = match got {
                Some(k) => conns
                    .get_mut(&peer)
                    .is_some_and(|(p, _)| write_all(p, &buf[..k]).is_ok()),
                None => false,
            };
            if !ok {
                for f in [fd, peer] {
                    ctl(ep, libc::EPOLL_CTL_DEL, f);
                    conns.remove(&f);
                }
            }
        }
    }
}

fn main() {
    let args = Args::parse();
    std::thread::scope(|s| {
        for w in 0..args.threads {
            let args = &args;
            s.spawn(move || {
                if let Err(e) = run(args, w) {
                    eprintln!("l7_floor worker {w}: {e}");
                    std::process::exit(1);
                }
            });
        }
    });
}
