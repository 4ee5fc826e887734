//! The self-probe: boltz asks itself a known name on the anycast address,
//! over real UDP and real TCP, and checks the answer — not "the process
//! exists". A prefix stays announced only while both answer: NOERROR,
//! authoritative, the asked name and type, and (when configured) the
//! expected addresses.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::RData;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::config::Probe;

/// Asks `probe` of the server at `to` over UDP, then TCP; the first
/// failure names its transport.
pub async fn check(probe: &Probe, to: SocketAddr) -> Result<(), String> {
    let id = query_id();
    let query = build(probe, id)?;
    let udp = timeout(probe.timeout, udp(&query, to))
        .await
        .map_err(|_| format!("udp: no answer within {:?}", probe.timeout))?
        .map_err(|e| format!("udp: {e}"))?;
    judge(probe, id, &udp).map_err(|e| format!("udp: {e}"))?;
    let tcp = timeout(probe.timeout, tcp(&query, to))
        .await
        .map_err(|_| format!("tcp: no answer within {:?}", probe.timeout))?
        .map_err(|e| format!("tcp: {e}"))?;
    judge(probe, id, &tcp).map_err(|e| format!("tcp: {e}"))
}

/// A query id that differs between probes (an old answer is not taken
/// for a new one).
fn query_id() -> u16 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (n ^ (n >> 16)) as u16
}

fn build(probe: &Probe, id: u16) -> Result<Vec<u8>, String> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(probe.name.clone(), probe.rtype));
    m.to_vec()
        .map_err(|e| format!("cannot build the probe query: {e}"))
}

async fn udp(query: &[u8], to: SocketAddr) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = match to {
        SocketAddr::V4(_) => (IpAddr::from([0, 0, 0, 0]), 0).into(),
        SocketAddr::V6(_) => (IpAddr::from([0u16; 8]), 0).into(),
    };
    let s = UdpSocket::bind(bind).await?;
    s.connect(to).await?;
    s.send(query).await?;
    let mut buf = vec![0u8; 4096];
    let n = s.recv(&mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

async fn tcp(query: &[u8], to: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(to).await?;
    let mut out = (query.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(query);
    s.write_all(&out).await?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Whether `raw` is the right answer to the probe `id`.
fn judge(probe: &Probe, id: u16, raw: &[u8]) -> Result<(), String> {
    let m = Message::from_vec(raw).map_err(|e| format!("unparsable answer: {e}"))?;
    if m.metadata.id != id || m.metadata.message_type != MessageType::Response {
        return Err(format!("answer to another query (id {})", m.metadata.id));
    }
    let asked = m
        .queries
        .first()
        .is_some_and(|q| q.name() == &probe.name && q.query_type() == probe.rtype);
    if !asked {
        return Err("answer names another question".into());
    }
    if m.metadata.response_code != ResponseCode::NoError {
        return Err(format!(
            "{} for {} {}",
            m.metadata.response_code, probe.name, probe.rtype
        ));
    }
    if !m.metadata.authoritative {
        return Err(format!("not authoritative for {}", probe.name));
    }
    let of_type: Vec<&RData> = m
        .answers
        .iter()
        .filter(|r| r.record_type() == probe.rtype)
        .map(|r| &r.data)
        .collect();
    if of_type.is_empty() {
        return Err(format!("no {} record for {}", probe.rtype, probe.name));
    }
    let addrs: Vec<IpAddr> = of_type
        .iter()
        .filter_map(|d| match d {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    if let Some(missing) = probe.expect.iter().find(|e| !addrs.contains(e)) {
        return Err(format!(
            "{} {} answered {addrs:?}, without the expected {missing}",
            probe.name, probe.rtype
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
