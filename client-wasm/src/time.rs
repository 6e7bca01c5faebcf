//! Time in the browser: a sleep that yields to the event loop, and the clock.

use js_sys::Promise;
use wasm_bindgen::JsCast;

/// Completes after `ms` milliseconds.
pub async fn sleep(ms: f64) {
    let delay = ms.clamp(0.0, f64::from(i32::MAX)) as i32;
    let promise = Promise::new(&mut |resolve, _reject| {
        let scheduled = js_sys::global()
            .unchecked_into::<web_sys::Window>()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, delay);
        if scheduled.is_err() {
            let _ = resolve.call0(&wasm_bindgen::JsValue::NULL);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}
