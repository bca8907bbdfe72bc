//! Static pages served beside the API: the node's block explorer.
//!
//! A [`Site`] is a fixed set of files held in memory (the node compiles its
//! explorer into the binary). [`SiteLayer`] serves it on the RPC port: a
//! `GET` or `HEAD` that is not a WebSocket upgrade and names one of the
//! site's paths gets the file; everything else (JSON-RPC posts, WebSocket
//! upgrades, other paths) goes on to the API untouched. [`serve`] serves it
//! alone on an address of its own.
//!
//! ```
//! use tally_rpc::site::{Site, SiteFile};
//! let site = Site::new(vec![SiteFile::new("/", "text/html; charset=utf-8", b"<p>hi</p>".to_vec())]);
//! assert_eq!(site.file("/").map(|f| f.body.len()), Some(9));
//! assert!(site.file("/../etc/passwd").is_none());
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use tokio::net::TcpListener;

/// How long a connection to [`serve`] may stay open: pages are a few
/// requests, so a client that holds one longer is dropped.
pub const CONNECTION_SECS_MAX: u64 = 30;
/// Connections [`serve`] holds at once; further ones wait to be accepted.
pub const CONNECTIONS_MAX: usize = 256;

/// One file of a site.
#[derive(Debug, Clone)]
pub struct SiteFile {
    /// Its path, starting with `/`.
    pub path: String,
    pub content_type: &'static str,
    pub body: Arc<[u8]>,
}

impl SiteFile {
    pub fn new(path: impl Into<String>, content_type: &'static str, body: Vec<u8>) -> Self {
        SiteFile {
            path: path.into(),
            content_type,
            body: body.into(),
        }
    }
}

/// A fixed set of files, looked up by exact path.
#[derive(Debug, Clone, Default)]
pub struct Site {
    files: Vec<SiteFile>,
}

impl Site {
    pub fn new(files: Vec<SiteFile>) -> Self {
        Site { files }
    }

    /// The file at exactly `path` (the query string is not part of it).
    pub fn file(&self, path: &str) -> Option<&SiteFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// The answer to a `GET`/`HEAD` of `path`, or `None` for a path the
    /// site does not have.
    fn respond(&self, path: &str, head: bool) -> Option<HttpResponse> {
        let file = self.file(path)?;
        let body = if head {
            HttpBody::from(Vec::new())
        } else {
            HttpBody::from(file.body.to_vec())
        };
        http::Response::builder()
            .status(http::StatusCode::OK)
            .header(http::header::CONTENT_TYPE, file.content_type)
            .header(http::header::CONTENT_LENGTH, file.body.len())
            // The page is compiled into the binary: a new binary may bring
            // a new page, so browsers ask again rather than guess.
            .header(http::header::CACHE_CONTROL, "no-cache")
            .header("x-content-type-options", "nosniff")
            .header(
                "content-security-policy",
                "default-src 'self'; connect-src 'self' http: https: ws: wss:; \
                 img-src 'self' data:; style-src 'self'; script-src 'self'; \
                 frame-ancestors 'none'",
            )
            .body(body)
            .ok()
    }

    fn not_found() -> HttpResponse {
        let mut response = http::Response::new(HttpBody::from("not found\n"));
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        response
    }
}

/// True if the request asks for a page of the site: a `GET` or `HEAD` that
/// is not a WebSocket upgrade (those go to the API, on the same `/`).
fn wants_page<B>(request: &HttpRequest<B>) -> Option<bool> {
    let head = match *request.method() {
        http::Method::GET => false,
        http::Method::HEAD => true,
        _ => return None,
    };
    let upgrade = request
        .headers()
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    (!upgrade).then_some(head)
}

/// HTTP middleware that serves a [`Site`] in front of the API.
#[derive(Debug, Clone)]
pub struct SiteLayer {
    site: Option<Arc<Site>>,
}

impl SiteLayer {
    /// With `None`, every request goes to the API.
    pub fn new(site: Option<Arc<Site>>) -> Self {
        SiteLayer { site }
    }
}

impl<S> tower::Layer<S> for SiteLayer {
    type Service = SiteService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SiteService {
            inner,
            site: self.site.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SiteService<S> {
    inner: S,
    site: Option<Arc<Site>>,
}

impl<S, B> tower::Service<HttpRequest<B>> for SiteService<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        if let (Some(site), Some(head)) = (&self.site, wants_page(&request)) {
            if let Some(page) = site.respond(request.uri().path(), head) {
                return Box::pin(async move { Ok(page) });
            }
        }
        Box::pin(self.inner.call(request))
    }
}

/// Serves `site` alone on `listener` until the task is dropped: pages for
/// `GET`/`HEAD`, 404 for other paths, 405 for other methods.
pub async fn serve(listener: TcpListener, site: Arc<Site>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    loop {
        // The semaphore is never closed.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let site = site.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |request: HttpRequest<_>| {
                let response = match wants_page(&request) {
                    Some(head) => site
                        .respond(request.uri().path(), head)
                        .unwrap_or_else(Site::not_found),
                    None => {
                        let mut r = http::Response::new(HttpBody::from("only GET and HEAD\n"));
                        *r.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
                        r
                    }
                };
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // A slow or stuck client is dropped with its connection.
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(CONNECTION_SECS_MAX),
                connection,
            )
            .await;
        });
    }
}

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    fn request(method: http::Method, upgrade: Option<&str>) -> HttpRequest<()> {
        let mut b = http::Request::builder().method(method).uri("/");
        if let Some(u) = upgrade {
            b = b.header(http::header::UPGRADE, u);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn pages_are_gets_and_heads_without_a_websocket_upgrade() {
        assert_eq!(wants_page(&request(http::Method::GET, None)), Some(false));
        assert_eq!(wants_page(&request(http::Method::HEAD, None)), Some(true));
        assert_eq!(wants_page(&request(http::Method::POST, None)), None);
        assert_eq!(
            wants_page(&request(http::Method::GET, Some("WebSocket"))),
            None
        );
    }

    #[test]
    fn only_the_sites_own_paths_are_served() {
        let site = Site::new(vec![SiteFile::new(
            "/a.js",
            "text/javascript",
            b"x".to_vec(),
        )]);
        assert!(site.respond("/a.js", false).is_some());
        assert!(site.respond("/a.js/", false).is_none());
        assert!(site.respond("/", false).is_none());
        let head = site.respond("/a.js", true).unwrap();
        assert_eq!(head.headers()[http::header::CONTENT_LENGTH], "1");
    }
}
