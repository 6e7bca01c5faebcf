//! Real headless browsers, Chromium through chromedriver and Firefox through
//! geckodriver, showing the demo page with a freshly built wasm client.

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
/// Firefox ESR as Debian installs it (`cargo xtask test` installs it).
pub const FIREFOX: &str = "/usr/bin/firefox-esr";

/// A browser the tests drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Browser {
    /// Debian's Chromium.
    Chromium,
    /// Debian's Firefox ESR.
    Firefox,
}

impl Browser {
    /// Both, for tests that run in each.
    pub const ALL: [Self; 2] = [Self::Chromium, Self::Firefox];

    /// The browser's name, for messages and file names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Chromium => "chromium",
            Self::Firefox => "firefox",
        }
    }

    /// Where its WebDriver server is: Debian's chromedriver, or the
    /// geckodriver `cargo xtask test` installs into cargo's bin folder.
    fn driver_path(self) -> PathBuf {
        match self {
            Self::Chromium => PathBuf::from(CHROMEDRIVER),
            Self::Firefox => {
                let cargo_home = std::env::var_os("CARGO_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
                    .unwrap_or_default();
                let installed = cargo_home.join("bin").join("geckodriver");
                if installed.exists() { installed } else { PathBuf::from("geckodriver") }
            }
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Self::Chromium => CHROMIUM,
            Self::Firefox => FIREFOX,
        }
    }

    /// The WebDriver capabilities of a fresh, headless, quiet browser with a
    /// profile of its own.
    fn capabilities(self, profile: &Path) -> Value {
        match self {
            Self::Chromium => json!({
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
            }),
            Self::Firefox => json!({
                "browserName": "firefox",
                "moz:firefoxOptions": {
                    "binary": FIREFOX,
                    "args": ["-headless", "-width", "1100", "-height", "800", "-profile", profile.display().to_string()],
                    // Nothing reaches outside hosts: no updates, telemetry,
                    // safe-browsing lists or connectivity probes.
                    "prefs": {
                        "app.update.disabledForTesting": true,
                        "browser.safebrowsing.malware.enabled": false,
                        "browser.safebrowsing.phishing.enabled": false,
                        "browser.safebrowsing.downloads.enabled": false,
                        "browser.shell.checkDefaultBrowser": false,
                        "datareporting.policy.dataSubmissionEnabled": false,
                        "datareporting.healthreport.uploadEnabled": false,
                        "toolkit.telemetry.enabled": false,
                        "network.captive-portal-service.enabled": false,
                        "network.connectivity-service.enabled": false,
                        "extensions.update.enabled": false,
                        "browser.region.network.url": "",
                        "network.webtransport.enabled": true,
                    },
                }
            }),
        }
    }
}

/// The demo server started again on the ports it had (TCP, and UDP for
/// WebTransport), as after a restart: pages reconnect to the same URLs.
pub async fn demo_server_again(tcp: std::net::SocketAddr, quic: std::net::SocketAddr) -> crate::TestServer {
    let root = web_root().to_path_buf();
    crate::TestServer::start_with(move |c| {
        c.listen = tcp;
        c.quic_listen = Some(quic);
        c.web_root = root;
    })
    .await
}

/// A web root holding the demo page and a wasm client built from the
/// current sources, built once per test process through
/// `cargo xtask build-client`, so the tests never run a stale client.
pub fn web_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wtchat-browser-web");
        crate::binary::xtask_into("build-client", &out, "building the wasm client");
        out
    })
}

/// A browser's WebDriver server, of this test's own. Chromium's serves
/// every page of the test; geckodriver drives one Firefox at a time, so each
/// Firefox page gets a geckodriver of its own.
pub struct Driver {
    browser: Browser,
    /// Chromium's shared server.
    shared: Option<DriverProcess>,
}

/// A running WebDriver server.
struct DriverProcess {
    child: Child,
    port: u16,
}

impl DriverProcess {
    /// Starts the browser's WebDriver server on a free loopback port.
    async fn start(browser: Browser) -> Result<Self> {
        let driver = browser.driver_path();
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut command = Command::new(&driver);
        match browser {
            Browser::Chromium => command.arg(format!("--port={port}")),
            // Each Firefox gets a Marionette port of its own, so that pages
            // and tests can run side by side.
            Browser::Firefox => {
                command.args(["--port", &port.to_string(), "--host", "127.0.0.1", "--marionette-port", "0"])
            }
        };
        // Its own process group, which the browsers it starts join, so
        // that dropping it stops them too, even when a failing test never
        // closed its pages.
        use std::os::unix::process::CommandExt;
        let child = command
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", driver.display()))?;
        let process = Self { child, port };
        crate::server::eventually(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
            .await
            .with_context(|| format!("the WebDriver server for {} did not start", browser.name()))?;
        Ok(process)
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium's driver, kept under its old name for the tests that only use
/// Chromium.
pub struct Chromedriver;

impl Chromedriver {
    /// Starts chromedriver.
    pub async fn start() -> Result<Driver> {
        Driver::start(Browser::Chromium).await
    }
}

impl Driver {
    /// Checks that the browser and its WebDriver server are installed, and
    /// starts the server where one serves every page.
    pub async fn start(browser: Browser) -> Result<Self> {
        let driver = browser.driver_path();
        if !Path::new(browser.binary()).exists() || (driver.is_absolute() && !driver.exists()) {
            bail!("{} or its WebDriver server is missing; `cargo xtask test` installs them", browser.name());
        }
        let shared = match browser {
            Browser::Chromium => Some(DriverProcess::start(browser).await?),
            Browser::Firefox => None,
        };
        Ok(Self { browser, shared })
    }

    /// The browser this driver runs.
    pub fn browser(&self) -> Browser {
        self.browser
    }

    /// Opens a fresh browser (its own profile, so nothing is shared between
    /// pages) at `url`.
    pub async fn open(&self, url: &str) -> Result<Page> {
        let own = match &self.shared {
            Some(_) => None,
            None => Some(DriverProcess::start(self.browser).await?),
        };
        let port = self.shared.as_ref().or(own.as_ref()).map(|process| process.port).unwrap_or_default();
        let profile = temp_dir(&format!("{}-profile", self.browser.name()));
        std::fs::create_dir_all(&profile)?;
        let Value::Object(capabilities) = self.browser.capabilities(&profile) else {
            bail!("capabilities are an object")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .with_context(|| format!("the WebDriver server would not open {}", self.browser.name()))?;
        client.goto(url).await?;
        Ok(Page { client, profile, _driver: own })
    }
}

/// One browser showing one page.
pub struct Page {
    /// The WebDriver session.
    pub client: Client,
    profile: PathBuf,
    /// The page's own WebDriver server, where the browser needs one per
    /// page; stopped after the page.
    _driver: Option<DriverProcess>,
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
