//! Three nodes behind HAProxy (Debian's, with the checked-in recipe
//! tuning/proxy/haproxy-kaligon.cfg): a client workload runs through it
//! while one node is drained with SIGTERM (a slow upload in flight on it
//! finishes; its buckets answer 503 until it is back; the other nodes'
//! buckets never fail) and another is killed with -9 (the same, and every
//! acknowledged write is there once it restarts). The PROXY protocol
//! carries the client's address to the nodes' access logs, and only from
//! the trusted proxy address; TLS ends at HAProxy, and a bucket policy on
//! aws:SecureTransport sees it (a forged X-Forwarded-Proto does not pass).

mod common;
#[path = "common/sign.rs"]
mod sign;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use sign::*;

/// HAProxy connects to the nodes from this address, the only one the
/// nodes trust (tests talk to nodes directly from 127.0.0.1).
const LB_SOURCE: &str = "127.0.0.2";
/// A client of the load balancer with an address of its own.
const CLIENT: &str = "127.0.0.3";

/// A balancer process (HAProxy or nginx), stopped on drop.
struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A self-signed certificate for 127.0.0.1: (HAProxy's PEM, the CA file).
fn certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = self_signed(dir);
    let pem = dir.join("lb.pem");
    let both = [std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap()].concat();
    std::fs::write(&pem, both).unwrap();
    (pem, cert)
}

/// HAProxy with the checked-in recipe, its TLS listener enabled on `tls`.
fn start_haproxy(dir: &Path, bind: SocketAddr, tls: SocketAddr, pem: &Path, nodes: &[SocketAddr]) -> Haproxy {
    let recipe =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning/proxy/haproxy-kaligon.cfg"))
            .unwrap()
            .replace("default-server check", &format!("default-server source {LB_SOURCE} check"))
            .replace(
                "    # TLS termination: bind \"${KALIGON_LB_BIND}\" ssl crt /etc/haproxy/kaligon.pem",
                &format!("    bind \"{tls}\" ssl crt \"{}\"", pem.display()),
            );
    assert!(recipe.contains(" ssl crt \""), "the recipe's TLS line changed");
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, recipe).unwrap();
    let bin = ["/usr/sbin/haproxy", "haproxy"].into_iter().find(|b| Path::new(b).exists()).unwrap_or("haproxy");
    let mut cmd = Command::new(bin);
    cmd.arg("-db").arg("-f").arg(&cfg).env("KALIGON_LB_BIND", bind.to_string());
    for (i, n) in nodes.iter().enumerate() {
        cmd.env(format!("KALIGON_NODE{}", i + 1), n.to_string());
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy (Debian's package; tests/clients/setup.sh installs it)");
    Haproxy(child)
}

/// One request from `src` (a loopback address) to `addr`.
fn send_from(src: &str, addr: SocketAddr, req: &Request) -> std::io::Result<RawResponse> {
    let mut s = connect_from(src, addr)?;
    s.write_all(&req.bytes())?;
    read_response(&mut s, req.method == "HEAD")
}

fn connect_from(src: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.bind(&SocketAddr::new(src.parse::<IpAddr>().unwrap(), 0).into())?;
    sock.connect(&addr.into())?;
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(s)
}

fn creds() -> Creds {
    Creds::new(ACCESS_KEY, SECRET_KEY)
}

fn get(at: SocketAddr, path: &str) -> RawResponse {
    let host = at.to_string();
    send_from("127.0.0.1", at, &Request::new("GET", path, &host).sign_v4(&creds())).unwrap()
}

fn put(at: SocketAddr, path: &str, body: &[u8]) -> RawResponse {
    let host = at.to_string();
    send_from("127.0.0.1", at, &Request::new("PUT", path, &host).body(body.to_vec()).sign_v4(&creds())).unwrap()
}

/// Waits until `check` holds (HAProxy's health checks run every 500 ms).
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < until, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the workload saw, per bucket: acknowledged writes and failures.
#[derive(Default)]
struct Ledger {
    acked: Vec<(String, String, Vec<u8>)>,
    failures: HashMap<String, Vec<u16>>,
}

/// PUTs round-robin over `buckets` through the load balancer until `stop`.
fn workload(lb: SocketAddr, buckets: Vec<String>, stop: Arc<AtomicBool>, ledger: Arc<Mutex<Ledger>>) {
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let bucket = &buckets[i as usize % buckets.len()];
        let key = format!("w-{i}");
        let body = bytes(i, 1000 + (i as usize % 7) * 3000);
        let status = match std::panic::catch_unwind(|| put(lb, &format!("/{bucket}/{key}"), &body)) {
            Ok(r) => r.status,
            Err(_) => 0,
        };
        let mut l = ledger.lock().unwrap();
        if status == 200 {
            l.acked.push((bucket.clone(), key, body));
        } else {
            l.failures.entry(bucket.clone()).or_default().push(status);
        }
        drop(l);
        i += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn sigterm(node: &Node) {
    let pid = node.child.as_ref().unwrap().id();
    assert!(Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap().success());
}

/// Creates buckets through the balancer until every node holds at least
/// two; which node holds each (asked of the nodes directly).
fn pin_buckets(lb: SocketAddr, nodes: &[Node], prefix: &str) -> HashMap<String, usize> {
    let mut owner: HashMap<String, usize> = HashMap::new();
    for i in 0..40 {
        let b = format!("{prefix}-{i}");
        wait_until("a CreateBucket through the balancer succeeds", || put(lb, &format!("/{b}"), b"").status == 200);
        let holders: Vec<usize> =
            (0..nodes.len()).filter(|n| get(nodes[*n].addr, &format!("/{b}?location")).status == 200).collect();
        assert_eq!(holders.len(), 1, "{b} is on exactly one node: {holders:?}");
        owner.insert(b, holders[0]);
        if (0..nodes.len()).all(|n| owner.values().filter(|o| **o == n).count() >= 2) {
            return owner;
        }
    }
    panic!("the bucket hash does not spread over every node: {owner:?}");
}

fn on(owner: &HashMap<String, usize>, n: usize) -> Vec<String> {
    let mut b: Vec<String> = owner.iter().filter(|(_, o)| **o == n).map(|(b, _)| b.clone()).collect();
    b.sort();
    b
}

/// TLS ends at the balancer and the node learns it from X-Forwarded-Proto
/// (set by the balancer, never passed on from the client): a policy that
/// denies reads without TLS refuses the plain listener (a forged header
/// included) and serves the TLS one. `key` holds "hi".
fn tls_is_seen_as_tls(lb: SocketAddr, tls: SocketAddr, ca: &Path, bucket: &str, key: &str) {
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*","Condition":{{"Bool":{{"aws:SecureTransport":"false"}}}}}}]}}"#
    );
    let host = lb.to_string();
    let put_policy = Request::new("PUT", &format!("/{bucket}?policy"), &host).body(policy.into_bytes());
    let r = send_from("127.0.0.1", lb, &put_policy.sign_v4(&creds())).unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    // (The forged header is added after signing, so the balancer may replace it.)
    let plain =
        Request::new("GET", &format!("/{bucket}/{key}"), &host).sign_v4(&creds()).header("X-Forwarded-Proto", "https");
    assert_error(&send_from("127.0.0.1", lb, &plain).unwrap(), 403, "AccessDenied");
    let curl = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &format!("{ACCESS_KEY}:{SECRET_KEY}")])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .arg(format!("https://{tls}/{bucket}/{key}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&curl.stdout);
    assert!(text.ends_with("\n200") && text.starts_with("hi"), "GET over TLS through the balancer: {text}");
    let delete = Request::new("DELETE", &format!("/{bucket}?policy"), &host).sign_v4(&creds());
    assert_eq!(send_from("127.0.0.1", lb, &delete).unwrap().status, 204);
}

/// Under a workload (one client per node's buckets, so a request waiting
/// on a node that is away holds up no other): node 1 is drained with
/// SIGTERM while a slow upload to it is in flight (the upload finishes),
/// node 2 is killed with -9; each one's buckets answer 503 while the others
/// keep answering, and once both are back every acknowledged PUT is there.
/// `killed` is what else a request on the killed node may end as.
fn drain_and_crash_under_load(lb: SocketAddr, nodes: &mut [Node], owner: &HashMap<String, usize>, killed: &[u16]) {
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let workers: Vec<_> = (0..3)
        .map(|n| {
            let (stop, ledger, buckets) = (stop.clone(), ledger.clone(), on(owner, n));
            std::thread::spawn(move || workload(lb, buckets, stop, ledger))
        })
        .collect();
    let others_answer = |away: usize| {
        for n in (0..3).filter(|n| *n != away) {
            let r = get(lb, &format!("/{}", on(owner, n)[0]));
            assert_eq!(r.status, 200, "node {n} while node {away} is away: {}", r.text());
        }
    };
    std::thread::sleep(Duration::from_millis(500));

    let b1 = on(owner, 1)[0].clone();
    let slow = bytes(77, 2 << 20);
    let req = Request::new("PUT", &format!("/{b1}/slow"), &lb.to_string()).body(slow.clone()).sign_v4(&creds());
    let mut s = connect_from(CLIENT, lb).unwrap();
    s.write_all(&req.head_bytes()).unwrap();
    s.write_all(&slow[..1 << 20]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&nodes[1]);
    std::thread::sleep(Duration::from_millis(700));
    s.write_all(&slow[1 << 20..]).unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200, "the upload in flight during the drain finishes: {}", r.text());
    let status = nodes[1].child.take().unwrap().wait().unwrap();
    assert!(status.success(), "drained node exited with {status}");
    wait_until("node 1's buckets answer 503", || get(lb, &format!("/{b1}/slow")).status == 503);
    others_answer(1);
    std::thread::sleep(Duration::from_millis(500));
    nodes[1].start_again();
    wait_until("node 1 is back", || get(lb, &format!("/{b1}/slow")).status == 200);
    assert!(get(lb, &format!("/{b1}/slow")).body == slow, "the upload that finished during the drain is whole");

    std::thread::sleep(Duration::from_millis(500));
    nodes[2].kill9();
    let b2 = on(owner, 2)[0].clone();
    wait_until("node 2's buckets answer 503", || get(lb, &format!("/{b2}")).status == 503);
    others_answer(2);
    std::thread::sleep(Duration::from_millis(500));
    nodes[2].start_again();
    wait_until("node 2 is back", || get(lb, &format!("/{b2}")).status == 200);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }

    let ledger = ledger.lock().unwrap();
    for (bucket, statuses) in &ledger.failures {
        let n = owner[bucket];
        assert!(n == 1 || n == 2, "a request to {bucket} on node {n}, which stayed up, failed: {statuses:?}");
        let ok = |s: &u16| *s == 503 || (n == 2 && killed.contains(s));
        assert!(statuses.iter().all(ok), "{bucket} on node {n} failed with {statuses:?}");
    }
    assert!((0..3).all(|n| ledger.acked.iter().any(|(b, _, _)| owner[b] == n)), "the workload wrote to every node");
    for (bucket, key, body) in &ledger.acked {
        let got = get(lb, &format!("/{bucket}/{key}"));
        assert_eq!(got.status, 200, "acknowledged {bucket}/{key} lost (node {})", owner[bucket]);
        assert!(got.body == *body, "{bucket}/{key} has other bytes");
    }
    let total = ledger.acked.len() + ledger.failures.values().map(Vec::len).sum::<usize>();
    eprintln!(
        "fleet: {total} workload PUTs, {} acknowledged, failures {:?}",
        ledger.acked.len(),
        ledger.failures.iter().map(|(b, s)| (owner[b], s.len())).collect::<Vec<_>>()
    );
}

fn access_log(node: &Node) -> Vec<serde_json::Value> {
    let log = std::fs::read_to_string(node.dir.join("access.log")).unwrap();
    log.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn three_nodes_behind_haproxy_drain_and_crash() {
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            let dir = temp_dir(&format!("fleet-{i}"));
            let log = dir.join("access.log");
            let trusted = format!("{LB_SOURCE}/32");
            Node::start_in(
                dir,
                &["--proxy-protocol", "--trusted-proxy", &trusted, "--access-log", log.to_str().unwrap()],
            )
        })
        .collect();
    let lb: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let tls: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let lb_dir = temp_dir("fleet-lb");
    let (pem, ca) = certificate(&lb_dir);
    let _haproxy = start_haproxy(&lb_dir, lb, tls, &pem, &nodes.iter().map(|n| n.addr).collect::<Vec<_>>());
    wait_until("haproxy answers", || TcpStream::connect(lb).is_ok());
    let owner = pin_buckets(lb, &nodes, "fleet-bucket");

    // The client's own address reaches the node, carried by PROXY v2.
    let a_bucket = on(&owner, 0)[0].clone();
    let put_hi = Request::new("PUT", &format!("/{a_bucket}/from-client"), &lb.to_string()).body(b"hi".to_vec());
    let r = send_from(CLIENT, lb, &put_hi.sign_v4(&creds())).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-amz-request-id").is_some() && r.header("x-amz-id-2").is_some(), "{:?}", r.headers);
    // x-amz-id-2 is the error body's HostId.
    let missing = get(lb, &format!("/{a_bucket}/no-such-key"));
    assert_eq!(missing.status, 404);
    let id2 = missing.header("x-amz-id-2").unwrap().to_string();
    assert!(missing.text().contains(&format!("<HostId>{id2}</HostId>")), "{}", missing.text());
    // A trusted address must send a PROXY header: without one it is cut off.
    let mut raw = connect_from(LB_SOURCE, nodes[0].addr).unwrap();
    raw.write_all(b"GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(raw.read(&mut buf), Ok(0) | Err(_)), "served without a PROXY header");
    // X-Forwarded-For from an untrusted client is not believed.
    let host = nodes[0].addr.to_string();
    let forged = Request::new("GET", &format!("/{a_bucket}/from-client"), &host).header("X-Forwarded-For", "6.6.6.6");
    assert_eq!(send_from("127.0.0.1", nodes[0].addr, &forged.sign_v4(&creds())).unwrap().status, 200);
    tls_is_seen_as_tls(lb, tls, &ca, &a_bucket, "from-client");

    // Drained: HAProxy answers 503 (no server). Killed: a request the node
    // died under may also end as 502 (it was not acknowledged).
    drain_and_crash_under_load(lb, &mut nodes, &owner, &[502]);

    // The access log: the PUT from 127.0.0.3 by PROXY v2, the direct GET
    // with a forged X-Forwarded-For, and the GETs without and with TLS.
    let lines = access_log(&nodes[0]);
    let from_client: Vec<&serde_json::Value> = lines.iter().filter(|l| l["key"] == "from-client").collect();
    assert_eq!(from_client.len(), 4, "{from_client:?}");
    assert_eq!(from_client[0]["remote"], CLIENT, "PROXY v2 gave the client's address: {}", from_client[0]);
    assert_eq!(from_client[0]["operation"], "PutObject");
    assert_eq!(from_client[0]["bytes_in"], 2);
    assert_eq!(from_client[1]["remote"], "127.0.0.1", "X-Forwarded-For from an untrusted peer: {}", from_client[1]);
    assert_eq!(
        (&from_client[2]["status"], &from_client[2]["error"]),
        (&serde_json::json!(403), &serde_json::json!("AccessDenied"))
    );
    assert_eq!(from_client[3]["status"], 200);
    assert!(lines.iter().any(|l| l["operation"] == "PutObject" && l["status"] == 200 && l["user"] == ACCESS_KEY));
}

/// nginx (Debian's) with tuning/proxy/nginx-kaligon-fleet.conf in front of
/// 3 nodes that trust it for X-Forwarded-For/-Proto (nginx sends no PROXY
/// header to upstreams): the same drain and crash, TLS ended at nginx, and
/// the client's address in the access log by X-Forwarded-For.
#[test]
fn three_nodes_behind_nginx_drain_and_crash() {
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            let dir = temp_dir(&format!("fleet-nginx-{i}"));
            let log = dir.join("access.log");
            let trusted = format!("{LB_SOURCE}/32");
            Node::start_in(dir, &["--trusted-proxy", &trusted, "--access-log", log.to_str().unwrap()])
        })
        .collect();
    let lb: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let tls: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = temp_dir("fleet-nginx-lb");
    let (_, ca) = certificate(&dir);
    let _nginx = start_nginx_fleet(&dir, lb, tls, &nodes.iter().map(|n| n.addr).collect::<Vec<_>>());
    let owner = pin_buckets(lb, &nodes, "nginx-bucket");

    let b0 = on(&owner, 0)[0].clone();
    let put_hi = Request::new("PUT", &format!("/{b0}/from-client"), &lb.to_string()).body(b"hi".to_vec());
    assert_eq!(send_from(CLIENT, lb, &put_hi.sign_v4(&creds())).unwrap().status, 200);
    tls_is_seen_as_tls(lb, tls, &ca, &b0, "from-client");
    // A node that is away: nginx answers 503 (with Retry-After) for its buckets.
    drain_and_crash_under_load(lb, &mut nodes, &owner, &[]);

    let put_line = access_log(&nodes[0])
        .into_iter()
        .find(|l| l["key"] == "from-client" && l["operation"] == "PutObject")
        .expect("the PUT is logged");
    assert_eq!(put_line["remote"], CLIENT, "X-Forwarded-For from the trusted nginx: {put_line}");
}

/// nginx with the checked-in fleet recipe, connecting to the nodes from
/// the trusted address.
fn start_nginx_fleet(dir: &Path, lb: SocketAddr, tls: SocketAddr, nodes: &[SocketAddr]) -> Haproxy {
    let mut site =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning/proxy/nginx-kaligon-fleet.conf"))
            .unwrap()
            .replace("@LISTEN@", &lb.to_string())
            .replace("@TLS_LISTEN@", &tls.to_string())
            .replace("@CERT@", dir.join("cert.pem").to_str().unwrap())
            .replace("@KEY@", dir.join("key.pem").to_str().unwrap())
            .replace(
                "    proxy_next_upstream off;",
                &format!("    proxy_next_upstream off;\n    proxy_bind {LB_SOURCE};"),
            );
    for (i, n) in nodes.iter().enumerate() {
        site = site.replace(&format!("@NODE{}@", i + 1), &n.to_string());
    }
    let child = start_nginx(dir, &site, lb);
    Haproxy(child)
}
