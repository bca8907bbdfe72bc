//! The RPC server: binds the port and serves the `ledger_*` methods
//! ([`crate::methods`]) with the limits from the node's config, CORS and
//! the submit gate ([`crate::auth`]).

use std::net::SocketAddr;
use std::sync::Arc;

use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{BatchRequestConfig, RandomStringIdProvider, ServerConfig, ServerHandle};
use serde_json::json;

use crate::api::LedgerApiServer;
use crate::backend::Backend;
use crate::methods::{method_names, LedgerRpc};

/// Limits and options of the server.
#[derive(Debug, Clone)]
pub struct RpcSettings {
    pub listen: SocketAddr,
    pub max_body_bytes: u32,
    pub max_connections: u32,
    pub max_subscriptions_per_connection: u32,
    pub max_batch_len: u32,
    pub cors_origins: Vec<String>,
    /// With a token, submitting methods need `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// Pages served at their paths for `GET` (the block explorer at `/`).
    pub site: Option<Arc<crate::site::Site>>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot serve JSON-RPC on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("invalid RPC setting: {0}")]
    Config(String),
}

/// Characters in a subscription id. Ids are strings, so every client reads
/// and sends back the same value: a numeric id of 16 digits is beyond what
/// JavaScript keeps exact as a number, and a client that reads it as a
/// string (the TypeScript client does) would unsubscribe with a string.
const SUBSCRIPTION_ID_CHARS: usize = 16;

/// Starts the server; returns the bound address and a handle that stops it.
pub async fn start<B: Backend>(
    settings: &RpcSettings,
    backend: Arc<B>,
) -> Result<(SocketAddr, ServerHandle), RpcError> {
    let mut module = LedgerRpc::new(backend.clone()).into_rpc();
    module
        .merge(crate::raw::RawApiServer::into_rpc(LedgerRpc::new(backend)))
        .map_err(|e| RpcError::Config(e.to_string()))?;
    let names = method_names(&module);
    module
        .register_method("rpc_methods", move |_, _, _| json!({ "methods": names }))
        .map_err(|e| RpcError::Config(e.to_string()))?;
    let config = ServerConfig::builder()
        .max_request_body_size(settings.max_body_bytes)
        .max_response_body_size(64 << 20)
        .max_connections(settings.max_connections)
        .max_subscriptions_per_connection(settings.max_subscriptions_per_connection)
        .set_batch_request_config(BatchRequestConfig::Limit(settings.max_batch_len))
        .set_id_provider(RandomStringIdProvider::new(SUBSCRIPTION_ID_CHARS))
        .build();
    let cors = if settings.cors_origins.is_empty() {
        None
    } else {
        let origins = settings
            .cors_origins
            .iter()
            .map(|o| {
                o.parse::<http::HeaderValue>()
                    .map_err(|e| RpcError::Config(format!("cors origin {o:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Some(
            tower_http::cors::CorsLayer::new()
                .allow_origin(tower_http::cors::AllowOrigin::list(origins))
                .allow_methods([http::Method::POST])
                .allow_headers([http::header::CONTENT_TYPE]),
        )
    };
    // The token is read from the HTTP request; the decision is taken on
    // each call the server parsed from it (see `auth`).
    let http_middleware = tower::ServiceBuilder::new()
        .option_layer(cors)
        .layer(crate::auth::SubmitTokenLayer::new(
            settings.auth_token.clone(),
        ))
        .layer(crate::site::SiteLayer::new(settings.site.clone()));
    let rpc_middleware = RpcServiceBuilder::new().layer(crate::auth::SubmitGateLayer);
    let server = jsonrpsee::server::Server::builder()
        .set_config(config)
        .set_http_middleware(http_middleware)
        .set_rpc_middleware(rpc_middleware)
        .build(settings.listen)
        .await
        .map_err(|e| RpcError::Bind {
            addr: settings.listen,
            reason: e.to_string(),
        })?;
    let addr = server.local_addr().map_err(|e| RpcError::Bind {
        addr: settings.listen,
        reason: e.to_string(),
    })?;
    Ok((addr, server.start(module)))
}
