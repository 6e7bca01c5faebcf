//! The options table as people read it: `--help`, and the README's table.

use std::net::SocketAddr;
use std::path::PathBuf;

/// One option as documented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionDoc {
    /// The TOML key; the flag is the same with dashes.
    pub name: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// What it does.
    pub doc: String,
    /// Its default, as people read it.
    pub default: String,
}

/// Every option, in table order.
pub fn option_docs() -> Vec<OptionDoc> {
    super::table::describe()
}

/// The README's table of options, generated from the table.
pub fn readme_table() -> String {
    let mut out = String::from("| option | variable | default | meaning |\n|---|---|---|---|\n");
    for option in option_docs() {
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            option.name, option.env, option.default, option.doc
        ));
    }
    out
}

/// The help of one option: what it does, and its default.
pub(super) fn help(name: &str) -> String {
    option_docs()
        .into_iter()
        .find(|option| option.name == name)
        .map(|option| format!("{} (default: {})", option.doc, option.default.replace('`', "")))
        .unwrap_or_default()
}

/// Doc comment lines as one paragraph.
pub(super) fn join_doc(lines: &[&str]) -> String {
    lines.iter().map(|line| line.trim()).collect::<Vec<_>>().join(" ")
}

/// A default as people read it: the table's words when it gives them, else
/// the value.
pub(super) fn shown<T: Shown>(value: &T, words: &[&str]) -> String {
    words.first().map_or_else(|| value.shown(), |words| (*words).to_owned())
}

/// A value as the README and `--help` show it.
pub(super) trait Shown {
    /// The value in a table cell.
    fn shown(&self) -> String;
}

macro_rules! shown_as_code {
    ($($t:ty),*) => { $( impl Shown for $t { fn shown(&self) -> String { format!("`{self}`") } } )* };
}

shown_as_code!(usize, u32, u64, bool, String, SocketAddr);

impl Shown for PathBuf {
    fn shown(&self) -> String {
        format!("`{}`", self.display())
    }
}

impl<T: Shown> Shown for Option<T> {
    fn shown(&self) -> String {
        self.as_ref().map_or_else(|| "none".to_owned(), Shown::shown)
    }
}

impl Shown for Vec<String> {
    fn shown(&self) -> String {
        if self.is_empty() { "none".to_owned() } else { format!("`{}`", self.join(",")) }
    }
}
