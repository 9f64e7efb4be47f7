//! A TCP proxy on 127.0.0.1 that a test can cut and heal, to put a database outage between a
//! runner and its server without touching the server.
//!
//! - [`Proxy::start`]: listens on an ephemeral port of 127.0.0.1 and forwards every connection to
//!   the upstream address.
//! - [`Proxy::cut`]: drops every live connection (both sides see the socket close mid-stream)
//!   and closes the listening socket, so new connections are refused (`ECONNREFUSED`).
//! - [`Proxy::black_hole`]: keeps every socket open, accepts new connections, and silently
//!   drops every byte in both directions (and holds back a closing side's FIN), as a firewall
//!   change or a failed-over load balancer does: no reset, no refusal, just silence.
//! - [`Proxy::unanswered`]: drops every live connection, then accepts new ones but never
//!   answers on them: a client's connection attempt waits until its own timeout, as when packets
//!   to the server are lost (a connect timeout, errno 110) during a network partition.
//! - [`Proxy::heal`]: ends a black hole or the unanswered mode, or listens on the same port again
//!   after a cut.
//!
//! The proxy runs on a runtime of its own, so it keeps forwarding whatever the test's runtime is
//! doing. Dropping it cuts everything.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::AbortHandle;

/// A cuttable TCP proxy.
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    /// The accept loop, while listening.
    listener: Mutex<Option<AbortHandle>>,
    /// Live forwarding tasks.
    connections: Mutex<Vec<AbortHandle>>,
    accepted: AtomicUsize,
    cut: AtomicUsize,
    /// Bytes are dropped while set.
    black_hole: AtomicBool,
    /// Bytes dropped by black holes so far.
    swallowed: AtomicUsize,
    /// Whether new connections are held silently instead of forwarded.
    unanswered: AtomicBool,
    /// Connections held silently in the unanswered mode, closed by [`Proxy::heal`].
    held: Mutex<Vec<TcpStream>>,
}

impl Proxy {
    /// Starts forwarding `127.0.0.1:<ephemeral port>` to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("test-proxy")
            .enable_all()
            .build()
            .expect("proxy runtime");
        let mut proxy = Proxy {
            addr: "127.0.0.1:0".parse().unwrap(),
            upstream,
            runtime: Some(runtime),
            state: Arc::default(),
        };
        proxy.addr = proxy.listen("127.0.0.1:0".parse().unwrap());
        proxy
    }

    /// The address runners connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Live connections dropped by [`Proxy::cut`] so far.
    pub fn connections_cut(&self) -> usize {
        self.state.cut.load(Ordering::SeqCst)
    }

    /// Drops every live connection and stops listening: new connections are refused until
    /// [`Proxy::heal`]. Returns how many live connections were dropped.
    pub fn cut(&self) -> usize {
        if let Some(listener) = self.state.listener.lock().unwrap().take() {
            listener.abort();
        }
        // The aborted accept loop drops the listening socket on the proxy's runtime: wait until
        // it is really closed, so the caller's next connection attempt is refused.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::net::TcpStream::connect_timeout(
            &self.addr,
            std::time::Duration::from_millis(200),
        )
        .is_ok()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the proxy still accepts connections after a cut"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Now no connection can be added: drop the live ones.
        let live: Vec<AbortHandle> = std::mem::take(&mut *self.state.connections.lock().unwrap());
        let dropped = live.iter().filter(|c| !c.is_finished()).count();
        for connection in live {
            connection.abort();
        }
        self.state.cut.fetch_add(dropped, Ordering::SeqCst);
        dropped
    }

    /// Silences the network: every byte either side sends from now on is dropped, sockets stay
    /// open, new connections are accepted and silenced too, until [`Proxy::heal`].
    pub fn black_hole(&self) {
        self.state.black_hole.store(true, Ordering::SeqCst);
    }

    /// Bytes dropped by black holes so far.
    pub fn bytes_swallowed(&self) -> usize {
        self.state.swallowed.load(Ordering::SeqCst)
    }

    /// Drops every live connection; until [`Proxy::heal`], new connections are accepted and
    /// then never answered (the client waits for its own connect or handshake timeout).
    /// Returns how many live connections were dropped.
    pub fn unanswered(&self) -> usize {
        self.state.unanswered.store(true, Ordering::SeqCst);
        let live: Vec<AbortHandle> = std::mem::take(&mut *self.state.connections.lock().unwrap());
        let dropped = live.iter().filter(|c| !c.is_finished()).count();
        for connection in live {
            connection.abort();
        }
        self.state.cut.fetch_add(dropped, Ordering::SeqCst);
        dropped
    }

    /// Ends a black hole (bytes flow again on every socket; those dropped are lost) or the
    /// unanswered mode (closing the connections it held, as a client's timeout would), or after
    /// a cut listens on the same port again.
    pub fn heal(&self) {
        if self.state.unanswered.swap(false, Ordering::SeqCst) {
            self.state.held.lock().unwrap().clear();
            return;
        }
        if self.state.black_hole.swap(false, Ordering::SeqCst) {
            return;
        }
        assert!(
            self.state.listener.lock().unwrap().is_none(),
            "heal without a cut or a black hole"
        );
        let addr = self.listen(self.addr);
        assert_eq!(addr, self.addr);
    }

    /// Binds `addr` (port reuse on, so the port of a cut proxy can be bound again at once) and
    /// starts the accept loop; returns the bound address.
    fn listen(&self, addr: SocketAddr) -> SocketAddr {
        let runtime = self.runtime.as_ref().expect("running");
        let _enter = runtime.enter();
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket
            .bind(addr)
            .unwrap_or_else(|e| panic!("bind the proxy to {addr}: {e}"));
        let listener = socket.listen(1024).expect("listen");
        let bound = listener.local_addr().expect("local addr");
        let state = self.state.clone();
        let upstream = self.upstream;
        let accept = runtime.spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                state.accepted.fetch_add(1, Ordering::SeqCst);
                if state.unanswered.load(Ordering::SeqCst) {
                    state.held.lock().unwrap().push(client);
                    continue;
                }
                let forward = tokio::spawn(forward(client, upstream, state.clone()));
                let mut connections = state.connections.lock().unwrap();
                connections.retain(|c| !c.is_finished());
                connections.push(forward.abort_handle());
            }
        });
        *self.state.listener.lock().unwrap() = Some(accept.abort_handle());
        bound
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, state: Arc<State>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, &state),
        pump(server_read, client_write, &state)
    );
}

/// Copies `from` to `to` until EOF, dropping what arrives during a black hole; a FIN that
/// arrives during one is passed on only after it.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: &State,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if state.black_hole.load(Ordering::SeqCst) {
            state.swallowed.fetch_add(n, Ordering::SeqCst);
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    while state.black_hole.load(Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = to.shutdown().await;
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The `host:port` of a PostgreSQL URL, resolved to a socket address.
pub fn upstream_of(options: &sqlx::postgres::PgConnectOptions) -> SocketAddr {
    upstream_at(options.get_host(), options.get_port())
}

/// The `host:port` of a MySQL URL, resolved to a socket address.
pub fn mysql_upstream_of(options: &sqlx::mysql::MySqlConnectOptions) -> SocketAddr {
    upstream_at(options.get_host(), options.get_port())
}

fn upstream_at(host: &str, port: u16) -> SocketAddr {
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .expect("resolve the database host")
        .find(SocketAddr::is_ipv4)
        .expect("an IPv4 address for the database host")
}
