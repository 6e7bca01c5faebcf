//! The page's options, read by hand from a plain object: every field
//! optional, an unknown field or a wrong type refused with its name.
//! Browser only (it reads JavaScript objects).

#![cfg(target_arch = "wasm32")]

use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test as test, wasm_bindgen_test_configure};
use wtchat_client::options::Options;

wasm_bindgen_test_configure!(run_in_browser);

fn object(source: &str) -> JsValue {
    js_sys::JSON::parse(source).expect("valid JSON")
}

#[test]
fn nothing_given_is_every_default() {
    let options = Options::from_js(&JsValue::UNDEFINED).unwrap();
    assert_eq!(
        (options.head_start_ms, options.remember_transport, options.force_websocket),
        (400.0, true, false)
    );
    assert!(options.server.is_none() && options.token.is_none());
}

#[test]
fn given_fields_are_read_and_the_rest_keep_their_defaults() {
    let options = Options::from_js(&object(
        r#"{"server": "http://127.0.0.1:1", "forceWebSocket": true, "headStartMs": 50,
            "certificateHashes": ["ab", "cd"], "token": "t"}"#,
    ))
    .unwrap();
    assert_eq!(options.server.as_deref(), Some("http://127.0.0.1:1"));
    assert!(options.force_websocket);
    assert_eq!(options.head_start_ms, 50.0);
    assert_eq!(options.webtransport_timeout_ms, 5_000.0);
    assert_eq!(options.certificate_hashes, Some(vec!["ab".to_owned(), "cd".to_owned()]));
    assert_eq!(options.token.as_deref(), Some("t"));
}

#[test]
fn an_unknown_field_or_a_wrong_type_is_refused_by_name() {
    let unknown = Options::from_js(&object(r#"{"forceWebsocket": true}"#)).unwrap_err();
    assert!(unknown.contains("forceWebsocket"), "{unknown}");
    let wrong = Options::from_js(&object(r#"{"headStartMs": "soon"}"#)).unwrap_err();
    assert!(wrong.contains("headStartMs must be a number"), "{wrong}");
    let hashes = Options::from_js(&object(r#"{"certificateHashes": [1]}"#)).unwrap_err();
    assert!(hashes.contains("certificateHashes"), "{hashes}");
}
