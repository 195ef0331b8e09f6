//! The DNS server: UDP and TCP on one address, answering the cluster zone from the current
//! [`ClusterRecords`] and relaying every other question, as it came, to the host's resolvers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::records::{ClusterRecords, Lookup, RecordData, TTL_SECONDS};

/// How long one upstream gets to answer a forwarded question.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP client may stay idle between questions.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Questions handled at once (beyond that, UDP questions wait in the socket's buffer).
const IN_FLIGHT: usize = 512;
/// The UDP answer size without EDNS (RFC 1035).
const CLASSIC_UDP_SIZE: usize = 512;
/// The largest UDP answer we send with EDNS (the DNS flag day's 1232).
const EDNS_UDP_SIZE: u16 = 1232;

/// How a question arrived (and so how it is forwarded and how large the answer may be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A datagram.
    Udp,
    /// A length-prefixed stream.
    Tcp,
}

/// What the server answers with and where it forwards.
#[derive(Debug, Clone)]
pub struct Answerer {
    /// The cluster zone, replaced on every change.
    pub records: watch::Receiver<Arc<ClusterRecords>>,
    /// The host's resolvers, tried in order.
    pub upstreams: Vec<SocketAddr>,
}

impl Answerer {
    /// The answer to the wire-format question `query`, or `None` to stay silent (garbage,
    /// or a forwarded question no upstream answered: the client retries).
    pub async fn answer(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let request = match Message::from_vec(query) {
            Ok(request) => request,
            Err(_) => {
                // A readable header gets FORMERR; anything shorter is dropped.
                let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
                return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                    .to_vec()
                    .ok();
            }
        };
        if request.metadata.message_type != MessageType::Query {
            return None;
        }
        let records = self.records.borrow().clone();
        let lookup = match (request.metadata.op_code, request.queries.as_slice()) {
            (OpCode::Query, [question]) => {
                records.lookup(&question.name().to_ascii(), question.query_type())
            }
            (OpCode::Query, _) => {
                return self.reply(&request, ResponseCode::FormErr, Vec::new(), None, transport);
            }
            _ => return self.reply(&request, ResponseCode::NotImp, Vec::new(), None, transport),
        };
        match lookup {
            Lookup::Forward => self.forward(query, transport).await,
            Lookup::Found(found) => {
                let answers: Vec<Record> = found
                    .iter()
                    .filter_map(|(name, data)| to_record(name, data))
                    .collect();
                let authority = if answers.is_empty() {
                    soa(records.domain())
                } else {
                    None
                };
                self.reply(
                    &request,
                    ResponseCode::NoError,
                    answers,
                    authority,
                    transport,
                )
            }
            Lookup::NxDomain => self.reply(
                &request,
                ResponseCode::NXDomain,
                Vec::new(),
                soa(records.domain()),
                transport,
            ),
        }
    }

    fn reply(
        &self,
        request: &Message,
        code: ResponseCode,
        answers: Vec<Record>,
        authority: Option<Record>,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.response_code = code;
        response.metadata.authoritative = code != ResponseCode::NotImp;
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.add_queries(request.queries.iter().cloned());
        response.add_answers(answers);
        response.add_authorities(authority);
        let limit = match &request.edns {
            Some(edns) => {
                let mut ours = Edns::new();
                ours.set_max_payload(EDNS_UDP_SIZE);
                response.set_edns(ours);
                usize::from(edns.max_payload().clamp(512, EDNS_UDP_SIZE))
            }
            None => CLASSIC_UDP_SIZE,
        };
        let bytes = response.to_vec().ok()?;
        if transport == Transport::Udp && bytes.len() > limit {
            // Too big for a datagram: the client asks again over TCP.
            return response.truncate().to_vec().ok();
        }
        Some(bytes)
    }

    /// Relays `query` to each upstream in turn until one answers.
    async fn forward(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        for upstream in &self.upstreams {
            let attempt = match transport {
                Transport::Udp => forward_udp(*upstream, query).await,
                Transport::Tcp => forward_tcp(*upstream, query).await,
            };
            match attempt {
                Ok(answer) => return Some(answer),
                Err(error) => debug!(%upstream, %error, "upstream resolver did not answer"),
            }
        }
        // Nobody answered: SERVFAIL rather than silence, so the client moves on.
        let request = Message::from_vec(query).ok()?;
        let mut response = Message::error_msg(
            request.metadata.id,
            request.metadata.op_code,
            ResponseCode::ServFail,
        );
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.add_queries(request.queries);
        response.to_vec().ok()
    }
}

async fn forward_udp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buffer = vec![0u8; 65_535];
    let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv(&mut buffer))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
        // Only the answer to our question (same ID) counts.
        if received >= 2 && buffer[..2] == query[..2.min(query.len())] {
            buffer.truncate(received);
            return Ok(buffer);
        }
    }
}

async fn forward_tcp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let exchange = async {
        let mut stream = TcpStream::connect(upstream).await?;
        write_framed(&mut stream, query).await?;
        read_framed(&mut stream).await
    };
    tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))?
}

async fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let length = u16::try_from(message.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "message too long"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}

async fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let length = stream.read_u16().await?;
    let mut message = vec![0u8; usize::from(length)];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

fn fqdn(name: &str) -> Option<Name> {
    Name::from_ascii(format!("{name}.")).ok()
}

fn to_record(name: &str, data: &RecordData) -> Option<Record> {
    let rdata = match data {
        RecordData::Soa => return soa(name),
        RecordData::A(ip) => RData::A(A(*ip)),
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, fqdn(target)?)),
        RecordData::Cname(target) => RData::CNAME(CNAME(fqdn(target)?)),
        RecordData::Ptr(target) => RData::PTR(PTR(fqdn(target)?)),
    };
    Some(Record::from_rdata(fqdn(name)?, TTL_SECONDS, rdata))
}

/// The zone's SOA, sent with negative answers so resolvers cache them only briefly.
fn soa(domain: &str) -> Option<Record> {
    let rdata = SOA::new(
        fqdn(&format!("ns.dns.{domain}"))?,
        fqdn(&format!("hostmaster.{domain}"))?,
        1,
        7200,
        1800,
        86400,
        TTL_SECONDS,
    );
    Some(Record::from_rdata(
        fqdn(domain)?,
        TTL_SECONDS,
        RData::SOA(rdata),
    ))
}

/// Serves UDP on `udp` and TCP on `tcp` until `cancel` fires.
pub async fn serve(
    udp: UdpSocket,
    tcp: TcpListener,
    answerer: Answerer,
    cancel: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    let answerer = Arc::new(answerer);
    tokio::join!(
        serve_udp(Arc::new(udp), answerer.clone(), limit.clone(), &cancel),
        serve_tcp(tcp, answerer, limit, &cancel),
    );
}

async fn serve_udp(
    socket: Arc<UdpSocket>,
    answerer: Arc<Answerer>,
    limit: Arc<Semaphore>,
    cancel: &CancellationToken,
) {
    let mut buffer = vec![0u8; 65_535];
    loop {
        let received = tokio::select! {
            () = cancel.cancelled() => return,
            received = socket.recv_from(&mut buffer) => received,
        };
        let (length, client) = match received {
            Ok(received) => received,
            // ICMP errors of earlier answers surface here on some kernels; keep serving.
            Err(error) => {
                debug!(%error, "dns udp receive failed");
                continue;
            }
        };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let query = buffer[..length].to_vec();
        let (socket, answerer) = (socket.clone(), answerer.clone());
        tokio::spawn(async move {
            if let Some(answer) = answerer.answer(&query, Transport::Udp).await
                && let Err(error) = socket.send_to(&answer, client).await
            {
                debug!(%client, %error, "dns udp send failed");
            }
            drop(permit);
        });
    }
}

async fn serve_tcp(
    listener: TcpListener,
    answerer: Arc<Answerer>,
    limit: Arc<Semaphore>,
    cancel: &CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        let (answerer, limit, cancel) = (answerer.clone(), limit.clone(), cancel.clone());
        tokio::spawn(async move {
            loop {
                let query = tokio::select! {
                    () = cancel.cancelled() => return,
                    query = tokio::time::timeout(TCP_IDLE, read_framed(&mut stream)) => query,
                };
                let Ok(Ok(query)) = query else {
                    return;
                };
                let Ok(_permit) = limit.acquire().await else {
                    return;
                };
                let Some(answer) = answerer.answer(&query, Transport::Tcp).await else {
                    return;
                };
                if write_framed(&mut stream, &answer).await.is_err() {
                    return;
                }
            }
        });
    }
}
