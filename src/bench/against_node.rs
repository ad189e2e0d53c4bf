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

    // Multipart uploads with a checksum on every part, read back and verified, checksum too.
    let multipart = ["--workload", "multipart", "--size", "6MiB", "--part-size", "5MiB", "--ops", "6", "-c", "2"];
    let crc = ["--checksum", "crc64nvme", "--prefix", "mp/"];
    run(args(&endpoint, &json, &[&multipart[..], &crc].concat())).expect("multipart uploads succeed");
    let doc = document(&json);
    assert!(doc.contains("\"multipart\":{\"ops\":6,\"errors\":0,"), "{doc}");
    assert!(doc.contains(&format!("\"bytes\":{}", 6 * 6 * 1048576)), "{doc}");
    assert!(doc.contains("\"checksum\":\"crc64nvme\""), "{doc}");
    let get_back = ["--workload", "get", "--size", "6MiB", "--objects", "6", "--no-preload", "--ops", "12", "--verify"];
    run(args(&endpoint, &json, &[&get_back[..], &crc].concat())).expect("multipart objects read back");
    assert!(document(&json).contains("\"get\":{\"ops\":12,\"errors\":0,"));
    // Verification compares the checksum the server returns with the one asked for.
    let err = run(args(&endpoint, &json, &[&get_back[..], &["--checksum", "crc32", "--prefix", "mp/"]].concat()))
        .unwrap_err();
    assert!(matches!(err, Error::RequestsFailed { failed: 12, total: 12 }), "{err}");
    assert!(document(&json).contains("\"errors_by_code\":{\"verify:checksum-algorithm\":12}"));
    // Parts of 1 MiB are below S3's 5 MiB minimum: the completion fails with AWS's code.
    let small_parts = ["--workload", "multipart", "--size", "3MiB", "--part-size", "1MiB", "--ops", "2", "-c", "1"];
    let err = run(args(&endpoint, &json, &small_parts)).unwrap_err();
    assert!(matches!(err, Error::RequestsFailed { failed: 2, total: 2 }), "{err}");
    assert!(document(&json).contains("\"errors_by_code\":{\"EntityTooSmall\":2}"));

    // A size distribution in a mix with multipart uploads, verified with a CRC32 per object.
    let dist = ["--workload", "mixed", "--mix", "get=4,put=2,multipart=1", "--size", "1KiB:6,100KiB:3,6MiB:1"];
    let dist_rest = ["--part-size", "5MiB", "--objects", "30", "--ops", "200", "--verify", "--checksum", "crc32"];
    run(args(&endpoint, &json, &[&dist[..], &dist_rest, &["--prefix", "dist/"]].concat())).expect("distribution");
    let doc = document(&json);
    assert!(doc.contains("\"totals\":{\"ops\":200,\"errors\":0,"), "{doc}");
    assert!(doc.contains("\"sizes\":[{\"bytes\":1024,\"weight\":6},"), "{doc}");
    assert!(doc.contains("\"size_bytes\":null"), "{doc}");

    // Open loop: 400 operations scheduled at 2000/s take about 0.2 s whatever the server does.
    let open = ["--workload", "get", "--objects", "10", "--ops", "400", "--rate", "2000", "--verify", "-c", "4"];
    run(args(&endpoint, &json, &open)).expect("open loop");
    let doc = document(&json);
    assert!(doc.contains("\"totals\":{\"ops\":400,\"errors\":0,"), "{doc}");
    assert!(doc.contains("\"rate_ops_per_s\":2000"), "{doc}");
    assert!(doc.contains("\"late_starts\":"), "{doc}");
    let elapsed: f64 = doc.split("\"elapsed_s\":").nth(1).and_then(|r| r.split(',').next()).unwrap().parse().unwrap();
    assert!((0.19..2.0).contains(&elapsed), "the schedule paces the run: {elapsed} s");

    // Null mode against the health endpoint.
    run(args(&endpoint, &json, &["--null", "--path", "/health/live", "--ops", "200"])).expect("null gets");
    assert!(document(&json).contains("\"totals\":{\"ops\":200,\"errors\":0,"));

    node.shutdown(Duration::from_secs(5));
    std::fs::remove_dir_all(&dir).expect("temp dir removed");
}
