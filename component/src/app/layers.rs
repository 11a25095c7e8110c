//! Keeps the crate's layers pointing one way. Each folder (or top-level
//! file) of `src/` has a rank; code may name `crate::X` only for an X of a
//! lower rank, or its own folder. So no import cycle can span two folders.

use std::path::Path;

/// Lowest first. Folders of one rank may not import each other either.
const RANKS: &[(&str, u8)] = &[
    ("core", 0),
    // The in-memory host of the unit tests: core's host contract, in memory.
    ("testing", 1),
    ("graph", 1),
    ("compose", 1),
    ("manage", 2),
    ("context", 3),
    ("state", 4),
    ("api", 5),
    ("app", 6),
    ("lib", 7),
    ("component", 7),
];

fn rank(layer: &str) -> Option<u8> {
    RANKS
        .iter()
        .find(|(name, _)| *name == layer)
        .map(|(_, rank)| *rank)
}

/// Every `crate::X` in `text` that a file of `layer` may not name, as
/// `layer -> X (line N)`. Public re-exports at the crate root
/// (`crate::Response`) name no layer and are left alone.
fn upward_imports(layer: &str, text: &str) -> Vec<String> {
    let Some(own) = rank(layer) else {
        return vec![format!("{layer}: a file or folder with no rank in RANKS")];
    };
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        for (index, _) in code.match_indices("crate::") {
            let rest = &code[index + "crate::".len()..];
            let named: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let allowed = named == layer
                || match rank(&named) {
                    Some(theirs) => theirs < own,
                    None => true,
                };
            if !allowed {
                found.push(format!("{layer} -> {named} (line {})", number + 1));
            }
        }
    }
    found
}

/// The layer of a file under `src/`: its folder, or its stem at the top.
fn layer_of(relative: &Path) -> String {
    let mut parts = relative.components();
    let first = parts
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let first = first.unwrap_or_default();
    match parts.next() {
        Some(_) => first,
        None => first.trim_end_matches(".rs").to_owned(),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_layer_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 30, "found only {} files", files.len());
    let mut violations = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap_or(file);
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for found in upward_imports(&layer_of(relative), &text) {
            violations.push(format!("{}: {found}", relative.display()));
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layers (core <- graph, compose <- manage <- context <- state <- api <- app):\n{}",
        violations.join("\n")
    );
}

#[test]
fn an_upward_import_is_caught() {
    let upward = "use crate::core::host::Host;\nuse crate::app::routes::ROUTES;\n";
    assert_eq!(upward_imports("core", upward), ["core -> app (line 2)"]);
    assert_eq!(
        upward_imports("graph", "let x = crate::compose::put;"),
        ["graph -> compose (line 1)"]
    );
    assert!(upward_imports("api", "use crate::state::send;\nuse crate::Response;").is_empty());
    assert!(upward_imports("state", "// see crate::app::dispatch").is_empty());
    assert_eq!(layer_of(Path::new("api/webhook/mod.rs")), "api");
    assert_eq!(layer_of(Path::new("context.rs")), "context");
}
