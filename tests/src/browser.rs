//! A real headless Chromium, driven through chromedriver, showing the demo
//! page with a freshly built wasm client.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fantoccini::{Client, ClientBuilder};
use hyper_util_client::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::server::{PATIENCE, temp_dir};

/// Chromium as Debian installs it (`cargo xtask test` installs it).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Its chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A web root holding the demo page and a wasm client built from the
/// current sources, built once per test process through
/// `cargo xtask build-client`, so the tests never run a stale client.
pub fn web_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = root.join("target").join("wtchat-browser-web");
        let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        crate::binary::without_package_variables(&mut command);
        let status = command
            .current_dir(&root)
            .args(["run", "--quiet", "--package", "xtask", "--", "build-client", "--out"])
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the wasm client failed");
        out
    })
}

/// A chromedriver process of this test's own.
pub struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    /// Starts chromedriver on a free loopback port.
    pub async fn start() -> Result<Self> {
        if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
            bail!("Chromium and chromedriver are missing; `cargo xtask test` installs them");
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let driver = Self { child, port };
        crate::server::eventually(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
            .await
            .context("chromedriver did not start")?;
        Ok(driver)
    }

    /// Opens a fresh browser (its own profile, so nothing is shared between
    /// pages) at `url`.
    pub async fn open(&self, url: &str) -> Result<Page> {
        let profile = temp_dir("chromium-profile");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1100,800",
                    format!("--user-data-dir={}", profile.display()),
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
                ],
            }
        });
        let Value::Object(capabilities) = capabilities else { bail!("capabilities are an object") };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .context("chromedriver would not open a browser")?;
        client.goto(url).await?;
        Ok(Page { client, profile })
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser showing one page.
pub struct Page {
    /// The WebDriver session.
    pub client: Client,
    profile: PathBuf,
}

impl Page {
    /// Evaluates a JavaScript expression in the page.
    pub async fn eval(&self, expression: &str) -> Result<Value> {
        Ok(self.client.execute(&format!("return ({expression});"), Vec::new()).await?)
    }

    /// Waits until a JavaScript expression is truthy; returns its value.
    pub async fn wait_for(&self, expression: &str) -> Result<Value> {
        self.wait_for_within(expression, PATIENCE).await
    }

    /// Waits until a JavaScript expression is truthy, at most `patience`.
    pub async fn wait_for_within(&self, expression: &str, patience: Duration) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let value = self.eval(expression).await?;
            if !matches!(value, Value::Null | Value::Bool(false)) && value != json!(0) && value != json!("") {
                return Ok(value);
            }
            if tokio::time::Instant::now() > deadline {
                let events =
                    self.eval("JSON.stringify(window.wtchatDemo && window.wtchatDemo.events)").await?;
                bail!("`{expression}` never held; the page's events: {events}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types a message into the composer and sends it, as a person would.
    pub async fn say(&self, text: &str) -> Result<()> {
        let text = serde_json::to_string(text)?;
        self.eval(&format!(
            "(() => {{ const input = document.getElementById('text'); input.value = {text}; \
             input.dispatchEvent(new Event('input')); \
             document.getElementById('composer').requestSubmit(); return true; }})()"
        ))
        .await?;
        Ok(())
    }

    /// The message bodies the page shows, in order.
    pub async fn shown_messages(&self) -> Result<Vec<String>> {
        let value = self
            .eval("[...document.querySelectorAll('#messages li:not(.system)')].map(li => li.lastChild.textContent)")
            .await?;
        Ok(serde_json::from_value(value)?)
    }

    /// Saves a screenshot of the page.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let png = self.client.screenshot().await?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Closes the browser.
    pub async fn close(self) -> Result<()> {
        self.client.close().await?;
        let _ = std::fs::remove_dir_all(&self.profile);
        Ok(())
    }
}
