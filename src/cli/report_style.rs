//! Terminal styling for human reports. `--color auto` (the default): colour only when
//! stdout is a terminal, `NO_COLOR` is unset or empty (<https://no-color.org>) and
//! `TERM` is not `dumb`; `--color always` / `never` decide outright. Tables fit the
//! terminal's width (80 columns when stdout is not a terminal, `COLUMNS` overrides).

use std::io::IsTerminal;
use std::sync::OnceLock;

/// When to colour (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set or TERM is dumb.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

static CHOICE: OnceLock<ColorChoice> = OnceLock::new();

/// Record the `--color` choice (once, at start).
pub fn set_color(c: ColorChoice) {
    let _ = CHOICE.set(c);
}

/// The width tables fit: `COLUMNS` when set to a number, else the terminal's, else 80.
pub fn width() -> usize {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|n| *n >= 20)
    {
        return n;
    }
    let out = std::io::stdout();
    if out.is_terminal() {
        if let Ok(ws) = rustix::termios::tcgetwinsize(&out) {
            if ws.ws_col >= 20 {
                return usize::from(ws.ws_col);
            }
        }
    }
    80
}

/// `s` cut to `w` columns (by chars), an ellipsis marking the cut.
pub fn fit(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(w - 1).collect();
    out.push('…');
    out
}

/// Whether to colour.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// Decide from the environment and stdout.
    pub fn detect() -> Style {
        let colour = match CHOICE.get().copied().unwrap_or_default() {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
                let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
                !no_color && !dumb && std::io::stdout().is_terminal()
            }
        };
        Style { colour }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_cuts_with_an_ellipsis_by_characters() {
        assert_eq!(fit("Fiji [Radeon R9 FURY]", 8), "Fiji [R…");
        assert_eq!(fit("short", 8), "short");
        assert_eq!(fit("ééééé", 3), "éé…");
        assert_eq!(fit("x", 0), "");
    }
}
