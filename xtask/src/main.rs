//! The project's build driver.
//!
//! - `cargo xtask run [-- ARGS]`: build the browser client and start the
//!   server with the demo page.
//! - `cargo xtask test`: every check CI runs.
//! - `cargo xtask build-client [--out DIR]`: build the wasm client into
//!   `web/pkg` (or `DIR/pkg` with a copy of the page).
//! - `cargo xtask bench [--quick] [--only PREFIX]`: run the benchmarks and write
//!   BENCHMARKS.md.
//! - `cargo xtask fuzz [SECONDS]`: run every fuzz target for SECONDS each
//!   (`cargo test` runs them for a short time too).
//!
//! Each installs what it needs when it is missing (the wasm target,
//! wasm-bindgen-cli at the pinned version, cargo-fuzz, Chromium and
//! chromedriver, Firefox ESR and geckodriver, Redis), so all of them work on
//! a fresh machine.

mod bench;
mod capacity;
mod client;
mod large_rooms;
mod redis_deployment;
mod results;
mod yardsticks;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("test") if args.iter().any(|a| a == "--quick") => test_quick(),
        Some("test") => test(),
        Some("bench") => {
            let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
            bench::run(args.iter().any(|a| a == "--quick"), only.as_deref())
        }
        Some("fuzz") => {
            let seconds = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60);
            let mut totals = Totals::default();
            fuzz(seconds, &mut totals)
        }
        Some("build-client") => {
            let out = args.iter().position(|a| a == "--out").and_then(|i| args.get(i + 1)).map(PathBuf::from);
            client::build(out.as_deref())
        }
        Some("package") => {
            let out = args.iter().position(|a| a == "--out").and_then(|i| args.get(i + 1)).map(PathBuf::from);
            client::package(out.as_deref()).map(|_| ())
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 run [-- ARGS]              build the client and start the server with the demo page (ARGS go to `wtchat serve`)\n  \
                 test                       run every check: formatting, clippy, the wasm build, all tests (browser ones too)\n  \
                 test --quick               the edit-run loop: formatting, clippy and the native tests, without browsers, churn or fuzzing\n  \
                 build-client [--out DIR]   build the wasm client into web/pkg, or into DIR with a copy of the page\n  \
                 package [--out DIR]        build the client's npm package and pack it (into target/npm, or DIR)\n  \
                 bench [--quick]            run every benchmark against a release server and write BENCHMARKS.md\n  \
                 fuzz [SECONDS]             run every fuzz target for SECONDS (default 60) each, growing fuzz/corpus"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root());
    // Cargo describes the package it ran (this xtask) in the environment;
    // passed on, those variables reach build scripts that watch them (ring
    // watches CARGO_MANIFEST_DIR) and force rebuilds whenever `cargo xtask`
    // and plain `cargo` alternate.
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str() {
            if is_package_variable(name) {
                command.env_remove(name);
            }
        }
    }
    command
}

/// The variables cargo sets for the package it runs, as opposed to settings
/// the user chose (`CARGO_HOME`, `CARGO_TARGET_DIR`, `CARGO_PROFILE_*`, ...).
fn is_package_variable(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "OUT_DIR"
        )
}

fn step(title: &str, command: &mut Command) -> Result {
    eprintln!("\n==> {title}");
    let status = command.status().map_err(|e| format!("{title}: cannot start: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{title} failed ({status})")) }
}

fn output(command: &mut Command) -> String {
    command.output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

/// Installs the wasm target and the lint components when rustup lacks them.
fn ensure_toolchain() -> Result {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]));
    if !installed.lines().any(|line| line.trim() == WASM_TARGET) {
        step("install the wasm32 target", Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    let components = output(Command::new("rustup").args(["component", "list", "--installed"]));
    for component in ["rustfmt", "clippy"] {
        if !components.lines().any(|line| line.starts_with(component)) {
            step(
                &format!("install {component}"),
                Command::new("rustup").args(["component", "add", component]),
            )?;
        }
    }
    Ok(())
}

/// The wasm-bindgen version the workspace pins (`wasm-bindgen = "=X"`): the
/// CLI must be exactly that version.
fn pinned_wasm_bindgen() -> Result<String> {
    let manifest =
        std::fs::read_to_string(root().join("Cargo.toml")).map_err(|e| format!("Cargo.toml: {e}"))?;
    manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix("wasm-bindgen = \"=")?.split('"').next().map(str::to_owned))
        .ok_or_else(|| "Cargo.toml pins no wasm-bindgen version (wasm-bindgen = \"=X\")".into())
}

fn wasm_bindgen_command() -> Command {
    let local = home_bin("wasm-bindgen");
    Command::new(if local.exists() { local } else { PathBuf::from("wasm-bindgen") })
}

fn home_bin(name: &str) -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_default();
    cargo_home.join("bin").join(name)
}

/// Installs wasm-bindgen-cli at the pinned version when it is missing or
/// another version. It builds from source (a few minutes); `--locked` is not
/// used because the published lock file of some versions names a yanked
/// dependency.
fn ensure_wasm_bindgen_cli() -> Result {
    let version = pinned_wasm_bindgen()?;
    let installed = output(wasm_bindgen_command().arg("--version"));
    if installed.split_whitespace().nth(1) == Some(version.as_str()) {
        return Ok(());
    }
    step(
        &format!("install wasm-bindgen-cli {version} (builds from source, a few minutes)"),
        cargo().args(["install", "wasm-bindgen-cli", "--version", &version]),
    )
}

/// Makes sure Debian's Chromium and chromedriver are installed, for the
/// browser tests.
fn ensure_chromium() -> Result {
    ensure_debian_packages(
        "Chromium and chromedriver",
        &["/usr/bin/chromium", "/usr/bin/chromedriver"],
        &["chromium", "chromium-driver"],
    )
}

/// The geckodriver version installed when it is missing; it builds from
/// crates.io (Debian has no package).
const GECKODRIVER_VERSION: &str = "0.37.1";

/// Makes sure Debian's Firefox ESR and geckodriver are installed, for the
/// browser tests in Firefox.
fn ensure_firefox() -> Result {
    ensure_debian_packages("Firefox ESR", &["/usr/bin/firefox-esr"], &["firefox-esr"])?;
    let installed = output(Command::new(home_bin("geckodriver")).arg("--version"));
    if installed.split_whitespace().nth(1) == Some(GECKODRIVER_VERSION) {
        return Ok(());
    }
    step(
        &format!("install geckodriver {GECKODRIVER_VERSION} (builds from source, a few minutes)"),
        cargo().args(["install", "geckodriver", "--version", GECKODRIVER_VERSION]),
    )
}

/// Makes sure Debian's Redis is installed, for the scale-out tests (each
/// test starts its own `redis-server` on a loopback port, and the cluster
/// tests join several with `redis-cli --cluster create`).
pub(crate) fn ensure_redis() -> Result {
    ensure_debian_packages(
        "Redis",
        &["/usr/bin/redis-server", "/usr/bin/redis-cli"],
        &["redis-server", "redis-tools"],
    )
}

/// Installs `packages` with apt-get unless every one of `files` exists.
/// Debian's clean-up hook deletes downloaded packages between dpkg runs,
/// which can break a large install halfway; keeping the archives in a
/// folder of our own avoids that.
fn ensure_debian_packages(what: &str, files: &[&str], packages: &[&str]) -> Result {
    if files.iter().all(|file| Path::new(file).exists()) {
        return Ok(());
    }
    let archives = std::env::temp_dir().join("wtchat-apt-archives");
    std::fs::create_dir_all(archives.join("partial")).map_err(|e| e.to_string())?;
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-o", "DPkg::Lock::Timeout=300", "-o"])
            .arg(format!("Dir::Cache::archives={}", archives.display()))
            .args(args);
        command
    };
    step("apt-get update", &mut apt(&["update"]))?;
    let install: Vec<&str> = ["install", "-y"].iter().chain(packages).copied().collect();
    if step(&format!("install {what}"), &mut apt(&install)).is_err() {
        step("repair the interrupted install", &mut apt(&["-f", "install", "-y"]))?;
        step(&format!("install {what} again"), &mut apt(&install))?;
    }
    Ok(())
}

fn run(args: &[String]) -> Result {
    client::build(None)?;
    let args = args.strip_prefix(&["--".to_string()]).unwrap_or(args);
    step(
        "build and start wtchat",
        cargo()
            .args(["run", "--release", "--package", "wtchat", "--bin", "wtchat", "--", "serve"])
            .args(args),
    )
}

fn test() -> Result {
    ensure_toolchain()?;
    ensure_wasm_bindgen_cli()?;
    ensure_chromium()?;
    ensure_firefox()?;
    ensure_redis()?;
    step("formatting", cargo().args(["fmt", "--all", "--", "--check"]))?;
    step("clippy", cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    // The protocol's tests use proptest, which does not build for wasm32;
    // its library does, and that is what the browser runs.
    clippy_for_wasm("clippy for the browser", "wtchat-protocol", "--lib")?;
    clippy_for_wasm("clippy for the browser client and its tests", "wtchat-client-wasm", "--all-targets")?;
    client::build(None)?;
    let mut totals = Totals::default();
    let native = run_tests("tests", cargo().args(["test", "--workspace"]), &mut totals);
    // wasm-bindgen-test picks the browser from the driver variable it is
    // given; `client-wasm/webdriver.json` holds the flags for both.
    let drivers = [
        ("Chromium", "CHROMEDRIVER", PathBuf::from("/usr/bin/chromedriver")),
        ("Firefox", "GECKODRIVER", home_bin("geckodriver")),
    ];
    let mut browsers = Ok(());
    for (browser, variable, driver) in drivers {
        let ran = run_tests(
            &format!("the client's tests in headless {browser}"),
            cargo()
                .args(["test", "--package", "wtchat-client-wasm", "--target", WASM_TARGET])
                .current_dir(root().join("client-wasm"))
                .env(variable, driver),
            &mut totals,
        );
        browsers = browsers.and(ran);
    }
    let fuzzed = fuzz(FUZZ_SECONDS_IN_TESTS, &mut totals);
    println!("\ntotal: {} passed, {} failed, {} skipped", totals.passed, totals.failed, totals.ignored);
    native.and(browsers).and(fuzzed)
}

/// End-to-end test files that the quick tier leaves out: they need
/// browsers, or run for minutes (10,000 session lives).
const SLOW_TEST_FILES: [&str; 5] =
    ["browser", "browser_console", "browser_package", "browser_sends", "churn"];

/// The quick tier, for the edit-run loop: formatting, clippy and every
/// native test but the slow files, with Redis (a few seconds of tests need
/// it). What CI runs is `test`, everything.
fn test_quick() -> Result {
    ensure_toolchain()?;
    ensure_redis()?;
    step("formatting", cargo().args(["fmt", "--all", "--", "--check"]))?;
    step("clippy", cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    let mut totals = Totals::default();
    let units = run_tests(
        "unit tests",
        cargo().args(["test", "--workspace", "--exclude", "wtchat-tests"]),
        &mut totals,
    );
    let mut end_to_end = cargo();
    end_to_end.args(["test", "--package", "wtchat-tests", "--lib"]);
    let files = std::fs::read_dir(root().join("tests/tests")).map_err(|e| format!("tests/tests: {e}"))?;
    let mut names: Vec<String> = files
        .filter_map(|entry| entry.ok()?.path().file_stem()?.to_str().map(str::to_owned))
        .filter(|name| !SLOW_TEST_FILES.contains(&name.as_str()))
        .collect();
    names.sort();
    for name in &names {
        end_to_end.args(["--test", name]);
    }
    let ran = run_tests("end-to-end tests (no browsers, no churn)", &mut end_to_end, &mut totals);
    println!(
        "\ntotal: {} passed, {} failed, {} skipped (quick: {} and fuzzing left out)",
        totals.passed,
        totals.failed,
        totals.ignored,
        SLOW_TEST_FILES.join(", ")
    );
    units.and(ran)
}

/// Runs clippy on one package's `targets` (`--lib`, `--all-targets`) for
/// the browser's target.
fn clippy_for_wasm(title: &str, package: &str, targets: &str) -> Result {
    step(
        title,
        cargo().args([
            "clippy",
            "--package",
            package,
            targets,
            "--target",
            WASM_TARGET,
            "--",
            "-D",
            "warnings",
        ]),
    )
}

/// How long the test command fuzzes each target.
const FUZZ_SECONDS_IN_TESTS: u32 = 20;

/// The fuzz targets in `fuzz/fuzz_targets`.
const FUZZ_TARGETS: [&str; 6] =
    ["client_frame", "server_message", "stream_frames", "request_head", "capsules", "h3_settings"];

/// The cargo-fuzz version installed when it is missing.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Runs each fuzz target for `seconds`, starting from and adding to its
/// corpus in `fuzz/corpus/TARGET`, which is kept in the repository. Without
/// a sanitizer (`-s none`) coverage-guided fuzzing works on the stable
/// compiler; the targets check the decoders' contracts themselves.
fn fuzz(seconds: u32, totals: &mut Totals) -> Result {
    let installed = cargo().args(["fuzz", "--version"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !installed.is_ok_and(|s| s.success()) {
        step("install cargo-fuzz", cargo().args(["install", "cargo-fuzz", "--version", CARGO_FUZZ_VERSION]))?;
    }
    let mut outcome = Ok(());
    for target in FUZZ_TARGETS {
        let fuzzed = step(
            &format!("fuzz {target} for {seconds} s"),
            cargo()
                .current_dir(root().join("fuzz"))
                .args(["fuzz", "run", "--sanitizer", "none", target, "--"])
                .arg(format!("-max_total_time={seconds}"))
                // The dictionary and per-input lines are noise in CI logs.
                .args(["-print_final_stats=1", "-verbosity=0"]),
        );
        match fuzzed {
            Ok(()) => totals.passed += 1,
            Err(error) => {
                totals.failed += 1;
                eprintln!("{error}; the crashing input is in fuzz/artifacts/{target}/");
                outcome = outcome.and(Err(error));
            }
        }
    }
    outcome
}

/// Test counts across runs.
#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

/// Runs a test command, echoing its output and adding up its result lines:
/// cargo prints one per test binary, the last of which is often an empty
/// doc-test run that says nothing about the whole.
fn run_tests(title: &str, command: &mut Command, totals: &mut Totals) -> Result {
    eprintln!("\n==> {title}");
    let mut child =
        command.stdout(Stdio::piped()).spawn().map_err(|e| format!("{title}: cannot start: {e}"))?;
    let stdout = child.stdout.take().ok_or("no output")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("{title}: {e}"))?;
        println!("{line}");
        if let Some(summary) = line.strip_prefix("test result: ") {
            for part in summary.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(label), Some(count)) = (words.next(), words.next()) else { continue };
                let count: u64 = count.parse().unwrap_or(0);
                match label {
                    "passed" => totals.passed += count,
                    "failed" => totals.failed += count,
                    "ignored" => totals.ignored += count,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait().map_err(|e| format!("{title}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{title} failed ({status})")) }
}
