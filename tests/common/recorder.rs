//! A loopback HTTP server that records every request: it stands in for
//! WebSub subscribers, external hubs and partner portals in the tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
}

pub type Behave = dyn Fn(&Req) -> (u16, Vec<u8>) + Send + Sync;

/// An answer with headers of its own (`Retry-After`).
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub type BehaveWithHeaders = dyn Fn(&Req) -> Reply + Send + Sync;

/// A loopback HTTP server that records every request. By default it echoes
/// `hub.challenge` on GET and answers 200 to POST.
pub struct Recorder {
    pub addr: SocketAddr,
    pub reqs: Arc<Mutex<Vec<Req>>>,
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

pub fn echo(r: &Req) -> (u16, Vec<u8>) {
    match r.query.get("hub.challenge") {
        Some(c) if r.method == "GET" => (200, c.clone().into_bytes()),
        _ => (200, Vec::new()),
    }
}

impl Recorder {
    /// A receiver that answers `down_status` until the returned flag is set,
    /// then 200: an outage that ends when the test says so.
    pub fn switchable(down_status: u16) -> (Recorder, Arc<AtomicBool>) {
        let up = Arc::new(AtomicBool::new(false));
        let flag = up.clone();
        let rec = Recorder::start(move |_| {
            let status = if flag.load(Ordering::SeqCst) {
                200
            } else {
                down_status
            };
            (status, Vec::new())
        });
        (rec, up)
    }

    pub fn start(behave: impl Fn(&Req) -> (u16, Vec<u8>) + Send + Sync + 'static) -> Recorder {
        Recorder::start_with_headers(move |r| {
            let (status, body) = behave(r);
            Reply {
                status,
                headers: Vec::new(),
                body,
            }
        })
    }

    /// A receiver whose answers may carry headers.
    pub fn start_with_headers(behave: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Recorder {
        let reqs: Arc<Mutex<Vec<Req>>> = Arc::default();
        let behave: Arc<BehaveWithHeaders> = Arc::new(behave);
        let sink = reqs.clone();
        let listener = runtime()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let sink = sink.clone();
                let behave = behave.clone();
                async move {
                    let mut req = Req {
                        method: method.to_string(),
                        path: uri.path().to_string(),
                        query: url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                            .into_owned()
                            .collect(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect(),
                        body: body.to_vec(),
                        status: 0,
                        at: Instant::now(),
                    };
                    let reply = behave(&req);
                    req.status = reply.status;
                    sink.lock().unwrap().push(req);
                    let mut headers = axum::http::HeaderMap::new();
                    for (name, value) in reply.headers {
                        headers.insert(name, value.parse().unwrap());
                    }
                    (
                        axum::http::StatusCode::from_u16(reply.status).unwrap(),
                        headers,
                        reply.body,
                    )
                }
            },
        );
        runtime().spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorder { addr, reqs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn all(&self) -> Vec<Req> {
        self.reqs.lock().unwrap().clone()
    }

    pub fn at(&self, method: &str, path: &str) -> Vec<Req> {
        self.all()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }
}
