//! A TCP proxy on 127.0.0.1 that a test can freeze: while frozen, it
//! accepts and acknowledges every byte but forwards nothing, in either
//! direction (a server that hangs, or a network partition seen from a
//! client whose packets are still acknowledged). Thawed, it forwards what
//! it held and goes on.
//!
//! Its threads poll a stop flag (reads and accepts time out every 50 ms)
//! and end when the proxy is dropped; connections are closed then.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the proxy's threads look at their flags.
const POLL: Duration = Duration::from_millis(50);

pub struct Proxy {
    port: u16,
    frozen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards each connection
    /// to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let frozen = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (frozen.clone(), stop.clone());
        let acceptor = std::thread::spawn(move || accept(listener, upstream, &f, &s));
        Proxy {
            port,
            frozen,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Forward nothing from now on (bytes are read and held).
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Forward again, what was held first.
    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept(
    listener: TcpListener,
    upstream: SocketAddr,
    frozen: &Arc<AtomicBool>,
    stop: &Arc<AtomicBool>,
) {
    let mut pumps = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    let (f, s) = (frozen.clone(), stop.clone());
                    pumps.push(std::thread::spawn(move || pump(from, to, &f, &s)));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => break,
        }
    }
    for p in pumps {
        let _ = p.join();
    }
}

/// Copies `from` to `to` until either ends or the proxy stops, holding
/// the bytes while frozen.
fn pump(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool, stop: &AtomicBool) {
    let _ = from.set_nonblocking(false);
    let _ = from.set_read_timeout(Some(POLL));
    let mut held: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut open = true;
    while !stop.load(Ordering::SeqCst) && (open || !held.is_empty()) {
        if !frozen.load(Ordering::SeqCst) && !held.is_empty() {
            if to.write_all(&held).is_err() {
                break;
            }
            held.clear();
        }
        if !open {
            std::thread::sleep(POLL);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => open = false,
            Ok(n) => held.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => open = false,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
