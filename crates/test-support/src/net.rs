//! Ports, and a bare HTTP GET against one.

/// A loopback port nothing listens on (bound, then released; another process may take it
/// before the caller does, which the tests accept).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local address")
        .port()
}

/// A plain HTTP/1.1 GET of `path` on 127.0.0.1:`port`: the status line, headers and body as
/// text; empty when nothing answers within 10 s (so a caller can poll it until a server is
/// up, and a stopped or hung server does not hang the caller).
pub async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf));
    if read.await.is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&buf).into_owned()
}
