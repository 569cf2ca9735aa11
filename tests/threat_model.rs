//! THREAT_MODEL.md cites, for every threat, the tests that show its mitigation. A cited
//! test that is renamed or deleted would leave the model claiming a defence nothing
//! checks: every name in a table's last column must be a test function of this crate.

use std::collections::HashSet;
use std::path::Path;

/// Every `fn name` under `dir` (recursively), for the `.rs` files.
fn functions(dir: &Path, out: &mut HashSet<String>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            functions(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            for rest in text.split("fn ").skip(1) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.insert(name);
            }
        }
    }
}

/// The backticked names in the last column of every table row (`file::test` or a bare
/// `test` of the same file), with the line they are on.
fn cited(model: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in model.lines().enumerate() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        if !line.starts_with('|') || cells.len() < 4 {
            continue;
        }
        let last = cells[cells.len() - 1];
        for (i, part) in last.split('`').enumerate() {
            // Odd parts are inside backticks; a test name is snake case, maybe with a path.
            if i % 2 == 1 && part.contains('_') && !part.contains(' ') {
                out.push((n + 1, part.rsplit("::").next().unwrap_or(part).to_string()));
            }
        }
    }
    out
}

#[test]
fn every_test_the_threat_model_cites_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = std::fs::read_to_string(root.join("THREAT_MODEL.md")).expect("THREAT_MODEL.md");
    let mut fns = HashSet::new();
    functions(&root.join("src"), &mut fns);
    functions(&root.join("tests"), &mut fns);
    let cites = cited(&model);
    assert!(cites.len() > 40, "only {} citations found", cites.len());
    let missing: Vec<String> = cites
        .iter()
        .filter(|(_, name)| !fns.contains(name))
        .map(|(line, name)| format!("THREAT_MODEL.md:{line}: `{name}`"))
        .collect();
    assert!(
        missing.is_empty(),
        "cited tests that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn a_misspelled_citation_is_caught() {
    let model = "| threat | fix | where | test |\n|---|---|---|---|\n| x | y | z | `a::no_such_test`, `exists_here` |\n";
    let names: Vec<String> = cited(model).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["no_such_test", "exists_here"]);
}
