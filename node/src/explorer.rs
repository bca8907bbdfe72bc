//! The block explorer: a page built from `clients/typescript/explorer` into
//! `node/assets/explorer` (committed, so a Rust-only build needs no
//! Node.js) and compiled into the binary. The node serves it at `/` on its
//! RPC port, or on an address of its own (`[explorer]` in config.toml).
//!
//! `/config.json` tells the page where the API is: `{"rpc": null}` on the
//! RPC port (the page's own origin), or the RPC URL on its own address.

use std::net::SocketAddr;
use std::sync::Arc;

use tally_rpc::site::{Site, SiteFile};

use crate::config::ExplorerConfig;

const INDEX_HTML: &[u8] = include_bytes!("../assets/explorer/index.html");
const EXPLORER_JS: &[u8] = include_bytes!("../assets/explorer/explorer.js");
const EXPLORER_CSS: &[u8] = include_bytes!("../assets/explorer/explorer.css");

/// The explorer's pages; `rpc_url` is `None` when they are served by the
/// RPC server itself.
pub fn site(rpc_url: Option<&str>) -> Site {
    let config = serde_json::json!({ "rpc": rpc_url }).to_string();
    let html = "text/html; charset=utf-8";
    Site::new(vec![
        SiteFile::new("/", html, INDEX_HTML.to_vec()),
        SiteFile::new("/index.html", html, INDEX_HTML.to_vec()),
        SiteFile::new(
            "/explorer.js",
            "text/javascript; charset=utf-8",
            EXPLORER_JS.to_vec(),
        ),
        SiteFile::new(
            "/explorer.css",
            "text/css; charset=utf-8",
            EXPLORER_CSS.to_vec(),
        ),
        SiteFile::new("/config.json", "application/json", config.into_bytes()),
    ])
}

/// Where the explorer goes, from the config and the RPC server's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Off,
    /// At `/` on the RPC port.
    OnRpcPort,
    /// On `listen`, calling the RPC at `rpc_url`.
    Own {
        listen: SocketAddr,
        rpc_url: String,
    },
}

impl Placement {
    pub fn from_config(
        config: &ExplorerConfig,
        rpc_listen: SocketAddr,
    ) -> Result<Self, std::net::AddrParseError> {
        if !config.enabled {
            return Ok(Placement::Off);
        }
        let Some(listen) = &config.listen else {
            return Ok(Placement::OnRpcPort);
        };
        Ok(Placement::Own {
            listen: listen.parse()?,
            rpc_url: config
                .rpc_url
                .clone()
                .unwrap_or_else(|| format!("http://{rpc_listen}")),
        })
    }

    /// The site the RPC server serves in front of the API.
    pub fn on_rpc_port(&self) -> Option<Arc<Site>> {
        (*self == Placement::OnRpcPort).then(|| Arc::new(site(None)))
    }
}

/// The origin a browser sends from `addr` (for the RPC server's CORS).
pub fn origin_of(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn the_page_and_its_assets_are_compiled_in() {
        let site = site(None);
        for path in ["/", "/explorer.js", "/explorer.css"] {
            assert!(!site.file(path).unwrap().body.is_empty(), "{path}");
        }
        let config = site.file("/config.json").unwrap();
        assert_eq!(&*config.body, br#"{"rpc":null}"#);
        let own = super::site(Some("http://127.0.0.1:9"));
        assert_eq!(
            &*own.file("/config.json").unwrap().body,
            br#"{"rpc":"http://127.0.0.1:9"}"#
        );
    }

    #[test]
    fn placement_follows_the_config() {
        let rpc: SocketAddr = "127.0.0.1:26657".parse().unwrap();
        let mut c = ExplorerConfig::default();
        assert_eq!(Placement::from_config(&c, rpc), Ok(Placement::OnRpcPort));
        c.listen = Some("127.0.0.1:8080".into());
        assert_eq!(
            Placement::from_config(&c, rpc),
            Ok(Placement::Own {
                listen: "127.0.0.1:8080".parse().unwrap(),
                rpc_url: "http://127.0.0.1:26657".into()
            })
        );
        c.enabled = false;
        assert_eq!(Placement::from_config(&c, rpc), Ok(Placement::Off));
    }
}
