//! Tokens that refresh inside a session.
//!
//! The server says when the session's token is about to expire
//! (`TokenExpiring`). The client then asks the page for a fresh one, through
//! the provider the page registered with `onTokenExpiring` (which may return
//! the token or a promise of it, say from a `fetch` to the app's backend),
//! and sends it (`RefreshToken`). The session goes on with no reconnect;
//! the fresh token is also what the next reconnect presents.

use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use wtchat_protocol::{ClientMessage, TokenExpiring, TokenRefreshed};

use crate::client::{Client, Inner};
use crate::events::TokenEvent;

#[wasm_bindgen]
impl Client {
    /// Registers `provider`, called when the server says the token is about
    /// to expire; it returns a fresh token for the same user, or a promise
    /// of one. Without a provider the session ends when the token expires.
    #[wasm_bindgen(js_name = onTokenExpiring)]
    pub fn on_token_expiring(&self, provider: js_sys::Function) {
        self.inner.state.borrow_mut().token_provider = Some(provider);
    }

    /// Sends a fresh token now, for pages that renew tokens on their own
    /// schedule; it is also the one the next reconnect presents. Returns
    /// whether it went out (false while disconnected: the reconnect uses it).
    #[wasm_bindgen(js_name = refreshToken)]
    pub fn refresh_token(&self, token: &str) -> bool {
        self.inner.use_token(token)
    }
}

impl Inner {
    /// Takes `token` as the session's and sends it to the server.
    fn use_token(&self, token: &str) -> bool {
        self.state.borrow_mut().token = Some(token.to_owned());
        self.send(ClientMessage::RefreshToken { token: token.to_owned() })
    }

    /// The server asked for a fresh token: tell the page, and ask its
    /// provider for one.
    pub(crate) fn token_expiring(self: &Rc<Self>, notice: &TokenExpiring) {
        self.emit("token", &TokenEvent { event: "expiring", expires_in_ms: notice.expires_in_ms as f64 });
        let Some(provider) = self.state.borrow().token_provider.clone() else { return };
        let inner = self.clone();
        spawn_local(async move {
            match fresh_token(&provider).await {
                Ok(token) => {
                    inner.use_token(&token);
                }
                Err(why) => inner.error("TOKEN_PROVIDER_FAILED", why, None),
            }
        });
    }

    /// The server took the fresh token.
    pub(crate) fn token_refreshed(&self, fresh: &TokenRefreshed) {
        self.emit("token", &TokenEvent { event: "refreshed", expires_in_ms: fresh.expires_in_ms as f64 });
    }
}

/// What the page's provider gives: a string, or a promise of one.
async fn fresh_token(provider: &js_sys::Function) -> Result<String, String> {
    let describe = |error: JsValue| format!("the token provider failed: {}", crate::link::describe(&error));
    let mut value = provider.call0(&JsValue::NULL).map_err(describe)?;
    if value.is_instance_of::<js_sys::Promise>() {
        value = JsFuture::from(js_sys::Promise::from(value)).await.map_err(describe)?;
    }
    value
        .as_string()
        .filter(|token| !token.is_empty())
        .ok_or_else(|| "the token provider gave no token".to_owned())
}
