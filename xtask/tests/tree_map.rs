//! The README's map of the crates is the tree's: every arrow it draws between library
//! crates is a normal dependency in the manifests and every such dependency is drawn;
//! and the layering rules of the design hold (no dev-dependency cycles, `freeze` without
//! report types, `dump-schema` without crates of ours).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use guest_lab::testing::stdout_of;

const LIBS: [&str; 7] = [
    "dump-schema",
    "guest-mem",
    "btf-walk",
    "scx-walk",
    "freeze",
    "guest-lab",
    "ktstr-cli",
];

/// `(crate, [(dependency, kind)])` for the workspace's crates, dependencies among them only.
fn workspace_deps() -> BTreeMap<String, Vec<(String, String)>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = stdout_of(
        Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(&root),
        "cargo metadata",
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let members: BTreeSet<String> = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| members.contains(d["name"].as_str().unwrap()))
                .filter(|d| d["name"] != p["name"])
                .map(|d| {
                    let kind = d["kind"].as_str().unwrap_or("normal").to_string();
                    (d["name"].as_str().unwrap().to_string(), kind)
                })
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

/// The arrows of the README's map: `A ──► B` on a line, with `├──►`/`└──►` continuing the
/// last crate named at the left of the branch's column.
fn readme_arrows() -> BTreeSet<(String, String)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let start = readme
        .find("## Crates")
        .expect("README has a Crates section");
    let block = readme[start..].split("```").nth(1).expect("a map block");
    let mut arrows = BTreeSet::new();
    // For each column where a branch starts, the crate it branches from.
    let mut owner_at: BTreeMap<usize, String> = BTreeMap::new();
    for line in block.lines() {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        let mut current: Option<String> = None;
        while i < chars.len() {
            let c = chars[i];
            if c.is_ascii_alphabetic() {
                let s: String = chars[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '-')
                    .collect();
                if let Some(from) = &current {
                    arrows.insert((from.clone(), s.clone()));
                }
                current = Some(s.clone());
                i += s.chars().count();
                continue;
            }
            if matches!(c, '┬' | '├' | '└' | '│') {
                if c == '┬' {
                    if let Some(cur) = &current {
                        owner_at.insert(i, cur.clone());
                    }
                } else if let Some(o) = owner_at.get(&i) {
                    current = Some(o.clone());
                }
            }
            if c == '◄' {
                // `X ◄── external tools`: not a crate arrow.
                break;
            }
            i += 1;
        }
    }
    arrows
        .into_iter()
        .filter(|(a, b)| LIBS.contains(&a.as_str()) && LIBS.contains(&b.as_str()))
        .collect()
}

#[test]
fn the_readme_map_is_the_dependency_graph() {
    let deps = workspace_deps();
    let actual: BTreeSet<(String, String)> = LIBS
        .iter()
        .flat_map(|c| {
            deps[*c]
                .iter()
                .filter(|(d, k)| k == "normal" && LIBS.contains(&d.as_str()))
                .map(move |(d, _)| (c.to_string(), d.clone()))
        })
        .collect();
    let drawn = readme_arrows();
    assert_eq!(drawn, actual, "README map (left) vs manifests (right)");
}

#[test]
fn layering_rules_hold() {
    let deps = workspace_deps();
    let normal = |c: &str| -> Vec<String> {
        deps[c]
            .iter()
            .filter(|(_, k)| k == "normal")
            .map(|(d, _)| d.clone())
            .collect()
    };
    assert!(
        normal("dump-schema").is_empty(),
        "dump-schema depends on nothing of ours"
    );
    assert!(
        !normal("freeze").contains(&"dump-schema".to_string()),
        "freeze knows no report"
    );
    assert!(!normal("freeze").contains(&"scx-walk".to_string()));
    assert!(!normal("scx-walk").contains(&"freeze".to_string()));
    assert!(
        normal("guest-lab").is_empty(),
        "guest-lab knows no engine and no walker"
    );
    // No dev-dependency cycles: whatever a crate dev-depends on must not reach it back.
    for (c, ds) in &deps {
        for (d, kind) in ds {
            if kind != "dev" {
                continue;
            }
            let mut seen = BTreeSet::new();
            let mut todo = vec![d.clone()];
            while let Some(x) = todo.pop() {
                if !seen.insert(x.clone()) {
                    continue;
                }
                assert_ne!(&x, c, "{c} dev-depends on {d}, which depends on {c}");
                if deps.contains_key(&x) {
                    todo.extend(normal(&x));
                }
            }
        }
    }
}
