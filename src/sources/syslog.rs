//! The syslog listeners: UDP datagrams and TCP streams.
//!
//! Syslog over UDP can lose datagrams before they reach us (a full socket
//! buffer, a lossy network): nothing in the protocol tells the sender. Once
//! a message is received it is not lost: it waits in a bounded queue for
//! the store writer, and when that queue is full the listeners stop reading
//! (TCP senders are slowed down; UDP datagrams then wait in, and may
//! overflow, the kernel's buffer). Use TCP where loss matters.
//!
//! TCP framing follows RFC 6587: each message is either octet-counted
//! (`LEN SP MSG`) or ends with a newline. A message longer than the
//! source's `max_message` is kept cut to that size and flagged, never
//! split into two messages nor dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Batch, BatchSender, Message, StopSignal};
use crate::ingest::SourceSettings;

/// The default largest message kept whole.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 10;
/// Messages gathered before a batch goes to the writer...
const BATCH_MESSAGES: usize = 2_000;
/// ...or after this long, whichever comes first: the most a message waits
/// before it is on its way to the store.
const BATCH_WAIT: Duration = Duration::from_millis(200);
/// Received messages waiting to be batched. When it is full the listeners
/// stop reading: TCP senders are slowed down, UDP datagrams wait in the
/// kernel's buffer.
const QUEUE_MESSAGES: usize = 10_000;
/// TCP clients served at once. Each holds a read buffer, so an unbounded
/// count (a misbehaving sender opening connections in a loop) would be
/// unbounded memory; past it, new connections are closed and logged.
const MAX_TCP_CLIENTS: usize = 1_024;
/// The read buffer of one TCP client.
const TCP_READ_BUFFER: usize = 64 << 10;
/// On stop, a sender that sends nothing for this long has been read
/// whole: what it sent before the stop is already in our socket...
const STOP_QUIET: Duration = Duration::from_millis(200);
/// ...and reading what was received before the stop takes at most this,
/// within the time the daemon gives a source to stop.
const STOP_DRAIN_MAX: Duration = Duration::from_secs(2);
/// The kernel receive buffer asked for the UDP socket, to ride out bursts
/// while the writer is busy (the kernel caps it at `net.core.rmem_max`).
const UDP_RECEIVE_BUFFER: libc::c_int = 8 << 20;

/// One `kind = "syslog"` source.
pub struct SyslogSource {
    pub settings: Arc<SourceSettings>,
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    /// The largest message kept whole; longer ones are cut to it and
    /// flagged, so one sender cannot make us hold unbounded memory.
    pub max_message: usize,
    pub tx: BatchSender,
    pub stop: StopSignal,
}

impl SyslogSource {
    /// Binds the listeners and runs until stopped. Binding errors are
    /// returned, so the caller can report and retry.
    pub async fn run(self) -> anyhow::Result<()> {
        let name = self.settings.name.clone();
        let key = format!(
            "syslog:{name}:{}",
            Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        let (msg_tx, msg_rx) = mpsc::channel::<Message>(QUEUE_MESSAGES);

        // Both sockets are bound before either listens: when one cannot
        // be bound, the other is closed with it, so the retry finds its
        // port free again.
        let udp_socket = match self.udp {
            Some(addr) => Some(
                UdpSocket::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("udp {addr}: {e}"))?,
            ),
            None => None,
        };
        let tcp_listener = match self.tcp {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("tcp {addr}: {e}"))?,
            ),
            None => None,
        };

        let mut tasks = Vec::new();
        if let Some(socket) = udp_socket {
            let buffer = enlarge_receive_buffer(&socket);
            info!(source = %name, address = %socket.local_addr()?, receive_buffer = buffer, "listening for syslog over UDP");
            tasks.push(tokio::spawn(udp(
                socket,
                self.max_message,
                msg_tx.clone(),
                self.stop.clone(),
            )));
        }
        if let Some(listener) = tcp_listener {
            info!(source = %name, address = %listener.local_addr()?, "listening for syslog over TCP");
            tasks.push(tokio::spawn(tcp(
                listener,
                self.max_message,
                MAX_TCP_CLIENTS,
                msg_tx.clone(),
                self.stop.clone(),
            )));
        }
        drop(msg_tx);
        let path = match (self.udp, self.tcp) {
            (Some(u), Some(t)) => format!("udp {u}, tcp {t}"),
            (Some(u), None) => format!("udp {u}"),
            (None, Some(t)) => format!("tcp {t}"),
            (None, None) => "no listener".into(),
        };
        batch_messages(msg_rx, self.settings.clone(), key, path, self.tx).await;
        for t in tasks {
            t.abort();
        }
        Ok(())
    }
}

/// Asks the kernel for a larger UDP receive buffer; returns the size it
/// granted (it may cap it), or 0 when it cannot be read.
fn enlarge_receive_buffer(socket: &UdpSocket) -> i64 {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let size = UDP_RECEIVE_BUFFER;
    let mut granted: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is an open socket owned by `socket` for the whole call,
    // and both option values point to live `c_int`s of the given length.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        if libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut granted as *mut libc::c_int).cast(),
            &mut len,
        ) != 0
        {
            return 0;
        }
    }
    i64::from(granted)
}

/// Gathers messages into batches for the writer.
async fn batch_messages(
    mut rx: mpsc::Receiver<Message>,
    settings: Arc<SourceSettings>,
    key: String,
    path: String,
    tx: BatchSender,
) {
    let mut pending: Vec<Message> = Vec::new();
    loop {
        let next = if pending.is_empty() {
            rx.recv().await
        } else {
            match tokio::time::timeout(BATCH_WAIT, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    flush(&mut pending, &settings, &key, &path, &tx).await;
                    continue;
                }
            }
        };
        match next {
            Some(m) => {
                pending.push(m);
                if pending.len() >= BATCH_MESSAGES {
                    flush(&mut pending, &settings, &key, &path, &tx).await;
                }
            }
            None => {
                flush(&mut pending, &settings, &key, &path, &tx).await;
                return;
            }
        }
    }
}

async fn flush(
    pending: &mut Vec<Message>,
    settings: &Arc<SourceSettings>,
    key: &str,
    path: &str,
    tx: &BatchSender,
) {
    if pending.is_empty() {
        return;
    }
    let batch = Batch::Messages {
        settings: settings.clone(),
        key: key.to_owned(),
        path: path.to_owned(),
        messages: std::mem::take(pending),
    };
    if tx.send(batch).await.is_err() {
        tracing::error!(source = %settings.name, "the store writer has stopped: received messages not stored");
    }
}

/// Trims the transport's line end from a message.
fn trim_message(mut bytes: &[u8]) -> &[u8] {
    while let Some((&last, rest)) = bytes.split_last() {
        if last == b'\n' || last == b'\r' || last == 0 {
            bytes = rest;
        } else {
            break;
        }
    }
    bytes
}

fn message(bytes: &[u8], max: usize) -> Message {
    let bytes = trim_message(bytes);
    let truncated = bytes.len() > max;
    Message {
        bytes: bytes[..bytes.len().min(max)].to_vec(),
        received: Utc::now(),
        truncated,
    }
}

/// Nothing but line ends and spaces.
fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| b.is_ascii_whitespace())
}

async fn udp(socket: UdpSocket, max: usize, tx: mpsc::Sender<Message>, mut stop: StopSignal) {
    // A datagram can be up to 64 KiB; read it whole, keep up to `max`.
    let mut buffer = vec![0u8; 65_536];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                // An empty datagram (a keep-alive) carries no message.
                Ok((n, _peer)) if is_blank(&buffer[..n]) => {}
                Ok((n, _peer)) => {
                    if tx.send(message(&buffer[..n], max)).await.is_err() {
                        return;
                    }
                }
                Err(e) => warn!(error = %e, "udp receive failed"),
            },
            _ = stop.changed() => break,
        }
    }

    // Stopping: the datagrams already in the kernel's buffer were sent to
    // us and exist nowhere else; read them before closing the socket.
    let deadline = Instant::now() + STOP_DRAIN_MAX;
    while Instant::now() < deadline {
        match socket.try_recv_from(&mut buffer) {
            Ok((n, _peer)) if is_blank(&buffer[..n]) => {}
            Ok((n, _peer)) => {
                if tx.send(message(&buffer[..n], max)).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Accepts TCP clients, at most `max_clients` at once.
async fn tcp(
    listener: TcpListener,
    max: usize,
    max_clients: usize,
    tx: mpsc::Sender<Message>,
    mut stop: StopSignal,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_clients));
    let mut refusing = false;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        // Logged once per run of refusals, not per connection.
                        if !refusing {
                            warn!(peer = %peer, max_clients, "too many syslog TCP clients; closing new connections");
                        }
                        refusing = true;
                        drop(stream);
                        continue;
                    };
                    refusing = false;
                    debug!(peer = %peer, "syslog TCP client connected");
                    let (tx, stop) = (tx.clone(), stop.clone());
                    tokio::spawn(async move {
                        tcp_client(stream, max, tx, stop).await;
                        drop(slot);
                    });
                }
                Err(e) => warn!(error = %e, "tcp accept failed"),
            },
            _ = stop.changed() => return,
        }
    }
}

/// Reads one client's messages, octet-counted or newline-framed, until it
/// closes or we stop.
///
/// When we stop, the client's bytes already received by the kernel were
/// acknowledged by TCP: the sender will not send them again. So they are
/// read and handed on first: the frame being read is finished, then
/// frames are read until the sender pauses ([`STOP_QUIET`]) or for
/// [`STOP_DRAIN_MAX`] at most, whichever comes first.
async fn tcp_client(
    stream: TcpStream,
    max: usize,
    tx: mpsc::Sender<Message>,
    mut stop: StopSignal,
) {
    let mut reader = BufReader::with_capacity(TCP_READ_BUFFER, stream);
    let mut stopping: Option<Instant> = None;
    // The bytes of the frame being read: a sender that stays connected
    // without finishing its last line when we stop still handed them to
    // us, so they are kept, flagged as cut.
    let mut pending = Vec::new();
    let keep_pending = |pending: &[u8]| {
        (!pending.is_empty()).then(|| {
            let mut m = message(pending, max);
            m.truncated = true;
            m
        })
    };
    loop {
        let frame = match stopping {
            None => {
                // The same read goes on when the stop comes, so a frame
                // half-read is not cut.
                let frame = {
                    let read = read_frame(&mut reader, max, &mut pending);
                    tokio::pin!(read);
                    tokio::select! {
                        frame = &mut read => Some(frame),
                        _ = stop.changed() => {
                            stopping = Some(Instant::now());
                            tokio::time::timeout(STOP_QUIET, &mut read).await.ok()
                        }
                    }
                };
                match frame {
                    Some(frame) => frame,
                    None => {
                        if let Some(m) = keep_pending(&pending) {
                            let _ = tx.send(m).await;
                        }
                        return;
                    }
                }
            }
            Some(since) => {
                let left = STOP_DRAIN_MAX.saturating_sub(since.elapsed());
                let read = read_frame(&mut reader, max, &mut pending);
                match tokio::time::timeout(STOP_QUIET.min(left), read).await {
                    Ok(frame) => frame,
                    Err(_) => {
                        if let Some(m) = keep_pending(&pending) {
                            let _ = tx.send(m).await;
                        }
                        return;
                    }
                }
            }
        };
        match frame {
            Ok(Some(m)) => {
                if !m.bytes.is_empty() && tx.send(m).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                debug!(error = %e, "syslog TCP client dropped");
                if let Some(m) = keep_pending(&pending) {
                    let _ = tx.send(m).await;
                }
                return;
            }
        }
    }
}

/// Reads one frame: `LEN SP MSG` when the frame starts with a digit, else
/// up to the next newline. `None` at the end of the stream. `pending`
/// holds the bytes of a newline-framed message read so far, should the
/// read be given up before its end.
async fn read_frame<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
    pending: &mut Vec<u8>,
) -> std::io::Result<Option<Message>> {
    pending.clear();
    let first = {
        let buf = reader.fill_buf().await?;
        match buf.first() {
            None => return Ok(None),
            Some(&b) => b,
        }
    };
    // Octet counting: digits, a space, then exactly that many bytes. A
    // newline-framed message may start with a digit too (no priority, a
    // date first): when the digits are not followed by a space they are
    // the start of that message, not a count.
    let bytes = pending;
    if first.is_ascii_digit() {
        loop {
            let mut byte = [0u8];
            if reader.read_exact(&mut byte).await.is_err() {
                // The stream ended inside the digits: that is the message.
                return Ok(Some(message(bytes, max)));
            }
            bytes.push(byte[0]);
            match byte[0] {
                b' ' if bytes.len() > 1 => break,
                d if d.is_ascii_digit() && bytes.len() <= 10 => continue,
                b'\n' => return Ok(Some(message(bytes, max))),
                _ => break,
            }
        }
        if bytes.last() == Some(&b' ') {
            let len: usize = std::str::from_utf8(&bytes[..bytes.len() - 1])
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            // The count is not a message of its own.
            bytes.clear();
            let kept = len.min(max);
            // The body is read into `pending`, so that a frame cut short
            // (the sender gone, or a stop while it is silent) is kept as
            // far as it came.
            while bytes.len() < kept {
                let buf = reader.fill_buf().await?;
                if buf.is_empty() {
                    let mut m = message(bytes, max);
                    m.truncated = true;
                    return Ok(Some(m));
                }
                let n = buf.len().min(kept - bytes.len());
                bytes.extend_from_slice(&buf[..n]);
                reader.consume(n);
            }
            // Discard what is past the limit, keeping the framing.
            let mut rest = (len - kept) as u64;
            while rest > 0 {
                let n =
                    tokio::io::copy(&mut (&mut *reader).take(rest), &mut tokio::io::sink()).await?;
                if n == 0 {
                    break;
                }
                rest -= n;
            }
            let mut m = message(bytes, max);
            m.truncated |= len > max;
            return Ok(Some(m));
        }
    }

    // Newline framing, with the size limit applied while reading.
    let mut truncated = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            break;
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = (max + 2).saturating_sub(bytes.len());
        if chunk.len() > room {
            truncated = true;
        }
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        reader.consume(used);
        if done {
            break;
        }
    }
    let mut m = message(bytes, max);
    m.truncated |= truncated;
    Ok(Some(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<(String, bool)> {
        let mut reader = BufReader::new(input);
        let mut out = Vec::new();
        let mut pending = Vec::new();
        while let Some(m) = read_frame(&mut reader, max, &mut pending).await.unwrap() {
            out.push((String::from_utf8(m.bytes).unwrap(), m.truncated));
        }
        out
    }

    #[tokio::test]
    async fn tcp_clients_past_the_limit_are_closed() {
        use tokio::io::AsyncWriteExt;

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(tcp(listener, 1024, 2, tx, stop));

        // Two clients are served; the third is closed at once.
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        first.write_all(b"<13>one\n").await.unwrap();
        second.write_all(b"<13>two\n").await.unwrap();
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap();
        }
        let mut third = TcpStream::connect(addr).await.unwrap();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), third.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "not closed: {read:?}"
        );

        // A client leaving frees its place.
        drop(first);
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let mut next = TcpStream::connect(addr).await.unwrap();
                if next.write_all(b"<13>four\n").await.is_ok() {
                    if let Ok(Some(m)) =
                        tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
                    {
                        return m.bytes;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(got, b"<13>four");
    }

    #[tokio::test]
    async fn newline_and_octet_counted_frames_mix() {
        let input = b"<30>Mar 12 09:14:03 gw app: one\n19 <30>1 - - - - - two<30>Mar 12 09:14:04 gw app: three\r\n";
        let got = frames(input, 1024).await;
        assert_eq!(
            got,
            vec![
                ("<30>Mar 12 09:14:03 gw app: one".to_owned(), false),
                ("<30>1 - - - - - two".to_owned(), false),
                ("<30>Mar 12 09:14:04 gw app: three".to_owned(), false),
            ]
        );
    }

    #[tokio::test]
    async fn an_octet_counted_frame_cut_by_the_sender_leaving_is_kept_flagged() {
        let input = b"<30>Mar 12 09:14:03 gw app: one\n200 <30>Mar 12 09:14:05 gw app: cut";
        let got = frames(input, 1024).await;
        assert_eq!(
            got,
            vec![
                ("<30>Mar 12 09:14:03 gw app: one".to_owned(), false),
                ("<30>Mar 12 09:14:05 gw app: cut".to_owned(), true),
            ]
        );
    }

    #[tokio::test]
    async fn an_octet_counted_frame_half_sent_at_a_stop_is_kept_flagged() {
        use tokio::io::AsyncWriteExt;

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(tcp(listener, 1024, 4, tx, stop));

        // The sender stays connected, 30 bytes short of its count.
        let mut sender = TcpStream::connect(addr).await.unwrap();
        sender
            .write_all(b"60 <30>Mar 12 09:14:05 gw app: half")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop_tx.send(true).unwrap();
        let m = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.bytes, b"<30>Mar 12 09:14:05 gw app: half");
        assert!(m.truncated);
        drop(sender);
    }

    #[tokio::test]
    async fn long_messages_are_cut_and_flagged_not_split() {
        let long = "x".repeat(100);
        let input = format!("<30>{long}\n30 <30>{}next\n", &long[..26]);
        let got = frames(input.as_bytes(), 20).await;
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (format!("<30>{}", &long[..16]), true));
        assert_eq!(got[1], (format!("<30>{}", &long[..16]), true));
        assert_eq!(got[2], ("next".to_owned(), false));
    }
}
