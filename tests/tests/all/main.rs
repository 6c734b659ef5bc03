//! Every suite, in one test binary.
mod smoke {
    use serde_json::json;
    use toolshed_harness::{OutputExt, TestEnv, ids};

    #[tokio::test(start_paused = true)]
    async fn list_templates_runs_through_the_wasm() {
        let env = TestEnv::new();
        env.backend.add_template("docker", ids::ORG, 3);
        let out = env.call("list_templates", json!({})).await;
        assert_eq!(out.ok()["count"], 1, "{}", out.value);
    }
}
