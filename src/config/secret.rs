//! Secrets: written in config as `env::NAME` references (or, discouraged, literally), resolved once at
//! load, and never printed: `Debug` and `Display` show the reference or `***`, never the value.

use std::fmt;

use serde::{Deserialize, Deserializer};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    source: Source,
    value: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
enum Source {
    Env(String),
    Literal,
}

impl Secret {
    /// A secret given directly (tests, programmatic configs).
    pub fn literal(value: impl Into<String>) -> Self {
        Self { source: Source::Literal, value: Some(value.into()) }
    }

    /// Parses `env::NAME` (looked up with `lookup`) or a literal value.
    pub fn parse(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Self {
        match text.strip_prefix("env::") {
            Some(name) => Self { source: Source::Env(name.to_owned()), value: lookup(name).filter(|v| !v.is_empty()) },
            None => Self::literal(text),
        }
    }

    /// The value, if the reference resolved.
    pub fn expose(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The environment variable this secret comes from, if any.
    pub fn env_name(&self) -> Option<&str> {
        match &self.source {
            Source::Env(name) => Some(name),
            Source::Literal => None,
        }
    }

    /// Looks an environment reference up again with `lookup`.
    pub fn resolve(&mut self, lookup: &dyn Fn(&str) -> Option<String>) {
        if let Source::Env(name) = &self.source {
            self.value = lookup(name).filter(|v| !v.is_empty());
        }
    }

    pub fn is_literal(&self) -> bool {
        self.source == Source::Literal
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, &self.value) {
            (Source::Env(name), Some(_)) => write!(f, "env::{name}"),
            (Source::Env(name), None) => write!(f, "env::{name} (unset)"),
            (Source::Literal, _) => f.write_str("***"),
        }
    }
}

// Environment references are resolved by the loader (`resolve`), so that tests can supply the environment.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self::parse(&text, |_| None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let env = Secret::parse("env::MY_KEY", |_| Some("sk-very-secret".into()));
        assert_eq!(env.expose(), Some("sk-very-secret"));
        assert_eq!(format!("{env:?} {env}"), "env::MY_KEY env::MY_KEY");
        let literal = Secret::literal("sk-very-secret");
        assert_eq!(format!("{literal:?} {literal}"), "*** ***");
        let unset = Secret::parse("env::NOPE", |_| None);
        assert_eq!(unset.expose(), None);
        assert_eq!(unset.to_string(), "env::NOPE (unset)");
    }
}
