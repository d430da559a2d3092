//! The gateway's layering, checked on its source: layers point down only. The store is a crate
//! of its own (the compiler refuses any import from it upward); within `gateway/src` no two
//! modules import each other, directly or round a circle; only `api/` knows HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
const STORE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/store");

type Module = Vec<String>;

/// Every `.rs` file under `dir`, by its module path (`alerts/engine/mod.rs` is `alerts::engine`).
fn modules(dir: &Path) -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<Module, PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap().with_extension("");
                let mut module: Module = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if module.first().is_some_and(|m| m == "bin") {
                    continue;
                }
                if matches!(
                    module.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    module.pop();
                }
                out.insert(module, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A file's code without its `#[cfg(test)]` tail and without comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("\n#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a file names that start at `crate`, `super` or `self`, with the items of a
/// `{...}` group each as a path of its own.
fn paths(code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .any(|p| bytes[i..].starts_with(p.as_bytes()))
            && (i == 0 || !word(bytes[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && (word(bytes[j]) || bytes[j] == b':') {
            j += 1;
        }
        let base: Vec<String> = code[i..j]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if code[j..].starts_with('{') {
            let end = code[j..].find('}').map_or(code.len(), |e| j + e);
            for item in code[j + 1..end].split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                let mut p = base.clone();
                if !first.is_empty() && first != "self" {
                    p.push(first.split_whitespace().next().unwrap().to_owned());
                }
                out.push(p);
            }
            i = end;
        } else {
            out.push(base);
            i = j;
        }
    }
    out
}

/// The module a path from `from` reaches: the longest prefix that is a module.
fn resolve(mods: &BTreeMap<Module, PathBuf>, from: &Module, path: &[String]) -> Module {
    let mut base: Module = Vec::new();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => rest = &path[1..],
        _ => {
            base = from.clone();
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
    }
    for part in rest {
        let mut next = base.clone();
        next.push(part.clone());
        if !mods.contains_key(&next) {
            break;
        }
        base = next;
    }
    base
}

/// Which modules each module imports, leaving out a module's own ancestors and descendants
/// (a parent declares its children; a child may use its parent's items).
fn graph(mods: &BTreeMap<Module, PathBuf>) -> BTreeMap<Module, BTreeSet<Module>> {
    mods.iter()
        .map(|(m, path)| {
            let to = paths(&code(path))
                .iter()
                .map(|p| resolve(mods, m, p))
                .filter(|t| !t.starts_with(m) && !m.starts_with(t))
                .collect();
            (m.clone(), to)
        })
        .collect()
}

/// Every module from which `from` can be reached, `from` included.
fn reaching(graph: &BTreeMap<Module, BTreeSet<Module>>, from: &Module) -> BTreeSet<Module> {
    let mut seen = BTreeSet::from([from.clone()]);
    let mut todo = vec![from.clone()];
    while let Some(m) = todo.pop() {
        for (n, to) in graph {
            if to.contains(&m) && seen.insert(n.clone()) {
                todo.push(n.clone());
            }
        }
    }
    seen
}

#[test]
fn no_two_modules_of_the_gateway_import_each_other_round_a_circle() {
    let mods = modules(Path::new(SRC));
    assert!(mods.len() > 20, "found only {} modules", mods.len());
    let graph = graph(&mods);
    let mut circles = Vec::new();
    for (m, to) in &graph {
        let back = reaching(&graph, m);
        for t in to {
            if back.contains(t) {
                circles.push(format!("{} -> {}", m.join("::"), t.join("::")));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "imports that close a circle:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_circle_check_finds_a_circle_when_there_is_one() {
    // Two modules that import each other, as the check reads them.
    let mods: BTreeMap<Module, PathBuf> = [
        (vec!["a".to_owned()], PathBuf::new()),
        (vec!["b".to_owned()], PathBuf::new()),
    ]
    .into_iter()
    .collect();
    let a = vec!["a".to_owned()];
    let b = vec!["b".to_owned()];
    let ab = resolve(&mods, &a, &paths("use crate::b::Thing;")[0]);
    let ba = resolve(&mods, &b, &paths("use crate::{a::{self, X}, c};")[0]);
    assert_eq!((ab.clone(), ba.clone()), (b.clone(), a.clone()));
    let graph = BTreeMap::from([(a.clone(), BTreeSet::from([ab])), (b, BTreeSet::from([ba]))]);
    assert!(reaching(&graph, &a).contains(&vec!["b".to_owned()]));
}

#[test]
fn only_the_api_module_knows_http() {
    let offenders: Vec<String> = modules(Path::new(SRC))
        .iter()
        .filter(|(m, _)| m.first().is_none_or(|f| f != "api"))
        .filter(|(_, path)| code(path).contains("axum"))
        .map(|(m, _)| m.join("::"))
        .collect();
    assert!(offenders.is_empty(), "axum outside api/: {offenders:?}");
}

#[test]
fn the_store_knows_nothing_above_it() {
    let manifest = std::fs::read_to_string(Path::new(STORE).join("Cargo.toml")).unwrap();
    for above in ["weir-gateway", "axum", "figment", "reqwest", "lettre"] {
        assert!(
            !manifest.contains(above),
            "gateway/store/Cargo.toml depends on {above}"
        );
    }
    for (m, path) in modules(&Path::new(STORE).join("src")) {
        let code = code(&path);
        for above in ["axum", "weir_gateway", "alerts::engine", "config::Config"] {
            assert!(
                !code.contains(above),
                "gateway/store: {} names {above}",
                m.join("::")
            );
        }
    }
}
