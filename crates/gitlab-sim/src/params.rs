//! Request parameters as Grape sees them: query string, form body and JSON body merged into one
//! map, with GitLab's coercions (`"true"`/`"1"` booleans, `a[]=x&a[]=y` arrays, `a,b` lists).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::{Map, Value};

use crate::error::ApiError;

#[derive(Debug, Default, Clone)]
pub struct Params {
    map: Map<String, Value>,
}

fn insert_pair(map: &mut Map<String, Value>, key: String, value: String) {
    if let Some(base) = key.strip_suffix("[]") {
        let entry = map
            .entry(base.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = entry {
            items.push(Value::String(value));
        }
    } else {
        map.insert(key, Value::String(value));
    }
}

impl Params {
    pub fn from_query(query: &str) -> Self {
        let mut map = Map::new();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        for (k, v) in pairs {
            insert_pair(&mut map, k, v);
        }
        Self { map }
    }

    pub fn value(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn str(&self, key: &str) -> Option<String> {
        match self.value(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn required_str(&self, key: &str) -> Result<String, ApiError> {
        self.str(key).ok_or_else(|| ApiError::missing(key))
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            // Grape coerces with dry-types' `Params::Bool`: exactly these spellings (clients
            // such as python-gitlab send `True`/`False`); an empty string counts as absent.
            Some(Value::String(s)) => match s.as_str() {
                "" => Ok(None),
                "1" | "on" | "On" | "ON" | "t" | "true" | "True" | "TRUE" | "T" | "y" | "yes"
                | "Yes" | "YES" | "Y" => Ok(Some(true)),
                "0" | "off" | "Off" | "OFF" | "f" | "false" | "False" | "FALSE" | "F" | "n"
                | "no" | "No" | "NO" | "N" => Ok(Some(false)),
                _ => Err(ApiError::invalid(key)),
            },
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(key)),
        }
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| ApiError::invalid(key)),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid(key)),
            Some(_) => Err(ApiError::invalid(key)),
        }
    }

    pub fn float(&self, key: &str) -> Result<Option<f64>, ApiError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid(key)),
            Some(_) => Err(ApiError::invalid(key)),
        }
    }

    /// An array, or a comma-separated string (GitLab accepts both for `scopes`).
    pub fn list(&self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| ApiError::invalid(key))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect(),
            )),
            Some(_) => Err(ApiError::invalid(key)),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut params = Self::from_query(req.uri().query().unwrap_or_default());
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"));
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::bad_request("Invalid request body"))?;
        if body.is_empty() {
            return Ok(params);
        }
        if is_json {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(obj)) => params.map.extend(obj),
                _ => return Err(ApiError::bad_request("Invalid JSON")),
            }
        } else {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
                .map_err(|_| ApiError::bad_request("Invalid form body"))?;
            for (k, v) in pairs {
                insert_pair(&mut params.map, k, v);
            }
        }
        Ok(params)
    }
}
