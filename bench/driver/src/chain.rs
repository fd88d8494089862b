//! `chain`: log entries streamed through `Chain.WriteLogs`, then the chain read back and
//! verified.

use anyhow::{Result, bail};
use gitflock_proto::v1::{LogEntry, ReadLogsRequest, VerifyRequest};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::{Target, connect};

/// The chain benchmark: `clients` concurrent clients send WriteLogs streams of `batch` entries
/// until `n` entries were sent; throughput is n / (first send → last acknowledgement), and a
/// WriteLogs call is acknowledged only once its entries are durable. Then the chain is read
/// back from height 1 (every entry counted, heights consecutive) and verified.
pub async fn chain(t: &Target, n: usize, clients: usize, batch: usize) -> Result<()> {
    if n == 0 || clients == 0 || batch == 0 {
        bail!("--n, --clients and --batch must be positive");
    }
    // Streams and verification can take long: a generous per-call timeout.
    let long = Duration::from_secs(900);
    let mut c = connect(t, long).await?;
    let before = c
        .chain
        .verify_chain(VerifyRequest {})
        .await?
        .into_inner()
        .height;
    // All entries are made before the clock starts.
    let mut batches = Vec::new();
    for start in (0..n).step_by(batch) {
        let entries: Vec<LogEntry> = (start..n.min(start + batch))
            .map(|i| {
                let mut content =
                    format!("bench entry {i:08} lorem ipsum dolor sit amet consectetur adipiscing");
                content.truncate(60);
                LogEntry {
                    level: "info".into(),
                    content,
                    create_at: String::new(),
                }
            })
            .collect();
        batches.push(entries);
    }
    let streams = batches.len();
    batches.reverse();
    let queue = Arc::new(Mutex::new(batches));
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(connect(t, long).await?);
    }
    let t0 = Instant::now();
    let mut writers = JoinSet::new();
    for mut w in conns {
        let queue = queue.clone();
        writers.spawn(async move {
            let mut acked = Vec::new();
            loop {
                let Some(b) = queue.lock().unwrap().pop() else {
                    break;
                };
                let sent = b.len() as u64;
                let r = w
                    .chain
                    .write_logs(tokio_stream::iter(b))
                    .await?
                    .into_inner();
                let span = r.last_height.checked_sub(r.first_height).map(|d| d + 1);
                if r.count != sent || span != Some(sent) {
                    bail!(
                        "sent {sent} entries, acknowledged {} at heights {}..={}",
                        r.count,
                        r.first_height,
                        r.last_height
                    );
                }
                acked.push((r.first_height, r.last_height));
            }
            Ok::<_, anyhow::Error>(acked)
        });
    }
    let mut ranges = Vec::with_capacity(streams);
    while let Some(r) = writers.join_next().await {
        ranges.extend(r??);
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("chain: {n} entries in {streams} streams acknowledged in {secs:.2} s");
    // The acknowledged ranges must tile before+1 ..= before+n.
    ranges.sort();
    let mut next = before + 1;
    for &(first, last) in &ranges {
        if first != next {
            eprintln!("chain: acknowledged ranges skip or overlap at height {next} (got {first})");
        }
        next = last + 1;
    }
    let last_acked = ranges.last().map_or(before, |r| r.1);

    // Read everything back from height 1.
    let t1 = Instant::now();
    let mut stream = c
        .chain
        .read_logs(ReadLogsRequest {
            since: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let (mut read, mut expect, mut gaps) = (0u64, 1u64, 0u64);
    while let Some(e) = stream.message().await? {
        if e.height != expect {
            gaps += 1;
        }
        expect = e.height + 1;
        read += 1;
    }
    eprintln!(
        "chain: read {read} entries back in {:.2} s",
        t1.elapsed().as_secs_f64()
    );
    if gaps > 0 {
        eprintln!("chain: {gaps} places where the heights read back are not consecutive");
    }
    let t2 = Instant::now();
    let v = c.chain.verify_chain(VerifyRequest {}).await?.into_inner();
    eprintln!(
        "chain: verified height {} in {:.2} s: ok={} {}",
        v.height,
        t2.elapsed().as_secs_f64(),
        v.ok,
        v.problem
    );
    println!("entries_per_s={:.0}", n as f64 / secs);
    println!("write_secs={secs:.3}");
    println!("streams={streams}");
    println!("entries={}", read.saturating_sub(before));
    println!("last_height={last_acked}");
    println!("height_gaps={gaps}");
    println!("verify_ok={}", v.ok);
    println!("verify_height={}", v.height);
    Ok(())
}
