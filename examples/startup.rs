//! Start `feedwire run` and time how long until it is ready.
//!
//! ```sh
//! cargo run --release --example startup -- --bin target/release/feedwire \
//!     --config X/config.toml --addr 127.0.0.1:18080 --log X/daemon.log --pidfile X/daemon.pid
//! ```
//!
//! Spawns the daemon (stdout and stderr to `--log`), then asks
//! `GET /healthz` on `--addr` (loopback only) every 2 ms until it answers 200
//! — the daemon answers 200 once its start-up reconciliation and first
//! publish are done. Prints `ready_ms=<ms> pid=<pid>` and leaves the daemon
//! running; the caller stops it (SIGTERM to the pid written to `--pidfile`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn healthy(addr: &SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    buf[..got].starts_with(b"HTTP/1.1 200") || buf[..got].starts_with(b"HTTP/1.0 200")
}

fn main() -> ExitCode {
    let mut bin = None;
    let mut config = None;
    let mut addr: Option<SocketAddr> = None;
    let mut log = None;
    let mut pidfile = None;
    let mut timeout = Duration::from_secs(300);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().expect("every option takes a value");
        match a.as_str() {
            "--bin" => bin = Some(PathBuf::from(v)),
            "--config" => config = Some(PathBuf::from(v)),
            "--addr" => addr = Some(v.parse().expect("--addr: ip:port")),
            "--log" => log = Some(PathBuf::from(v)),
            "--pidfile" => pidfile = Some(PathBuf::from(v)),
            "--timeout-secs" => timeout = Duration::from_secs(v.parse().expect("a number")),
            other => {
                eprintln!("startup: unknown argument `{other}`");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(bin), Some(config), Some(addr), Some(log), Some(pidfile)) =
        (bin, config, addr, log, pidfile)
    else {
        eprintln!("startup: --bin, --config, --addr, --log and --pidfile are required");
        return ExitCode::from(2);
    };
    assert!(addr.ip().is_loopback(), "--addr must be a loopback address");
    let out = std::fs::File::create(&log).expect("log file");
    let t0 = Instant::now();
    // Deliberately not waited on: the daemon outlives this probe and the
    // caller stops it by the pid in --pidfile.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(&bin)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start feedwire");
    std::fs::write(&pidfile, child.id().to_string()).expect("pid file");
    loop {
        if healthy(&addr) {
            break;
        }
        if t0.elapsed() > timeout {
            eprintln!(
                "startup: not ready after {timeout:?}; see {}",
                log.display()
            );
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    println!(
        "ready_ms={:.1} pid={}",
        t0.elapsed().as_secs_f64() * 1e3,
        child.id()
    );
    ExitCode::SUCCESS
}
