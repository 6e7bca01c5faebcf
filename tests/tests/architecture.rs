//! The architecture's rules, checked against the code: which crate may
//! depend on what, and that no crate's modules import each other in a
//! circle. ARCHITECTURE.md names each rule; this file keeps them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every crate `package` depends on, directly or not, for its library
/// (normal dependencies only: what it ships with).
fn dependencies_of(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root())
        .args(["tree", "--offline", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .output()
        .expect("cargo tree runs");
    assert!(output.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != package)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_core_depends_on_no_transport_broker_or_configuration_format() {
    let forbidden = [
        "quinn",
        "h3",
        "hyper",
        "http",
        "tungstenite",
        "tokio-tungstenite",
        "rustls",
        "tokio-rustls",
        "redis",
        "clap",
        "toml",
        "wtchat-webtransport",
        "wtchat-redis",
        "wtchat-server",
        "wtchat-tools",
    ];
    let found = dependencies_of("wtchat-core");
    let broken: Vec<&str> = forbidden.into_iter().filter(|name| found.contains(*name)).collect();
    assert!(broken.is_empty(), "wtchat-core depends on {broken:?}, directly or through another crate");
}

#[test]
fn only_the_adapter_knows_redis_and_only_the_binary_knows_the_tools() {
    for package in ["wtchat-core", "wtchat-server", "wtchat-webtransport", "wtchat-protocol", "wtchat-tools"]
    {
        let found = dependencies_of(package);
        let direct_redis = found.contains("redis") && !found.contains("wtchat-redis");
        assert!(!direct_redis, "{package} uses redis without the adapter");
        assert!(!found.contains("wtchat-tools"), "{package} depends on the tools");
    }
    assert!(
        dependencies_of("wtchat-tools")
            .iter()
            .all(|name| !name.starts_with("wtchat-") || name == "wtchat-protocol")
    );
    assert!(dependencies_of("wtchat-redis").contains("redis"));
    assert!(dependencies_of("wtchat").contains("wtchat-tools"));
    // The yardsticks the bench compares wtchat with share its protocol and
    // nothing else of it, so that they measure a design, not wtchat's code.
    assert!(
        dependencies_of("wtchat-yardsticks")
            .iter()
            .all(|name| !name.starts_with("wtchat-") || name == "wtchat-protocol"),
        "the yardsticks depend on wtchat beyond its protocol"
    );
    for package in ["wtchat-core", "wtchat-server", "wtchat-tools"] {
        assert!(!dependencies_of(package).contains("wtchat-yardsticks"), "{package} knows the yardsticks");
    }
}

#[test]
fn the_browser_client_speaks_the_servers_protocol_crate() {
    let found = dependencies_of("wtchat-client-wasm");
    assert!(found.contains("wtchat-protocol"), "the client decodes with the protocol crate");
    for server_side in ["wtchat-core", "wtchat-server", "tokio", "quinn"] {
        assert!(!found.contains(server_side), "the browser client depends on {server_side}");
    }
}

#[test]
fn the_http3_layer_knows_nothing_of_chat() {
    let found = dependencies_of("wtchat-webtransport");
    let ours: Vec<&String> = found.iter().filter(|name| name.starts_with("wtchat-")).collect();
    assert!(ours.is_empty(), "wtchat-webtransport depends on {ours:?}");
}

/// The top-level module each source file of a crate belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative.components().next().expect("a file").as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Which top-level modules of a crate name which others (`crate::x`),
/// tests left out: a test may look anywhere.
fn module_graph(crate_dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join(crate_dir).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_of(&src, &file);
        if module == "lib" || module == "main" || file.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        // Code only: a doc link is a pointer for readers, not an import.
        let text: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let uses = graph.entry(module.clone()).or_default();
        for (index, _) in text.match_indices("crate::") {
            let name: String =
                text[index + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != module && name.chars().next().is_some_and(char::is_lowercase) {
                uses.insert(name);
            }
        }
    }
    graph
}

/// A circle in the graph, if there is one.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut circle = path[start..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_modules_that_import_each_other_in_a_circle() {
    for crate_dir in
        ["core", "redis", "webhooks", "server", "webtransport", "protocol", "tools", "yardsticks"]
    {
        let graph = module_graph(crate_dir);
        assert!(graph.len() > 1, "{crate_dir} has modules");
        if let Some(circle) = find_circle(&graph) {
            panic!("{crate_dir}'s modules import each other in a circle: {}", circle.join(" → "));
        }
    }
}

/// Every function name in the workspace's Rust sources.
fn function_names() -> BTreeSet<String> {
    let mut files = Vec::new();
    for dir in [
        "protocol",
        "core",
        "redis",
        "webhooks",
        "server",
        "webtransport",
        "cli",
        "tools",
        "yardsticks",
        "tests",
        "client-wasm",
        "xtask",
    ] {
        rust_files(&root().join(dir), &mut files);
    }
    let mut names = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (index, _) in text.match_indices("fn ") {
            let name: String =
                text[index + 3..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            names.insert(name);
        }
    }
    names
}

/// Each "Architecture Invariant" of ARCHITECTURE.md names the test that
/// checks it (or the lint, or says that review keeps it), and every test it
/// names exists.
#[test]
fn every_invariant_names_a_test_that_exists() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let functions = function_names();
    let mut invariants = 0;
    for paragraph in text.split("\n\n").filter(|p| p.starts_with("Architecture Invariant:")) {
        invariants += 1;
        let quoted: Vec<&str> = paragraph.split('`').skip(1).step_by(2).collect();
        // A long snake_case name is a test's; it must still exist.
        for name in &quoted {
            let test_like =
                name.matches('_').count() >= 3 && name.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            assert!(
                !test_like || functions.contains(*name),
                "ARCHITECTURE.md names `{name}`, which is no function:\n{paragraph}"
            );
        }
        let named: Vec<&&str> =
            quoted.iter().filter(|name| name.contains('_') && functions.contains(**name)).collect();
        // A few are kept by a lint that CI denies, or by review alone, and
        // say so.
        let by_lint_or_review = paragraph.contains("clippy's") || paragraph.contains("kept by review");
        assert!(!named.is_empty() || by_lint_or_review, "an invariant names no test:\n{paragraph}");
    }
    assert!(invariants >= 15, "found only {invariants} invariants");
}
