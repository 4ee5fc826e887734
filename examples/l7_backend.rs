//! A small, fast HTTP/1.1 origin for L7 benchmarks and manual tests.
//!
//! ```text
//! l7_backend --listen 127.0.0.1:18081 [--threads N] [--body-bytes N] [--delay-ms N]
//!            [--degraded-delay-ms N]
//! ```
//!
//! Every request, whatever its method and path, is answered `200 OK` with a
//! fixed body (by default the 13 bytes `hello world!\n`), `Content-Length`
//! and `X-Backend: <port>`, so a client behind a proxy can tell which
//! backend served it. Connections are kept alive; a request body is read and
//! dropped. `--delay-ms` holds every answer back that long (a slow backend).
//! With `--degraded-delay-ms`, SIGUSR1 switches the delay to that (a
//! backend degrading mid-run, for `benches/compare/l7-lb.sh`) and SIGUSR2
//! back to `--delay-ms`.
//!
//! Each of the `--threads` threads runs its own current-thread tokio runtime
//! with its own `SO_REUSEPORT` listener on the same address, so the kernel
//! spreads connections over the threads and nothing is shared between them.
//! Measured with wrk on 2 vCPUs against one multi-thread runtime, this was as
//! fast or faster (1.5x with the backend pinned to one CPU, 1.1x with 2
//! threads) and used no more CPU per request.
//! With port 0, the first listener picks the port and the others join it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};

#[derive(Parser, Debug)]
#[command(about = "HTTP/1.1 benchmark origin: 200 with a fixed body and X-Backend: <port>")]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:18081 (port 0: any free port).
    #[arg(long)]
    listen: SocketAddr,
    /// Threads, each with its own runtime and SO_REUSEPORT listener.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Body size in bytes; 13 is "hello world!\n", other sizes are 'x's ending in '\n'.
    #[arg(long, default_value_t = 13)]
    body_bytes: usize,
    /// Delay before every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// The delay after SIGUSR1 (SIGUSR2 restores --delay-ms).
    #[arg(long)]
    degraded_delay_ms: Option<u64>,
}

/// The current delay before every answer, in milliseconds (0 = none),
/// shared by every thread: the signal thread changes it.
static DELAY_MS: AtomicU64 = AtomicU64::new(0);

/// What every response carries, built once and shared by all threads.
#[derive(Clone)]
struct Reply {
    body: Bytes,
    length: HeaderValue,
    backend: HeaderValue,
}

static X_BACKEND: HeaderName = HeaderName::from_static("x-backend");

fn body_of(n: usize) -> Bytes {
    const HELLO: &[u8] = b"hello world!\n";
    if n == HELLO.len() {
        return Bytes::from_static(HELLO);
    }
    let mut v = vec![b'x'; n];
    if let Some(last) = v.last_mut() {
        *last = b'\n';
    }
    Bytes::from(v)
}

fn listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn answer(
    reply: &Reply,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut body = req.into_body();
    if !body.is_end_stream() {
        // Read and drop the request body, so the connection stays reusable.
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
    }
    let delay = DELAY_MS.load(Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut resp = Response::new(Full::new(reply.body.clone()));
    let h = resp.headers_mut();
    h.insert(CONTENT_LENGTH, reply.length.clone());
    h.insert(X_BACKEND.clone(), reply.backend.clone());
    Ok(resp)
}

async fn serve(listener: TcpListener, reply: Reply) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and the like: back off a little instead of spinning.
                eprintln!("l7_backend: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let reply = reply.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let reply = reply.clone();
                async move { answer(&reply, req).await }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .pipeline_flush(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn run(std_listener: std::net::TcpListener, reply: Reply) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::from_std(std_listener)?;
        serve(listener, reply).await;
        Ok(())
    })
}

/// SIGUSR1: every answer waits `degraded` ms from now on; SIGUSR2: back to
/// `normal`.
fn degrade_on_signal(normal: u64, degraded: u64) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut usr1 = signal(SignalKind::user_defined1())?;
        let mut usr2 = signal(SignalKind::user_defined2())?;
        loop {
            let ms = tokio::select! {
                _ = usr1.recv() => degraded,
                _ = usr2.recv() => normal,
            };
            DELAY_MS.store(ms, Relaxed);
            eprintln!("l7_backend: delay now {ms} ms");
        }
    })
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let threads = args.threads.max(1);

    // Bind every listener up front (inside a throwaway runtime, as tokio's
    // sockets need one), so that a bind error ends the program at once and
    // port 0 resolves to one port shared by all threads.
    let mut listeners = Vec::with_capacity(threads);
    let addr = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let _guard = rt.enter();
        let first = listener(args.listen)?;
        let addr = first.local_addr()?;
        listeners.push(first.into_std()?);
        for _ in 1..threads {
            listeners.push(listener(addr)?.into_std()?);
        }
        addr
    };

    let reply = Reply {
        body: body_of(args.body_bytes),
        length: HeaderValue::from(args.body_bytes),
        backend: HeaderValue::from(addr.port()),
    };
    DELAY_MS.store(args.delay_ms, Relaxed);
    if let Some(degraded) = args.degraded_delay_ms {
        std::thread::Builder::new()
            .name("l7-backend-signals".into())
            .spawn(move || degrade_on_signal(args.delay_ms, degraded))?;
    }
    eprintln!(
        "l7_backend: listening on {addr} ({threads} thread(s), {}-byte body)",
        args.body_bytes
    );

    let mut handles = Vec::new();
    let mut listeners = listeners.into_iter();
    let own = listeners.next().expect("one listener");
    for (i, l) in listeners.enumerate() {
        let reply = reply.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("l7-backend-{}", i + 1))
                .spawn(move || run(l, reply))?,
        );
    }
    run(own, reply)?;
    for h in handles {
        h.join().expect("backend thread panicked")?;
    }
    Ok(())
}
