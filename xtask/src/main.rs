//! The project's build driver. `cargo xtask run` starts the server with the
//! demo page; `cargo xtask test` runs every check CI runs. Each installs what
//! it needs when it is missing, so both work on a fresh machine.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("test") => test(),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 run [-- ARGS]  build and start the server on its embedded default (ARGS go to `wtchat serve`)\n  \
                 test           run every check: formatting, clippy, the wasm build and all tests"
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

fn run(args: &[String]) -> Result {
    let args = args.strip_prefix(&["--".to_string()]).unwrap_or(args);
    step(
        "build and start wtchat",
        cargo()
            .args(["run", "--release", "--package", "wtchat-server", "--bin", "wtchat", "--", "serve"])
            .args(args),
    )
}

fn test() -> Result {
    ensure_toolchain()?;
    step("formatting", cargo().args(["fmt", "--all", "--", "--check"]))?;
    step("clippy", cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    step(
        "wasm build of the protocol and the client",
        cargo().args([
            "build",
            "--package",
            "wtchat-protocol",
            "--package",
            "wtchat-client-wasm",
            "--target",
            WASM_TARGET,
        ]),
    )?;
    run_tests(cargo().args(["test", "--workspace"]))
}

/// Runs the test suites, echoing their output, and ends with one line that
/// totals them: cargo prints a result line per test binary, the last of which
/// is often an empty doc-test run that says nothing about the whole.
fn run_tests(command: &mut Command) -> Result {
    eprintln!("\n==> tests");
    let mut child =
        command.stdout(Stdio::piped()).spawn().map_err(|e| format!("tests: cannot start: {e}"))?;
    let stdout = child.stdout.take().ok_or("tests: no output")?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("tests: {e}"))?;
        println!("{line}");
        if let Some(summary) = line.strip_prefix("test result: ") {
            for part in summary.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(label), Some(count)) = (words.next(), words.next()) else { continue };
                let count: u64 = count.parse().unwrap_or(0);
                match label {
                    "passed" => passed += count,
                    "failed" => failed += count,
                    "ignored" => ignored += count,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait().map_err(|e| format!("tests: {e}"))?;
    println!("\ntotal: {passed} passed, {failed} failed, {ignored} skipped");
    if status.success() { Ok(()) } else { Err(format!("tests failed ({status})")) }
}
