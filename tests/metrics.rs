//! `GET /admin/metrics`: who may read it, that it counts exactly what a
//! real client did (requests by operation and status class, latency
//! histograms, bytes per bucket, with the bucket labels capped), that the
//! shard, drive and connection gauges are there, and that the exposition
//! passes the OpenMetrics parser of the Python prometheus_client.

mod common;
#[path = "common/sign.rs"]
mod sign;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use common::*;
use sign::*;

const ALT_KEY: &str = "KLGNMETRICSALTKEY0002";
const ALT_SECRET: &str = "metrics/alt+secret0123456789abcdefghijkl";

fn scrape_as(node: &Node, creds: Option<&Creds>) -> RawResponse {
    let host = node.addr.to_string();
    let req = Request::new("GET", "/admin/metrics", &host);
    send(
        node.addr,
        &match creds {
            Some(c) => req.sign_v4(c),
            None => req,
        },
    )
}

/// Samples by name with labels, as `name{a="b",c="d"}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// Runs the OpenMetrics parser of prometheus_client (the test venv) over
/// the exposition.
fn lint(text: &str, dir: &std::path::Path) {
    let path = dir.join("scrape.txt");
    std::fs::write(&path, text).unwrap();
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/clients/venv/bin/python");
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\n\
                  fams = list(p(open(sys.argv[1]).read()))\nassert fams, 'no metric families'\n\
                  print(len(fams), 'families')";
    let out = Command::new(py).arg("-c").arg(script).arg(&path).output().expect("the test venv");
    assert!(out.status.success(), "OpenMetrics lint failed:\n{}\n{text}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn metrics_count_what_a_client_did_and_pass_the_openmetrics_parser() {
    let dir = temp_dir("metrics");
    let users = dir.join("users.toml");
    std::fs::write(&users, format!("[[user]]\naccess_key = \"{ALT_KEY}\"\nsecret_key = \"{ALT_SECRET}\"\n")).unwrap();
    let node = Node::start_in(dir.join("node"), &["--users", users.to_str().unwrap(), "--shards", "2"]);

    // Only the administrator's signed request reads them (no --metrics-public).
    assert_error(&scrape_as(&node, None), 403, "AccessDenied");
    assert_error(&scrape_as(&node, Some(&Creds::new(ALT_KEY, ALT_SECRET))), 403, "AccessDenied");

    let rt = rt();
    let (n, size) = (20usize, 3000usize);
    rt.block_on(async {
        let c = sdk(&node.endpoint());
        c.create_bucket().bucket("metered").send().await.unwrap();
        for i in 0..n {
            let body = ByteStream::from(bytes(i as u64, size));
            c.put_object().bucket("metered").key(format!("k{i}")).body(body).send().await.unwrap();
        }
        for i in 0..n {
            let got = c.get_object().bucket("metered").key(format!("k{i}")).send().await.unwrap();
            assert_eq!(got.body.collect().await.unwrap().into_bytes().len(), size);
        }
        assert!(c.get_object().bucket("metered").key("missing").send().await.is_err());
        // More buckets than the label cap: the rest are summed as _other.
        for b in 0..105 {
            let name = format!("many-{b:03}");
            c.create_bucket().bucket(&name).send().await.unwrap();
            c.put_object().bucket(&name).key("x").body(ByteStream::from(vec![7u8; 10])).send().await.unwrap();
        }
    });

    let r = scrape_as(&node, Some(&Creds::new(ACCESS_KEY, SECRET_KEY)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    let text = r.text();
    lint(&text, &dir);
    let s = samples(&text);
    let get = |k: &str| s.get(k).copied().unwrap_or_else(|| panic!("no sample {k} in:\n{text}"));
    assert_eq!(get(r#"kaligon_requests_total{operation="PutObject",status="2xx"}"#), (n + 105) as f64);
    assert_eq!(get(r#"kaligon_requests_total{operation="GetObject",status="2xx"}"#), n as f64);
    assert_eq!(get(r#"kaligon_requests_total{operation="GetObject",status="4xx"}"#), 1.0);
    assert_eq!(get(r#"kaligon_requests_total{operation="CreateBucket",status="2xx"}"#), 106.0);
    assert_eq!(get(r#"kaligon_bucket_received_bytes_total{bucket="metered"}"#), (n * size) as f64);
    assert_eq!(get(r#"kaligon_bucket_sent_bytes_total{bucket="metered"}"#), (n * size) as f64);
    // Reads: n GETs and the failed one; the histogram's +Inf bucket is its count.
    assert_eq!(get(r#"kaligon_request_duration_seconds_count{class="read"}"#), (n + 1) as f64);
    assert_eq!(get(r#"kaligon_request_duration_seconds_bucket{le="+Inf",class="read"}"#), (n + 1) as f64);
    let bucket_series: Vec<&String> =
        s.keys().filter(|k| k.starts_with("kaligon_bucket_received_bytes_total{")).collect();
    assert_eq!(bucket_series.len(), 101, "100 buckets and _other: {bucket_series:?}");
    // metered plus 99 of the 105 have labels of their own; 6 land in _other.
    assert_eq!(get(r#"kaligon_bucket_received_bytes_total{bucket="_other"}"#), 60.0);
    for shard in ["0", "1"] {
        for m in
            ["shard_queue_depth", "shard_versions", "shard_segments", "shard_poisoned", "shard_checkpoint_age_seconds"]
        {
            get(&format!("kaligon_{m}{{shard=\"{shard}\"}}"));
        }
        assert_eq!(get(&format!("kaligon_shard_poisoned{{shard=\"{shard}\"}}")), 0.0);
        assert!(get(&format!("kaligon_shard_group_commits_total{{shard=\"{shard}\"}}")) > 0.0);
    }
    let versions: f64 = ["0", "1"].iter().map(|sh| get(&format!("kaligon_shard_versions{{shard=\"{sh}\"}}"))).sum();
    assert_eq!(versions, (n + 105) as f64);
    let drive = s.iter().find(|(k, _)| k.starts_with("kaligon_drive_free_bytes{")).expect("a drive gauge");
    assert!(*drive.1 > 0.0);
    assert!(get("kaligon_connections_open") >= 1.0, "the scrape's own connection");
    assert_eq!(get("kaligon_access_log_dropped_lines_total"), 0.0);
    // Every metric the Grafana dashboard in tuning/ uses is exported.
    let dash: serde_json::Value = serde_json::from_slice(
        &std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tuning/grafana/kaligon-node.json")).unwrap(),
    )
    .unwrap();
    let names: std::collections::BTreeSet<&str> = s.keys().map(|k| k.split('{').next().unwrap()).collect();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let used =
                expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("kaligon_"));
            for m in used {
                assert!(names.contains(m), "the dashboard uses {m}, which the node does not export ({expr})");
            }
        }
    }
    drop(node);

    // --metrics-public: a scraper without credentials.
    let public = Node::start("metrics-public", &["--metrics-public"]);
    let r = scrape_as(&public, None);
    assert_eq!(r.status, 200, "{}", r.text());
    lint(&r.text(), &dir);
}
