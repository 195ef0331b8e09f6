//! Just enough of SPDY/3.1 to run a command through the runtime's streaming server the way
//! kubectl's SPDY client does (client-go `remotecommand`, protocol `v4.channel.k8s.io`).
//!
//! It exists for one case: a command reading stdin without a terminal. Its input must end
//! (EOF) while the session goes on to carry the output and the exit status. The runtimes of
//! the CRI era serve exec over WebSocket v4, which has no way to end one stream; SPDY ends a
//! stream by itself with a FIN. So a client asking us for WebSocket v5 (whose close signal
//! ends stdin) is served over SPDY to the runtime.
//!
//! What is left out, because the runtime's server (moby/spdystream) does not need it: flow
//! control (it ignores WINDOW_UPDATE and never waits for one), server-pushed streams, and
//! header compression proper. Header blocks must be zlib streams; ours are one zlib stream of
//! stored (uncompressed) deflate blocks, one block per frame, which any inflater reads.

use std::io;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// Frames carry at most 2^24 - 1 bytes; stdin is sent in smaller pieces anyway.
const MAX_DATA: usize = 32 * 1024;
/// A header block from the server is skipped, never read; anything this big is not SPDY.
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// The streams of a command, as client-go's `streamProtocolV4` opens them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Stdin,
    Stdout,
    Stderr,
    /// The command's outcome: a `Status` object as JSON.
    Error,
}

impl Channel {
    fn stream_type(self) -> &'static str {
        match self {
            Channel::Stdin => "stdin",
            Channel::Stdout => "stdout",
            Channel::Stderr => "stderr",
            Channel::Error => "error",
        }
    }

    /// The channel number of the WebSocket protocols (`v4`/`v5.channel.k8s.io`).
    pub fn websocket_channel(self) -> u8 {
        match self {
            Channel::Stdin => 0,
            Channel::Stdout => 1,
            Channel::Stderr => 2,
            Channel::Error => 3,
        }
    }
}

/// What the runtime sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Data(Channel, Vec<u8>),
    /// The runtime is done: it went away or said so (GOAWAY).
    End,
}

/// The half that writes: stdin, its end, and answers to pings.
pub struct Writer {
    socket: OwnedWriteHalf,
    stdin: Option<u32>,
}

/// The half that reads what the runtime sends.
pub struct Reader {
    socket: BufReader<OwnedReadHalf>,
    /// Stream ids of the channels opened, to tell them apart.
    opened: Vec<(u32, Channel)>,
    /// Pings to echo, answered by the writer's owner.
    pings: Vec<u32>,
}

/// Upgrades a connection to the runtime's exec `url` (plain HTTP on loopback) to SPDY/3.1
/// and opens the error stream and the `channels` asked for.
pub async fn connect(url: &str, channels: &[Channel]) -> io::Result<(Writer, Reader)> {
    let invalid = || io::Error::new(io::ErrorKind::InvalidInput, format!("bad URL {url}"));
    let rest = url.strip_prefix("http://").ok_or_else(invalid)?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let tcp = TcpStream::connect(authority).await?;
    let _ = tcp.set_nodelay(true);
    let (read, mut write) = tcp.into_split();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
         X-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n"
    );
    write.write_all(request.as_bytes()).await?;
    let mut read = BufReader::new(read);
    let mut status_line = String::new();
    read.read_line(&mut status_line).await?;
    // The head's other lines; the frames start right after its blank line.
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    if status_line.split_whitespace().nth(1) != Some("101") {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!(
                "the runtime's streaming server answered {}",
                status_line.trim()
            ),
        ));
    }
    let mut encoder = HeaderEncoder::default();
    let mut opened = Vec::new();
    let mut stdin = None;
    // client-go opens error first, then stdin, stdout and stderr: odd ids, in order.
    let wanted = std::iter::once(Channel::Error).chain(
        [Channel::Stdin, Channel::Stdout, Channel::Stderr]
            .into_iter()
            .filter(|c| channels.contains(c)),
    );
    for (index, channel) in wanted.enumerate() {
        let id = u32::try_from(index * 2 + 1).unwrap_or(u32::MAX);
        let frame = syn_stream(id, &encoder.block(&[("streamtype", channel.stream_type())]));
        write.write_all(&frame).await?;
        if channel == Channel::Stdin {
            stdin = Some(id);
        }
        opened.push((id, channel));
    }
    write.flush().await?;
    Ok((
        Writer {
            socket: write,
            stdin,
        },
        Reader {
            socket: read,
            opened,
            pings: Vec::new(),
        },
    ))
}

impl Writer {
    /// Passes `data` to the command's stdin (nothing when it has none).
    pub async fn stdin(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(id) = self.stdin else {
            return Ok(());
        };
        for piece in data.chunks(MAX_DATA) {
            self.socket.write_all(&data_frame(id, piece, false)).await?;
        }
        Ok(())
    }

    /// Ends the command's stdin: it reads EOF; the session goes on.
    pub async fn close_stdin(&mut self) -> io::Result<()> {
        let Some(id) = self.stdin.take() else {
            return Ok(());
        };
        self.socket.write_all(&data_frame(id, &[], true)).await
    }

    /// Answers the runtime's pings, which it uses to see that we are still there.
    pub async fn pong(&mut self, reader: &mut Reader) -> io::Result<()> {
        for id in reader.pings.drain(..) {
            self.socket.write_all(&ping(id)).await?;
        }
        Ok(())
    }

    pub async fn shutdown(&mut self) {
        let _ = self.socket.shutdown().await;
    }
}

impl Reader {
    /// The next data from the runtime, skipping frames that carry none.
    pub async fn next(&mut self) -> io::Result<Incoming> {
        loop {
            let mut head = [0u8; 8];
            match self.socket.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Incoming::End),
                Err(e) => return Err(e),
            }
            let length =
                usize::from(head[5]) << 16 | usize::from(head[6]) << 8 | usize::from(head[7]);
            if length > MAX_FRAME {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not a SPDY frame",
                ));
            }
            let mut payload = vec![0u8; length];
            self.socket.read_exact(&mut payload).await?;
            if head[0] & 0x80 == 0 {
                let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
                let channel = self
                    .opened
                    .iter()
                    .find(|(opened, _)| *opened == id)
                    .map(|(_, channel)| *channel);
                if let Some(channel) = channel
                    && !payload.is_empty()
                {
                    return Ok(Incoming::Data(channel, payload));
                }
                continue;
            }
            let kind = u16::from_be_bytes([head[2], head[3]]);
            match kind {
                PING if payload.len() >= 4 => {
                    self.pings.push(u32::from_be_bytes([
                        payload[0], payload[1], payload[2], payload[3],
                    ]));
                }
                GOAWAY => return Ok(Incoming::End),
                RST_STREAM if payload.len() >= 4 => {
                    let id = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                        & 0x7fff_ffff;
                    tracing::debug!(stream = id, "exec: the runtime reset a stream");
                    self.opened.retain(|(opened, _)| *opened != id);
                }
                // SYN_REPLY, SETTINGS, WINDOW_UPDATE, HEADERS: nothing we need.
                _ => {}
            }
        }
    }

    /// Whether pings wait for an answer.
    pub fn has_pings(&self) -> bool {
        !self.pings.is_empty()
    }
}

/// The empty stored block a sync flush writes.
const SYNC_FLUSH: [u8; 5] = [0x00, 0x00, 0x00, 0xff, 0xff];

/// Header blocks as one zlib stream of stored deflate blocks: the zlib header before the
/// first, non-final stored blocks for each, so the stream never ends (as SPDY wants).
#[derive(Default)]
struct HeaderEncoder {
    started: bool,
}

impl HeaderEncoder {
    fn block(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut plain = Vec::new();
        plain.extend_from_slice(&u32_len(headers.len()));
        for (name, value) in headers {
            plain.extend_from_slice(&u32_len(name.len()));
            plain.extend_from_slice(name.as_bytes());
            plain.extend_from_slice(&u32_len(value.len()));
            plain.extend_from_slice(value.as_bytes());
        }
        let mut block = Vec::with_capacity(plain.len() + 7);
        if !self.started {
            // CMF 0x78 (deflate, 32K window), FLG 0x01: no preset dictionary, check bits.
            block.extend_from_slice(&[0x78, 0x01]);
            self.started = true;
        }
        // Stored block headers hold 16-bit lengths; our blocks are a few dozen bytes.
        for piece in plain.chunks(usize::from(u16::MAX)) {
            let len = u16::try_from(piece.len()).unwrap_or(u16::MAX);
            block.push(0x00); // BFINAL 0, BTYPE 00 (stored), then byte-aligned
            block.extend_from_slice(&len.to_le_bytes());
            block.extend_from_slice(&(!len).to_le_bytes());
            block.extend_from_slice(piece);
        }
        // An empty stored block ends each header block, as zlib's sync flush does: inflaters
        // (Go's among them) hand over a stored block's bytes only when the next block starts,
        // and must not read past this frame to find it.
        block.extend_from_slice(&SYNC_FLUSH);
        block
    }
}

fn u32_len(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

fn control_head(kind: u16, flags: u8, length: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + length);
    frame.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    frame.extend_from_slice(&kind.to_be_bytes());
    frame.push(flags);
    frame.extend_from_slice(&u32_len(length)[1..]);
    frame
}

/// SYN_STREAM for client stream `id` (odd), with an already encoded header block.
fn syn_stream(id: u32, header_block: &[u8]) -> Vec<u8> {
    let mut frame = control_head(SYN_STREAM, 0, 10 + header_block.len());
    frame.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
    frame.extend_from_slice(&0u32.to_be_bytes()); // associated-to stream: none
    frame.extend_from_slice(&[0, 0]); // priority 0, slot 0
    frame.extend_from_slice(header_block);
    frame
}

fn data_frame(id: u32, data: &[u8], fin: bool) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + data.len());
    frame.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
    frame.push(if fin { FLAG_FIN } else { 0 });
    frame.extend_from_slice(&u32_len(data.len())[1..]);
    frame.extend_from_slice(data);
    frame
}

fn ping(id: u32) -> Vec<u8> {
    let mut frame = control_head(PING, 0, 4);
    frame.extend_from_slice(&id.to_be_bytes());
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back a header block the way an inflater over stored blocks would.
    fn inflate_stored(mut bytes: &[u8], zlib_header: bool) -> Vec<u8> {
        if zlib_header {
            assert_eq!(&bytes[..2], &[0x78, 0x01]);
            let check = u32::from(bytes[0]) * 256 + u32::from(bytes[1]);
            assert_eq!(check % 31, 0, "zlib header check bits");
            bytes = &bytes[2..];
        }
        let mut out = Vec::new();
        while !bytes.is_empty() {
            assert_eq!(bytes[0], 0x00, "a non-final stored block");
            let len = u16::from_le_bytes([bytes[1], bytes[2]]);
            let nlen = u16::from_le_bytes([bytes[3], bytes[4]]);
            assert_eq!(len, !nlen);
            out.extend_from_slice(&bytes[5..5 + usize::from(len)]);
            bytes = &bytes[5 + usize::from(len)..];
        }
        out
    }

    #[test]
    fn syn_stream_frames_carry_the_stream_type_in_a_zlib_stream() {
        let mut encoder = HeaderEncoder::default();
        let first = syn_stream(1, &encoder.block(&[("streamtype", "error")]));
        assert_eq!(
            &first[..4],
            &[0x80, 0x03, 0x00, 0x01],
            "control, v3, SYN_STREAM"
        );
        let length =
            usize::from(first[5]) << 16 | usize::from(first[6]) << 8 | usize::from(first[7]);
        assert_eq!(length, first.len() - 8);
        assert_eq!(&first[8..12], &1u32.to_be_bytes());
        let block = inflate_stored(&first[18..], true);
        let mut expected = vec![0, 0, 0, 1, 0, 0, 0, 10];
        expected.extend_from_slice(b"streamtype");
        expected.extend_from_slice(&[0, 0, 0, 5]);
        expected.extend_from_slice(b"error");
        assert_eq!(block, expected);
        assert!(first.ends_with(&SYNC_FLUSH), "each block ends flushed");
        // Later blocks continue the same zlib stream: no second header.
        let second = syn_stream(3, &encoder.block(&[("streamtype", "stdin")]));
        assert!(inflate_stored(&second[18..], false).ends_with(b"stdin"));
    }

    #[test]
    fn data_frames_end_a_stream_with_fin() {
        assert_eq!(
            data_frame(3, b"hi", false),
            vec![0, 0, 0, 3, 0, 0, 0, 2, b'h', b'i']
        );
        assert_eq!(
            data_frame(3, b"", true),
            vec![0, 0, 0, 3, FLAG_FIN, 0, 0, 0]
        );
        assert_eq!(
            ping(7),
            vec![0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 7]
        );
    }

    /// A SPDY server on loopback that records the client's frames and answers with output.
    #[tokio::test]
    async fn a_session_opens_streams_sends_stdin_with_its_end_and_reads_output() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let mut socket = BufReader::new(socket);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                socket.read_line(&mut line).await.expect("head");
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            socket
                .get_mut()
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: SPDY/3.1\r\n\r\n")
                .await
                .expect("answer");
            // Error, stdin, stdout; then stdin data and its FIN.
            let mut frames = Vec::new();
            while frames.len() < 5 {
                let mut frame_head = [0u8; 8];
                socket.read_exact(&mut frame_head).await.expect("frame");
                let length = usize::from(frame_head[5]) << 16
                    | usize::from(frame_head[6]) << 8
                    | usize::from(frame_head[7]);
                let mut payload = vec![0u8; length];
                socket.read_exact(&mut payload).await.expect("payload");
                frames.push((frame_head, payload));
            }
            let out = socket.get_mut();
            out.write_all(&ping(2)).await.expect("ping");
            out.write_all(&data_frame(5, b"got it\n", false))
                .await
                .expect("stdout");
            out.write_all(&data_frame(1, br#"{"status":"Success"}"#, false))
                .await
                .expect("status");
            out.write_all(&data_frame(1, b"", true)).await.expect("fin");
            let mut pong = [0u8; 12];
            socket.read_exact(&mut pong).await.expect("pong");
            (head, frames, pong)
        });

        let url = format!("http://{address}/exec/token123");
        let (mut writer, mut reader) = connect(&url, &[Channel::Stdin, Channel::Stdout])
            .await
            .expect("connect");
        writer.stdin(b"hello").await.expect("stdin");
        writer.close_stdin().await.expect("close");
        assert_eq!(
            reader.next().await.expect("read"),
            Incoming::Data(Channel::Stdout, b"got it\n".to_vec())
        );
        assert!(reader.has_pings());
        writer.pong(&mut reader).await.expect("pong");
        assert_eq!(
            reader.next().await.expect("read"),
            Incoming::Data(Channel::Error, br#"{"status":"Success"}"#.to_vec())
        );
        let (head, frames, pong) = server.await.expect("server");
        assert!(
            head.starts_with("POST /exec/token123 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("Upgrade: SPDY/3.1\r\n"), "{head}");
        assert!(
            head.contains("X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"),
            "{head}"
        );
        for ((_, payload), stream_type) in frames.iter().zip(["error", "stdin", "stdout"]) {
            let block = &payload[..payload.len() - SYNC_FLUSH.len()];
            assert!(block.ends_with(stream_type.as_bytes()), "{payload:?}");
        }
        assert_eq!(
            frames[3].0,
            [0, 0, 0, 3, 0, 0, 0, 5],
            "stdin data on stream 3"
        );
        assert_eq!(frames[3].1, b"hello");
        assert_eq!(frames[4].0, [0, 0, 0, 3, FLAG_FIN, 0, 0, 0], "stdin's end");
        assert_eq!(pong.to_vec(), ping(2));
        // The server went away: the session ends.
        assert_eq!(reader.next().await.expect("read"), Incoming::End);
    }
}
