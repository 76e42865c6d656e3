//! A TCP proxy that a test can cut and restore: clients see their server gone (connections
//! reset, new ones refused) and back on the same address, while the server keeps running and
//! keeps its state — a network outage. Threads and std only.

use std::io::ErrorKind;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct TcpProxy {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: String,
    open: AtomicBool,
    stop: AtomicBool,
    /// Both ends of every connection passed through, to reset them on a cut.
    streams: Mutex<Vec<TcpStream>>,
}

impl TcpProxy {
    /// A proxy on 127.0.0.1:`port` to `upstream` (`host:port`), open.
    pub fn start(port: u16, upstream: &str) -> TcpProxy {
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            open: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            streams: Mutex::new(Vec::new()),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || accept_loop(port, &accepting));
        let proxy = TcpProxy { port, shared };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the proxy on port {port} did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        proxy
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Resets every connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.shared.open.store(false, Ordering::SeqCst);
        for s in self.shared.streams.lock().expect("lock").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        // The accept loop drops its listener within a poll.
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Accepts connections again, on the same port.
    pub fn restore(&self) {
        self.shared.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

fn accept_loop(port: u16, shared: &Shared) {
    let mut listener: Option<TcpListener> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        if !shared.open.load(Ordering::SeqCst) {
            listener = None;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let Some(l) = &listener else {
            listener = TcpListener::bind(("127.0.0.1", port)).ok();
            if let Some(l) = &listener {
                let _ = l.set_nonblocking(true);
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        };
        match l.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                match TcpStream::connect(&shared.upstream) {
                    Ok(server) => pipe(client, server, shared),
                    Err(_) => drop(client),
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Copies both ways on two threads; each direction ends both sockets when it ends.
fn pipe(client: TcpStream, server: TcpStream, shared: &Shared) {
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else { return };
    if let (Ok(c3), Ok(s3)) = (client.try_clone(), server.try_clone()) {
        shared.streams.lock().expect("lock").extend([c3, s3]);
    }
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        })
    };
    copy(client, s2);
    copy(server, c2);
}
