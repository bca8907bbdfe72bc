//! The optional bearer token for submitting methods.
//!
//! With a token configured, an HTTP request that calls any `ledger_submit*`
//! method (alone or in a batch) must carry `Authorization: Bearer <token>`;
//! read-only calls need nothing. A WebSocket connection can submit at any
//! time, so with a token configured the upgrade request must carry it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use jsonrpsee::server::HttpBody;

use crate::errors;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Adds the token check in front of the server.
#[derive(Debug, Clone)]
pub struct SubmitAuthLayer {
    token: Option<Arc<str>>,
    max_body: usize,
}

impl SubmitAuthLayer {
    pub fn new(token: Option<String>, max_body: usize) -> Self {
        SubmitAuthLayer {
            token: token.map(Arc::from),
            max_body,
        }
    }
}

impl<S> tower::Layer<S> for SubmitAuthLayer {
    type Service = SubmitAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SubmitAuth {
            inner,
            token: self.token.clone(),
            max_body: self.max_body,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SubmitAuth<S> {
    inner: S,
    token: Option<Arc<str>>,
    max_body: usize,
}

/// True if the JSON-RPC body calls a submitting method.
pub fn calls_submit(body: &[u8]) -> bool {
    fn is_submit(v: &serde_json::Value) -> bool {
        v.get("method")
            .and_then(|m| m.as_str())
            .is_some_and(|m| m.starts_with("ledger_submit"))
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(calls)) => calls.iter().any(is_submit),
        Ok(v) => is_submit(&v),
        // The server answers a parse error; nothing is executed.
        Err(_) => false,
    }
}

fn reply(status: http::StatusCode, message: &str) -> http::Response<HttpBody> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": errors::UNAUTHORIZED, "message": message, "data": { "kind": "unauthorized" } }
    });
    let mut response = http::Response::new(HttpBody::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

impl<S, B> tower::Service<http::Request<B>> for SubmitAuth<S>
where
    S: tower::Service<http::Request<HttpBody>, Response = http::Response<HttpBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<HttpBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone is the one polled ready next time; this one serves now.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let token = self.token.clone();
        let max_body = self.max_body;
        Box::pin(async move {
            let Some(token) = token else {
                return inner.call(request.map(HttpBody::new)).await;
            };
            let expected = format!("Bearer {token}");
            let authorized = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .is_some_and(|v| v.as_bytes() == expected.as_bytes());
            if authorized {
                return inner.call(request.map(HttpBody::new)).await;
            }
            if request.headers().contains_key(http::header::UPGRADE) {
                return Ok(reply(
                    http::StatusCode::UNAUTHORIZED,
                    "this node requires a bearer token for WebSocket connections",
                ));
            }
            let (parts, body) = request.into_parts();
            let bytes = match http_body_util::Limited::new(body, max_body).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return Ok(reply(
                        http::StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large",
                    ));
                }
            };
            if calls_submit(&bytes) {
                return Ok(reply(
                    http::StatusCode::UNAUTHORIZED,
                    "submitting transactions to this node needs `Authorization: Bearer <token>`",
                ));
            }
            inner
                .call(http::Request::from_parts(
                    parts,
                    HttpBody::from(bytes.to_vec()),
                ))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::calls_submit;

    #[test]
    fn finds_submit_calls_alone_in_batches_and_escaped() {
        assert!(calls_submit(
            br#"{"jsonrpc":"2.0","id":1,"method":"ledger_submitTx","params":["0x00"]}"#
        ));
        assert!(calls_submit(
            br#"[{"method":"ledger_status"},{"method":"ledger_submitTxBatch"}]"#
        ));
        assert!(calls_submit(br#"{"method":"ledger_submi\u0074Tx"}"#));
        assert!(!calls_submit(
            br#"{"method":"ledger_getTx","params":["ledger_submitTx"]}"#
        ));
        assert!(!calls_submit(b"not json"));
    }
}
