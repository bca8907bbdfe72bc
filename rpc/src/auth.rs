//! The optional bearer token for submitting methods.
//!
//! With a token configured, a call to any `ledger_submit*` method needs
//! `Authorization: Bearer <token>` on the HTTP request that carries it (for
//! WebSocket, on the upgrade request); read-only calls need nothing.
//!
//! The decision is taken on the calls the server dispatches, never on a
//! second reading of the body: [`SubmitGateLayer`] is RPC middleware, so it
//! sees each call as jsonrpsee parsed it, alone, inside a batch or as a
//! notification, with the very method name that will be looked up. A body
//! that another parser would read differently cannot slip past it. The token
//! is an HTTP header, so [`SubmitTokenLayer`] checks it on the HTTP request
//! and leaves [`SubmitAllowed`] in the request's extensions, which jsonrpsee
//! copies into every call parsed from that request. Without the mark the
//! gate refuses, so a server missing the HTTP layer refuses every submit.
//!
//! ```
//! use tally_rpc::auth::is_submitting;
//! assert!(is_submitting("ledger_submitTxBatch"));
//! assert!(!is_submitting("ledger_getTx"));
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use jsonrpsee::server::middleware::rpc::{
    Batch, BatchEntry, Extensions, MethodResponse, Notification, Request, RpcServiceT,
};
use jsonrpsee::types::Id;

use crate::errors;

/// The methods that change the ledger, and so need the token.
pub fn is_submitting(method: &str) -> bool {
    method.starts_with("ledger_submit")
}

/// Left in a request's extensions when it may call submitting methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitAllowed;

/// Left in a response's extensions when the gate refused it, so that the
/// HTTP layer answers 401.
#[derive(Debug, Clone, Copy)]
struct Refused;

/// True if `value` is exactly `Bearer <token>`, compared in constant time.
fn bearer_matches(value: &[u8], token: &str) -> bool {
    let expected = format!("Bearer {token}");
    let expected = expected.as_bytes();
    if value.len() != expected.len() {
        return false;
    }
    value
        .iter()
        .zip(expected)
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

/// HTTP middleware: marks requests that may submit (all of them when no
/// token is configured) and turns a refusal into HTTP 401.
#[derive(Debug, Clone)]
pub struct SubmitTokenLayer {
    token: Option<Arc<str>>,
}

impl SubmitTokenLayer {
    pub fn new(token: Option<String>) -> Self {
        SubmitTokenLayer {
            token: token.map(Arc::from),
        }
    }
}

impl<S> tower::Layer<S> for SubmitTokenLayer {
    type Service = SubmitToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SubmitToken {
            inner,
            token: self.token.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SubmitToken<S> {
    inner: S,
    token: Option<Arc<str>>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for SubmitToken<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let allowed = match &self.token {
            None => true,
            Some(token) => request
                .headers()
                .get(http::header::AUTHORIZATION)
                .is_some_and(|v| bearer_matches(v.as_bytes(), token)),
        };
        if allowed {
            request.extensions_mut().insert(SubmitAllowed);
        } else {
            request.extensions_mut().remove::<SubmitAllowed>();
        }
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            if response.extensions().get::<Refused>().is_some() {
                *response.status_mut() = http::StatusCode::UNAUTHORIZED;
            }
            Ok(response)
        })
    }
}

/// RPC middleware: refuses submitting calls from requests without
/// [`SubmitAllowed`]. A batch with such a call is refused whole: nothing in
/// it runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubmitGateLayer;

impl<S> tower::Layer<S> for SubmitGateLayer {
    type Service = SubmitGate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SubmitGate { inner }
    }
}

#[derive(Debug, Clone)]
pub struct SubmitGate<S> {
    inner: S,
}

fn refused(method: &str, extensions: &Extensions) -> bool {
    is_submitting(method) && extensions.get::<SubmitAllowed>().is_none()
}

fn refusal(id: Id<'_>) -> MethodResponse {
    let error = errors::error(
        errors::UNAUTHORIZED,
        "unauthorized",
        "submitting transactions to this node needs `Authorization: Bearer <token>`",
        serde_json::Value::Null,
    );
    let mut marks = Extensions::new();
    marks.insert(Refused);
    MethodResponse::error(id, error).with_extensions(marks)
}

impl<S> RpcServiceT for SubmitGate<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let inner = self.inner.clone();
        async move {
            if refused(request.method_name(), request.extensions()) {
                return refusal(request.id());
            }
            inner.call(request).await
        }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let inner = self.inner.clone();
        async move {
            let any_refused = batch.iter().any(|entry| match entry {
                Ok(BatchEntry::Call(r)) => refused(r.method_name(), r.extensions()),
                Ok(BatchEntry::Notification(n)) => refused(n.method_name(), n.extensions()),
                Err(_) => false,
            });
            if any_refused {
                return refusal(Id::Null);
            }
            inner.batch(batch).await
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        let inner = self.inner.clone();
        async move {
            if refused(n.method_name(), n.extensions()) {
                // A notification gets no answer, refused or not.
                let mut marks = Extensions::new();
                marks.insert(Refused);
                return MethodResponse::notification().with_extensions(marks);
            }
            inner.notification(n).await
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use std::sync::atomic::{AtomicUsize, Ordering};

    use tower::Layer;

    use super::*;

    /// Counts the calls and notifications that reach it.
    #[derive(Debug, Clone, Default)]
    struct Counting(Arc<AtomicUsize>);

    impl RpcServiceT for Counting {
        type MethodResponse = MethodResponse;
        type NotificationResponse = MethodResponse;
        type BatchResponse = MethodResponse;

        fn call<'a>(&self, r: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::future::ready(MethodResponse::response(
                r.id(),
                jsonrpsee::server::ResponsePayload::success(true),
                1024,
            ))
        }

        fn batch<'a>(&self, b: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
            self.0.fetch_add(b.len(), Ordering::SeqCst);
            std::future::ready(MethodResponse::notification())
        }

        fn notification<'a>(
            &self,
            _: Notification<'a>,
        ) -> impl Future<Output = MethodResponse> + Send + 'a {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::future::ready(MethodResponse::notification())
        }
    }

    fn call(method: &str, allowed: bool) -> Request<'static> {
        let mut r = Request::owned(method.to_string(), None, Id::Number(1));
        if allowed {
            r.extensions_mut().insert(SubmitAllowed);
        }
        r
    }

    fn notification(method: &str, allowed: bool) -> Notification<'static> {
        let mut n = Notification::new(method.to_string().into(), None);
        if allowed {
            n.extensions_mut().insert(SubmitAllowed);
        }
        n
    }

    fn gate() -> (SubmitGate<Counting>, Arc<AtomicUsize>) {
        let inner = Counting::default();
        let reached = inner.0.clone();
        (SubmitGateLayer.layer(inner), reached)
    }

    #[tokio::test]
    async fn a_submit_without_the_mark_never_reaches_the_server() {
        let (gate, reached) = gate();
        let rp = gate.call(call("ledger_submitTx", false)).await;
        assert!(rp.is_error());
        assert!(rp.extensions().get::<Refused>().is_some());
        let rp = gate
            .notification(notification("ledger_submitTxBatch", false))
            .await;
        assert!(rp.extensions().get::<Refused>().is_some());
        // One refused entry refuses the whole batch.
        let batch = Batch::from(vec![
            Ok(BatchEntry::Call(call("ledger_status", false))),
            Ok(BatchEntry::Notification(notification(
                "ledger_submitTx",
                false,
            ))),
        ]);
        let rp = gate.batch(batch).await;
        assert!(rp.is_error());
        assert_eq!(reached.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn reads_and_marked_submits_pass() {
        let (gate, reached) = gate();
        assert!(!gate.call(call("ledger_status", false)).await.is_error());
        assert!(!gate.call(call("ledger_submitTx", true)).await.is_error());
        gate.notification(notification("ledger_submitTx", true))
            .await;
        let mut batch = Batch::new();
        batch.push(call("ledger_status", false));
        batch.push(call("ledger_submitTxAndWait", true));
        gate.batch(batch).await;
        assert_eq!(reached.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn names_the_submitting_methods() {
        for m in [
            "ledger_submitTx",
            "ledger_submitTxAndWait",
            "ledger_submitTxBatch",
        ] {
            assert!(is_submitting(m), "{m}");
        }
        for m in [
            "ledger_getTx",
            "ledger_status",
            "rpc_methods",
            "ledger_subscribeTxStatus",
        ] {
            assert!(!is_submitting(m), "{m}");
        }
    }

    #[test]
    fn the_bearer_header_must_match_exactly() {
        assert!(bearer_matches(b"Bearer s3cret", "s3cret"));
        for v in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret ",
            b"bearer s3cret",
            b"s3cret",
            b"Bearer S3cret",
            b"",
        ] {
            assert!(!bearer_matches(v, "s3cret"), "{v:?}");
        }
    }
}
