//! The fault proxy on real sockets: it relays bytes intact both ways, and
//! each fault does what it says (a lower bound on delay and rate, bytes
//! lost in a black hole, connections closed by a cut and relayed again
//! after it heals).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tally_tests::proxy::{FaultProxy, Faults, LinkState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A server that echoes every byte back.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn round_trip(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    s.write_all(data).await.unwrap();
    let mut back = vec![0u8; data.len()];
    s.read_exact(&mut back).await.unwrap();
    back
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn bytes_pass_intact_both_ways() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let s = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut r, mut w) = s.into_split();
    // A megabyte, written while it is read back: more than any socket
    // buffer, so both directions must flow at once.
    let data = pattern(1 << 20);
    let sent = data.clone();
    let send = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w
    });
    let mut back = vec![0u8; data.len()];
    r.read_exact(&mut back).await.unwrap();
    assert_eq!(back, data);
    let mut s = r.reunite(send.await.unwrap()).unwrap();
    assert_eq!(round_trip(&mut s, b"again").await, b"again");
}

#[tokio::test]
async fn a_delay_holds_every_chunk_for_at_least_its_time_each_way() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let delay = Duration::from_millis(150);
    proxy.set(LinkState {
        forward: Faults {
            delay,
            jitter: Duration::from_millis(20),
            ..Faults::default()
        },
        backward: Faults {
            delay,
            ..Faults::default()
        },
        cut: false,
    });
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(round_trip(&mut s, b"ping").await, b"ping");
        assert!(started.elapsed() >= 2 * delay, "{:?}", started.elapsed());
    }
    proxy.heal();
    assert_eq!(proxy.state(), LinkState::default());
    assert_eq!(round_trip(&mut s, b"healed").await, b"healed");
}

#[tokio::test]
async fn a_rate_limit_spreads_the_bytes_over_time() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    proxy.set(LinkState {
        backward: Faults {
            rate: Some(20 * 1024),
            ..Faults::default()
        },
        ..LinkState::default()
    });
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    let data = pattern(60 * 1024);
    let started = Instant::now();
    assert_eq!(round_trip(&mut s, &data).await, data);
    // 60 KiB at 20 KiB in any second: the last byte leaves two seconds
    // after the first at the earliest.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_black_hole_loses_bytes_but_keeps_the_connection() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut s, b"before").await, b"before");
    proxy.set(LinkState {
        forward: Faults {
            blackhole: true,
            ..Faults::default()
        },
        ..LinkState::default()
    });
    s.write_all(b"lost").await.unwrap();
    // Heal only once the proxy has read the lost bytes into the hole.
    proxy.dropped_at_least(4).await;
    assert_eq!(proxy.dropped_bytes(), 4);
    proxy.heal();
    // Had they passed, this would read "losta".
    assert_eq!(round_trip(&mut s, b"after").await, b"after");
}

#[tokio::test]
async fn a_cut_closes_connections_and_refuses_new_ones_until_it_heals() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut open, b"up").await, b"up");
    proxy.set_cut(true);
    let mut buf = [0u8; 8];
    // The open connection ends: end of stream or a reset.
    assert!(matches!(open.read(&mut buf).await, Ok(0) | Err(_)));
    // A new one is accepted by the kernel, then closed by the proxy.
    let mut during = TcpStream::connect(proxy.addr()).await.unwrap();
    let _ = during.write_all(b"hello").await;
    assert!(matches!(during.read(&mut buf).await, Ok(0) | Err(_)));
    proxy.set_cut(false);
    let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut after, b"back").await, b"back");
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_connections() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut s, b"up").await, b"up");
    drop(proxy);
    let mut buf = [0u8; 8];
    assert!(matches!(s.read(&mut buf).await, Ok(0) | Err(_)));
}
