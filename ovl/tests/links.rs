//! Every relative link in the repository's Markdown (the top-level `*.md`,
//! `overlapped/README.md` and `docs/*.md`) names a file that exists, and a
//! `#anchor` into a Markdown file names one of its headings (GitHub's
//! anchor for it). Links to other sites are not followed.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The repository's root (this crate sits one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ovl/ has a parent")
        .to_path_buf()
}

/// The Markdown files whose links are checked.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("overlapped/README.md")];
    for dir in [root.to_path_buf(), root.join("docs")] {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The lines of `text` outside fenced code blocks, with their numbers
/// (from 1), and with inline code spans blanked out.
fn prose_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(f), Some(m)) if f == m => fence = None,
            (None, None) => out.push((i + 1, without_code_spans(line))),
            _ => {}
        }
    }
    out
}

/// `line` with every inline code span (a run of backticks up to the same
/// run) replaced by nothing.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let run = rest[start..].len() - rest[start..].trim_start_matches('`').len();
        let after = &rest[start + run..];
        let closing = "`".repeat(run);
        match after.find(&closing) {
            Some(end) => rest = &after[end + run..],
            // An unclosed run is literal text.
            None => {
                out.push_str(&rest[start..start + run]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The link targets of `text` with their line numbers: inline links and
/// images (`[text](target)`, `![alt](target "title")`) and reference
/// definitions (`[label]: target`), outside code.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    // A reference definition cannot interrupt a paragraph: it starts the
    // text, or follows a blank line, a heading, a code block or another
    // definition.
    let mut may_define = true;
    let mut last = 0;
    for (n, line) in prose_lines(text) {
        may_define |= n != last + 1;
        last = n;
        let mut rest = line.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            let inner = after[..end].trim();
            let target = match inner.strip_prefix('<') {
                Some(bracketed) => bracketed.split('>').next().unwrap_or(""),
                None => inner.split_whitespace().next().unwrap_or(""),
            };
            out.push((n, target.to_string()));
            rest = &after[end..];
        }
        let t = line.trim_start();
        let definition = match (may_define && t.starts_with('['), t.find("]:")) {
            (true, Some(close)) => t[close + 2..].split_whitespace().next(),
            _ => None,
        };
        if let Some(target) = definition {
            out.push((n, target.to_string()));
        }
        may_define = t.is_empty() || t.starts_with('#') || definition.is_some();
    }
    out
}

/// True for a target on another site or scheme (`https:`, `mailto:`).
fn is_external(target: &str) -> bool {
    let scheme_end = target.find(':');
    let path_start = target.find(['/', '#']);
    match (scheme_end, path_start) {
        (Some(c), Some(p)) => c < p,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The anchors GitHub gives the headings of `text`: the heading's text in
/// lower case, letters, digits, `-` and `_` kept, spaces made `-`, other
/// characters dropped; a repeated anchor gets `-1`, `-2`, ...
fn heading_anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    // Code spans are kept in headings (their text is part of the anchor),
    // so go over the raw lines, skipping fenced blocks.
    let mut in_fence = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        let hashes = t.len() - t.trim_start_matches('#').len();
        if in_fence || !(1..=6).contains(&hashes) || !t[hashes..].starts_with(' ') {
            continue;
        }
        let title = t[hashes..].trim().trim_end_matches('#').trim();
        let mut slug = String::new();
        for c in link_texts(title).chars().flat_map(char::to_lowercase) {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                slug.push(c);
            } else if c == ' ' {
                slug.push('-');
            }
        }
        let count = seen.entry(slug.clone()).or_insert(0);
        out.push(if *count == 0 {
            slug
        } else {
            format!("{slug}-{count}")
        });
        *count += 1;
    }
    out
}

/// `s` with each `[text](target)` reduced to its text.
fn link_texts(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("](") {
        let Some(end) = rest[i..].find(')') else {
            break;
        };
        out.push_str(&rest[..i].replacen('[', "", 1));
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    out
}

/// What is wrong with the relative links of the Markdown file `file`, one
/// line per broken link.
fn broken_links(root: &Path, file: &Path) -> Vec<String> {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    let mut broken = Vec::new();
    for (line, target) in link_targets(&text) {
        if target.is_empty() {
            broken.push(format!("{shown}:{line}: an empty link"));
            continue;
        }
        if is_external(&target) {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (target.as_str(), None),
        };
        let resolved = if path.is_empty() {
            file.to_path_buf()
        } else {
            file.parent().unwrap().join(path)
        };
        if !resolved.exists() {
            broken.push(format!("{shown}:{line}: `{target}`: no such file"));
            continue;
        }
        let Some(anchor) = anchor else { continue };
        if resolved.extension().is_none_or(|x| x != "md") {
            continue; // line anchors of source files are GitHub's
        }
        let linked = fs::read_to_string(&resolved).unwrap();
        if !heading_anchors(&linked).iter().any(|a| a == anchor) {
            broken.push(format!(
                "{shown}:{line}: `{target}`: no heading with that anchor"
            ));
        }
    }
    broken
}

#[test]
fn every_relative_link_resolves() {
    let root = root();
    let files = markdown_files(&root);
    for must in ["README.md", "overlapped/README.md", "docs/porting.md"] {
        assert!(
            files.contains(&root.join(must)),
            "{must} is not among the checked files"
        );
    }
    let broken: Vec<String> = files.iter().flat_map(|f| broken_links(&root, f)).collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn links_are_found_outside_code_and_anchors_follow_github() {
    let text = "\
# Title
See [a](docs/a.md), [b](b.md#part \"title\"), ![img](<x y.svg>) and [c](https://example.com).
Inline `[not](a link)` and ``[nor](this)`` are code.
```rust
let x = [y](z);
```
[ref]: ../src/op.rs
text that goes on
[not]: a definition, inside a paragraph
## Part: one, `two` (2026-11-30)
## Part: one, `two` (2026-11-30)
### [Linked](elsewhere.md) heading
";
    let targets: Vec<String> = link_targets(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        targets,
        [
            "docs/a.md",
            "b.md#part",
            "x y.svg",
            "https://example.com",
            "../src/op.rs",
            "elsewhere.md"
        ]
    );
    assert_eq!(link_targets(text)[4].0, 7, "the line of the definition");
    assert!(is_external("https://example.com") && is_external("mailto:a@b"));
    assert!(!is_external("docs/a.md#x:y") && !is_external("#anchor"));
    assert_eq!(
        heading_anchors(text),
        [
            "title",
            "part-one-two-2026-11-30",
            "part-one-two-2026-11-30-1",
            "linked-heading"
        ]
    );
}

#[test]
fn a_missing_file_and_a_missing_anchor_are_reported() {
    let root = root();
    let dir = std::env::temp_dir().join(format!("ovl-links-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sample.md");
    fs::write(
        &file,
        "# Here\n[ok](#here) [self](sample.md#here) [gone](missing.md) [bad](#nowhere)\n",
    )
    .unwrap();
    let broken = broken_links(&root, &file);
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(
        broken[0].contains("`missing.md`: no such file"),
        "{broken:?}"
    );
    assert!(
        broken[1].contains("`#nowhere`: no heading with that anchor"),
        "{broken:?}"
    );
}
