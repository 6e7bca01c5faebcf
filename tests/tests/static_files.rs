//! The page and the client as a browser gets them, over real HTTP: each file
//! compressed (brotli or gzip, as `Accept-Encoding` asks), revalidated by
//! its `ETag` with `304 Not Modified`, cached for a year when asked for by
//! its content hash, and read again when it changes on disk.

use std::io::Read as _;

use anyhow::{Context, Result, ensure};
use wtchat_tests::server::temp_dir;
use wtchat_tests::{TestServer, http_get_raw};

#[tokio::test]
async fn static_files_are_compressed_as_asked_revalidated_and_cached_by_content() -> Result<()> {
    let root = temp_dir("web");
    std::fs::create_dir_all(root.join("pkg"))?;
    let script = "export function hello(name) { return `wtchat greets ${name}`; }\n".repeat(2_000);
    std::fs::write(root.join("pkg/client.js"), &script)?;
    let image: Vec<u8> = (0..4_000).map(|_| fastrand::u8(..)).collect();
    std::fs::write(root.join("logo.png"), &image)?;
    let web_root = root.clone();
    let server = TestServer::start_with(move |config| config.web_root = web_root).await;
    let address = server.address;

    // What browsers ask for: brotli, the smallest. The first request finds
    // the file not yet compressed (that happens in the background, so that
    // it waits for nothing) and may get it as it is.
    let asks = [("Accept-Encoding", "gzip, deflate, br, zstd")];
    let mut br = http_get_raw(address, "/pkg/client.js", &asks).await?;
    ensure!(br.status == 200);
    ensure!(br.header("content-encoding").is_some() || br.body == script.as_bytes());
    let deadline = tokio::time::Instant::now() + wtchat_tests::PATIENCE;
    while br.header("content-encoding") != Some("br") {
        ensure!(tokio::time::Instant::now() < deadline, "never compressed: {:?}", br.headers);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        br = http_get_raw(address, "/pkg/client.js", &asks).await?;
    }
    let mut unpacked = Vec::new();
    brotli::BrotliDecompress(&mut &br.body[..], &mut unpacked)?;
    ensure!(unpacked == script.as_bytes(), "brotli gives back the file");
    ensure!(br.body.len() * 20 < script.len(), "{} bytes for {}", br.body.len(), script.len());
    ensure!(br.header("vary").is_some_and(|vary| vary.contains("accept-encoding")));
    ensure!(br.header("cache-control") == Some("no-cache"), "a plain name is revalidated");
    ensure!(br.header("content-type") == Some("text/javascript; charset=utf-8"));
    let br_tag = br.header("etag").context("an ETag")?.to_owned();

    // A client that takes gzip only.
    let gz = http_get_raw(address, "/pkg/client.js", &[("Accept-Encoding", "gzip")]).await?;
    ensure!(gz.header("content-encoding") == Some("gzip"));
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..]).read_to_end(&mut unzipped)?;
    ensure!(unzipped == script.as_bytes(), "gzip gives back the file");
    let gz_tag = gz.header("etag").context("an ETag")?.to_owned();
    ensure!(gz_tag != br_tag, "each coding is its own representation");

    // And one that asks for nothing.
    let plain = http_get_raw(address, "/pkg/client.js", &[]).await?;
    ensure!(plain.header("content-encoding").is_none() && plain.body == script.as_bytes());
    ensure!(plain.header("content-length") == Some(script.len().to_string().as_str()));

    // Revalidation: the tag it holds answers 304 with no body; another
    // coding's tag does not.
    let again =
        http_get_raw(address, "/pkg/client.js", &[("Accept-Encoding", "br"), ("If-None-Match", &br_tag)])
            .await?;
    ensure!(again.status == 304 && again.body.is_empty(), "{}", again.status);
    ensure!(again.header("etag") == Some(br_tag.as_str()));
    let crossed =
        http_get_raw(address, "/pkg/client.js", &[("Accept-Encoding", "br"), ("If-None-Match", &gz_tag)])
            .await?;
    ensure!(crossed.status == 200);

    // Asked for by its content hash, the file may be kept for a year; a
    // hash that is not its own gets no such promise.
    let hash = br_tag.trim_matches('"').trim_end_matches("-br");
    let addressed = http_get_raw(address, &format!("/pkg/client.js?v={hash}"), &[]).await?;
    ensure!(addressed.header("cache-control") == Some("public, max-age=31536000, immutable"));
    let stale = http_get_raw(address, "/pkg/client.js?v=0123456789abcdef", &[]).await?;
    ensure!(stale.header("cache-control") == Some("no-cache"));

    // An image is compressed already: sent as it is.
    let png = http_get_raw(address, "/logo.png", &[("Accept-Encoding", "br, gzip")]).await?;
    ensure!(png.header("content-encoding").is_none() && png.body == image);

    // A rebuilt file is picked up without a restart, under a new tag (as it
    // is at first, while it is compressed again).
    let rebuilt = script.replace("greets", "welcomes");
    std::fs::write(root.join("pkg/client.js"), &rebuilt)?;
    let fresh =
        http_get_raw(address, "/pkg/client.js", &[("Accept-Encoding", "gzip"), ("If-None-Match", &gz_tag)])
            .await?;
    ensure!(fresh.status == 200 && fresh.header("etag") != Some(gz_tag.as_str()));
    let mut unzipped = Vec::new();
    if fresh.header("content-encoding") == Some("gzip") {
        flate2::read::GzDecoder::new(&fresh.body[..]).read_to_end(&mut unzipped)?;
    } else {
        unzipped = fresh.body.clone();
    }
    ensure!(unzipped == rebuilt.as_bytes());
    drop(server);
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}
