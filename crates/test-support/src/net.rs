//! Ports.

/// A loopback port nothing listens on (bound, then released; another process may take it
/// before the caller does, which the tests accept).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local address")
        .port()
}
