//! Back-pressure: past `--requests-max-per-core` requests in flight on a
//! core, new requests get 503 SlowDown with Retry-After at once instead of
//! queueing; requests already admitted finish; the AWS SDK's retries then
//! succeed; `kaligon bench` above capacity sees SlowDown and nothing else
//! (no timeouts), with the admitted requests' latency bounded.

mod common;
#[path = "common/sign.rs"]
mod sign;

use std::io::Write;
use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use common::*;
use sign::*;

#[test]
fn past_the_bound_requests_get_slowdown_and_retries_succeed() {
    // One shard (one core), so every connection counts against one bound.
    let node = Node::start("backpressure", &["--shards", "1", "--requests-max-per-core", "4"]);
    let host = node.addr.to_string();
    let creds = Creds::new(ACCESS_KEY, SECRET_KEY);
    assert_eq!(send(node.addr, &Request::new("PUT", "/bpr", &host).sign_v4(&creds)).status, 200);

    // Four slow uploads hold the four slots (head sent, body not yet).
    let body = bytes(1, 256 << 10);
    let mut slow = Vec::new();
    for i in 0..4 {
        let req = Request::new("PUT", &format!("/bpr/slow-{i}"), &host).body(body.clone()).sign_v4(&creds);
        let mut s = std::net::TcpStream::connect(node.addr).unwrap();
        s.write_all(&req.head_bytes()).unwrap();
        s.write_all(&body[..1000]).unwrap();
        slow.push(s);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let r = send(node.addr, &Request::new("GET", "/bpr/slow-0", &host).sign_v4(&creds));
    assert_error(&r, 503, "SlowDown");
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = send(node.addr, &Request::new("PUT", "/bpr/refused", &host).body(b"x".to_vec()).sign_v4(&creds));
    assert_error(&r, 503, "SlowDown");
    // The admitted uploads finish; then there is room again.
    for mut s in slow {
        s.write_all(&body[1000..]).unwrap();
        let r = read_response(&mut s, false).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = send(node.addr, &Request::new("GET", "/bpr/slow-3", &host).sign_v4(&creds));
    assert_eq!(r.status, 200);
    assert!(r.body == body);
    assert_eq!(send(node.addr, &Request::new("HEAD", "/bpr/refused", &host).sign_v4(&creds)).status, 404);

    // The AWS SDK for Rust, 24 PUTs at once against 4 slots: its retries
    // (exponential backoff on SlowDown) get every one stored.
    let rt = rt();
    rt.block_on(async {
        let base = sdk(&node.endpoint());
        let conf = base
            .config()
            .to_builder()
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(10))
            .build();
        let c = aws_sdk_s3::Client::from_conf(conf);
        let puts = (0..24).map(|i| {
            let c = c.clone();
            async move {
                c.put_object()
                    .bucket("bpr")
                    .key(format!("sdk-{i}"))
                    .body(ByteStream::from(bytes(i, 50_000)))
                    .send()
                    .await
            }
        });
        for (i, r) in futures_util::future::join_all(puts).await.into_iter().enumerate() {
            r.unwrap_or_else(|e| panic!("sdk-{i}: {e:?}"));
        }
        for i in 0..24u64 {
            assert_eq!(get_bytes(&c, "bpr", &format!("sdk-{i}")).await.to_vec(), bytes(i, 50_000));
        }
    });

    // kaligon bench far above capacity: SlowDown is the only error, no
    // timeouts, and the admitted requests stay fast.
    let json = node.dir.join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_kaligon"))
        .args(["bench", "--endpoint", &node.endpoint(), "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .args(["--bucket", "bpr", "--no-create", "--workload", "put", "-c", "32", "-d", "1s", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let totals = &report["totals"];
    let by_code = totals["errors_by_code"].as_object().unwrap();
    assert!(by_code.keys().all(|k| k == "SlowDown"), "only SlowDown: {by_code:?}");
    assert!(by_code["SlowDown"].as_u64().unwrap() > 0, "{totals}");
    assert!(totals["ops"].as_u64().unwrap() > 0, "some requests were admitted: {totals}");
    assert!(totals["latency_ms"]["p99"].as_f64().unwrap() < 5000.0, "admitted p99 bounded: {totals}");
    // The metrics count the refusals.
    let m = send(node.addr, &Request::new("GET", "/admin/metrics", &host).sign_v4(&creds));
    let slowdowns =
        m.text().lines().find_map(|l| l.strip_prefix("kaligon_slowdowns_total ").map(|v| v.parse::<f64>().unwrap()));
    assert!(slowdowns.unwrap() >= 2.0, "{}", m.text());
}
