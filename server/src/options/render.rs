//! The options table as people read it: `--help`, and the README's table.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

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

/// Every option, in table order. Made once: clap asks for each option's
/// help every time the command line is parsed.
pub fn option_docs() -> &'static [OptionDoc] {
    static DOCS: OnceLock<Vec<OptionDoc>> = OnceLock::new();
    DOCS.get_or_init(super::table::describe)
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
        .iter()
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

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- options: begin (generated from server/src/options/table.rs) -->\n";
    const END: &str = "<!-- options: end -->";

    /// The README's table is the table's: a new option, a changed default
    /// or help fails here until the README says the same. Run with
    /// `WTCHAT_BLESS=1` to write the generated table into the README.
    #[test]
    fn the_readme_lists_every_option_as_the_table_defines_it() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let start =
            readme.find(BEGIN).expect("the README marks where the options table begins") + BEGIN.len();
        let end = start + readme[start..].find(END).expect("and where it ends");
        let generated = readme_table();
        if readme[start..end] == generated {
            return;
        }
        if std::env::var_os("WTCHAT_BLESS").is_some() {
            std::fs::write(&path, format!("{}{generated}{}", &readme[..start], &readme[end..])).unwrap();
            return;
        }
        panic!(
            "README.md's options table differs from server/src/options/table.rs; \
             run `WTCHAT_BLESS=1 cargo test -p wtchat-server readme` to regenerate it:\n{generated}"
        );
    }

    #[test]
    fn every_option_has_help_and_a_default_and_a_variable_of_its_name() {
        for option in option_docs() {
            assert!(!option.doc.is_empty() && !option.default.is_empty(), "{option:?}");
            assert!(option.env.starts_with("WTCHAT_"), "{option:?}");
            assert!(help(option.name).contains(&option.doc), "--help of {} says what it does", option.name);
        }
    }
}
