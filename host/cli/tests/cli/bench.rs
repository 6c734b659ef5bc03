//! `toolshed bench --json` keeps its promised keys. Figures are not checked
//! here: timing claims live in the benchmark's own report.

use crate::support::TOOLSHED;

#[test]
fn bench_json_prints_one_object_with_the_tracked_keys() {
    let output = std::process::Command::new(TOOLSHED).args(["bench", "--quick", "--json"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    for key in [
        "instance_us_median",
        "instance_floor_us_median",
        "ratio_instance_floor",
        "instance_shape_us_median",
        "ratio_instance_shape_floor",
        "ratio_list_templates",
        "hosted_us_list_templates",
        "native_us_list_templates",
        "ratio_read_template",
        "hosted_us_read_template",
        "native_us_read_template",
        "ratio_create_workspace",
        "hosted_us_create_workspace",
        "native_us_create_workspace",
        "compile_ms",
        "cache_load_ms",
        "peak_rss_mib_1k",
        "peak_rss_mib_10k",
        "calls_per_s",
        "swap_ms",
        "swap_failed_calls",
        "ratio_swap_compile",
        "swap_idle_ms",
        "ratio_swap_idle_compile",
        "ratio_swap_compile_loaded",
        "swap_optimized_ms",
        "swap_background_compile_ms",
        "baseline_compile_ms",
        "baseline_us_list_templates",
        "optimized_us_list_templates",
        "serve_capacity",
        "stdio_server_cpu_us_per_call",
        "stdio_in_process_cpu_us_per_call",
        "ratio_stdio_cpu",
        "stdio_calls_per_s",
        "http_calls_per_s",
        "http_in_process_calls_per_s",
        "ratio_http_calls",
        "http_p50_ms",
        "http_p99_ms",
        "idle_cold_rss_mib",
        "idle_warm_rss_mib",
        "stdio_peak_rss_mib",
        "swap_peak_rss_mib",
    ] {
        let value = report[key].as_f64().unwrap_or_else(|| panic!("{key} missing or not a number in {report}"));
        assert!(value.is_finite() && value >= 0.0, "{key} = {value}");
    }
    // The other languages' rows: null until `toolshed test` has built the
    // three hello plugins, then each language's figures.
    // CI builds them first and sets TOOLSHED_REQUIRE_LANGUAGES.
    let languages = report.get("languages").expect("the languages key is always there");
    assert!(!languages.is_null() || std::env::var_os("TOOLSHED_REQUIRE_LANGUAGES").is_none(), "TOOLSHED_REQUIRE_LANGUAGES is set and the languages rows are missing");
    let timed = ["call_us", "stdio_call_us", "compile_ms", "first_tier_ms", "swap_first_call_ms", "cache_load_ms", "cache_first_call_ms", "initial_memory_kib"];
    assert!(
        languages.is_null()
            || ["rust", "python", "javascript"].iter().all(|l| {
                timed.iter().all(|k| languages[l][k].as_f64().is_some_and(|v| v > 0.0))
                    && languages[l]["faults_per_call"].as_f64().is_some_and(|v| v >= 0.0)
                    && languages[l]["core_instances"].as_u64().is_some_and(|v| v >= 1)
            }),
        "{languages}"
    );
    // The registry row: CI installs docker-registry, so it is measured.
    let registry = &report["registry"];
    for key in ["pull_verify_first_call_ms", "disk_first_call_ms", "ratio"] {
        assert!(registry[key].as_f64().is_some_and(|v| v.is_finite() && v > 0.0), "registry.{key} in {registry}");
    }
    assert_eq!(report["swap_failed_calls"], 0);
    // The memory rows read a live serve process: a figure of a MiB or less
    // would mean nothing was read.
    for key in ["idle_cold_rss_mib", "idle_warm_rss_mib", "stdio_peak_rss_mib", "swap_peak_rss_mib"] {
        assert!(report[key].as_f64().unwrap() > 1.0, "{key} = {}", report[key]);
    }
    // Each swap announces one tool-list change; its move to optimized code none.
    assert_eq!(report["swap_list_changes"], report["swaps"]);
}
