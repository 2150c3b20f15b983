//! The layering of `src/` (see `ARCHITECTURE.md`), checked on every
//! `cargo test`: every `crate::…` path (in `use` lines, grouped or nested,
//! and inline in code), every `super::…` path and every `$crate::…` path in
//! a macro names a module; the modules and those edges form a graph that
//! must have no cycle, and every edge must go to the same layer or a lower
//! one. A module declaring a child (`mod bar;`) and a child naming its
//! parent are not imports: edges between a module and its ancestors are
//! left out.
//!
//! Std only on purpose: the check is a few hundred lines and a parser crate
//! would cost every build more than it saves. It reads code, not comments or
//! strings, so a doc comment naming `crate::x` is not an edge.
//!
//! `cargo test --test architecture -- --nocapture` also prints a summary of
//! the graph (modules, edges, the largest modules).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers by module path prefix; the longest prefix decides. A module may
/// import its own layer or a lower one.
const LAYERS: &[(&str, u8)] = &[
    ("domain", 0),
    ("config", 0),
    ("telemetry", 0),
    ("compression", 0),
    ("live", 1),
    ("db", 2),
    ("services", 3),
    ("app::state", 4),
    ("http", 5),
    ("app", 6),
    ("cli", 7),
];

/// One import: the module whose code names another, where, and which.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edge {
    from: String,
    to: String,
    file: String,
    line: usize,
}

/// What the check found in a set of files.
#[derive(Debug, Default)]
struct Report {
    /// Module path (`""` is the crate root) → lines of its file.
    modules: BTreeMap<String, usize>,
    /// Every import that crosses modules, one per place in the code.
    edges: Vec<Edge>,
}

impl Report {
    /// The distinct module-to-module edges.
    fn graph(&self) -> BTreeMap<&str, BTreeSet<&str>> {
        let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for module in self.modules.keys() {
            graph.entry(module.as_str()).or_default();
        }
        for edge in &self.edges {
            graph
                .entry(edge.from.as_str())
                .or_default()
                .insert(edge.to.as_str());
        }
        graph
    }

    fn edge_count(&self) -> usize {
        self.graph().values().map(BTreeSet::len).sum()
    }

    /// Every cycle, as one strongly connected component each (with one loop
    /// through all of it spelled out, and the places that make it).
    fn cycles(&self) -> Vec<String> {
        let graph = self.graph();
        strongly_connected(&graph)
            .into_iter()
            .filter(|component| component.len() > 1)
            .map(|component| {
                let members: BTreeSet<&str> = component.iter().copied().collect();
                let places: Vec<String> = self
                    .edges
                    .iter()
                    .filter(|e| {
                        members.contains(e.from.as_str()) && members.contains(e.to.as_str())
                    })
                    .map(|e| format!("    {}:{} {} -> {}", e.file, e.line, e.from, e.to))
                    .collect();
                format!(
                    "cycle among {{{}}}: {}\n{}",
                    component.join(", "),
                    one_loop(&graph, &members).join(" -> "),
                    places.join("\n")
                )
            })
            .collect()
    }

    /// Every edge that goes to a higher layer than its origin.
    fn upward(&self, layers: &[(&str, u8)]) -> Vec<String> {
        self.edges
            .iter()
            .filter_map(|e| {
                let from = layer_of(layers, &e.from)?;
                let to = layer_of(layers, &e.to)?;
                (to > from).then(|| {
                    format!(
                        "{}:{}: {} (layer {from}) imports {} (layer {to})",
                        e.file, e.line, e.from, e.to
                    )
                })
            })
            .collect()
    }

    /// Modules that no layer covers (every module needs one).
    fn unlayered(&self, layers: &[(&str, u8)]) -> Vec<&str> {
        self.modules
            .keys()
            .map(String::as_str)
            .filter(|m| !m.is_empty() && layer_of(layers, m).is_none())
            .collect()
    }
}

fn layer_of(layers: &[(&str, u8)], module: &str) -> Option<u8> {
    layers
        .iter()
        .filter(|(prefix, _)| is_within(module, prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|&(_, rank)| rank)
}

/// Whether `module` is `ancestor` or inside it (`a::b` is within `a`).
fn is_within(module: &str, ancestor: &str) -> bool {
    ancestor.is_empty()
        || module == ancestor
        || module
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with("::"))
}

/// The module a file defines: `src/a/mod.rs` and `src/a.rs` are `a`,
/// `src/lib.rs` is the crate root (`""`).
fn module_of(relative: &str) -> String {
    let path = relative.strip_prefix("src/").unwrap_or(relative);
    let path = path.strip_suffix(".rs").unwrap_or(path);
    let path = path.strip_suffix("/mod").unwrap_or(path);
    if path == "lib" {
        return String::new();
    }
    path.replace('/', "::")
}

/// Reads files (relative path, contents) into modules and edges.
fn analyse(files: &[(String, String)]) -> Report {
    let mut report = Report::default();
    for (path, text) in files {
        report.modules.insert(module_of(path), text.lines().count());
    }
    for (path, text) in files {
        let module = module_of(path);
        for (line, named) in named_paths(&module, &strip(text)) {
            let Some(to) = longest_module(&report.modules, &named) else {
                continue;
            };
            if is_within(&module, &to) || is_within(&to, &module) {
                continue;
            }
            report.edges.push(Edge {
                from: module.clone(),
                to,
                file: path.clone(),
                line,
            });
        }
    }
    report
}

/// The longest known module that `path` (`a::b::Item`) starts with.
fn longest_module(modules: &BTreeMap<String, usize>, path: &[String]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains_key(candidate))
}

/// The code with comments and the contents of string and character literals
/// blanked out (newlines kept, so line numbers hold).
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('#') || next == Some('"'))
            && !ident_char(prev(&chars, i))
        {
            // A raw string: r"…", r#"…"#, …
            let mut hashes = 0;
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let opening = j + 1 - i;
            out.extend(std::iter::repeat_n(' ', opening));
            i = j + 1;
            while i < chars.len() {
                if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                    out.extend(std::iter::repeat_n(' ', 1 + hashes));
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' && is_char_literal(&chars, i) {
            // '{', '\'', '\u{7b}': blanked; a lifetime ('a) is left alone.
            out.push('\'');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            }
            out.push('\'');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev(chars: &[char], i: usize) -> char {
    if i == 0 { ' ' } else { chars[i - 1] }
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_char_literal(chars: &[char], i: usize) -> bool {
    match chars.get(i + 1) {
        Some('\\') => true,
        Some(_) => chars.get(i + 2) == Some(&'\''),
        None => false,
    }
}

/// Every module path the (stripped) code names, with its line: `crate::`,
/// `$crate::` and `super::` paths, groups (`{a, b::{c, d}}`) expanded.
/// Paths inside inline modules (`mod tests { … }`) resolve `super::` from
/// there.
fn named_paths(module: &str, code: &str) -> Vec<(usize, Vec<String>)> {
    let chars: Vec<char> = code.chars().collect();
    let base: Vec<String> = if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").map(str::to_owned).collect()
    };
    // The inline modules open at each point: (name, brace depth inside).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        if c == '{' {
            depth += 1;
            i += 1;
            continue;
        }
        if c == '}' {
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            depth = depth.saturating_sub(1);
            i += 1;
            continue;
        }
        if !ident_char(c) || (i > 0 && (ident_char(chars[i - 1]))) {
            i += 1;
            continue;
        }
        let word_end = (i..chars.len())
            .find(|&j| !ident_char(chars[j]))
            .unwrap_or(chars.len());
        let word: String = chars[i..word_end].iter().collect();
        if word == "mod" {
            // `mod name {` opens an inline module.
            let rest: String = chars[word_end..chars.len().min(word_end + 200)]
                .iter()
                .collect();
            let trimmed = rest.trim_start();
            let name: String = trimmed.chars().take_while(|&c| ident_char(c)).collect();
            let after = trimmed[name.len()..].trim_start();
            if !name.is_empty() && after.starts_with('{') {
                inline.push((name, depth + 1));
            }
            i = word_end;
            continue;
        }
        let preceded_by_path = i >= 2 && chars[i - 1] == ':' && chars[i - 2] == ':';
        let starts_path =
            chars.get(word_end) == Some(&':') && chars.get(word_end + 1) == Some(&':');
        if preceded_by_path || !starts_path || !(word == "crate" || word == "super") {
            i = word_end;
            continue;
        }
        let mut here: Vec<String> = base.clone();
        here.extend(inline.iter().map(|(name, _)| name.clone()));
        let mut prefix: Vec<String> = Vec::new();
        let mut j = i;
        if word == "crate" {
            j = word_end + 2;
        } else {
            // One or more `super::`.
            while chars[j..].starts_with(&['s', 'u', 'p', 'e', 'r', ':', ':']) {
                here.pop();
                j += 7;
            }
            prefix = here;
        }
        // A multi-line group is reported at its first line; the main loop
        // goes on after the word, so it still counts the group's lines and
        // braces.
        let mut paths = Vec::new();
        use_tree(&chars, j, prefix, &mut paths);
        found.extend(paths.into_iter().map(|p| (line, p)));
        i = word_end;
    }
    found
}

/// Reads a use tree at `j` (`a::b`, `a::{b, c::d}`, `a::*`, `a as b`) after
/// `prefix`, adding every path to `out`; answers where it ended.
fn use_tree(
    chars: &[char],
    mut j: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        if chars.get(j) == Some(&'{') {
            j += 1;
            loop {
                while j < chars.len() && (chars[j].is_whitespace() || chars[j] == ',') {
                    j += 1;
                }
                if j >= chars.len() || chars[j] == '}' {
                    return j + 1;
                }
                let before = j;
                j = use_tree(chars, j, prefix.clone(), out);
                if j == before {
                    j += 1;
                }
            }
        }
        let end = (j..chars.len())
            .find(|&k| !ident_char(chars[k]))
            .unwrap_or(chars.len());
        if end == j {
            // `*`, or the end of the path.
            out.push(prefix);
            return j + usize::from(chars.get(j) == Some(&'*'));
        }
        let segment: String = chars[j..end].iter().collect();
        j = end;
        if segment != "self" {
            prefix.push(segment);
        }
        if chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
            j += 2;
            continue;
        }
        // `as name` and anything else end the path.
        out.push(prefix);
        let rest: String = chars[j..chars.len().min(j + 64)].iter().collect();
        let trimmed = rest.trim_start();
        if let Some(after_as) = trimmed.strip_prefix("as ") {
            let skipped = rest.len() - trimmed.len() + 3;
            let alias = after_as.trim_start();
            let name_len = alias.chars().take_while(|&c| ident_char(c)).count();
            return j + skipped + (after_as.len() - alias.len()) + name_len;
        }
        return j;
    }
}

/// Tarjan's strongly connected components.
fn strongly_connected<'a>(graph: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Vec<Vec<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        components: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(node: &'a str, graph: &BTreeMap<&'a str, BTreeSet<&'a str>>, s: &mut State<'a>) {
        s.index.insert(node, s.next);
        s.low.insert(node, s.next);
        s.next += 1;
        s.stack.push(node);
        s.on_stack.insert(node);
        for &next in graph.get(node).into_iter().flatten() {
            if !s.index.contains_key(next) {
                visit(next, graph, s);
                let low = s.low[node].min(s.low[next]);
                s.low.insert(node, low);
            } else if s.on_stack.contains(next) {
                let low = s.low[node].min(s.index[next]);
                s.low.insert(node, low);
            }
        }
        if s.low[node] == s.index[node] {
            let mut component = Vec::new();
            while let Some(member) = s.stack.pop() {
                s.on_stack.remove(member);
                component.push(member);
                if member == node {
                    break;
                }
            }
            component.sort_unstable();
            s.components.push(component);
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        components: Vec::new(),
    };
    for &node in graph.keys() {
        if !s.index.contains_key(node) {
            visit(node, graph, &mut s);
        }
    }
    s.components
}

/// One loop within a strongly connected component, from its first member
/// back to it (breadth first, so the shortest).
fn one_loop<'a>(
    graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
    members: &BTreeSet<&'a str>,
) -> Vec<&'a str> {
    let Some(&start) = members.first() else {
        return Vec::new();
    };
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in graph.get(node).into_iter().flatten() {
            if !members.contains(next) {
                continue;
            }
            if next == start {
                // Walk back from `node` to `start`, then close the loop.
                let mut path = vec![node];
                let mut at = node;
                while let Some(&before) = came_from.get(at) {
                    path.push(before);
                    at = before;
                }
                if at != start {
                    path.push(start);
                }
                path.reverse();
                path.push(start);
                return path;
            }
            if !came_from.contains_key(next) && next != start {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    Vec::new()
}

fn source_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            source_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/");
            // The binary is its own crate: it only calls the library.
            if relative == "src/main.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            out.push((relative, text));
        }
    }
}

fn project() -> Report {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    source_files(&root.join("src"), root, &mut files);
    analyse(&files)
}

#[test]
fn the_module_graph_has_no_cycle() {
    let report = project();
    let cycles = report.cycles();
    assert!(
        cycles.is_empty(),
        "{} import cycle(s):\n{}",
        cycles.len(),
        cycles.join("\n")
    );
}

#[test]
fn imports_only_go_to_the_same_layer_or_lower() {
    let report = project();
    let unlayered = report.unlayered(LAYERS);
    assert!(
        unlayered.is_empty(),
        "modules without a layer (add them to LAYERS and ARCHITECTURE.md): {unlayered:?}"
    );
    let upward = report.upward(LAYERS);
    assert!(
        upward.is_empty(),
        "{} upward import(s):\n{}",
        upward.len(),
        upward.join("\n")
    );
}

#[test]
fn summary() {
    let report = project();
    let mut largest: Vec<(&String, &usize)> = report.modules.iter().collect();
    largest.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    println!(
        "{} modules, {} module-to-module edges ({} import sites), {} cycle(s)",
        report.modules.len(),
        report.edge_count(),
        report.edges.len(),
        report.cycles().len()
    );
    println!("largest modules by lines:");
    for (module, lines) in largest.iter().take(12) {
        let name = if module.is_empty() {
            "(crate root)"
        } else {
            module
        };
        println!("  {lines:>5}  {name}");
    }
    let mut by_layer: BTreeMap<u8, usize> = BTreeMap::new();
    for module in report.modules.keys().filter(|m| !m.is_empty()) {
        if let Some(layer) = layer_of(LAYERS, module) {
            *by_layer.entry(layer).or_default() += 1;
        }
    }
    println!("modules per layer: {by_layer:?}");
    assert!(report.modules.len() > 10, "the sources were not found");
    assert!(report.edge_count() > 10, "no imports were read");
}

// The checker checked: each of these fails if the part it names breaks.

fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
        .collect()
}

#[test]
fn a_two_module_cycle_is_found() {
    let report = analyse(&files(&[
        ("src/lib.rs", "pub mod a;\npub mod b;\n"),
        ("src/a.rs", "use crate::b::B;\npub struct A;\n"),
        (
            "src/b.rs",
            "pub struct B;\nfn f() -> crate::a::A { crate::a::A }\n",
        ),
    ]));
    let cycles = report.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(
        cycles[0].starts_with("cycle among {a, b}: a -> b -> a"),
        "{}",
        cycles[0]
    );
    assert!(cycles[0].contains("src/b.rs:2 b -> a"), "{}", cycles[0]);
}

#[test]
fn a_three_module_cycle_is_found() {
    let report = analyse(&files(&[
        ("src/lib.rs", "pub mod x;\n"),
        ("src/x/mod.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
        ("src/x/a.rs", "use super::b::B;\n"),
        ("src/x/b.rs", "use crate::x::c::C;\n"),
        ("src/x/c.rs", "use crate::x::{a::A};\n"),
    ]));
    let cycles = report.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(
        cycles[0].starts_with("cycle among {x::a, x::b, x::c}"),
        "{}",
        cycles[0]
    );
}

#[test]
fn parents_and_children_are_not_cycles_and_comments_are_not_imports() {
    let report = analyse(&files(&[
        ("src/lib.rs", "pub mod db;\n"),
        (
            "src/db/mod.rs",
            "mod rows;\npub use rows::Row;\npub struct Store;\n",
        ),
        (
            "src/db/rows.rs",
            "use super::Store;\n/// see crate::other::X\npub struct Row;\n// crate::other::Y\nconst S: &str = \"crate::other::Z\";\n",
        ),
        ("src/other.rs", "use crate::db::Store;\n"),
    ]));
    assert!(report.cycles().is_empty(), "{:?}", report.cycles());
    assert_eq!(report.edges.len(), 1, "{:?}", report.edges);
    assert_eq!(
        (report.edges[0].from.as_str(), report.edges[0].to.as_str()),
        ("other", "db")
    );
}

#[test]
fn an_upward_import_is_found() {
    let layers = &[("domain", 0), ("db", 2), ("http", 5)];
    let report = analyse(&files(&[
        (
            "src/lib.rs",
            "pub mod db;\npub mod domain;\npub mod http;\n",
        ),
        ("src/http.rs", "use crate::db::Store;\n"),
        ("src/db.rs", "use crate::domain::Rule;\n"),
        (
            "src/domain.rs",
            "\n\nfn f() {\n    let _ = crate::http::NOT_FOUND;\n}\n",
        ),
    ]));
    let upward = report.upward(layers);
    assert_eq!(
        upward,
        vec!["src/domain.rs:4: domain (layer 0) imports http (layer 5)".to_owned()]
    );
    let unlayered = analyse(&files(&[("src/lib.rs", ""), ("src/misc.rs", "")]));
    assert_eq!(unlayered.unlayered(layers), vec!["misc"]);
}

#[test]
fn grouped_and_nested_uses_are_parsed() {
    let code = strip(
        "use crate::{\n    a::{b::{self, X}, c::*},\n    d as e,\n};\nmod tests {\n    use super::super::f::G;\n}\nmacro_rules! m { () => { $crate::g::H } }\n",
    );
    let paths: Vec<(usize, String)> = named_paths("p::q", &code)
        .into_iter()
        .map(|(line, p)| (line, p.join("::")))
        .collect();
    let expected: Vec<(usize, String)> = [
        (1, "a::b"),
        (1, "a::b::X"),
        (1, "a::c"),
        (1, "d"),
        (6, "p::f::G"),
        (8, "g::H"),
    ]
    .into_iter()
    .map(|(line, p)| (line, p.to_owned()))
    .collect();
    assert_eq!(paths, expected);
}

// ---------------------------------------------------------------------------
// Function length: none over `MAX_FN_LINES` unless a comment says why.
//
// A function's length runs from the line of its `fn` to the line of its
// closing brace, blank lines, comments and SQL included (what a reader scrolls
// through). A nested `fn` item is measured on its own and its lines are not
// counted again in the function around it: it already names a step. A closure
// is part of the body it sits in and counts there.
//
// The exemption is a `// long: <why>` line in the block of comments and
// attributes directly above the `fn` (above `#[test]`, a doc comment or
// another attribute is fine; a blank line or code in between ends the block).

/// The longest function body the project accepts without a `// long:` reason.
const MAX_FN_LINES: usize = 80;

/// One function as the length check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FnLength {
    file: String,
    /// 1-based line of the `fn` keyword.
    line: usize,
    name: String,
    /// Lines from `fn` to its closing brace, less nested `fn` items.
    lines: usize,
    /// A `// long: <why>` comment precedes it.
    exempt: bool,
}

/// Every function with a body in `text`, measured. Reads the stripped code,
/// so braces in strings, character literals and comments do not count.
fn function_lengths(file: &str, text: &str) -> Vec<FnLength> {
    let code: Vec<char> = strip(text).chars().collect();
    let line_at = {
        let mut starts = vec![0];
        for (i, c) in code.iter().enumerate() {
            if *c == '\n' {
                starts.push(i + 1);
            }
        }
        move |pos: usize| starts.partition_point(|&s| s <= pos)
    };
    // (name, line of `fn`, first line, last line, body start, body end)
    let mut found: Vec<(String, usize, usize, usize, usize)> = Vec::new();
    let mut i = 0;
    while i + 2 < code.len() {
        let is_fn = code[i] == 'f'
            && code[i + 1] == 'n'
            && code[i + 2].is_whitespace()
            && !ident_char(prev(&code, i))
            && prev(&code, i) != '$';
        if !is_fn {
            i += 1;
            continue;
        }
        let mut j = i + 2;
        while j < code.len() && code[j].is_whitespace() {
            j += 1;
        }
        let name_start = j;
        while j < code.len() && ident_char(code[j]) {
            j += 1;
        }
        if name_start == j || !(code[name_start].is_alphabetic() || code[name_start] == '_') {
            // `fn(u8) -> u8` (a pointer type) or `fn $name` in a macro.
            i += 2;
            continue;
        }
        let name: String = code[name_start..j].iter().collect();
        // The body opens at the first `{` outside parentheses and brackets;
        // a `;` there first means a declaration without a body.
        let mut depth = 0i32;
        let mut open = None;
        while j < code.len() {
            match code[j] {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                ';' if depth == 0 => break,
                '{' if depth == 0 => {
                    open = Some(j);
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        let Some(open) = open else {
            i = j.max(i + 2);
            continue;
        };
        let mut braces = 0i32;
        let mut close = open;
        for (k, c) in code.iter().enumerate().skip(open) {
            match c {
                '{' => braces += 1,
                '}' => {
                    braces -= 1;
                    if braces == 0 {
                        close = k;
                        break;
                    }
                }
                _ => {}
            }
        }
        found.push((name, i, line_at(i), line_at(close), close));
        // Continue inside the body, so nested functions are found too.
        i = open + 1;
    }
    let source: Vec<&str> = text.lines().collect();
    found
        .iter()
        .map(|(name, start, first, last, end)| {
            // Direct children: nested items not inside another nested item.
            let inner: Vec<_> = found
                .iter()
                .filter(|(_, s, _, _, e)| s > start && e < end)
                .collect();
            let nested: usize = inner
                .iter()
                .filter(|(_, s, _, _, e)| !inner.iter().any(|(_, s2, _, _, e2)| s2 < s && e2 > e))
                .map(|(_, _, f, l, _)| l - f + 1)
                .sum();
            FnLength {
                file: file.to_owned(),
                line: *first,
                name: name.clone(),
                lines: last - first + 1 - nested,
                exempt: has_long_reason(&source, *first),
            }
        })
        .collect()
}

/// Whether the comment-and-attribute block right above line `line` (1-based)
/// holds a `// long: <why>` with a reason.
fn has_long_reason(source: &[&str], line: usize) -> bool {
    source[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("//") || l.starts_with("#[") || l.starts_with("#!["))
        .any(|l| {
            l.strip_prefix("// long:")
                .is_some_and(|why| !why.trim().is_empty())
        })
}

/// Functions over `limit` lines without a `// long:` reason, longest first.
fn too_long(files: &[(String, String)], limit: usize) -> Vec<FnLength> {
    let mut out: Vec<FnLength> = files
        .iter()
        .flat_map(|(path, text)| function_lengths(path, text))
        .filter(|f| f.lines > limit && !f.exempt)
        .collect();
    out.sort_by(|a, b| b.lines.cmp(&a.lines).then(a.file.cmp(&b.file)));
    out
}

#[test]
fn no_function_is_over_80_lines_without_a_reason() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    source_files(&root.join("src"), root, &mut files);
    // `source_files` leaves the binary out of the module graph; its
    // functions are still code someone reads.
    let main = root.join("src/main.rs");
    files.push((
        "src/main.rs".to_owned(),
        std::fs::read_to_string(&main).expect("src/main.rs"),
    ));
    let measured: usize = files
        .iter()
        .map(|(p, t)| function_lengths(p, t).len())
        .sum();
    assert!(measured > 100, "only {measured} functions found under src/");
    let offenders = too_long(&files, MAX_FN_LINES);
    let listed: Vec<String> = offenders
        .iter()
        .map(|f| format!("  {}:{} {} ({} lines)", f.file, f.line, f.name, f.lines))
        .collect();
    assert!(
        offenders.is_empty(),
        "{} function(s) over {MAX_FN_LINES} lines; split where the split names a step, \
         or put `// long: <why>` above the fn:\n{}",
        offenders.len(),
        listed.join("\n")
    );
}

/// A function `name` whose body holds `body_lines` lines of `filler`.
fn synthetic_fn(name: &str, body_lines: usize, filler: &str) -> String {
    let mut text = format!("fn {name}() {{\n");
    for _ in 0..body_lines {
        text.push_str(filler);
        text.push('\n');
    }
    text.push_str("}\n");
    text
}

#[test]
fn a_long_function_fails_and_its_reason_exempts_it() {
    let long = synthetic_fn("long_one", 85, "    let x = 1;");
    let short = synthetic_fn("short_one", 10, "    let x = 1;");
    let text = format!("{short}\n{long}");
    let found = too_long(&files(&[("src/a.rs", &text)]), 80);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].name, "long_one");
    assert_eq!(found[0].line, 14);
    assert_eq!(found[0].lines, 87);
    // Exactly at the limit passes.
    let at_limit = synthetic_fn("at_limit", 78, "    let x = 1;");
    assert!(too_long(&files(&[("src/a.rs", &at_limit)]), 80).is_empty());
    // The reason directly above, or above attributes and doc comments.
    for prefix in [
        "// long: a table of cases\n",
        "// long: a table of cases\n#[test]\n",
        "// long: a table of cases\n/// Docs.\n#[allow(dead_code)]\n",
    ] {
        let text = format!("{prefix}{long}");
        assert!(
            too_long(&files(&[("src/a.rs", &text)]), 80).is_empty(),
            "{prefix:?} should exempt"
        );
    }
    // No reason, a blank line, or a reason further up does not.
    for prefix in [
        "// long:\n",
        "// long: why\n\n",
        "// long: why\nfn other() {}\n",
        "// too long: not the marker\n",
    ] {
        let text = format!("{prefix}{long}");
        assert_eq!(
            too_long(&files(&[("src/a.rs", &text)]), 80).len(),
            1,
            "{prefix:?} should not exempt"
        );
    }
}

#[test]
fn braces_in_strings_chars_and_comments_do_not_count() {
    // Closing braces hidden in literals would end the function early (so a
    // long one would pass); opening ones would run it on to the end.
    for filler in [
        "    let s = \"}}}\";",
        "    let c = '}';",
        "    // }",
        "    /* } */ let x = 1;",
        "    let r = r#\"} \"quoted\" }\"#;",
        "    let s = \"{{{\";",
        "    let c = '{';",
        "    let e = '\\'';",
    ] {
        let long = synthetic_fn("long_one", 85, filler);
        let text = format!("{long}fn after() {{\n}}\n");
        let lengths = function_lengths("src/a.rs", &text);
        let names: Vec<(&str, usize)> =
            lengths.iter().map(|f| (f.name.as_str(), f.lines)).collect();
        assert_eq!(
            names,
            vec![("long_one", 87), ("after", 2)],
            "filler {filler:?}"
        );
    }
}

#[test]
fn nested_functions_closures_and_declarations_are_measured_sensibly() {
    // A nested fn is measured on its own and not counted again outside.
    let inner = synthetic_fn("inner", 60, "        let y = 2;");
    let mut outer = String::from("fn outer() {\n");
    for _ in 0..30 {
        outer.push_str("    let x = 1;\n");
    }
    outer.push_str(&inner);
    outer.push_str("    inner();\n}\n");
    let lengths = function_lengths("src/a.rs", &outer);
    let names: Vec<(&str, usize)> = lengths.iter().map(|f| (f.name.as_str(), f.lines)).collect();
    assert_eq!(names, vec![("outer", 33), ("inner", 62)]);
    // A closure is the body it sits in: 85 lines of it make a long function.
    let mut closure = String::from("fn with_closure() {\n    let f = |x: u8| {\n");
    for _ in 0..85 {
        closure.push_str("        let _ = x;\n");
    }
    closure.push_str("    };\n    f(1);\n}\n");
    let found = too_long(&files(&[("src/a.rs", &closure)]), 80);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "with_closure");
    // Trait declarations, fn pointer types and `[u8; 3]` parameters.
    let text = "trait T {\n    fn declared(&self) -> u8;\n}\n\
                fn takes(f: fn(u8) -> u8, a: [u8; 3]) -> u8 {\n    f(a[0])\n}\n";
    let names: Vec<(String, usize, usize)> = function_lengths("src/a.rs", text)
        .into_iter()
        .map(|f| (f.name, f.line, f.lines))
        .collect();
    assert_eq!(names, vec![("takes".to_owned(), 4, 3)]);
}

// ---------------------------------------------------------------------------
// Macros: none hides control flow.
//
// A `?` or `return` inside a `macro_rules!` body leaves the function that
// calls the macro, and nothing at the call site says so. A macro may paste
// text (SQL fragments) or expand per backend; whatever it evaluates to, the
// caller decides what leaves: the `?` is written at the call site. Each
// macro also says why it is a macro in a `///` comment above it.

/// One `macro_rules!` as the check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MacroBody {
    file: String,
    /// 1-based line of `macro_rules!`.
    line: usize,
    name: String,
    /// What its body holds that leaves the caller: `?`, `return`, …
    exits: Vec<String>,
    /// A `///` doc comment sits directly above it (attributes may come between).
    documented: bool,
}

/// Every `macro_rules!` in `text`, with the exits its rules' bodies hold.
/// Reads the stripped code, so strings and comments do not count; the
/// repetition operator `$( … )?` and a `?Sized` bound are not exits.
fn macro_bodies(file: &str, text: &str) -> Vec<MacroBody> {
    let code: Vec<char> = strip(text).chars().collect();
    let source: Vec<&str> = text.lines().collect();
    let needle: Vec<char> = "macro_rules!".chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i + needle.len() < code.len() {
        if code[i..i + needle.len()] != needle[..] || ident_char(prev(&code, i)) {
            i += 1;
            continue;
        }
        let line = code[..i].iter().filter(|&&c| c == '\n').count() + 1;
        let mut j = i + needle.len();
        while j < code.len() && code[j].is_whitespace() {
            j += 1;
        }
        let name_start = j;
        while j < code.len() && ident_char(code[j]) {
            j += 1;
        }
        let name: String = code[name_start..j].iter().collect();
        let Some(open) = (j..code.len()).find(|&k| matches!(code[k], '{' | '(' | '[')) else {
            break;
        };
        let end = matching_close(&code, open);
        found.push(MacroBody {
            file: file.to_owned(),
            line,
            name,
            exits: exits_in(&code[open..=end]),
            documented: has_doc_comment(&source, line),
        });
        i = end + 1;
    }
    found
}

/// The index of the bracket closing the one at `open` (or the last index).
fn matching_close(code: &[char], open: usize) -> usize {
    let mut depth = 0i32;
    for (k, c) in code.iter().enumerate().skip(open) {
        match c {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    code.len() - 1
}

/// The `?`, `return`, `break` and `continue` in a macro's (stripped) rules.
fn exits_in(body: &[char]) -> Vec<String> {
    let mut exits = Vec::new();
    // Whether each open `(` starts a repetition `$( … )`.
    let mut parens: Vec<bool> = Vec::new();
    let mut closed_repetition = false;
    for (k, &c) in body.iter().enumerate() {
        match c {
            '(' => parens.push(k > 0 && body[k - 1] == '$'),
            ')' => {
                closed_repetition = parens.pop().unwrap_or(false);
                continue;
            }
            '?' => {
                let after: String = body[k + 1..].iter().take(5).collect();
                let repetition = closed_repetition && body[k - 1] == ')';
                if !repetition && after != "Sized" {
                    exits.push("?".to_owned());
                }
            }
            _ => {}
        }
        if ident_char(c) && !ident_char(prev(body, k)) && prev(body, k) != '$' {
            let word: String = body[k..].iter().take_while(|&&c| ident_char(c)).collect();
            if matches!(word.as_str(), "return" | "break" | "continue") {
                exits.push(word);
            }
        }
        if !c.is_whitespace() {
            closed_repetition = false;
        }
    }
    exits
}

/// Whether the block of comments and attributes right above line `line`
/// (1-based) holds a `///` doc comment.
fn has_doc_comment(source: &[&str], line: usize) -> bool {
    source[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("//") || l.starts_with("#["))
        .any(|l| l.starts_with("///"))
}

fn all_macros() -> Vec<MacroBody> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    source_files(&root.join("src"), root, &mut files);
    files
        .iter()
        .flat_map(|(path, text)| macro_bodies(path, text))
        .collect()
}

#[test]
fn no_macro_hides_a_question_mark_or_a_return() {
    let macros = all_macros();
    assert!(macros.len() > 5, "only {} macros found", macros.len());
    let hiding: Vec<String> = macros
        .iter()
        .filter(|m| !m.exits.is_empty())
        .map(|m| format!("  {}:{} {}! holds {:?}", m.file, m.line, m.name, m.exits))
        .collect();
    assert!(
        hiding.is_empty(),
        "{} macro(s) leave their caller from inside; let the macro evaluate to a Result \
         and write the `?` at the call site, or make it a function:\n{}",
        hiding.len(),
        hiding.join("\n")
    );
}

#[test]
fn every_macro_says_why_it_is_a_macro() {
    let undocumented: Vec<String> = all_macros()
        .iter()
        .filter(|m| !m.documented)
        .map(|m| format!("  {}:{} {}!", m.file, m.line, m.name))
        .collect();
    assert!(
        undocumented.is_empty(),
        "macro(s) without a `///` line saying why they are macros:\n{}",
        undocumented.join("\n")
    );
}

#[test]
fn macro_exits_are_found_and_repetitions_are_not_exits() {
    let text = "/// Why.\nmacro_rules! clean {\n    ($($x:expr),* $(,)?) => { f($($x),*) };\n    \
                ($t:ty) => { fn g<T: ?Sized>() {} };\n}\n\
                macro_rules! hides {\n    ($e:expr) => {{ let v = $e.await?; \
                if v { return Err(1); } v }};\n}\n\
                /// Why.\nmacro_rules! loops { () => { for _ in 0..2 { break; } continue } }\n\
                /// Why.\nmacro_rules! quoted { () => { \"? return\" } }\n";
    let found: Vec<(String, usize, Vec<String>, bool)> = macro_bodies("src/a.rs", text)
        .into_iter()
        .map(|m| (m.name, m.line, m.exits, m.documented))
        .collect();
    let expected = vec![
        ("clean".to_owned(), 2, vec![], true),
        (
            "hides".to_owned(),
            6,
            vec!["?".to_owned(), "return".to_owned()],
            false,
        ),
        (
            "loops".to_owned(),
            10,
            vec!["break".to_owned(), "continue".to_owned()],
            true,
        ),
        ("quoted".to_owned(), 12, vec![], true),
    ];
    assert_eq!(found, expected);
}

// ---------------------------------------------------------------------------
// Language: identifiers are English (ARCHITECTURE.md, "Language").
//
// Every identifier in the code of `src/`, `tests/` and `benches/` (string
// literals and comments are blanked first, so URLs, form field names in
// `#[serde(rename = "…")]`, SQL and Spanish messages stay) is split into its
// words (`snake_case`, `CamelCase`), and no word may be one of the Spanish
// words below, nor hold a letter outside ASCII. The list names the concepts
// of the product; proper names of test data (a campaign called "Ventas", an
// agent called "Laura") are not concepts and are not listed.

/// Spanish words, without accents, that name a concept the code has an
/// English word for (the glossary in ARCHITECTURE.md).
const SPANISH_WORDS: &[&str] = &[
    "accion",
    "acciones",
    "activa",
    "activo",
    "administrador",
    "administradores",
    "agente",
    "agentes",
    "antes",
    "auditoria",
    "aviso",
    "buscar",
    "busqueda",
    "cambios",
    "campana",
    "campanas",
    "campo",
    "campos",
    "canal",
    "canales",
    "cancelar",
    "categoria",
    "categorias",
    "cliente",
    "comentario",
    "confirmar",
    "contrasena",
    "conversacion",
    "conversaciones",
    "correo",
    "cuenta",
    "desde",
    "despues",
    "enrutador",
    "estado",
    "estados",
    "estatus",
    "eventos",
    "exportar",
    "fecha",
    "hasta",
    "lote",
    "medida",
    "mensaje",
    "mensajes",
    "minutos",
    "motivo",
    "nombre",
    "nueva",
    "nuevo",
    "objeto",
    "pagina",
    "previa",
    "reasignar",
    "regla",
    "reglas",
    "reporte",
    "reportes",
    "rol",
    "salida",
    "seleccion",
    "sesion",
    "sesiones",
    "sistema",
    "subcategoria",
    "subcategorias",
    "todas",
    "trabajo",
    "usuario",
    "usuarios",
    "vista",
    "volver",
];

/// The words of an identifier, lowercase: `MensajesPage` → `mensajes`,
/// `page`; `aviso_minutos` → `aviso`, `minutos`; `HTTPServer` → `httpserver`
/// is not split further (no deny-listed word hides in an acronym).
fn identifier_words(identifier: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in identifier.split('_').filter(|p| !p.is_empty()) {
        let mut word = String::new();
        let mut previous_lower = false;
        for c in part.chars() {
            if c.is_uppercase() && previous_lower && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            previous_lower = c.is_lowercase() || c.is_ascii_digit();
            word.extend(c.to_lowercase());
        }
        if !word.is_empty() {
            words.push(word);
        }
    }
    words
}

/// Every Spanish identifier in `text` as `file:line identifier`.
fn spanish_identifiers(file: &str, text: &str) -> Vec<String> {
    let code = strip(text);
    let mut found = Vec::new();
    for (index, line) in code.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if !ident_char(chars[i]) {
                i += 1;
                continue;
            }
            let end = (i..chars.len())
                .find(|&k| !ident_char(chars[k]))
                .unwrap_or(chars.len());
            let identifier: String = chars[i..end].iter().collect();
            let number = chars[i].is_ascii_digit();
            let spanish = !identifier.is_ascii()
                || identifier_words(&identifier)
                    .iter()
                    .any(|w| SPANISH_WORDS.contains(&w.as_str()));
            if spanish && !number {
                found.push(format!("{file}:{} {identifier}", index + 1));
            }
            i = end;
        }
    }
    found
}

/// Every `.rs` file under `dir` (relative path, contents), `tests/assets`
/// and other non-Rust files left out.
fn rust_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            out.push((relative, text));
        }
    }
}

#[test]
fn identifiers_are_english() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        rust_files(&root.join(dir), root, &mut files);
    }
    assert!(files.len() > 50, "only {} Rust files found", files.len());
    let found: Vec<String> = files
        .iter()
        .flat_map(|(path, text)| spanish_identifiers(path, text))
        .collect();
    assert!(
        found.is_empty(),
        "{} Spanish identifier(s); name them in English (a URL or form field keeps its \
         Spanish name in a string or `#[serde(rename = \"…\")]`, and the glossary in \
         ARCHITECTURE.md pairs the words):\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn spanish_identifiers_are_found_and_strings_are_not() {
    let text = "#[derive(Deserialize)]\nstruct MensajesPage {\n    \
                #[serde(rename = \"desde\")]\n    from: String,\n    aviso_minutos: u32,\n}\n\
                fn an_administrator_sees_mensajes_first() {\n    \
                let url = \"/mensajes?estatus=todas\"; // desde hasta\n    let campaña = 1;\n    \
                let ventas = 2; let x = 0x5245_4c45_5641; let rol = 3;\n}\n";
    assert_eq!(
        spanish_identifiers("src/a.rs", text),
        vec![
            "src/a.rs:2 MensajesPage".to_owned(),
            "src/a.rs:5 aviso_minutos".to_owned(),
            "src/a.rs:7 an_administrator_sees_mensajes_first".to_owned(),
            "src/a.rs:9 campaña".to_owned(),
            "src/a.rs:10 rol".to_owned(),
        ]
    );
    assert_eq!(
        identifier_words("SubcategoriaID_x2"),
        ["subcategoria", "id", "x2"]
    );
}
