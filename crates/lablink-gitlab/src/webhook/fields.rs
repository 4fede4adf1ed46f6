//! Reading fields out of an untrusted JSON value: a missing or mistyped field is a reason, never
//! a panic.

use serde_json::Value;

/// The value at a path of object keys, if every step exists.
pub(super) fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |current, key| current.get(key))
}

fn missing(path: &[&str], what: &str) -> String {
    format!("{} is missing or not {what}", path.join("."))
}

pub(super) fn req_str(value: &Value, path: &[&str]) -> Result<String, String> {
    opt_str(value, path).ok_or_else(|| missing(path, "a string"))
}

/// A string field; `null`, absent and empty all read as `None`.
pub(super) fn opt_str(value: &Value, path: &[&str]) -> Option<String> {
    at(value, path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub(super) fn req_i64(value: &Value, path: &[&str]) -> Result<i64, String> {
    opt_i64(value, path).ok_or_else(|| missing(path, "an integer"))
}

pub(super) fn opt_i64(value: &Value, path: &[&str]) -> Option<i64> {
    at(value, path).and_then(Value::as_i64)
}

pub(super) fn opt_bool(value: &Value, path: &[&str]) -> Option<bool> {
    at(value, path).and_then(Value::as_bool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_nested_fields_and_names_missing_ones() {
        let v = json!({"a": {"b": "x", "n": 3, "t": true, "e": ""}});
        assert_eq!(req_str(&v, &["a", "b"]).unwrap(), "x");
        assert_eq!(opt_str(&v, &["a", "e"]), None);
        assert_eq!(req_i64(&v, &["a", "n"]).unwrap(), 3);
        assert_eq!(opt_bool(&v, &["a", "t"]), Some(true));
        assert_eq!(
            req_str(&v, &["a", "n"]).unwrap_err(),
            "a.n is missing or not a string"
        );
        assert!(req_i64(&json!([1, 2]), &["a"]).is_err());
    }
}
