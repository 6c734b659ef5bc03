//! The conformance index (`docs/conformance.md`) against the contract
//! (`docs/spec.md`) and the test sources: every numbered rule and every
//! timing row has tests, and every test the index names exists.

use std::path::Path;

/// The ids of the contract's rules: `§1 <row>` for each row of the timing
/// table, `3.1`..`4.8` for the numbered rules, and `4.3.1`.. for the
/// numbered steps inside a rule.
fn spec_rules(spec: &str) -> Vec<String> {
    let mut rules = Vec::new();
    let mut section = "";
    let mut rule: Option<String> = None;
    for line in spec.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading;
            rule = None;
            continue;
        }
        if section.starts_with("1.") {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() >= 3 && !cells[1].is_empty() && cells[1] != "name" && !cells[1].starts_with("---") {
                rules.push(format!("§1 {}", cells[1]));
            }
            continue;
        }
        if let Some((number, rest)) = line.split_once(' ')
            && rest.starts_with("**")
            && is_rule_number(number)
        {
            rules.push(number.to_string());
            rule = Some(number.to_string());
            continue;
        }
        if let Some(parent) = &rule {
            let step = line.trim_start();
            if line.starts_with(' ')
                && let Some((number, _)) = step.split_once(". ")
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
            {
                rules.push(format!("{parent}.{number}"));
            }
        }
    }
    rules
}

fn is_rule_number(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 2 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// One section of the index: the rule it covers and its `(file, test)` entries.
struct Section {
    rule: String,
    tests: Vec<(String, String)>,
}

fn index_sections(index: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for line in index.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            let rule = if heading.starts_with("§1 ") { heading.to_string() } else { heading.split(' ').next().unwrap_or_default().to_string() };
            sections.push(Section { rule, tests: Vec::new() });
        } else if let Some(entry) = line.strip_prefix("- `").and_then(|e| e.strip_suffix('`'))
            && let Some(section) = sections.last_mut()
        {
            let (file, test) = entry.rsplit_once("::").unwrap_or((entry, ""));
            section.tests.push((file.to_string(), test.to_string()));
        }
    }
    sections
}

/// Whether `source` has a test function `name`: `fn name(` under a
/// `#[test]` or `#[tokio::test]` attribute, past doc comments and other
/// attributes.
fn has_test(source: &str, name: &str) -> bool {
    let lines: Vec<&str> = source.lines().collect();
    let signature = format!("fn {name}(");
    lines.iter().enumerate().any(|(i, line)| {
        let line = line.trim_start();
        let declared = line.starts_with(&signature) || line.starts_with(&format!("async {signature}"));
        declared
            && lines[..i]
                .iter()
                .rev()
                .map(|l| l.trim())
                .take_while(|l| l.starts_with("#[") || l.starts_with("///") || l.starts_with("//"))
                .any(|l| l.starts_with("#[test]") || l.starts_with("#[tokio::test"))
    })
}

/// Everything wrong with `index` against `spec`; `read` gives a source
/// file's text by its path from the repository root.
fn problems(spec: &str, index: &str, read: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let rules = spec_rules(spec);
    let sections = index_sections(index);
    let mut problems = Vec::new();
    for rule in &rules {
        match sections.iter().find(|s| &s.rule == rule) {
            None => problems.push(format!("rule {rule} has no section in the index")),
            Some(section) if section.tests.is_empty() => problems.push(format!("rule {rule} names no test")),
            Some(_) => {}
        }
    }
    for section in &sections {
        if !rules.contains(&section.rule) {
            problems.push(format!("the index has a section for {:?}, which the contract does not have", section.rule));
        }
        for (file, test) in &section.tests {
            match read(file) {
                None => problems.push(format!("{}: {file} does not exist", section.rule)),
                Some(source) if !has_test(&source, test) => problems.push(format!("{}: {file} has no test {test}", section.rule)),
                Some(_) => {}
            }
        }
    }
    problems
}

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the harness sits in the repository")
}

#[test]
fn every_rule_of_the_contract_has_tests_and_every_indexed_test_exists() {
    let root = repository();
    let spec = std::fs::read_to_string(root.join("docs/spec.md")).expect("docs/spec.md");
    let index = std::fs::read_to_string(root.join("docs/conformance.md")).expect("docs/conformance.md");
    let rules = spec_rules(&spec);
    // The contract's shape, so a change to its layout cannot empty the check.
    for rule in ["§1 build poll interval (first poll immediate)", "§1 registry provisioning: poll interval / limit", "3.1", "3.6", "4.1", "4.3.1", "4.3.9", "4.4.7", "4.8"] {
        assert!(rules.iter().any(|r| r == rule), "rule {rule} was not found in docs/spec.md: {rules:?}");
    }
    assert_eq!(rules.len(), 8 + 6 + 8 + 9 + 7, "{rules:?}");
    let found = problems(&spec, &index, |file| std::fs::read_to_string(root.join(file)).ok());
    assert!(found.is_empty(), "docs/conformance.md is out of step:\n{}", found.join("\n"));
}

const SPEC: &str = "## 1. Timing\n\n| name | value |\n|---|---|\n| poll | 2 s |\n\n## 3. Procedures\n\n3.1 **Wait**: poll.\n\n## 4. Tools\n\n4.1 **create** (x).\n  1. check x\n  2. lock\n";

const SOURCE: &str = "#[tokio::test(start_paused = true)]\nasync fn polls() {}\n\n/// Doc.\n#[test]\nfn checks() {}\n\nfn helper() {}\n";

fn read_fixture(file: &str) -> Option<String> {
    (file == "t.rs").then(|| SOURCE.to_string())
}

#[test]
fn the_checker_reads_rows_rules_and_steps() {
    assert_eq!(spec_rules(SPEC), ["§1 poll", "3.1", "4.1", "4.1.1", "4.1.2"]);
}

#[test]
fn the_checker_passes_a_complete_index() {
    let index = "## §1 poll\n- `t.rs::polls`\n## 3.1 Wait\n- `t.rs::polls`\n## 4.1 create\n- `t.rs::checks`\n## 4.1.1 x\n- `t.rs::checks`\n## 4.1.2 lock\n- `t.rs::checks`\n";
    assert_eq!(problems(SPEC, index, read_fixture), Vec::<String>::new());
}

#[test]
fn the_checker_finds_a_rule_without_tests_and_tests_that_do_not_exist() {
    let index = "## §1 poll\n## 3.1 Wait\n- `t.rs::helper`\n## 4.1 create\n- `t.rs::gone`\n## 4.1.2 lock\n- `missing.rs::checks`\n## 4.9 nothing\n- `t.rs::checks`\n";
    let found = problems(SPEC, index, read_fixture);
    assert_eq!(
        found,
        [
            "rule §1 poll names no test",
            "rule 4.1.1 has no section in the index",
            "3.1: t.rs has no test helper",
            "4.1: t.rs has no test gone",
            "4.1.2: missing.rs does not exist",
            "the index has a section for \"4.9\", which the contract does not have",
        ]
    );
}
