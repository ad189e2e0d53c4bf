//! Short bench runs against a node started in this process: counts, verification, the JSON
//! document, and errors counted by S3 code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use super::{BenchArgs, Error, run};
use crate::config::{Config, Durability};
use crate::runtime::Node;
use crate::s3::Users;

const ACCESS_KEY: &str = "AKBENCHTEST";
const SECRET_KEY: &str = "bench-test-secret";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn args(endpoint: &str, json: &Path, extra: &[&str]) -> BenchArgs {
    let mut argv = vec!["bench", "--endpoint", endpoint, "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY];
    argv.extend(["--json", json.to_str().expect("utf-8 temp path"), "--threads", "2"]);
    argv.extend(extra);
    Cli::try_parse_from(argv).expect("valid bench arguments").args
}

/// The JSON document without whitespace, for substring checks.
fn document(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("the JSON document was written");
    assert!(text.starts_with('{') && text.trim_end().ends_with('}'), "{text}");
    let opens = text.matches(['{', '[']).count();
    let closes = text.matches(['}', ']']).count();
    assert_eq!(opens, closes, "balanced: {text}");
    text.split_whitespace().collect()
}

fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("kaligon-bench-test-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn short_runs_against_a_node() {
    let dir = temp_dir();
    let config = Config {
        data: vec![dir.join("data")],
        listen: "127.0.0.1:0".parse().expect("address"),
        shards: 2,
        durability: Durability::Relaxed,
        ..Config::default()
    };
    let mut users = Users::default();
    users.add(ACCESS_KEY.into(), SECRET_KEY.into());
    let node = Node::start(config, users).expect("node starts");
    let endpoint = format!("http://{}", node.addr);
    let json = dir.join("result.json");

    // PUT a fixed number of new objects.
    run(args(&endpoint, &json, &["--workload", "put", "--ops", "300", "-c", "4"])).expect("puts succeed");
    let doc = document(&json);
    assert!(doc.contains("\"workload\":\"put\""), "{doc}");
    assert!(doc.contains("\"totals\":{\"ops\":300,\"errors\":0,"), "{doc}");
    assert!(doc.contains(&format!("\"bytes\":{}", 300 * 4096)), "{doc}");
    assert!(doc.contains("\"timeline\":[{\"second\":0,"), "{doc}");
    assert!(doc.contains("\"latency_ms\":{\"count\":300,"), "{doc}");

    // GET with verification, after an upload that is not counted.
    let get = ["--workload", "get", "--objects", "40", "--ops", "400", "--verify", "-c", "4", "--size", "20000"];
    run(args(&endpoint, &json, &get)).expect("verified gets succeed");
    let doc = document(&json);
    assert!(doc.contains("\"operations\":{\"get\":{\"ops\":400,\"errors\":0,"), "{doc}");
    assert!(doc.contains(&format!("\"bytes\":{}", 400 * 20000)), "{doc}");
    assert!(doc.contains("\"ttfb_ms\":{\"count\":400,"), "{doc}");

    // The same keys read as another size: verification notices.
    let wrong_size =
        ["--workload", "get", "--objects", "40", "--ops", "50", "--verify", "--size", "4KiB", "--no-preload"];
    let err = run(args(&endpoint, &json, &wrong_size)).unwrap_err();
    assert!(matches!(err, Error::RequestsFailed { failed: 50, total: 50 }), "{err}");
    assert!(document(&json).contains("\"errors_by_code\":{\"verify:length\":50}"));

    // Mixed, stat, list and delete, with unsigned payloads.
    let mixed = ["--workload", "mixed", "--mix", "get=2,put=1,stat=1,list=1", "--objects", "30", "--ops", "500"];
    run(args(&endpoint, &json, &[&mixed[..], &["--verify", "--unsigned-payload"]].concat())).expect("mixed succeeds");
    let doc = document(&json);
    assert!(doc.contains("\"totals\":{\"ops\":500,\"errors\":0,"), "{doc}");
    for kind in ["get", "put", "stat", "list"] {
        assert!(doc.contains(&format!("\"{kind}\":{{\"ops\":")), "{kind}: {doc}");
    }
    run(args(&endpoint, &json, &["--workload", "delete", "--objects", "25", "--prefix", "del/"])).expect("deletes");
    let doc = document(&json);
    assert!(doc.contains("\"delete\":{\"ops\":25,\"errors\":0,"), "{doc}");
    assert!(doc.contains("\"keys_exhausted\":true"), "{doc}");

    // Errors are counted by S3 code.
    let mut wrong_secret = args(&endpoint, &json, &["--workload", "put", "--ops", "60", "--no-create"]);
    wrong_secret.secret_key = Some("not-the-secret".into());
    let err = run(wrong_secret).unwrap_err();
    assert!(matches!(err, Error::RequestsFailed { failed: 60, total: 60 }), "{err}");
    assert!(document(&json).contains("\"errors_by_code\":{\"SignatureDoesNotMatch\":60}"));
    let no_bucket = ["--workload", "get", "--bucket", "no-such-bucket", "--no-create", "--no-preload", "--ops", "20"];
    let err = run(args(&endpoint, &json, &no_bucket)).unwrap_err();
    assert!(matches!(err, Error::RequestsFailed { failed: 20, .. }), "{err}");
    assert!(document(&json).contains("\"errors_by_code\":{\"NoSuchBucket\":20}"));

    // --compare: alternating rounds against two endpoints (here the node under two names),
    // medians and ratios in the JSON, one CSV row per endpoint, round and operation.
    let csv = dir.join("result.csv");
    let second = format!("{endpoint}/");
    let csv_arg = csv.to_str().expect("utf-8 temp path");
    let compare = ["--workload", "get", "--objects", "10", "--ops", "60", "--verify", "--rounds", "2"];
    run(args(&endpoint, &json, &[&compare[..], &["--compare", &second, "--csv", csv_arg]].concat())).expect("compare");
    let doc = document(&json);
    assert!(doc.contains(&format!("\"endpoints\":[\"{endpoint}\",\"{second}\"]")), "{doc}");
    assert_eq!(doc.matches("\"totals\":{\"ops\":60,\"errors\":0,").count(), 4, "{doc}");
    assert!(doc.contains("\"ratio\":{\"ops_per_s\":"), "{doc}");
    let rows: Vec<String> = std::fs::read_to_string(&csv).expect("csv written").lines().map(str::to_owned).collect();
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(rows[0].starts_with("endpoint,round,operation,ops,errors,"), "{rows:?}");
    assert!(rows[1].starts_with(&format!("{endpoint},1,get,60,0,")), "{rows:?}");
    assert!(rows[3].starts_with(&format!("{second},2,get,60,0,")), "{rows:?}");

    // Null mode against the health endpoint.
    run(args(&endpoint, &json, &["--null", "--path", "/health/live", "--ops", "200"])).expect("null gets");
    assert!(document(&json).contains("\"totals\":{\"ops\":200,\"errors\":0,"));

    node.shutdown(Duration::from_secs(5));
    std::fs::remove_dir_all(&dir).expect("temp dir removed");
}
