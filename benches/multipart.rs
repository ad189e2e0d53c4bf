//! Multipart benchmark against a real node over loopback with the AWS SDK
//! for Rust: parallel UploadPart throughput as a ratio to PutObject
//! throughput for the same bytes (same part size, same concurrency,
//! alternating rounds so a noisy machine affects both alike), and the
//! latency of CompleteMultipartUpload with 1000 parts. `cargo bench --bench
//! multipart` runs the full sizes; under `cargo test` it runs once, small.
//! Prints one JSON line per measurement.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

const ACCESS: &str = "BENCHACCESSKEY000001";
const SECRET: &str = "bench-secret-key-not-for-production";

struct Node {
    child: Child,
    dir: PathBuf,
    endpoint: String,
}

impl Node {
    fn start(name: &str, config: &str) -> Node {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kaligon.toml"), config).unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(env!("CARGO_BIN_EXE_kaligon"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--config"])
            .arg(dir.join("kaligon.toml"))
            .arg("--data")
            .arg(dir.join("data"))
            .env("KALIGON_ACCESS_KEY", ACCESS)
            .env("KALIGON_SECRET_KEY", SECRET)
            .env("KALIGON_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let until = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "node did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Node { child, dir, endpoint }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn client(endpoint: &str) -> Client {
    let creds = aws_sdk_s3::config::Credentials::new(ACCESS, SECRET, None, None, "bench");
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .force_path_style(true)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    Client::from_conf(conf)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Sends `count` bodies of `body.len()` bytes, `concurrency` at a time, as
/// PutObject (upload None) or as parts of one upload; returns MiB/s.
async fn send_all(c: &Client, body: &bytes::Bytes, count: usize, concurrency: usize, upload: Option<&str>) -> f64 {
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..count {
        let (c, body, sem) = (c.clone(), body.clone(), sem.clone());
        let upload = upload.map(str::to_string);
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            match upload {
                None => c
                    .put_object()
                    .bucket("mpb")
                    .key(format!("put{i}"))
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}")),
                Some(id) => c
                    .upload_part()
                    .bucket("mpb")
                    .key("parts")
                    .upload_id(id)
                    .part_number(i as i32 + 1)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}")),
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    (count * body.len()) as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (part, count, rounds, concurrency) = if full { (16 << 20, 32, 5, 8) } else { (5 << 20, 4, 1, 4) };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // 1. UploadPart vs PutObject throughput for the same bytes.
    let node = Node::start("throughput", "");
    let c = client(&node.endpoint);
    let body = bytes::Bytes::from((0..part).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>());
    let (mut puts, mut parts) = (Vec::new(), Vec::new());
    rt.block_on(async {
        c.create_bucket().bucket("mpb").send().await.unwrap();
        for _ in 0..rounds {
            puts.push(send_all(&c, &body, count, concurrency, None).await);
            let id = c.create_multipart_upload().bucket("mpb").key("parts").send().await.unwrap().upload_id.unwrap();
            parts.push(send_all(&c, &body, count, concurrency, Some(&id)).await);
            c.abort_multipart_upload().bucket("mpb").key("parts").upload_id(&id).send().await.unwrap();
        }
    });
    let (put, up) = (median(puts.clone()), median(parts.clone()));
    println!(
        "{{\"bench\":\"upload_part_vs_put\",\"part_bytes\":{part},\"parts\":{count},\"concurrency\":{concurrency},\"rounds\":{rounds},\"put_mib_s\":{put:.1},\"upload_part_mib_s\":{up:.1},\"ratio\":{:.3},\"put_runs\":{puts:.1?},\"part_runs\":{parts:.1?}}}",
        up / put
    );
    drop(node);

    // 2. Complete latency with 1000 parts. The cost of a completion is
    // per part (its extents and record), not per byte, so the parts are
    // 4 KiB on a node whose minimum part size allows it.
    let node = Node::start("complete", "part_bytes_min = 4096\n");
    let c = client(&node.endpoint);
    let n = 1000;
    let small = bytes::Bytes::from(vec![7u8; 4096]);
    let mut latencies = Vec::new();
    rt.block_on(async {
        c.create_bucket().bucket("mpb").send().await.unwrap();
        for _ in 0..rounds.max(3) {
            let id = c.create_multipart_upload().bucket("mpb").key("parts").send().await.unwrap().upload_id.unwrap();
            send_all(&c, &small, n, 16, Some(&id)).await;
            let listed = {
                let mut all = Vec::new();
                let mut marker: Option<String> = None;
                loop {
                    let r = c
                        .list_parts()
                        .bucket("mpb")
                        .key("parts")
                        .upload_id(&id)
                        .set_part_number_marker(marker)
                        .send()
                        .await
                        .unwrap();
                    all.extend(r.parts().iter().map(|p| {
                        CompletedPart::builder()
                            .part_number(p.part_number.unwrap())
                            .e_tag(p.e_tag.clone().unwrap())
                            .build()
                    }));
                    if !r.is_truncated.unwrap() {
                        break all;
                    }
                    marker = r.next_part_number_marker.clone();
                }
            };
            assert_eq!(listed.len(), n);
            let started = Instant::now();
            c.complete_multipart_upload()
                .bucket("mpb")
                .key("parts")
                .upload_id(&id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(listed)).build())
                .send()
                .await
                .unwrap();
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    });
    println!(
        "{{\"bench\":\"complete_1000_parts\",\"median_ms\":{:.2},\"runs_ms\":{latencies:.2?}}}",
        median(latencies.clone())
    );
}
