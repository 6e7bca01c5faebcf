//! Churn: ten thousand sessions connect, join, publish and go, over both
//! transports, against the real binary. Afterwards nothing may be left
//! behind: no session, room, admission place or task, and the server's
//! memory back near where it was before the churn.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use wtchat_tests::binary::Binary;
use wtchat_tests::server::eventually_async;
use wtchat_tests::server::temp_dir;
use wtchat_tests::webtransport::published_hashes_at;
use wtchat_tests::{WsClient, WtClient, http_get};

/// Cycles per transport; ten thousand in all.
const CYCLES: usize = 5_000;

/// Cycles running at once.
const CONCURRENCY: usize = 16;

/// How long the server may take to settle after a churn: closed QUIC
/// connections linger for their draining period before their tasks end.
const SETTLING: Duration = Duration::from_secs(60);

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

async fn status(binary: &Binary) -> Result<Value> {
    let (code, body) = http_get(binary.address, "/status", &[]).await?;
    anyhow::ensure!(code == 200, "/status answered {code}");
    Ok(serde_json::from_str(&body)?)
}

/// One session's life: connect, hello, join a room of its own or a shared
/// one, publish, leave by closing (cleanly or not).
async fn ws_cycle(binary: &Binary, n: usize) -> Result<()> {
    let mut client = WsClient::connect_at(binary.address, None, None).await?;
    client.hello().await?;
    client.join(&format!("churn-{}", n % 50), &format!("ws{n}")).await?;
    client.publish(&format!("churn-{}", n % 50), "hello").await?;
    if n % 2 == 0 {
        client.send_raw(tokio_tungstenite::tungstenite::Message::Close(None)).await?;
    }
    // Odd cycles just drop the socket, as a closed tab does.
    Ok(())
}

async fn wt_cycle(binary: &Binary, hashes: &[[u8; 32]], n: usize) -> Result<()> {
    let url = binary.webtransport_url.as_deref().context("WebTransport is on")?;
    let mut client = WtClient::open(url, hashes, None).await?;
    client.hello().await?;
    client.join(&format!("churn-{}", n % 50), &format!("wt{n}")).await?;
    client.publish(&format!("churn-{}", n % 50), "hello").await?;
    Ok(())
}

async fn churn<F, Fut>(cycles: usize, run: F) -> Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let run = Arc::new(run);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (next, run) = (next.clone(), run.clone());
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= cycles {
                    return anyhow::Ok(());
                }
                run(n).await.with_context(|| format!("cycle {n}"))?;
            }
        });
    }
    while let Some(worker) = workers.join_next().await {
        worker??;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sessions_come_and_go_and_leave_nothing_behind() -> Result<()> {
    let certs = temp_dir("churn-certs");
    let binary = Arc::new(Binary::start(&[
        "--listen",
        "127.0.0.1:0",
        "--cert-dir",
        certs.to_str().unwrap_or_default(),
        "--max-new-connections-per-sec",
        "0",
        "--log",
        "warn",
    ])?);
    let pid = binary.child.id();
    let hashes = Arc::new(published_hashes_at(binary.address).await?);
    let idle_tasks = status(&binary).await?["tasks"].as_u64().context("tasks")?;
    // Closed QUIC connections linger for their draining period (three
    // probe timeouts) before their tasks end; this waits for that.
    let settled = |binary: Arc<Binary>| async move {
        eventually_async(SETTLING, || {
            let binary = binary.clone();
            async move {
                status(&binary).await.is_ok_and(|s| {
                    s["sessions"] == 0
                        && s["rooms"] == 0
                        && s["tasks"].as_u64().is_some_and(|t| t <= idle_tasks)
                })
            }
        })
        .await
    };

    // Warm up first, so that the baseline includes the allocator's pools
    // and the runtime's buffers rather than counting them as a leak.
    let warm = binary.clone();
    churn(200, move |n| {
        let binary = warm.clone();
        async move { ws_cycle(&binary, n).await }
    })
    .await?;
    let (warm, warm_hashes) = (binary.clone(), hashes.clone());
    churn(200, move |n| {
        let (binary, hashes) = (warm.clone(), warm_hashes.clone());
        async move { wt_cycle(&binary, &hashes, n).await }
    })
    .await?;
    settled(binary.clone()).await.context("the warm-up left sessions, rooms or tasks behind")?;
    let baseline = rss_kib(pid)?;

    let ws = binary.clone();
    churn(CYCLES, move |n| {
        let binary = ws.clone();
        async move { ws_cycle(&binary, n).await }
    })
    .await?;
    let wt = binary.clone();
    churn(CYCLES, move |n| {
        let (binary, hashes) = (wt.clone(), hashes.clone());
        async move { wt_cycle(&binary, &hashes, n).await }
    })
    .await?;

    let left = settled(binary.clone()).await;
    let after = status(&binary).await?;
    assert!(
        left.is_ok(),
        "sessions, rooms or tasks were left behind ({idle_tasks} tasks when idle): {after}"
    );
    assert_eq!(after["admitted"], 0, "every admission place was given back: {after}");
    assert_eq!(after["addresses"], 0, "no address is still counted: {after}");
    let rss = rss_kib(pid)?;
    // A leak of even 1 KB per cycle would add 10 MB.
    assert!(
        rss <= baseline + 8 * 1024,
        "RSS grew from {baseline} KiB to {rss} KiB over {} cycles",
        2 * CYCLES
    );
    eprintln!("churn: RSS {baseline} KiB before, {rss} KiB after; {} tasks, as when idle", after["tasks"]);
    let _ = std::fs::remove_dir_all(certs);
    Ok(())
}
