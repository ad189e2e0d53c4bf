//! A real node in a temporary directory on a free port, and real clients
//! for it: the AWS SDK for Rust and a raw HTTP/1.1 socket.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "KLGNTESTACCESSKEY0001";
pub const SECRET_KEY: &str = "test/secret+key0123456789abcdefghijklmnop";

pub struct Node {
    pub child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub extra_args: Vec<String>,
    keep_dir: bool,
}

/// A fresh, empty directory under the target dir (removed on drop).
pub fn temp_dir(name: &str) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let mut rnd = [0u8; 6];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut rnd).unwrap();
    let dir = base.join(format!("{name}-{}", rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Node {
    /// Starts a node with small segments so tests cross segment boundaries.
    pub fn start(name: &str, extra: &[&str]) -> Node {
        let dir = temp_dir(name);
        Self::start_in(dir, extra)
    }

    pub fn start_in(dir: PathBuf, extra: &[&str]) -> Node {
        let mut n = Node {
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            dir,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            keep_dir: false,
        };
        n.spawn("127.0.0.1:0");
        n
    }

    fn spawn(&mut self, listen: &str) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kaligon"));
        cmd.arg("serve").arg("--data").arg(self.dir.join("data")).arg("--listen").arg(listen);
        if !self.extra_args.iter().any(|a| a == "--segment-bytes") {
            cmd.arg("--segment-bytes").arg((8u64 << 20).to_string());
        }
        cmd.args(&self.extra_args)
            .env("KALIGON_ACCESS_KEY", ACCESS_KEY)
            .env("KALIGON_SECRET_KEY", SECRET_KEY)
            .env("KALIGON_LOG", std::env::var("KALIGON_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start kaligon");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines.next().expect("kaligon exited before listening").unwrap();
            if let Some(a) = line.strip_prefix("kaligon: listening on http://") {
                break a.trim().parse::<SocketAddr>().unwrap();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        self.addr = addr;
        self.child = Some(child);
        wait_ready(addr);
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// kill -9, then start again on the same port and data.
    pub fn crash_and_restart(&mut self) {
        self.kill9();
        let listen = self.addr.to_string();
        self.spawn(&listen);
    }

    /// Starts the node again on the same port and data after `kill9`.
    pub fn start_again(&mut self) {
        let listen = self.addr.to_string();
        self.spawn(&listen);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit, then start again.
    pub fn restart(&mut self) {
        self.stop();
        let listen = self.addr.to_string();
        self.spawn(&listen);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_sigterm(c.id());
            let status = c.wait().unwrap();
            assert!(status.success(), "node exited with {status}");
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn keep(&mut self) {
        self.keep_dir = true;
    }
}

fn unsafe_sigterm(pid: u32) {
    Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
        if !self.keep_dir && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn wait_ready(addr: SocketAddr) {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if let Ok(r) = raw(addr, b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            && r.status == 200
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("node at {addr} never became ready");
}

/// An HTTP response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The `<Code>` of an S3 error body.
    pub fn code(&self) -> String {
        let t = self.text();
        t.split("<Code>").nth(1).and_then(|r| r.split("</Code>").next()).unwrap_or("").to_string()
    }
}

/// Sends raw bytes and reads one response (the server may close after it).
pub fn raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<RawResponse> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(request)?;
    read_response(&mut s, false)
}

pub fn read_response(s: &mut TcpStream, head_only: bool) -> std::io::Result<RawResponse> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::Error::other("closed before the response head ended"));
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let len: usize = headers.iter().find(|(k, _)| k == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0u8; if head_only { 0 } else { len }];
    s.read_exact(&mut body)?;
    Ok(RawResponse { status, headers, body })
}

pub fn sdk(endpoint: &str) -> aws_sdk_s3::Client {
    sdk_with(endpoint, ACCESS_KEY, SECRET_KEY)
}

pub fn sdk_with(endpoint: &str, access: &str, secret: &str) -> aws_sdk_s3::Client {
    sdk_in(endpoint, access, secret, "us-east-1")
}

/// A client signing for `region` (a node started with `--region`).
pub fn sdk_in(endpoint: &str, access: &str, secret: &str, region: &str) -> aws_sdk_s3::Client {
    let creds = aws_sdk_s3::config::Credentials::new(access, secret, None, None, "test");
    let http = aws_smithy_http_client::Builder::new().build_http();
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_s3::config::Region::new(region.to_string()))
        .credentials_provider(creds)
        .force_path_style(true)
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The whole body of `bucket/key` (panics on any error).
pub async fn get_bytes(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bytes::Bytes {
    c.get_object().bucket(bucket).key(key).send().await.unwrap().body.collect().await.unwrap().into_bytes()
}

/// Deterministic pseudo-random bytes (xorshift) for bodies.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn files_under(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in walk(dir) {
        if e.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)) {
            out.push(e);
        }
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Records that a client passed these scenarios, for the README's
/// compatibility table (tests/clients/table.py merges the files per client).
/// `part` names the recording test, so tests of one client do not collide.
pub fn record_lane(client: &str, version: &str, part: &str, scenarios: &[&str]) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("KALIGON_CLIENT_RESULTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/client-results"));
    std::fs::create_dir_all(&dir).unwrap();
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let list: Vec<String> = scenarios.iter().map(|s| quote(s)).collect();
    let json = format!(
        "{{\"client\": {}, \"version\": {}, \"via\": \"direct\", \"scenarios\": [{}]}}\n",
        quote(client),
        quote(version),
        list.join(", ")
    );
    let name: String =
        format!("{client}-direct-{part}").chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    std::fs::write(dir.join(format!("{name}.json")), json).unwrap();
}

/// The version of a crate this build resolved (from Cargo.lock).
pub fn locked_version(krate: &str) -> String {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap();
    let marker = format!("name = \"{krate}\"\nversion = \"");
    let at = lock.find(&marker).map(|i| i + marker.len()).expect("crate in Cargo.lock");
    lock[at..].split('"').next().unwrap().to_string()
}

/// Records scenarios the AWS SDK for Rust passed (see `record_lane`).
pub fn record_rust_sdk(part: &str, scenarios: &[&str]) {
    record_lane("aws-sdk-s3 (Rust)", &locked_version("aws-sdk-s3"), part, scenarios);
}

/// Lets `micros` microseconds pass, yielding to the other futures of the
/// task meanwhile (tokio's timer counts whole milliseconds, too coarse to
/// move one request across another's group commit).
pub async fn pause_micros(micros: u64) {
    let until = std::time::Instant::now() + std::time::Duration::from_micros(micros);
    while std::time::Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// Runs `race` for rounds 0..`rounds`; the rounds in which it says both of
/// its racing calls succeeded (where AWS would fail one of them).
pub async fn rounds_where_both_succeed(rounds: u64, mut race: impl AsyncFnMut(u64) -> bool) -> Vec<u64> {
    let mut both = Vec::new();
    for round in 0..rounds {
        if race(round).await {
            both.push(round);
        }
    }
    both
}

/// rclone (Debian's package, installed by tests/run.sh) against `node` as
/// the user `(access, secret)`, the node being the remote `kal:`; fails the
/// test when rclone fails.
pub fn rclone_as(node: &Node, access: &str, secret: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new("rclone");
    // The machine's AWS_* settings (a CA bundle, profiles) are not ours.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        cmd.env_remove(k);
    }
    let out = cmd
        .args(args)
        .env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_KAL_TYPE", "s3")
        .env("RCLONE_CONFIG_KAL_PROVIDER", "Other")
        .env("RCLONE_CONFIG_KAL_ENDPOINT", node.endpoint())
        .env("RCLONE_CONFIG_KAL_ACCESS_KEY_ID", access)
        .env("RCLONE_CONFIG_KAL_SECRET_ACCESS_KEY", secret)
        .env("RCLONE_CONFIG_KAL_REGION", "us-east-1")
        .env("RCLONE_CONFIG_KAL_FORCE_PATH_STYLE", "true")
        .output()
        .expect("rclone is installed (tests/run.sh installs it from Debian)");
    assert!(out.status.success(), "rclone {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A self-signed certificate for 127.0.0.1 and localhost in `dir`:
/// (cert.pem, key.pem).
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed (tests/clients/setup.sh)");
    assert!(status.success(), "openssl could not make a certificate");
    (cert, key)
}

/// Debian's nginx serving `site` (what goes inside `http { }`) from `dir`,
/// once it listens on `addr`.
pub fn start_nginx(dir: &Path, site: &str, addr: SocketAddr) -> Child {
    std::fs::write(dir.join("site.conf"), site).unwrap();
    let d = dir.display();
    let main = format!(
        "daemon off;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         include {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    // Debian installs it in /usr/sbin, which a non-login PATH may lack.
    let nginx = if Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" };
    let mut child = Command::new(nginx)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        // Workers run as root (as CI does) so they can use the temp dirs.
        .args(["-g", "user root;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx is installed (tests/clients/setup.sh)");
    let until = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            panic!("nginx exited with {status}:\n{log}");
        }
        assert!(Instant::now() < until, "nginx did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}
