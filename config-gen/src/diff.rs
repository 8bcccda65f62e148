//! Unified diffs (`diff -u` format, 3 lines of context) for the dry run.

/// Split into lines keeping track of a missing final newline.
fn lines(s: &str) -> Vec<&str> {
    s.split_inclusive('\n').collect()
}

/// Longest-common-subsequence edit script: (op, a index, b index) with op ' ', '-', '+'.
fn script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(char, &'a str)> {
    let (n, m) = (a.len(), b.len());
    // Trim common prefix and suffix first: config edits are small.
    let mut pre = 0;
    while pre < n && pre < m && a[pre] == b[pre] {
        pre += 1;
    }
    let mut suf = 0;
    while suf < n - pre && suf < m - pre && a[n - 1 - suf] == b[m - 1 - suf] {
        suf += 1;
    }
    let (ai, bi) = (&a[pre..n - suf], &b[pre..m - suf]);
    let (p, q) = (ai.len(), bi.len());
    let mut out: Vec<(char, &str)> = a[..pre].iter().map(|l| (' ', *l)).collect();
    // Bounded work: a middle part too large for the quadratic table is shown as one
    // replacement (still a correct diff, only less minimal).
    if p.saturating_mul(q) > 4_000_000 {
        out.extend(ai.iter().map(|l| ('-', *l)));
        out.extend(bi.iter().map(|l| ('+', *l)));
        out.extend(a[n - suf..].iter().map(|l| (' ', *l)));
        return out;
    }
    let mut t = vec![vec![0u32; q + 1]; p + 1];
    for i in (0..p).rev() {
        for j in (0..q).rev() {
            t[i][j] = if ai[i] == bi[j] {
                t[i + 1][j + 1] + 1
            } else {
                t[i + 1][j].max(t[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < p || j < q {
        if i < p && j < q && ai[i] == bi[j] {
            out.push((' ', ai[i]));
            i += 1;
            j += 1;
        } else if i < p && (j == q || t[i + 1][j] >= t[i][j + 1]) {
            out.push(('-', ai[i]));
            i += 1;
        } else {
            out.push(('+', bi[j]));
            j += 1;
        }
    }
    out.extend(a[n - suf..].iter().map(|l| (' ', *l)));
    out
}

/// A unified diff from `old` (None: the file does not exist) to `new`, labelled with
/// `path`; empty when they are equal.
pub fn unified(path: &str, old: Option<&str>, new: &str) -> String {
    let o = old.unwrap_or("");
    if old.is_some() && o == new {
        return String::new();
    }
    let (a, b) = (lines(o), lines(new));
    let ops = script(&a, &b);
    let mut out = String::new();
    out.push_str(&format!(
        "--- {}\n",
        if old.is_some() {
            format!("a{path}")
        } else {
            "/dev/null".into()
        }
    ));
    out.push_str(&format!("+++ b{path}\n"));
    const CTX: usize = 3;
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.0 != ' ')
        .map(|(k, _)| k)
        .collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CTX);
        let mut end = changed[k] + 1;
        while k < changed.len() && changed[k] <= end + 2 * CTX {
            end = changed[k] + 1;
            k += 1;
        }
        let end = (end + CTX).min(ops.len());
        let a_start = ops[..start].iter().filter(|o| o.0 != '+').count();
        let b_start = ops[..start].iter().filter(|o| o.0 != '-').count();
        let a_len = ops[start..end].iter().filter(|o| o.0 != '+').count();
        let b_len = ops[start..end].iter().filter(|o| o.0 != '-').count();
        let fmt = |s: usize, l: usize| {
            if l == 0 {
                format!("{s},0")
            } else if l == 1 {
                format!("{}", s + 1)
            } else {
                format!("{},{l}", s + 1)
            }
        };
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            fmt(a_start, a_len),
            fmt(b_start, b_len)
        ));
        for (op, l) in &ops[start..end] {
            out.push(*op);
            out.push_str(l);
            if !l.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Compare with GNU diff -u (the reference), skipping the timestamped header lines.
    fn gnu(old: &str, new: &str) -> Option<String> {
        let dir = tempfile::tempdir().ok()?;
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, old).ok()?;
        std::fs::write(&b, new).ok()?;
        let o = Command::new("diff")
            .arg("-u")
            .arg(&a)
            .arg(&b)
            .output()
            .ok()?;
        let s = String::from_utf8(o.stdout).ok()?;
        Some(s.lines().skip(2).map(|l| format!("{l}\n")).collect())
    }

    #[test]
    fn hunks_match_gnu_diff() {
        let cases = [
            ("a\nb\nc\n", "a\nB\nc\n"),
            (
                "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n",
                "1\nx\n3\n4\n5\n6\n7\n8\n9\n10\ny\n12\n",
            ),
            (
                "1\n2\n3\n4\n5\n6\n7\n8\n9\n",
                "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
            ),
            ("", "new\n"),
            ("x\n", ""),
            ("a\nb", "a\nb\nc\n"),
        ];
        for (old, new) in cases {
            let Some(reference) = gnu(old, new) else {
                panic!("GNU diff is needed for this test (Debian package diffutils)");
            };
            let ours: String = unified("/f", Some(old), new)
                .lines()
                .skip(2)
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(ours, reference, "old={old:?} new={new:?}");
        }
    }

    #[test]
    fn huge_rewrites_stay_bounded_and_correct() {
        let old: String = (0..3000).map(|i| format!("a{i}\n")).collect();
        let new: String = (0..3000).map(|i| format!("b{i}\n")).collect();
        let d = unified("/f", Some(&old), &new);
        assert_eq!(
            d.lines()
                .filter(|l| l.starts_with('-') && !l.starts_with("---"))
                .count(),
            3000
        );
        assert_eq!(
            d.lines()
                .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
                .count(),
            3000
        );
    }

    #[test]
    fn equal_is_empty_and_new_file_is_from_dev_null() {
        assert_eq!(unified("/f", Some("a\n"), "a\n"), "");
        assert!(unified("/etc/x", None, "a\n")
            .starts_with("--- /dev/null\n+++ b/etc/x\n@@ -0,0 +1 @@\n+a\n"));
    }
}
