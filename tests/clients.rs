//! Real clients, unmodified, against real nodes: boto3, aws-cli, minio-py,
//! s3cmd and curl (the Python lanes in tests/clients/) and the AWS SDK for
//! JavaScript v3 (tests/clients/js/). boto3, aws-cli and the JS SDK run a
//! second time through nginx terminating TLS, configured exactly as
//! tuning/proxy/nginx-kaligon.conf tells operators to: over HTTPS the SDKs
//! send aws-chunked bodies with trailing checksums.
//!
//! tests/clients/setup.sh installs the clients (tests/run.sh calls it). Each
//! lane writes what it covered to target/client-results/, from which
//! tests/clients/table.py makes the README's compatibility table.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Instant;

use common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn clients_dir() -> PathBuf {
    repo().join("tests/clients")
}

fn python() -> PathBuf {
    let p = repo().join("target/clients/venv/bin/python");
    assert!(p.exists(), "{} is missing: run tests/clients/setup.sh (tests/run.sh does)", p.display());
    p
}

fn results_dir() -> PathBuf {
    let dir = std::env::var_os("KALIGON_CLIENT_RESULTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/client-results"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Where a lane reaches the node: its own address, or the TLS proxy's.
struct Endpoint {
    url: String,
    via: &'static str,
    ca: Option<PathBuf>,
}

fn direct(node: &Node) -> Endpoint {
    Endpoint { url: node.endpoint(), via: "direct", ca: None }
}

/// Runs one lane to completion; fails the test with its output if it fails.
fn run_lane(name: &str, program: &Path, args: &[&str], cwd: &Path, at: &Endpoint, env: &[(&str, &str)]) {
    let work = temp_dir(&format!("lane-{name}"));
    let mut cmd = Command::new(program);
    // The machine's AWS_* settings (profiles, CA bundles) are not the lane's.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        cmd.env_remove(k);
    }
    cmd.args(args)
        .current_dir(cwd)
        .env("KALIGON_ENDPOINT", &at.url)
        .env("KALIGON_ACCESS_KEY", ACCESS_KEY)
        .env("KALIGON_SECRET_KEY", SECRET_KEY)
        .env("KALIGON_WORK", &work)
        .env("KALIGON_VIA", at.via)
        .env("KALIGON_LANE_OUT", results_dir().join(format!("{name}-{}.json", at.via)))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
    if let Some(ca) = &at.ca {
        cmd.env("KALIGON_CA", ca);
    }
    cmd.envs(env.iter().copied());
    let started = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "lane {name} ({}) failed with {} after {:?}:\n{stdout}\n{}",
        at.via,
        out.status,
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&work);
}

fn python_lane(name: &str, at: &Endpoint) {
    run_lane(name, &python(), &[&format!("{name}_lane.py")], &clients_dir(), at, &[]);
}

fn js_lane(at: &Endpoint) {
    let dir = clients_dir().join("js");
    assert!(dir.join("node_modules").exists(), "run tests/clients/setup.sh (tests/run.sh does)");
    run_lane("js", Path::new("node"), &["lane.mjs"], &dir, at, &[]);
}

/// nginx terminating TLS in front of a node, with a certificate made for
/// this run, using the operators' configuration from tuning/proxy/.
struct TlsProxy {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl TlsProxy {
    fn start(node: &Node) -> TlsProxy {
        let dir = temp_dir("tls-proxy");
        let (cert, key) = self_signed(&dir);
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let site = std::fs::read_to_string(repo().join("tuning/proxy/nginx-kaligon.conf"))
            .unwrap()
            .replace("@UPSTREAM@", &node.addr.to_string())
            .replace("@LISTEN@", &addr.to_string())
            .replace("@CERT@", cert.to_str().unwrap())
            .replace("@KEY@", key.to_str().unwrap());
        let child = start_nginx(&dir, &site, addr);
        TlsProxy { child, dir, addr }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint { url: format!("https://{}", self.addr), via: "tls-proxy", ca: Some(self.dir.join("cert.pem")) }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
            eprintln!("nginx error log:\n{log}");
        }
    }
}

#[test]
fn boto3() {
    let node = Node::start("boto3", &[]);
    python_lane("boto3", &direct(&node));
}

#[test]
fn boto3_through_tls_proxy() {
    let node = Node::start("boto3-tls", &[]);
    let proxy = TlsProxy::start(&node);
    python_lane("boto3", &proxy.endpoint());
}

/// What SDK retries and the conformance suite rely on: a Complete retried
/// after its response was lost, conditional writes, GetObjectAttributes,
/// error codes and header forms (boto3 and plain HTTP).
#[test]
fn conformance() {
    let node = Node::start("conformance", &[]);
    python_lane("conformance", &direct(&node));
}

/// Access control (ACLs, policies, Public Access Block, Object Ownership,
/// anonymous reads and form uploads) with boto3, aws-cli, s3cmd and plain
/// HTTP, for the first user and a second one from a users file that names
/// its canonical id, display name and e-mail.
#[test]
fn access() {
    const ALT_KEY: &str = "KLGNALTACCESSKEY00002";
    const ALT_SECRET: &str = "alt/secret+key0123456789abcdefghijklmnopq";
    let alt_id = "a1".repeat(32);
    let dir = temp_dir("access");
    let users = dir.join("users.toml");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        &users,
        format!(
            "[[user]]\naccess_key = \"{ALT_KEY}\"\nsecret_key = \"{ALT_SECRET}\"\ncanonical_id = \"{alt_id}\"\n\
             display_name = \"alt-user\"\nemail = \"alt@example.com\"\n"
        ),
    )
    .unwrap();
    let node = Node::start_in(dir.clone(), &["--users", users.to_str().unwrap()]);
    let env = [
        ("KALIGON_ALT_ACCESS_KEY", ALT_KEY),
        ("KALIGON_ALT_SECRET_KEY", ALT_SECRET),
        ("KALIGON_ALT_CANONICAL_ID", alt_id.as_str()),
        ("KALIGON_ALT_DISPLAY_NAME", "alt-user"),
        ("KALIGON_ALT_EMAIL", "alt@example.com"),
    ];
    run_lane("access", &python(), &["access_lane.py"], &clients_dir(), &direct(&node), &env);
}

/// CORS rules through boto3, aws-cli and s3cmd, and what browsers send
/// (preflights, requests with Origin) over plain HTTP.
#[test]
fn cors() {
    let node = Node::start("cors", &[]);
    python_lane("cors", &direct(&node));
}

/// A real browser (headless Chromium) uploads through examples/upload from
/// another origin; the same page against a bucket without CORS must fail.
#[test]
fn browser() {
    let node = Node::start("browser", &[]);
    let dir = clients_dir().join("js");
    assert!(dir.join("node_modules").exists(), "run tests/clients/setup.sh (tests/run.sh does)");
    let shot = results_dir().join("upload-page.png");
    let shot = shot.to_str().expect("utf-8 path");
    run_lane("browser", Path::new("node"), &["browser.mjs"], &dir, &direct(&node), &[("KALIGON_SCREENSHOT", shot)]);
}

/// Lifecycle rules and tagging through aws-cli, boto3 and s3cmd, with a
/// lifecycle day of two seconds so rules act within the test.
#[test]
fn lifecycle() {
    let node = Node::start("lifecycle", &["--lifecycle-day-secs", "2"]);
    python_lane("lifecycle", &direct(&node));
}

#[test]
fn awscli() {
    let node = Node::start("awscli", &[]);
    python_lane("awscli", &direct(&node));
}

#[test]
fn awscli_through_tls_proxy() {
    let node = Node::start("awscli-tls", &[]);
    let proxy = TlsProxy::start(&node);
    python_lane("awscli", &proxy.endpoint());
}

#[test]
fn minio_py() {
    let node = Node::start("minio", &[]);
    python_lane("minio", &direct(&node));
}

#[test]
fn s3cmd() {
    let node = Node::start("s3cmd", &[]);
    python_lane("s3cmd", &direct(&node));
}

#[test]
fn curl() {
    let node = Node::start("curl", &[]);
    python_lane("curl", &direct(&node));
}

#[test]
fn js_sdk_v3() {
    let node = Node::start("js", &[]);
    js_lane(&direct(&node));
}

#[test]
fn js_sdk_v3_through_tls_proxy() {
    let node = Node::start("js-tls", &[]);
    let proxy = TlsProxy::start(&node);
    js_lane(&proxy.endpoint());
}
