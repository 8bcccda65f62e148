//! `/etc/default/grub`: merge kernel parameters into `GRUB_CMDLINE_LINUX_DEFAULT`.
//!
//! The file is a shell fragment sourced by `grub-mkconfig`. Its value may be double
//! quoted, single quoted, unquoted, or a mix (`"$GRUB_CMDLINE_LINUX_DEFAULT foo"`);
//! it may span lines. The last assignment wins, so that is the one edited. The value
//! is decoded as the shell would (quotes, backslashes); expansions (`$X`, `${X}`,
//! `$(..)`, backticks) are kept as opaque text that is never matched or removed.
//!
//! Editing cuts removed tokens out of the raw text and appends new ones just before
//! the closing quote of the last quoted part, so every other byte of the file,
//! including the user's quoting style and comments, stays as it was. Right above the
//! assignment passthru keeps one `# passthru: ...` comment line per parameter it
//! manages, explaining why; those lines are the only lines it writes here.

use crate::cmdline::{self, Planned};

/// Marker starting every comment line passthru writes in this file.
pub const COMMENT_PREFIX: &str = "# passthru: ";

/// The variable edited.
pub const VAR: &str = "GRUB_CMDLINE_LINUX_DEFAULT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegKind {
    Double,
    Single,
    Unquoted,
}

#[derive(Debug, Clone, Copy)]
struct Seg {
    kind: SegKind,
    /// Raw span of the segment, quotes included.
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy)]
struct DChar {
    c: char,
    /// Raw span this decoded character came from.
    start: usize,
    end: usize,
    seg: usize,
    opaque: bool,
}

/// A decoded shell word: the value the shell would assign.
#[derive(Debug, Default)]
struct Word {
    chars: Vec<DChar>,
    segs: Vec<Seg>,
    /// Raw span of the whole word.
    start: usize,
    end: usize,
}

/// A decoded kernel token within a word.
struct Tok {
    first: usize,
    last: usize,
    text: String,
    opaque: bool,
}

impl Word {
    fn value(&self) -> String {
        self.chars.iter().map(|d| d.c).collect()
    }

    fn tokens(&self) -> (Vec<Tok>, bool) {
        let mut toks = Vec::new();
        let mut quoted = false;
        let mut cur: Option<Tok> = None;
        for (i, d) in self.chars.iter().enumerate() {
            if d.c == '"' && !d.opaque {
                quoted = !quoted;
            }
            if d.c.is_whitespace() && !quoted && !d.opaque {
                if let Some(t) = cur.take() {
                    toks.push(t);
                }
                continue;
            }
            let t = cur.get_or_insert(Tok {
                first: i,
                last: i,
                text: String::new(),
                opaque: false,
            });
            t.last = i;
            t.text.push(d.c);
            t.opaque |= d.opaque;
        }
        if let Some(t) = cur {
            toks.push(t);
        }
        (toks, quoted)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parse the expansion starting at `i` (text[i] == '$' or '`'); returns its raw end.
fn expansion_end(text: &str, i: usize) -> Result<usize, (usize, String)> {
    let b = text.as_bytes();
    if b[i] == b'`' {
        let mut j = i + 1;
        while j < b.len() {
            match b[j] {
                b'\\' => j += 2,
                b'`' => return Ok(j + 1),
                _ => j += 1,
            }
        }
        return Err((i, "unterminated backquote".into()));
    }
    match b.get(i + 1) {
        Some(b'{') | Some(b'(') => {
            let (open, close) = if b[i + 1] == b'{' {
                (b'{', b'}')
            } else {
                (b'(', b')')
            };
            let mut depth = 0usize;
            let mut j = i + 1;
            while j < b.len() {
                if b[j] == open {
                    depth += 1;
                } else if b[j] == close {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(j + 1);
                    }
                }
                j += 1;
            }
            Err((i, "unterminated ${ or $( expansion".into()))
        }
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
            let mut j = i + 1;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            Ok(j)
        }
        Some(c) if c.is_ascii_digit() || b"@*#?$!-".contains(c) => Ok(i + 2),
        _ => Ok(i + 1), // a lone '$' is literal
    }
}

fn push_opaque(w: &mut Word, text: &str, a: usize, b: usize, seg: usize) {
    for (k, c) in text[a..b].char_indices() {
        w.chars.push(DChar {
            c,
            start: a + k,
            end: a + k + c.len_utf8(),
            seg,
            opaque: true,
        });
    }
}

/// Push the expansion (`$...` or a backquoted command) starting at `i` as opaque
/// characters (a lone `$` stays a plain `$`); returns where it ends.
fn push_expansion(
    w: &mut Word,
    text: &str,
    i: usize,
    seg: usize,
) -> Result<usize, (usize, String)> {
    let e = expansion_end(text, i)?;
    if e == i + 1 {
        w.chars.push(DChar {
            c: '$',
            start: i,
            end: e,
            seg,
            opaque: false,
        });
    } else {
        push_opaque(w, text, i, e, seg);
    }
    Ok(e)
}

/// Push the one literal character at `i`; returns the byte after it.
fn push_plain(w: &mut Word, text: &str, i: usize, seg: usize) -> usize {
    let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
    let n = ch.len_utf8();
    w.chars.push(DChar {
        c: ch,
        start: i,
        end: i + n,
        seg,
        opaque: false,
    });
    i + n
}

/// Parse one shell word starting at byte `start`.
fn parse_word(text: &str, start: usize) -> Result<Word, (usize, String)> {
    let b = text.as_bytes();
    let mut w = Word {
        start,
        end: start,
        ..Word::default()
    };
    let mut i = start;
    while i < b.len() {
        let c = b[i];
        if c == b' ' || c == b'\t' || c == b'\n' || b";&|<>()".contains(&c) {
            break;
        }
        let seg = w.segs.len();
        match c {
            b'"' => {
                let s = i;
                i += 1;
                loop {
                    let Some(&d) = b.get(i) else {
                        return Err((s, "unterminated double quote".into()));
                    };
                    match d {
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\\' if matches!(b.get(i + 1), Some(b'$' | b'`' | b'"' | b'\\')) => {
                            let ch = b[i + 1] as char;
                            w.chars.push(DChar {
                                c: ch,
                                start: i,
                                end: i + 2,
                                seg,
                                opaque: false,
                            });
                            i += 2;
                        }
                        b'\\' if b.get(i + 1) == Some(&b'\n') => i += 2,
                        b'$' | b'`' => i = push_expansion(&mut w, text, i, seg)?,
                        _ => i = push_plain(&mut w, text, i, seg),
                    }
                }
                w.segs.push(Seg {
                    kind: SegKind::Double,
                    start: s,
                    end: i,
                });
            }
            b'\'' => {
                let s = i;
                let Some(close) = text[i + 1..].find('\'') else {
                    return Err((s, "unterminated single quote".into()));
                };
                for (k, ch) in text[i + 1..i + 1 + close].char_indices() {
                    let at = i + 1 + k;
                    w.chars.push(DChar {
                        c: ch,
                        start: at,
                        end: at + ch.len_utf8(),
                        seg,
                        opaque: false,
                    });
                }
                i = i + 1 + close + 1;
                w.segs.push(Seg {
                    kind: SegKind::Single,
                    start: s,
                    end: i,
                });
            }
            _ => {
                let s = i;
                while i < b.len() {
                    let d = b[i];
                    if d == b' ' || d == b'\t' || d == b'\n' || b";&|<>()\"'".contains(&d) {
                        break;
                    }
                    match d {
                        b'\\' if b.get(i + 1) == Some(&b'\n') => i += 2,
                        b'\\' if i + 1 == b.len() => {
                            return Err((i, "a backslash ends the file".into()));
                        }
                        b'\\' => {
                            let ch = text[i + 1..].chars().next().unwrap_or('\u{fffd}');
                            let e = i + 1 + ch.len_utf8();
                            w.chars.push(DChar {
                                c: ch,
                                start: i,
                                end: e,
                                seg,
                                opaque: false,
                            });
                            i = e;
                        }
                        b'$' | b'`' => i = push_expansion(&mut w, text, i, seg)?,
                        _ => i = push_plain(&mut w, text, i, seg),
                    }
                }
                w.segs.push(Seg {
                    kind: SegKind::Unquoted,
                    start: s,
                    end: i,
                });
            }
        }
    }
    w.end = i;
    Ok(w)
}

/// One `GRUB_CMDLINE_LINUX_DEFAULT=` assignment found in the file.
#[derive(Debug)]
struct Assignment {
    /// Byte offset of the start of its line.
    line_start: usize,
    word: Word,
}

/// What the scanner found in the file.
#[derive(Debug, Default)]
struct Scan {
    /// Every line-start assignment of the variable, in order.
    assigns: Vec<Assignment>,
    /// Start of every logical line: a byte offset where the shell begins a new command
    /// line (not inside a quoted string of another line, not after a backslash
    /// continuation). Only these can hold passthru's comment lines.
    line_starts: Vec<usize>,
    /// Whether the end of the text is such a line start (the text is empty or ends
    /// with a newline that closes a logical line).
    ends_at_line_start: bool,
}

impl Scan {
    /// Whether a `# passthru: ` comment line, as the shell reads it, starts at `at`.
    fn is_comment_line(&self, text: &str, at: usize) -> bool {
        text[at..].starts_with(COMMENT_PREFIX) && self.line_starts.binary_search(&at).is_ok()
    }

    /// Start of the block of passthru comment lines that ends right at the logical line
    /// start `at` (the assignment's line, or the end of the text): `at` when there is
    /// none. These lines are passthru's own; every edit rewrites exactly this block, so
    /// the same rule applies whether the assignment exists or is being appended.
    fn comment_block_start(&self, text: &str, at: usize) -> usize {
        let mut head = at;
        while head > 0 {
            let prev = text[..head - 1].rfind('\n').map_or(0, |p| p + 1);
            if !self.is_comment_line(text, prev) {
                break;
            }
            head = prev;
        }
        head
    }
}

/// Find every line-start assignment of [`VAR`], skipping comments and the insides of
/// quoted strings of other lines. An assignment elsewhere (after `;`, inside `if`) is an
/// error: passthru cannot tell which one wins.
fn assignments(text: &str, var: &str) -> Result<Vec<Assignment>, (usize, String)> {
    Ok(scan(text, var)?.assigns)
}

/// The scan behind [`assignments`], also recording logical line starts.
fn scan(text: &str, var: &str) -> Result<Scan, (usize, String)> {
    if let Some(p) = text.find("\r\n") {
        return Err((p, "CRLF line endings: the shell that reads this file would keep the carriage returns in the values; convert it to LF line endings first".into()));
    }
    let b = text.as_bytes();
    let mut out = Scan::default();
    let mut i = 0;
    while i < b.len() {
        let line_start = i;
        out.line_starts.push(line_start);
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        if b[i] == b'#' {
            i = text[i..].find('\n').map_or(b.len(), |n| i + n + 1);
            continue;
        }
        let mut j = i;
        if text[j..].starts_with("export ") {
            j += "export ".len();
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
        }
        let assign = format!("{var}=");
        if text[j..].starts_with(&assign) {
            let word = parse_word(text, j + assign.len())?;
            i = word.end;
            out.assigns.push(Assignment { line_start, word });
        }
        // Scan the rest of the logical line, stepping over quoted strings.
        while i < b.len() && b[i] != b'\n' {
            match b[i] {
                // A continuation between words: the next physical line goes on with this
                // command, and what starts it must be checked like any other word (it
                // may assign the variable: `GRUB_TIMEOUT=5 \` + newline + `VAR=...`).
                b'\\' if b.get(i + 1) == Some(&b'\n') => i += 2,
                b'"' | b'\'' | b'\\' | b'$' | b'`' => {
                    let w = parse_word(text, i)?;
                    i = w.end.max(i + 1);
                }
                // A comment starts a word (after a blank or an operator), as in sh: not
                // after a form feed or a carriage return, which sh keeps in the word.
                b'#' if starts_word(b, i) => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                _ => {
                    // Byte-wise: `i` may sit inside a multi-byte character here.
                    if b[i..].starts_with(var.as_bytes())
                        && b.get(i + var.len()) == Some(&b'=')
                        && starts_word(b, i)
                    {
                        return Err((
                            i,
                            format!("{var} is assigned in the middle of a line; edit it by hand"),
                        ));
                    }
                    i += 1;
                }
            }
        }
        i += 1;
    }
    // `i` lands exactly on the end only when the last logical line ended with its
    // newline; a word (or continuation) running to the end leaves it past.
    out.ends_at_line_start = i == b.len();
    Ok(out)
}

/// Whether a shell word starts at `i`: the byte before it, looking through
/// backslash-newline continuations (which join physical lines into one word), is a
/// blank or an operator. Anything else (`=`, `,`, a letter) means `i` is inside a word,
/// such as another variable's value: `X=GRUB_CMDLINE_LINUX=a` assigns only `X`.
fn starts_word(b: &[u8], i: usize) -> bool {
    let mut p = i;
    while p >= 2 && b[p - 1] == b'\n' && b[p - 2] == b'\\' {
        p -= 2;
    }
    p == 0 || b" \t\n;&|()<>".contains(&b[p - 1])
}

/// The effective kernel tokens of [`VAR`]: its last assignment, with self-references
/// expanded (see [`tokens_of`]) and other expansions kept as opaque tokens. Empty when
/// the variable is not assigned.
///
/// # Errors
///
/// The byte offset and a message when the file cannot be parsed as the shell assignments
/// grub-mkconfig sources (an unterminated quote, backquote or expansion, a backslash
/// ending the file, CRLF line endings).
pub fn current_tokens(text: &str) -> Result<Vec<String>, (usize, String)> {
    tokens_of(text, VAR)
}

/// Like [`current_tokens`] for another variable (`GRUB_CMDLINE_LINUX`, whose tokens
/// go on every boot entry, recovery included). Assignments are followed in order: a
/// token that is exactly `$VAR` or `${VAR}` (the variable extending itself) stands for
/// the tokens of the assignment before.
///
/// # Errors
///
/// As current_tokens.
pub fn tokens_of(text: &str, var: &str) -> Result<Vec<String>, (usize, String)> {
    let selfref = [format!("${var}"), format!("${{{var}}}")];
    let mut cur: Vec<String> = Vec::new();
    for a in assignments(text, var)? {
        let mut next = Vec::new();
        for t in a.word.tokens().0 {
            if selfref.contains(&t.text) {
                next.extend(cur.iter().cloned());
            } else {
                next.push(t.text);
            }
        }
        cur = next;
    }
    Ok(cur)
}

/// Whether every assignment of `var` in `text` keeps the value it had before, through a
/// `$var` or `${var}` token (`X="$X more"`): a file sourced after another then extends
/// that file's value instead of replacing it. `true` when `text` does not assign `var`.
///
/// # Errors
///
/// An EditError (offset and message) when the file cannot be parsed, as for current_tokens.
pub fn extends_previous(text: &str, var: &str) -> Result<bool, EditError> {
    let selfref = [format!("${var}"), format!("${{{var}}}")];
    Ok(assignments(text, var)?
        .iter()
        .all(|a| a.word.tokens().0.iter().any(|t| selfref.contains(&t.text))))
}

/// The tokens written literally in the last assignment of [`VAR`]: the only ones
/// [`edit`] can remove.
///
/// # Errors
///
/// As current_tokens.
pub fn editable_tokens(text: &str) -> Result<Vec<String>, (usize, String)> {
    Ok(match assignments(text, VAR)?.last() {
        Some(a) => a
            .word
            .tokens()
            .0
            .into_iter()
            .filter(|t| !t.opaque)
            .map(|t| t.text)
            .collect(),
        None => Vec::new(),
    })
}

/// The decoded value of the last assignment (what the shell would assign), if any.
///
/// # Errors
///
/// As current_tokens.
pub fn current_value(text: &str) -> Result<Option<String>, (usize, String)> {
    Ok(assignments(text, VAR)?.last().map(|a| a.word.value()))
}

/// Why an edit failed: byte offset into the text and the message.
pub type EditError = (usize, String);

/// Convert an [`EditError`] into the crate error, naming the file and line.
pub fn to_error(path: &str, text: &str, e: EditError) -> crate::Error {
    crate::Error::Syntax {
        path: path.into(),
        line: line_of(text, e.0),
        message: e.1,
    }
}

/// The passthru comment lines [`edit`] owns right above the last assignment (or at the
/// end of the file when there is none), without the prefix, in order.
///
/// # Errors
///
/// An EditError when the file cannot be parsed, as for current_tokens.
pub fn current_comments(text: &str) -> Result<Vec<String>, EditError> {
    let sc = scan(text, VAR)?;
    let at = sc.assigns.last().map_or(text.len(), |a| a.line_start);
    if sc.assigns.is_empty() && !sc.ends_at_line_start {
        return Ok(Vec::new());
    }
    let head = sc.comment_block_start(text, at);
    Ok(text[head..at]
        .lines()
        .filter_map(|l| l.strip_prefix(COMMENT_PREFIX))
        .map(str::to_string)
        .collect())
}

/// Append passthru's comment lines (one per entry, each ended by a newline).
fn push_comments(out: &mut String, comments: &[String]) {
    for c in comments {
        out.push_str(COMMENT_PREFIX);
        out.push_str(c);
        out.push('\n');
    }
}

fn safe_unquoted(raw: &str) -> bool {
    raw.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.,:=+/@%".contains(&b))
}

/// The assignment's line (from its start to the end of its value) with the tokens
/// marked in `removed` cut out and `add` appended. `take_gaps`: take one blank next to
/// each removed token along with it (else leave the blanks, a safe fallback: see
/// [`edit`]).
fn cut_and_append(
    text: &str,
    a: &Assignment,
    toks: &[Tok],
    removed: &[bool],
    add: &[String],
    take_gaps: bool,
) -> Result<String, EditError> {
    let chars = &a.word.chars;
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for (k, t) in toks.iter().enumerate() {
        if !removed[k] {
            continue;
        }
        let seg = chars[t.first].seg;
        if chars[t.first..=t.last].iter().any(|d| d.seg != seg) {
            return Err((
                chars[t.first].start,
                format!("{:?} spans several quoted parts; remove it by hand", t.text),
            ));
        }
        // Take the whitespace before it when a kept token precedes it (and the gap is in
        // the same quoted part), else the whitespace after it. A cut spans raw text of
        // this one quoted part only: it starts and ends at decoded characters of the part
        // (the token and its gap), never at the neighbour token, whose end or start may
        // sit in another part with a quote in between that must stay.
        let gap_same = |from: usize, to: usize| chars[from..to].iter().all(|d| d.seg == seg);
        let (cs, ce) = if !take_gaps {
            (chars[t.first].start, chars[t.last].end)
        } else if k > 0
            && removed[..k].iter().any(|r| !r)
            && gap_same(toks[k - 1].last + 1, t.first)
        {
            (chars[toks[k - 1].last + 1].start, chars[t.last].end)
        } else if let Some(n) = toks.get(k + 1).filter(|n| gap_same(t.last + 1, n.first)) {
            (chars[t.first].start, chars[n.first - 1].end)
        } else {
            (chars[t.first].start, chars[t.last].end)
        };
        cuts.push((cs, ce));
    }
    let mut body = String::with_capacity(text.len() + 128);
    let mut pos = a.line_start;
    for &(s, e) in &cuts {
        // Cuts of neighbouring removed tokens may overlap (both took the space between).
        if e <= pos {
            continue;
        }
        body.push_str(&text[pos..s.max(pos)]);
        pos = e;
    }
    body.push_str(&text[pos..a.word.end]);
    // Re-parse the shortened assignment to append after it.
    let mut line = body;
    if !add.is_empty() {
        let off = line
            .find(&format!("{VAR}="))
            .map(|p| p + VAR.len() + 1)
            .unwrap_or(0);
        let w = parse_word(&line, off)?;
        let joined = add.join(" ");
        let sep = match w.chars.last() {
            Some(d) if !d.c.is_whitespace() || d.opaque => " ",
            _ => "",
        };
        match w.segs.last() {
            Some(s) if s.kind != SegKind::Unquoted => {
                line.insert_str(s.end - 1, &format!("{sep}{joined}"));
            }
            None => line.insert_str(w.end, &format!("\"{joined}\"")),
            Some(s) if w.segs.len() == 1 && safe_unquoted(&line[s.start..s.end]) => {
                let raw = line[s.start..s.end].to_string();
                line.replace_range(s.start..s.end, &format!("\"{raw}{sep}{joined}\""));
            }
            Some(_) => line.insert_str(w.end, &format!("\"{sep}{joined}\"")),
        }
    }
    Ok(line)
}

/// Merge `planned` into the last assignment of `text` and refresh the passthru comment
/// lines above it (`comments`: one line each, without the prefix). When the variable is
/// not assigned, an assignment is appended at the end of the file.
///
/// # Errors
///
/// An EditError (offset and message) when the file cannot be parsed or the edit cannot be
/// made without changing what the shell would assign to other tokens.
pub fn edit(text: &str, planned: &Planned, comments: &[String]) -> Result<String, EditError> {
    let sc = scan(text, VAR)?;
    let Some(a) = sc.assigns.last() else {
        if planned.add.is_empty() {
            return Ok(text.to_string());
        }
        if text.ends_with('\r') {
            return Err((
                text.len() - 1,
                "the file ends with a carriage return".into(),
            ));
        }
        let mut base = text.to_string();
        if !base.is_empty() && !base.ends_with('\n') {
            base.push('\n');
        }
        let mut sc = scan(&base, VAR)?;
        if !sc.ends_at_line_start {
            // The last line continues (`\` before its newline): end it, so that the
            // comment lines and the assignment start lines of their own.
            base.push('\n');
            sc = scan(&base, VAR)?;
        }
        // passthru comment lines already at the end (the assignment was deleted by
        // hand) are the block this edit rewrites, exactly as they would be above an
        // existing assignment.
        let head = sc.comment_block_start(&base, base.len());
        let mut out = base[..head].to_string();
        push_comments(&mut out, comments);
        out.push_str(&format!("{VAR}=\"{}\"\n", planned.add.join(" ")));
        return Ok(out);
    };
    let (toks, open) = a.word.tokens();
    if open && !planned.add.is_empty() {
        return Err((
            a.word.start,
            "a double quote inside the value is left open".into(),
        ));
    }
    // 1. Cuts for removed tokens, on the raw text.
    let removed: Vec<bool> = toks
        .iter()
        .map(|t| {
            !t.opaque
                && planned
                    .remove
                    .iter()
                    .any(|r| cmdline::same_token(r, &t.text))
        })
        .collect();
    // 1-2. Cut, append, and check that the value reads as planned: every kept character
    // must decode as before. A cut joins the raw text on its two sides, which can change
    // how the character before it reads (a literal `\` inside double quotes that would
    // now escape the closing quote: `"quiet \ splash"` without `splash`); cutting the
    // tokens alone (their blanks stay) never joins a character to a quote or an escape.
    let want: Vec<&str> = toks
        .iter()
        .zip(&removed)
        .filter(|(_, r)| !**r)
        .map(|(t, _)| t.text.as_str())
        .chain(planned.add.iter().map(String::as_str))
        .collect();
    let head = sc.comment_block_start(text, a.line_start);
    let rest = &text[a.word.end..];
    let reads_as_planned = |out: &str| {
        scan(out, VAR).is_ok_and(|sc| {
            sc.assigns.last().is_some_and(|a| {
                a.word
                    .tokens()
                    .0
                    .iter()
                    .map(|t| t.text.as_str())
                    .eq(want.iter().copied())
            })
        })
    };
    for take_gaps in [true, false] {
        let line = cut_and_append(text, a, &toks, &removed, &planned.add, take_gaps)?;
        // Comment lines right above the assignment: drop old passthru ones, write new.
        let mut out = String::with_capacity(text.len() + 256);
        out.push_str(&text[..head]);
        push_comments(&mut out, comments);
        out.push_str(&line);
        out.push_str(rest);
        if reads_as_planned(&out) {
            return Ok(out);
        }
    }
    Err((
        a.word.start,
        "the edited value would not read as planned (quotes, escapes or a carriage return next to a removed parameter); edit it by hand".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::{plan, ParamEdit};

    fn merge(text: &str, add: &[&str], remove: &[&str]) -> String {
        let cur = current_tokens(text).unwrap();
        let p = plan(
            &cur,
            &ParamEdit {
                add: add.iter().map(|s| s.to_string()).collect(),
                remove: remove.iter().map(|s| s.to_string()).collect(),
            },
        );
        edit(text, &p, &[]).unwrap()
    }

    #[test]
    fn appends_inside_double_quotes_of_last_assignment() {
        let t = "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet splash\"\n";
        assert_eq!(
            merge(t, &["iommu=pt"], &[]),
            "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet splash iommu=pt\"\n"
        );
    }

    #[test]
    fn single_quotes_and_unquoted_values() {
        assert_eq!(
            merge("GRUB_CMDLINE_LINUX_DEFAULT='quiet'\n", &["iommu=pt"], &[]),
            "GRUB_CMDLINE_LINUX_DEFAULT='quiet iommu=pt'\n"
        );
        assert_eq!(
            merge("GRUB_CMDLINE_LINUX_DEFAULT=quiet\n", &["iommu=pt"], &[]),
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=pt\"\n"
        );
        assert_eq!(
            merge("GRUB_CMDLINE_LINUX_DEFAULT=\n", &["iommu=pt"], &[]),
            "GRUB_CMDLINE_LINUX_DEFAULT=\"iommu=pt\"\n"
        );
        assert_eq!(
            merge("GRUB_CMDLINE_LINUX_DEFAULT=\"\"\n", &["iommu=pt"], &[]),
            "GRUB_CMDLINE_LINUX_DEFAULT=\"iommu=pt\"\n"
        );
    }

    #[test]
    fn expansions_are_kept_and_never_matched() {
        let t = "GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT iommu=pt\"\n";
        // A self-reference stands for the previous value (none here).
        assert_eq!(current_tokens(t).unwrap(), vec!["iommu=pt"]);
        assert_eq!(merge(t, &["iommu=pt"], &[]), t);
        let t2 = format!("GRUB_CMDLINE_LINUX_DEFAULT=quiet\n{t}");
        assert_eq!(current_tokens(&t2).unwrap(), vec!["quiet", "iommu=pt"]);
        assert_eq!(editable_tokens(&t2).unwrap(), vec!["iommu=pt"]);
        // Other expansions are opaque tokens.
        assert_eq!(
            tokens_of("X=\"$HOME a\"\n", "X").unwrap(),
            vec!["$HOME", "a"]
        );
        let t = "GRUB_CMDLINE_LINUX_DEFAULT=${GRUB_CMDLINE_LINUX_DEFAULT}\n";
        assert_eq!(
            merge(t, &["iommu=pt"], &[]),
            "GRUB_CMDLINE_LINUX_DEFAULT=${GRUB_CMDLINE_LINUX_DEFAULT}\" iommu=pt\"\n"
        );
    }

    #[test]
    fn removes_user_token_keeping_everything_else() {
        // docs/rules.md: amd_iommu=on is not a documented value; removed only on request.
        let t = "# my settings\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet amd_iommu=on pcie_acs_override=downstream,multifunction video=efifb:off\" # hand-made\n";
        assert_eq!(
            merge(t, &[], &["amd_iommu=on"]),
            "# my settings\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet pcie_acs_override=downstream,multifunction video=efifb:off\" # hand-made\n"
        );
        assert_eq!(
            merge(
                "GRUB_CMDLINE_LINUX_DEFAULT=\"amd_iommu=on quiet\"\n",
                &[],
                &["amd_iommu=on"]
            ),
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"
        );
        assert_eq!(
            merge(
                "GRUB_CMDLINE_LINUX_DEFAULT=\"amd_iommu=on\"\n",
                &[],
                &["amd_iommu=on"]
            ),
            "GRUB_CMDLINE_LINUX_DEFAULT=\"\"\n"
        );
    }

    #[test]
    fn adjacent_duplicates_are_all_removed() {
        // Found by the property test: overlapping cuts used to slice out of order.
        assert_eq!(
            merge(
                "GRUB_CMDLINE_LINUX_DEFAULT='iommu=pt iommu=pt a'\n",
                &[],
                &["iommu=pt"]
            ),
            "GRUB_CMDLINE_LINUX_DEFAULT='a'\n"
        );
    }

    #[test]
    fn multiline_value_and_escaped_quotes() {
        let t = "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet \\\n  dyndbg=\\\"file a.c +p\\\"\"\nGRUB_TIMEOUT=5\n";
        assert_eq!(
            current_tokens(t).unwrap(),
            vec!["quiet", "dyndbg=\"file a.c +p\""]
        );
        let m = merge(t, &["iommu=pt"], &[]);
        assert_eq!(m, "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet \\\n  dyndbg=\\\"file a.c +p\\\" iommu=pt\"\nGRUB_TIMEOUT=5\n");
        assert_eq!(
            current_tokens(&m).unwrap(),
            vec!["quiet", "dyndbg=\"file a.c +p\"", "iommu=pt"]
        );
    }

    #[test]
    fn current_comments_are_the_block_above_the_assignment() {
        let t = "# mine\n# passthru: a: why\n# passthru: b=1: why\nGRUB_CMDLINE_LINUX_DEFAULT=\"a b=1\"\n";
        assert_eq!(current_comments(t).unwrap(), ["a: why", "b=1: why"]);
        assert!(
            current_comments("# passthru: x\n# mine\nGRUB_CMDLINE_LINUX_DEFAULT=\"\"\n")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn comment_lines_are_refreshed_not_stacked() {
        let t = "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n";
        let p = plan(
            &current_tokens(t).unwrap(),
            &ParamEdit {
                add: vec!["iommu=pt".into()],
                remove: vec![],
            },
        );
        let once = edit(t, &p, &["iommu=pt: why".into()]).unwrap();
        assert_eq!(
            once,
            "# passthru: iommu=pt: why\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=pt\"\n"
        );
        let p2 = plan(
            &current_tokens(&once).unwrap(),
            &ParamEdit {
                add: vec!["iommu=pt".into()],
                remove: vec![],
            },
        );
        assert!(p2.is_noop());
        assert_eq!(edit(&once, &p2, &["iommu=pt: why".into()]).unwrap(), once);
    }

    /// Edit with `comments`, then plan the same edit again on the result: a no-op that
    /// must leave the bytes alone.
    fn edit_twice(text: &str, add: &[&str], remove: &[&str], comments: &[&str]) -> String {
        let ed = ParamEdit {
            add: add.iter().map(|s| s.to_string()).collect(),
            remove: remove.iter().map(|s| s.to_string()).collect(),
        };
        let comments: Vec<String> = comments.iter().map(|s| s.to_string()).collect();
        let once = edit(text, &plan(&current_tokens(text).unwrap(), &ed), &comments).unwrap();
        let again = plan(&current_tokens(&once).unwrap(), &ed);
        assert!(again.is_noop(), "{again:?} after {once:?}");
        let twice = edit(&once, &again, &comments).unwrap();
        assert_eq!(twice, once, "second edit changed the file");
        once
    }

    #[test]
    fn edit_is_idempotent_when_the_variable_was_missing_below_passthru_comments() {
        // Found by fuzzing: the appended assignment came below a stale passthru comment
        // line, which the second edit then treated as its own and dropped. Both edits now
        // own the same block: the passthru comment lines right above where the
        // assignment is, or is appended.
        for (text, want) in [
            (
                "# passthru: stale\n",
                "# passthru: iommu=pt: why\nGRUB_CMDLINE_LINUX_DEFAULT=\"iommu=pt\"\n",
            ),
            (
                "GRUB_TIMEOUT=5\n# passthru: stale",
                "GRUB_TIMEOUT=5\n# passthru: iommu=pt: why\nGRUB_CMDLINE_LINUX_DEFAULT=\"iommu=pt\"\n",
            ),
            (
                "# passthru: a\n# mine\n# passthru: b\n",
                "# passthru: a\n# mine\n# passthru: iommu=pt: why\nGRUB_CMDLINE_LINUX_DEFAULT=\"iommu=pt\"\n",
            ),
        ] {
            assert_eq!(edit_twice(text, &["iommu=pt"], &[], &["iommu=pt: why"]), want);
        }
    }

    #[test]
    fn edit_is_idempotent_after_a_continued_last_line() {
        // `A=b \` + newline at the end: lines appended right after it would continue
        // that command, so the comment would not be a comment line of its own.
        let out = edit_twice("A=b \\\n", &["iommu=pt"], &[], &["c"]);
        assert_eq!(
            out,
            "A=b \\\n\n# passthru: c\nGRUB_CMDLINE_LINUX_DEFAULT=\"iommu=pt\"\n"
        );
        assert_eq!(tokens_of(&out, "A").unwrap(), ["b"]);
    }

    #[test]
    fn edit_never_drops_comment_like_lines_inside_other_strings() {
        // The line right above the assignment looks like a passthru comment but is the
        // end of another variable's quoted value: the user's, kept byte for byte.
        let text = "X=\"a\n# passthru: in a string\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n";
        let out = edit_twice(text, &["iommu=pt"], &[], &["c"]);
        assert_eq!(
            out,
            "X=\"a\n# passthru: in a string\"\n# passthru: c\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=pt\"\n"
        );
        assert_eq!(
            current_value(&out).unwrap().as_deref(),
            Some("quiet iommu=pt")
        );
        assert_eq!(tokens_of(&out, "X").unwrap(), tokens_of(text, "X").unwrap());
    }

    #[test]
    fn removing_a_token_never_leaves_an_unterminated_quote() {
        // Found by fuzzing: the gap before the removed token sits in a quoted part that
        // opens right after the kept token; the cut began at the kept token's end and
        // took the opening quote. Cuts now start and end inside the token's own part.
        for (text, remove, want) in [
            (
                "GRUB_CMDLINE_LINUX_DEFAULT=quiet\" amd_iommu=on\"\n",
                "amd_iommu=on",
                "GRUB_CMDLINE_LINUX_DEFAULT=quiet\"\"\n",
            ),
            (
                "GRUB_CMDLINE_LINUX_DEFAULT=quiet' amd_iommu=on'\n",
                "amd_iommu=on",
                "GRUB_CMDLINE_LINUX_DEFAULT=quiet''\n",
            ),
            // The mirror case: the gap after the token ends where the next part opens.
            (
                "GRUB_CMDLINE_LINUX_DEFAULT=\"amd_iommu=on \"quiet\n",
                "amd_iommu=on",
                "GRUB_CMDLINE_LINUX_DEFAULT=\"\"quiet\n",
            ),
            (
                "GRUB_CMDLINE_LINUX_DEFAULT='amd_iommu=on '\"quiet\"\n",
                "amd_iommu=on",
                "GRUB_CMDLINE_LINUX_DEFAULT=''\"quiet\"\n",
            ),
        ] {
            let out = merge(text, &[], &[remove]);
            assert_eq!(out, want);
            assert_eq!(current_tokens(&out).unwrap(), ["quiet"], "{out}");
            // Adding afterwards works on the result too.
            let m = merge(&out, &["iommu=pt"], &[]);
            assert_eq!(current_tokens(&m).unwrap(), ["quiet", "iommu=pt"], "{m}");
        }
    }

    #[test]
    fn removing_a_token_never_changes_how_its_neighbours_read() {
        // Found by fuzzing: inside double quotes `\ ` is a literal backslash; taking the
        // blank before `splash` put it against the closing quote, which it then escaped
        // (`"quiet \"`: an unterminated double quote). The blanks stay instead.
        let t = "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet \\ splash\"\nGRUB_TIMEOUT=5\n";
        assert_eq!(current_tokens(t).unwrap(), ["quiet", "\\", "splash"]);
        let out = merge(t, &[], &["splash"]);
        assert_eq!(
            out,
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet \\ \"\nGRUB_TIMEOUT=5\n"
        );
        assert_eq!(current_tokens(&out).unwrap(), ["quiet", "\\"]);
        // Whatever the cut, the output must read as planned or the edit is refused: a
        // value ending in a carriage return would leave one before the newline.
        let t = "GRUB_CMDLINE_LINUX_DEFAULT=a\r\n";
        assert!(current_tokens(t).is_err(), "CRLF is refused up front");
        let t = "GRUB_CMDLINE_LINUX_DEFAULT=\ra\n";
        assert_eq!(current_tokens(t).unwrap(), ["a"]);
        let p = plan(
            &current_tokens(t).unwrap(),
            &ParamEdit {
                add: vec![],
                remove: vec!["a".into()],
            },
        );
        let e = edit(t, &p, &[]).unwrap_err();
        assert!(e.1.contains("would not read as planned"), "{}", e.1);
    }

    #[test]
    fn missing_assignment_is_appended() {
        let t = "GRUB_TIMEOUT=5";
        let p = plan::<String>(
            &[],
            &ParamEdit {
                add: vec!["iommu=pt".into()],
                remove: vec![],
            },
        );
        assert_eq!(
            edit(t, &p, &["c".into()]).unwrap(),
            "GRUB_TIMEOUT=5\n# passthru: c\nGRUB_CMDLINE_LINUX_DEFAULT=\"iommu=pt\"\n"
        );
    }

    #[test]
    fn crlf_files_are_refused() {
        let t = "A=1\r\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\r\n";
        let e = current_tokens(t).unwrap_err();
        assert_eq!(line_of(t, e.0), 1);
        assert!(e.1.contains("CRLF"));
    }

    #[test]
    fn errors_name_the_line() {
        let t = "A=1\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\n";
        let e = current_tokens(t).unwrap_err();
        assert_eq!(line_of(t, e.0), 2);
        assert!(e.1.contains("unterminated double quote"));
        let t = "A=1\nif true; then GRUB_CMDLINE_LINUX_DEFAULT=x; fi\n";
        let e = current_tokens(t).unwrap_err();
        assert_eq!(line_of(t, e.0), 2);
    }

    #[test]
    fn an_assignment_after_a_continuation_is_never_missed() {
        // `GRUB_TIMEOUT=5 \` + newline + the assignment is one command setting both: read
        // as "not assigned", the user's tokens would be dropped by the appended
        // assignment. passthru cannot edit it in place, so it refuses, naming the line.
        let t = "GRUB_TIMEOUT=5 \\\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n";
        let e = current_tokens(t).unwrap_err();
        assert_eq!(line_of(t, e.0), 2);
        assert!(e.1.contains("middle of a line"), "{}", e.1);
        // A continuation inside a word joins it: no assignment of the variable (as sh
        // reads them: A is `xGRUB_CMDLINE_LINUX_DEFAULT=y`, the command `true abc...`).
        for t in [
            "A=\"x\"\\\nGRUB_CMDLINE_LINUX_DEFAULT=y\n",
            "true abc\\\nGRUB_CMDLINE_LINUX_DEFAULT=y\n",
        ] {
            assert_eq!(current_tokens(t).unwrap(), Vec::<String>::new(), "{t:?}");
        }
    }

    #[test]
    fn a_name_inside_another_value_is_not_an_assignment() {
        // Found by fuzzing: `GRUB_CMDLINE_LINUX=` inside the unquoted value of
        // GRUB_CMDLINE_LINUX_DEFAULT was taken for a mid-line assignment (an error), and
        // quoting the value on edit made GRUB_CMDLINE_LINUX readable: the edit changed
        // how another variable reads. sh assigns only the first name of each word.
        let t = "GRUB_CMDLINE_LINUX_DEFAULT=GRUB_CMDLINE_LINUX=S5\n";
        assert_eq!(
            tokens_of(t, "GRUB_CMDLINE_LINUX").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(current_tokens(t).unwrap(), ["GRUB_CMDLINE_LINUX=S5"]);
        let m = merge(t, &["iommu=pt"], &[]);
        assert_eq!(
            tokens_of(&m, "GRUB_CMDLINE_LINUX").unwrap(),
            Vec::<String>::new()
        );
        for t in [
            "GRUB_X=a,GRUB_CMDLINE_LINUX_DEFAULT=b\n",
            "A=\\\nGRUB_CMDLINE_LINUX_DEFAULT=c\n",
        ] {
            assert_eq!(current_tokens(t).unwrap(), Vec::<String>::new(), "{t:?}");
        }
        // A word that does start there still is one, and is refused.
        for t in [
            "GRUB_X=a;GRUB_CMDLINE_LINUX_DEFAULT=b\n",
            "GRUB_X=a\tGRUB_CMDLINE_LINUX_DEFAULT=b\n",
        ] {
            assert!(current_tokens(t).is_err(), "{t:?}");
        }
    }

    #[test]
    fn a_comment_starts_only_where_sh_starts_a_word() {
        // Found by fuzzing: `#` after a form feed was taken for a comment, hiding an
        // unterminated quote from this variable's scan while GRUB_TIMEOUT's value ran
        // into it; a quote in an appended comment line then closed it, so the edit
        // changed how GRUB_TIMEOUT reads. sh itself fails on such a file: so does
        // passthru now, for every variable.
        let t = "GRUB_TIMEOUT=5\x0c#\"x\n";
        assert!(tokens_of(t, "GRUB_TIMEOUT").is_err());
        let e = current_tokens(t).unwrap_err();
        assert!(e.1.contains("unterminated double quote"), "{}", e.1);
        // After a blank, an operator, or a blank continued onto the next line: a comment.
        for t in [
            "A=1 #\"\nGRUB_CMDLINE_LINUX_DEFAULT=x\n",
            "A=1;#\"\nGRUB_CMDLINE_LINUX_DEFAULT=x\n",
            "A=1 \\\n#\"\nGRUB_CMDLINE_LINUX_DEFAULT=x\n",
        ] {
            assert_eq!(current_tokens(t).unwrap(), ["x"], "{t:?}");
        }
    }

    #[test]
    fn assignments_inside_comments_and_other_strings_are_ignored() {
        let t = "# GRUB_CMDLINE_LINUX_DEFAULT=\"nope\"\nGRUB_X=\"multi\nGRUB_CMDLINE_LINUX_DEFAULT=nope\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"yes\"\n";
        assert_eq!(current_tokens(t).unwrap(), vec!["yes"]);
    }
}
