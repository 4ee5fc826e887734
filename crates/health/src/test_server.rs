//! A tiny HTTP/1.1 responder on loopback for tests of probes and load feeds:
//! real sockets and a real client, no mocks. It records each request's
//! headers so tests can check what the client actually sent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Headers of every request, names lower-cased.
type Seen = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// What the server does with each request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Answer with this status and body.
    Respond {
        /// The status code.
        status: u16,
        /// The body.
        body: String,
    },
    /// Accept the connection, then never answer.
    Hang,
}

/// A scripted HTTP/1.1 server on loopback that records request headers.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Seen,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Answers every request with `status` and `body`.
    pub async fn respond(status: u16, body: &str) -> Self {
        Self::start_on(
            "127.0.0.1:0".parse().unwrap(),
            Reply::Respond {
                status,
                body: body.to_owned(),
            },
        )
        .await
    }

    /// Accepts connections and never answers.
    pub async fn hang() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), Reply::Hang).await
    }

    /// Serves `reply` on `addr` (port 0: any free port).
    pub async fn start_on(addr: SocketAddr, reply: Reply) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        let task = tokio::spawn(async move {
            // Connections live in the set so that stopping the server (by
            // aborting this task) also closes every open connection.
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                conns.spawn(serve(stream, reply.clone(), seen.clone()));
                while conns.try_join_next().is_some() {}
            }
        });
        TestServer {
            addr,
            requests,
            connections,
            task,
        }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Values of header `name` across all requests so far, in order.
    pub fn header(&self, name: &str) -> Vec<String> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .flat_map(|headers| headers.iter().filter(|(n, _)| n == name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Stops serving (the port is free again).
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Answers every request on the connection the same way, keeping it open
/// (HTTP/1.1 keep-alive) so tests can tell whether the client reuses it.
async fn serve(mut stream: TcpStream, reply: Reply, seen: Seen) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head: Vec<u8> = buf.drain(..end).collect();
        let text = String::from_utf8_lossy(&head);
        let headers = text
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        seen.lock().unwrap().push(headers);
        match &reply {
            Reply::Hang => std::future::pending::<()>().await,
            Reply::Respond { status, body } => {
                let head = format!(
                    "HTTP/1.1 {status} Test\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\n\r\n",
                    body.len()
                );
                if stream.write_all(head.as_bytes()).await.is_err()
                    || stream.write_all(body.as_bytes()).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

/// An address on which nothing listens: bound once, then released.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}
