//! SPEC 4.1: list_templates.

use serde_json::json;
use toolshed_harness::{OutputExt, ids};

fn names(out: &serde_json::Value) -> Vec<String> {
    out["templates"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn lists_only_the_chat_organizations_templates() {
    let env = crate::support::env();
    env.backend.add_template("ours", ids::ORG, 0);
    env.backend.add_template("theirs", ids::OTHER_ORG, 0);
    let out = env.call("list_templates", json!({})).await;
    assert_eq!(names(out.ok()), ["ours"]);
}

#[tokio::test(start_paused = true)]
async fn skips_deleted_and_deprecated_templates() {
    let env = crate::support::env();
    env.backend.add_template("live", ids::ORG, 0);
    let old = env.backend.add_template("old", ids::ORG, 0);
    env.backend.edit_template(&old.id, |t| t.deprecated = true);
    let gone = env.backend.add_template("gone", ids::ORG, 0);
    env.backend.edit_template(&gone.id, |t| t.deleted = true);
    let out = env.call("list_templates", json!({})).await;
    assert_eq!(names(out.ok()), ["live"]);
}

#[tokio::test(start_paused = true)]
async fn no_allowlist_lists_all() {
    let env = crate::support::env();
    env.backend.add_template("a", ids::ORG, 0);
    env.backend.add_template("b", ids::ORG, 0);
    let out = env.call("list_templates", json!({})).await;
    assert_eq!(out.ok()["total_count"], 2);
}

#[tokio::test(start_paused = true)]
async fn empty_allowlist_lists_all() {
    let env = crate::support::env();
    env.backend.add_template("a", ids::ORG, 0);
    env.backend.add_template("b", ids::ORG, 0);
    env.backend.set_allowlist(&[]);
    let out = env.call("list_templates", json!({})).await;
    assert_eq!(out.ok()["total_count"], 2);
}

#[tokio::test(start_paused = true)]
async fn allowlist_of_one_lists_that_one() {
    let env = crate::support::env();
    let a = env.backend.add_template("a", ids::ORG, 0);
    env.backend.add_template("b", ids::ORG, 0);
    env.backend.set_allowlist(&[&a.id]);
    let out = env.call("list_templates", json!({})).await;
    assert_eq!(names(out.ok()), ["a"]);
}

#[tokio::test(start_paused = true)]
async fn allowlist_matching_nothing_lists_nothing() {
    let env = crate::support::env();
    env.backend.add_template("a", ids::ORG, 0);
    let stranger = ids::fresh();
    env.backend.set_allowlist(&[&stranger]);
    let out = env.call("list_templates", json!({})).await;
    let out = out.ok();
    assert_eq!(out["count"], 0);
    assert_eq!(out["total_pages"], 1, "at least one page even when empty");
}

#[tokio::test(start_paused = true)]
async fn query_matches_names_case_insensitively() {
    let env = crate::support::env();
    env.backend.add_template("Docker-Go", ids::ORG, 0);
    env.backend.add_template("kubernetes", ids::ORG, 0);
    let out = env.call("list_templates", json!({ "query": "dOcK" })).await;
    assert_eq!(names(out.ok()), ["Docker-Go"]);
}

#[tokio::test(start_paused = true)]
async fn orders_by_active_developers_then_name_then_id() {
    let env = crate::support::env();
    env.backend.add_template("b", ids::ORG, 5);
    env.backend.add_template("a", ids::ORG, 5);
    env.backend.add_template("z", ids::ORG, 9);
    env.backend.add_template("c", ids::ORG, 0);
    let out = env.call("list_templates", json!({})).await;
    assert_eq!(names(out.ok()), ["z", "a", "b", "c"]);
}

#[tokio::test(start_paused = true)]
async fn pages_hold_ten_and_a_page_past_the_end_is_empty() {
    let env = crate::support::env();
    for i in 0..25 {
        env.backend.add_template(&format!("t{i:02}"), ids::ORG, 0);
    }
    let first = env.call("list_templates", json!({})).await;
    let first = first.ok();
    assert_eq!((first["count"].as_u64(), first["page"].as_u64()), (Some(10), Some(1)));
    assert_eq!((first["total_pages"].as_u64(), first["total_count"].as_u64()), (Some(3), Some(25)));
    assert_eq!(names(first)[0], "t00");

    let third = env.call("list_templates", json!({ "page": 3 })).await;
    assert_eq!(names(third.ok()), ["t20", "t21", "t22", "t23", "t24"]);

    let past = env.call("list_templates", json!({ "page": 4 })).await;
    assert_eq!(past.ok()["count"], 0);
    assert_eq!(past.ok()["page"], 4);
}

#[tokio::test(start_paused = true)]
async fn a_page_below_one_means_the_first() {
    let env = crate::support::env();
    env.backend.add_template("a", ids::ORG, 0);
    for page in [0, -3] {
        let out = env.call("list_templates", json!({ "page": page })).await;
        assert_eq!(out.ok()["page"], 1);
        assert_eq!(out.ok()["count"], 1);
    }
}

#[tokio::test(start_paused = true)]
async fn optional_keys_are_omitted_and_descriptions_cut() {
    let env = crate::support::env();
    let plain = env.backend.add_template("plain", ids::ORG, 0);
    let rich = env.backend.add_template("rich", ids::ORG, 4);
    env.backend.edit_template(&rich.id, |t| {
        t.display_name = "Rich One".into();
        t.description = "x".repeat(250);
    });
    let out = env.call("list_templates", json!({})).await;
    let templates = out.ok()["templates"].as_array().unwrap().clone();
    let rich_out = templates.iter().find(|t| t["id"] == rich.id.as_str()).unwrap();
    let plain_out = templates.iter().find(|t| t["id"] == plain.id.as_str()).unwrap();
    assert_eq!(rich_out["display_name"], "Rich One");
    assert_eq!(rich_out["description"].as_str().unwrap().len(), 200);
    assert_eq!(rich_out["active_developers"], 4);
    assert_eq!(rich_out["organization_id"], ids::ORG);
    for key in ["display_name", "description", "active_developers"] {
        assert!(plain_out.get(key).is_none(), "{key} must be omitted: {plain_out}");
    }
}

/// A backend is not trusted to keep its text short or single-byte: a
/// description of a million two-, three- and four-byte characters comes
/// back cut to 200 characters, on a character boundary, and the call
/// succeeds.
#[tokio::test(start_paused = true)]
async fn a_huge_multibyte_description_is_cut_by_characters() {
    let env = crate::support::env();
    let template = env.backend.add_template("wide", ids::ORG, 1);
    let description = "é日🦀".repeat(333_334);
    env.backend.edit_template(&template.id, |t| t.description = description.clone());
    let out = env.call("list_templates", json!({})).await;
    let cut = out.ok()["templates"][0]["description"].as_str().unwrap().to_string();
    assert_eq!(cut.chars().count(), 200);
    assert_eq!(cut, description.chars().take(200).collect::<String>());
}
