//! The layers of `shared/src` (docs/architecture.md, "Layers"), checked on the source: the
//! ports speak only the domain's words (nothing from `google` or `aws`), and no
//! two modules import each other, directly or around a loop. A child reaching its
//! own parent (`use super::...`) is how Rust modules share a parent's helpers and
//! does not count; test code does not count either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of the crate (`grant`, `google::jwt`, ...) with its non-test source.
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    let mut pending: Vec<PathBuf> = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts.last().is_some_and(|p| p == "tests") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read module");
            // Test code is not part of the layering.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_owned();
            modules.insert(parts.join("::"), code);
        }
    }
    modules
}

/// The modules `code` (of `module`) refers to, by `crate::` and `super::` paths.
fn references(module: &str, code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let parent = module.rsplit_once("::").map_or("", |(parent, _)| parent);
    let mut found = BTreeSet::new();
    let bytes = code.as_bytes();
    for (anchor, base) in [("crate::", String::new()), ("super::", parent.to_owned())] {
        let mut from = 0;
        while let Some(at) = code[from..].find(anchor) {
            let position = from + at;
            let start = position + anchor.len();
            from = start;
            // `my_crate::` or `self_super::` are other names.
            if position > 0 && (bytes[position - 1].is_ascii_alphanumeric() || bytes[position - 1] == b'_') {
                continue;
            }
            let path: String = code[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut target = base.clone();
            let mut best = base.clone();
            for segment in path.split("::").filter(|s| !s.is_empty()) {
                target = if target.is_empty() {
                    segment.to_owned()
                } else {
                    format!("{target}::{segment}")
                };
                if known.contains(&target) {
                    best = target.clone();
                }
            }
            if !best.is_empty() && best != module {
                found.insert(best);
            }
        }
    }
    found
}

/// Edges between modules, without a child's references to its own ancestors.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(module, code)| {
            let targets = references(module, code, &known)
                .into_iter()
                .filter(|target| !module.starts_with(&format!("{target}::")))
                .collect();
            (module.clone(), targets)
        })
        .collect()
}

#[test]
fn the_ports_speak_only_the_domains_words() {
    let graph = graph();
    let ports = &graph["ports"];
    assert!(!ports.is_empty(), "the check sees the imports");
    for target in ports {
        assert!(
            !(target.starts_with("google") || target.starts_with("aws")),
            "ports imports {target}"
        );
    }
}

#[test]
fn no_two_modules_import_each_other_directly_or_around_a_loop() {
    let graph = graph();
    // Depth-first search for a back edge, reporting the loop it closes.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("modules import each other: {}", cycle.join(" -> "));
        }
    }
    assert!(graph.len() > 20, "the check sees the crate's modules: {}", graph.len());
}
