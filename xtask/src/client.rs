//! The browser client as shipped: built for size (the `wasm-release`
//! profile: opt-level "z", LTO, one codegen unit) with its JavaScript glue
//! and TypeScript types from wasm-bindgen, which also drops the names and
//! producers sections, its size printed; and the npm package of it
//! (`cargo xtask package`).
//!
//! No `wasm-opt`: Debian's binaryen (108) rewrites the table of JavaScript
//! references that wasm-bindgen emits into one browsers refuse to fill,
//! and a current binaryen (132, from npm) made the gzipped file larger
//! (89.6 KB against 83.8 KB without it), which is what visitors download.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{
    Result, WASM_TARGET, cargo, ensure_toolchain, ensure_wasm_bindgen_cli, root, step, target_dir,
    wasm_bindgen_command,
};

/// The npm package's name.
pub(crate) const PACKAGE_NAME: &str = "wtchat-client";

/// The wasm file wasm-bindgen writes beside the glue.
const WASM_FILE: &str = "wtchat_client_bg.wasm";

/// Builds the wasm client and generates its JavaScript glue and TypeScript
/// types into `web/pkg`, or into `out/pkg` beside a copy of the page's
/// files.
pub(crate) fn build(out: Option<&Path>) -> Result {
    ensure_toolchain()?;
    ensure_wasm_bindgen_cli()?;
    step(
        "build the wasm client",
        cargo().args([
            "build",
            "--profile",
            "wasm-release",
            "--package",
            "wtchat-client-wasm",
            "--target",
            WASM_TARGET,
        ]),
    )?;
    let web = root().join("web");
    let site = match out {
        Some(out) => {
            copy_files(&web, out)?;
            out.to_path_buf()
        }
        None => web,
    };
    let wasm = target_dir().join(WASM_TARGET).join("wasm-release").join("wtchat_client.wasm");
    let pkg = site.join("pkg");
    step(
        "generate the client's JavaScript bindings",
        wasm_bindgen_command()
            .args(["--target", "web", "--remove-name-section", "--remove-producers-section", "--out-dir"])
            .arg(&pkg)
            .arg(wasm),
    )?;
    let shipped = pkg.join(WASM_FILE);
    let raw = std::fs::metadata(&shipped).map_err(|e| format!("{}: {e}", shipped.display()))?.len();
    println!("the client's wasm: {raw} bytes, {} bytes gzipped", gzip_size(&shipped)?);
    Ok(())
}

/// How many bytes `file` takes gzipped at the best level, as a server
/// would send it.
fn gzip_size(file: &Path) -> Result<u64> {
    let out = Command::new("gzip").args(["-9", "-c"]).arg(file).output().map_err(|e| format!("gzip: {e}"))?;
    if !out.status.success() {
        return Err(format!("gzip failed on {}", file.display()));
    }
    Ok(out.stdout.len() as u64)
}

fn copy_files(from: &Path, to: &Path) -> Result {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_file() {
            let name = path.file_name().unwrap_or_default();
            std::fs::copy(&path, to.join(name)).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Builds the npm package of the client into `target/npm/wtchat-client`
/// and packs it with `npm pack` into `out` (`target/npm` by default);
/// returns the tarball's path.
pub(crate) fn package(out: Option<&Path>) -> Result<PathBuf> {
    crate::ensure_debian_packages("npm", &["/usr/bin/npm"], &["npm"])?;
    let npm = target_dir().join("npm");
    let site = npm.join("site");
    build(Some(&site))?;
    let package = npm.join(PACKAGE_NAME);
    if package.exists() {
        std::fs::remove_dir_all(&package).map_err(|e| format!("{}: {e}", package.display()))?;
    }
    copy_files(&site.join("pkg"), &package)?;
    // wasm-bindgen's own package.json and .gitignore describe a folder,
    // not this package.
    for stray in [".gitignore", "package.json"] {
        let _ = std::fs::remove_file(package.join(stray));
    }
    std::fs::copy(root().join("client-wasm/npm/README.md"), package.join("README.md"))
        .map_err(|e| format!("client-wasm/npm/README.md: {e}"))?;
    let manifest = serde_json::to_string_pretty(&manifest()).map_err(|e| e.to_string())?;
    std::fs::write(package.join("package.json"), manifest + "\n").map_err(|e| e.to_string())?;
    let out = out.map_or(npm.clone(), Path::to_path_buf);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    step(
        "pack the npm package",
        Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(&out)
            .current_dir(&package)
            .env("npm_config_update_notifier", "false"),
    )?;
    let tarball = out.join(format!("{PACKAGE_NAME}-{}.tgz", env!("CARGO_PKG_VERSION")));
    if !tarball.exists() {
        return Err(format!("npm pack wrote no {}", tarball.display()));
    }
    println!("the npm package: {}", tarball.display());
    Ok(tarball)
}

/// The package's `package.json`: an ES module with its wasm beside it,
/// typed, with nothing to install alongside.
fn manifest() -> serde_json::Value {
    serde_json::json!({
        "name": PACKAGE_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "description": "The wtchat browser client: real-time chat rooms over WebTransport, falling back to WebSocket, with one API.",
        "license": "MIT OR Apache-2.0",
        "type": "module",
        "main": "./wtchat_client.js",
        "module": "./wtchat_client.js",
        "types": "./wtchat_client.d.ts",
        "exports": {
            ".": {
                "types": "./wtchat_client.d.ts",
                "import": "./wtchat_client.js",
                "default": "./wtchat_client.js"
            },
            "./wtchat_client_bg.wasm": "./wtchat_client_bg.wasm",
            "./package.json": "./package.json"
        },
        "files": [
            "wtchat_client.js",
            "wtchat_client.d.ts",
            "wtchat_client_bg.wasm",
            "wtchat_client_bg.wasm.d.ts",
            "README.md"
        ],
        "sideEffects": false,
        "keywords": ["chat", "webtransport", "websocket", "realtime", "wasm"]
    })
}
