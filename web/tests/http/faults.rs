//! What the dashboard says when the cluster lived through a fault: Redis losing its data.

use crate::common::*;
use std::io::{Read, Write};
use std::time::Duration;

/// FLUSHALL on the cluster's redis-server, in RESP over a plain socket (the dashboard's
/// tests link no Redis client).
fn flushall(url: &str) {
    let addr = url
        .strip_prefix("redis://")
        .and_then(|r| r.split('/').next())
        .expect("redis://host:port/db");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"*1\r\n$8\r\nFLUSHALL\r\n").unwrap();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"+OK"), "{:?}", &buf[..n]);
}

#[tokio::test]
async fn the_overview_says_when_redis_lost_its_data() {
    let c = Cluster::start(1).await;
    let user = Http::login(&c.web).await;
    let (s, page) = user.get_text("/").await;
    assert_eq!(s, 200);
    assert!(!page.contains("Redis lost its data"), "no loss yet");
    flushall(&c.cluster.redis.url());
    let page = wait_for(
        "the overview to say so",
        Duration::from_secs(30),
        || async {
            let (s, page) = user.get_text("/").await;
            (s == 200 && page.contains("id=\"data-lost\"")).then_some(page)
        },
    )
    .await;
    assert!(page.contains("Redis lost its data"), "{page}");
    assert!(page.contains("noticed by node1"), "{page}");
}
