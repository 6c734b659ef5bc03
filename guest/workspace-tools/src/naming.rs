//! Workspace names (SPEC 3.5): which are valid, and how to make one.

const MAX_LEN: usize = 32;
const SEED_LEN: usize = 27;
const RESERVED: [&str; 2] = ["new", "create"];

const ADJECTIVES: [&str; 16] = [
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen",
    "lively", "merry", "nimble", "proud", "quick", "sunny", "tidy", "witty",
];
const SURNAMES: [&str; 16] = [
    "curie", "darwin", "euler", "faraday", "gauss", "hopper", "kepler", "lovelace",
    "maxwell", "noether", "pascal", "ramanujan", "shannon", "tesla", "turing", "volta",
];

/// Whether `name` may name a workspace: 1..=32 characters of letters and
/// digits in groups joined by single dashes, and not a reserved word in any
/// case: names are looked up without regard to case, so "NEW" would name
/// the same route as "new".
pub fn is_valid(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_LEN || RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return false;
    }
    name.split('-')
        .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// A fresh name derived from `seed` (a template name or an unusable
/// user-given name), with a random suffix so repeated calls differ.
pub fn generate(seed: &str, random: u64) -> String {
    let seed = match seed.rfind('@') {
        Some(at) => &seed[..at],
        None => seed,
    };
    let mut base: String = seed
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect();
    if base.is_empty() {
        base = "workspace".to_string();
    }
    base.truncate(SEED_LEN);
    let base = base.trim_matches('-');
    let candidate = format!("{base}-{:04x}", random & 0xffff);
    if is_valid(&candidate) {
        return candidate;
    }
    fallback(random)
}

/// A random `adjective-surnameNN` name, for seeds that cannot be cleaned.
fn fallback(random: u64) -> String {
    let adjective = ADJECTIVES[(random >> 16) as usize % ADJECTIVES.len()];
    let surname = SURNAMES[(random >> 24) as usize % SURNAMES.len()];
    format!("{adjective}-{surname}{:02}", (random >> 32) % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_follow_the_pattern() {
        assert!(is_valid("my-workspace-1"));
        assert!(is_valid(&"a".repeat(32)));
        assert!(!is_valid(&"a".repeat(33)));
        assert!(!is_valid(""));
        assert!(!is_valid("-lead"));
        assert!(!is_valid("trail-"));
        assert!(!is_valid("two--dashes"));
        assert!(!is_valid("under_score"));
        assert!(!is_valid("new"));
        assert!(!is_valid("create"));
    }

    #[test]
    fn reserved_words_are_refused_in_any_case() {
        for reserved in ["NEW", "New", "nEw", "CREATE", "Create"] {
            assert!(!is_valid(reserved), "{reserved}");
        }
        assert!(is_valid("newer") && is_valid("create-1"), "only the whole name is reserved");
    }

    #[test]
    fn generated_names_come_from_the_seed() {
        assert_eq!(generate("Docker Template", 0xabcd), "dockertemplate-abcd");
        assert_eq!(generate("team/node@v2", 0x1), "teamnode-0001");
        assert_eq!(generate("!!!", 0x2), "workspace-0002");
        assert_eq!(generate("--x--", 0x3), "x-0003");
    }

    #[test]
    fn long_seeds_are_cut_and_stay_valid() {
        let name = generate(&"a-".repeat(40), 0xffff);
        assert!(is_valid(&name), "{name}");
        assert!(name.len() <= 32);
    }

    #[test]
    fn a_seed_with_double_dashes_falls_back_to_a_random_name() {
        let name = generate("a--b", 0x0102_0304_0506);
        assert!(is_valid(&name), "{name}");
        assert!(!name.starts_with("a--b"));
    }
}
