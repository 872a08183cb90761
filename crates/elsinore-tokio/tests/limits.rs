//! Runtime limits: the connection cap.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use elsinore_server::{Server, ServerConfig};
use elsinore_storage::MemoryStore;
use elsinore_tokio::{Clock, Serve, Storage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused() {
    let clock = Clock::new();
    let server = Server::new(ServerConfig::new(common::DOMAIN), [1; 32], clock.now());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(
        Serve::new(server, clock, Storage::per_op(MemoryStore::new()))
            .max_connections(1)
            .run(listener, async move {
                let _ = stopped.await;
            }),
    );

    let header = b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
        xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(header).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), first.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("stream:stream"),
        "the first connection is served"
    );

    let mut second = TcpStream::connect(addr).await.unwrap();
    let _ = second.write_all(header).await;
    let n = tokio::time::timeout(Duration::from_secs(10), second.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the second connection is closed at once");

    drop(first);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
