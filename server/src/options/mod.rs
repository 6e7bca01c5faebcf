//! The server's options, each defined once.
//!
//! `table.rs` lists every option once: its name (the TOML key, and the flag
//! with dashes), its environment variable, its type, its default, its help
//! and its check. From that one list come the resolved [`Config`], the
//! [`Settings`] that flags, environment variables and TOML files fill in,
//! what `wtchat check-config` prints, `--help`, and the README's table (a
//! test fails when the README and the table disagree). Sources apply in
//! rising order of precedence: defaults, a TOML file, environment
//! variables, flags.

mod render;
mod table;

pub use render::{OptionDoc, option_docs, readme_table};
pub use table::{Config, ConfigError, Settings};

/// Declares the options table; see `table.rs` for its one use.
macro_rules! options {
    (
        $(
            $(#[doc = $doc:literal])+
            $(#[arg($($arg:tt)*)])?
            $name:ident : $given:ident $(<$inner:ident>)?,
            env $env:literal,
            default ($($default:tt)*)
            $(, shown $shown:literal)?
            $(, secret ($secret:tt))?
            $(, check ($check:expr))?
            ;
        )*
    ) => {
        /// The resolved configuration: every option with its value.
        #[derive(Debug, Clone)]
        pub struct Config {
            $(
                $(#[doc = $doc])+
                pub $name: $crate::options::resolved_type!(($($default)*) $given $(<$inner>)?),
            )*
        }

        impl Default for Config {
            fn default() -> Self {
                Self { $( $name: $crate::options::default_value!($($default)*), )* }
            }
        }

        /// Every option, each optional: an unset option keeps the value
        /// from the source below it.
        #[derive(Debug, Clone, Default, clap::Args, serde::Deserialize, serde::Serialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Settings {
            $(
                #[arg(
                    long,
                    env = $env,
                    help = $crate::options::render::help(stringify!($name)),
                    $( $($arg)* , )?
                    $(hide_env_values = $secret,)?
                )]
                pub $name: Option<$given $(<$inner>)?>,
            )*
        }

        impl Config {
            /// Applies every set option of `settings` over this configuration.
            pub fn apply(mut self, settings: &Settings) -> Self {
                $(
                    if let Some(value) = &settings.$name {
                        self.$name = $crate::options::set_value!(($($default)*) value.clone());
                    }
                )*
                self
            }

            /// Runs each option's own check.
            fn check_each(&self) -> Result<(), String> {
                $( $( ($check)(&self.$name).map_err(|why: String| format!("{}: {why}", stringify!($name)))?; )? )*
                Ok(())
            }
        }

        impl Settings {
            /// Every option of a resolved configuration, in the file's
            /// terms, with secrets replaced by `(set)`: what
            /// `wtchat check-config` prints.
            pub fn effective(config: &Config) -> Self {
                Self {
                    $(
                        $name: $crate::options::redact!(
                            $($secret)? $crate::options::get_value!(($($default)*) config.$name.clone())
                        ),
                    )*
                }
            }
        }

        /// Each option's name, variable, help and shown default, in table
        /// order.
        pub(super) fn describe() -> Vec<$crate::options::OptionDoc> {
            let defaults = Config::default();
            vec![
                $(
                    $crate::options::OptionDoc {
                        name: stringify!($name),
                        env: $env,
                        doc: $crate::options::render::join_doc(&[$($doc),+]),
                        default: $crate::options::render::shown(&defaults.$name, &[$($shown)?]),
                    },
                )*
            ]
        }
    };
}

/// The resolved type: `T`, or `Option<T>` for an option with no default.
macro_rules! resolved_type {
    ((none) $given:ident $(<$inner:ident>)?) => { Option<$given $(<$inner>)?> };
    (($($default:tt)*) $given:ident $(<$inner:ident>)?) => { $given $(<$inner>)? };
}

/// The default: `None` for `none`, else the expression.
macro_rules! default_value {
    (none) => {
        None
    };
    ($($default:tt)*) => {
        $($default)*
    };
}

/// A given value as the resolved field takes it.
macro_rules! set_value {
    ((none) $value:expr) => {
        Some($value)
    };
    (($($default:tt)*) $value:expr) => {
        $value
    };
}

/// A resolved value as a setting.
macro_rules! get_value {
    ((none) $value:expr) => {
        $value
    };
    (($($default:tt)*) $value:expr) => {
        Some($value)
    };
}

/// A secret is shown as set or not, never as its value.
macro_rules! redact {
    (true $value:expr) => {
        $value.map($crate::options::Secret::redacted)
    };
    ($value:expr) => {
        $value
    };
}

/// How a secret setting shows: that it is set (each of a list), never
/// what it is.
pub(crate) trait Secret {
    fn redacted(self) -> Self;
}

impl Secret for String {
    fn redacted(self) -> Self {
        "(set)".to_owned()
    }
}

impl Secret for Vec<String> {
    fn redacted(self) -> Self {
        self.iter().map(|_| "(set)".to_owned()).collect()
    }
}

pub(crate) use {default_value, get_value, options, redact, resolved_type, set_value};
