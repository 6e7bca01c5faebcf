//! Plain JavaScript objects, written and read by hand: the event payloads
//! the page gets, and the options and the server's plan the client reads.
//! A generic serde bridge did the same at a cost of more wasm than all of
//! these objects together (its serializer, its deserializer, and the float
//! formatting of its error messages), which every visitor downloads.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// What can be handed to the page.
pub trait ToJs {
    /// The value as the page sees it.
    fn to_js(&self) -> JsValue;
}

/// An object being written.
pub struct Obj(Object);

impl Default for Obj {
    fn default() -> Self {
        Self::new()
    }
}

impl Obj {
    /// An empty object.
    pub fn new() -> Self {
        Self(Object::new())
    }

    /// Sets `key`.
    pub fn set(self, key: &str, value: impl Into<JsValue>) -> Self {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&self.0, &JsValue::from_str(key), &value.into());
        self
    }

    /// Sets `key` when there is a value; an absent one is left out.
    pub fn maybe(self, key: &str, value: Option<impl Into<JsValue>>) -> Self {
        match value {
            Some(value) => self.set(key, value),
            None => self,
        }
    }

    /// The object.
    pub fn done(self) -> JsValue {
        self.0.into()
    }
}

/// A number the protocol counts in `u64`, as JavaScript holds it (exactly,
/// below 2^53, which the server keeps its numbers under).
pub fn number(value: u64) -> JsValue {
    JsValue::from_f64(value as f64)
}

/// An array of values.
pub fn array<'a, T: ToJs + 'a>(items: impl IntoIterator<Item = &'a T>) -> JsValue {
    items.into_iter().map(ToJs::to_js).collect::<Array>().into()
}

/// `object[key]`, or `None` when it is undefined or null.
pub fn field(object: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(object, &JsValue::from_str(key))
        .ok()
        .filter(|value| !value.is_undefined() && !value.is_null())
}

/// A string field.
pub fn string(object: &JsValue, key: &str) -> Result<Option<String>, String> {
    field(object, key).map(|value| value.as_string().ok_or_else(|| wrong(key, "a string"))).transpose()
}

/// A boolean field.
pub fn boolean(object: &JsValue, key: &str) -> Result<Option<bool>, String> {
    field(object, key).map(|value| value.as_bool().ok_or_else(|| wrong(key, "true or false"))).transpose()
}

/// A number field.
pub fn float(object: &JsValue, key: &str) -> Result<Option<f64>, String> {
    field(object, key).map(|value| value.as_f64().ok_or_else(|| wrong(key, "a number"))).transpose()
}

/// An array field, each element read by `item`.
pub fn list<T>(
    object: &JsValue,
    key: &str,
    item: impl Fn(JsValue) -> Option<T>,
    what: &str,
) -> Result<Option<Vec<T>>, String> {
    let Some(value) = field(object, key) else { return Ok(None) };
    let array = value.dyn_into::<Array>().map_err(|_| wrong(key, what))?;
    array
        .iter()
        .map(|element| item(element).ok_or_else(|| wrong(key, what)))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// Every key of `object` that is not among `known`.
pub fn unknown_keys(object: &JsValue, known: &[&str]) -> Vec<String> {
    let Some(object) = object.dyn_ref::<Object>() else { return Vec::new() };
    Object::keys(object)
        .iter()
        .filter_map(|key| key.as_string())
        .filter(|key| !known.contains(&key.as_str()))
        .collect()
}

fn wrong(key: &str, what: &str) -> String {
    format!("{key} must be {what}")
}
