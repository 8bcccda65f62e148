//! Terminal styling for human reports: colour only when stdout is a terminal,
//! `NO_COLOR` is unset or empty (<https://no-color.org>) and `TERM` is not `dumb`.

use std::io::IsTerminal;

/// Whether to colour.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// Decide from the environment and stdout.
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Style {
            colour: !no_color && !dumb && std::io::stdout().is_terminal(),
        }
    }

    fn paint(&self, s: &str, sgr: &str) -> String {
        if self.colour {
            format!("\x1b[{sgr}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Red bold.
    pub fn fail(&self, s: &str) -> String {
        self.paint(s, "1;31")
    }
    /// Yellow.
    pub fn warn(&self, s: &str) -> String {
        self.paint(s, "33")
    }
    /// Green.
    pub fn pass(&self, s: &str) -> String {
        self.paint(s, "32")
    }
    /// Bold.
    pub fn bold(&self, s: &str) -> String {
        self.paint(s, "1")
    }
    /// Dim.
    pub fn dim(&self, s: &str) -> String {
        self.paint(s, "2")
    }
}

/// Pad `s` to `w` columns (by chars) so colour codes added later do not skew tables.
pub fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n >= w {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}
