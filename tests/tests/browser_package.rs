//! The client as a web developer gets it: `cargo xtask package` packs an
//! npm package, which installs into an empty folder with `npm install`,
//! and a plain page there (no bundler, no build step) chats through it in
//! headless Chromium against the real server. Its wasm stays within its
//! size budget.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, ensure};
use wtchat_server::encoding::{Coding, compress};
use wtchat_tests::binary::xtask_into;
use wtchat_tests::browser::Chromedriver;
use wtchat_tests::cross_server::until_body;
use wtchat_tests::server::temp_dir;
use wtchat_tests::{TestServer, WsClient};

/// The most bytes the client's wasm may take gzipped, as the server sends
/// it: half of the 111,606 bytes (`gzip -9`) it took before it was built
/// for size. It takes 53,584 now (see README, "The browser client").
const WASM_GZIP_BUDGET: u64 = 55_803;

/// A folder where the packed package was installed with npm, once per
/// test process.
fn installed() -> &'static Path {
    static APP: OnceLock<PathBuf> = OnceLock::new();
    APP.get_or_init(|| {
        let packed = temp_dir("npm-pack");
        xtask_into("package", &packed, "cargo xtask package");
        let tarball = std::fs::read_dir(&packed)
            .expect("the package folder")
            .filter_map(|entry| Some(entry.ok()?.path()))
            .find(|path| path.extension().is_some_and(|ext| ext == "tgz"))
            .expect("npm pack wrote a tarball");
        let app = temp_dir("npm-app");
        std::fs::create_dir_all(&app).expect("an empty folder");
        // A local tarball with no dependencies installs without a registry.
        let status = Command::new("npm")
            .args(["install", "--offline", "--no-audit", "--no-fund", "--loglevel=error"])
            .arg(&tarball)
            .current_dir(&app)
            .env("npm_config_cache", app.join(".npm-cache"))
            .env("npm_config_update_notifier", "false")
            .stdout(Stdio::null())
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm install of {} failed", tarball.display());
        app
    })
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>a plain page</title>
<script type="module">
  import init, { Client } from "./node_modules/wtchat-client/wtchat_client.js";
  const seen = (window.seen = { messages: [], sends: [], transport: null });
  await init();
  const chat = new Client();
  chat.on("message", (m) => seen.messages.push(m.body));
  chat.on("send", (s) => seen.sends.push(s.state));
  chat.on("transport", (t) => (seen.transport = t.transport));
  chat.on("joined", () => chat.send("pkg", "hello from the package"));
  chat.connect();
  chat.join("pkg", "Pia");
</script>
"#;

#[tokio::test]
async fn a_plain_page_chats_through_the_installed_package() -> Result<()> {
    let app = installed();
    let package = app.join("node_modules/wtchat-client");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(package.join("package.json"))?)?;
    ensure!(manifest["exports"]["."]["import"] == "./wtchat_client.js", "{manifest}");
    ensure!(manifest["types"] == "./wtchat_client.d.ts", "{manifest}");
    let types = std::fs::read_to_string(package.join("wtchat_client.d.ts"))?;
    ensure!(
        types.contains("export class Client") && types.contains("SendEvent"),
        "the types describe the API"
    );
    std::fs::write(app.join("index.html"), PAGE)?;

    let root = app.to_path_buf();
    let server = TestServer::start_with(move |c| c.web_root = root).await;
    let mut other = WsClient::connect(&server).await?;
    other.join("pkg", "other").await?;
    let driver = Chromedriver::start().await?;
    let page = driver.open(&format!("http://{}/", server.address)).await?;
    let sent = page.wait_for("window.seen?.sends.includes('sent')").await;
    let seen = page.eval("JSON.stringify(window.seen ?? null)").await?;
    sent.with_context(|| format!("the page's send was not answered; it saw {seen}"))?;
    until_body(&mut other, "hello from the package").await.context("the page's message")?;
    other.publish("pkg", "hello back").await?;
    page.wait_for("window.seen.messages.includes('hello back')").await?;
    ensure!(page.eval("window.seen.transport").await? == "webtransport");
    page.close().await?;
    server.stop().await
}

#[test]
fn the_clients_wasm_stays_within_its_size_budget() -> Result<()> {
    let wasm = installed().join("node_modules/wtchat-client/wtchat_client_bg.wasm");
    let raw = std::fs::read(&wasm)?;
    // As the server sends it to a browser that accepts gzip.
    let gzipped = compress(&raw, Coding::Gzip).map_or(raw.len(), |body| body.len()) as u64;
    println!("the client's wasm: {} bytes, {gzipped} gzipped (budget {WASM_GZIP_BUDGET})", raw.len());
    ensure!(
        gzipped <= WASM_GZIP_BUDGET,
        "the client's wasm is {gzipped} bytes gzipped, over {WASM_GZIP_BUDGET}"
    );
    Ok(())
}
