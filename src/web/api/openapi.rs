//! `GET /openapi.json`: the API described in OpenAPI 3.1, built from
//! [`ENDPOINTS`](super::ENDPOINTS), so every registered route is in it.

use actix_web::HttpResponse;
use serde_json::{Map, Value, json};

use super::ENDPOINTS;
use super::guard::Read;
use crate::web::error::ApiError;

/// The OpenAPI document for the API mounted at `base` (the scope's path plus `/api`).
pub(crate) fn openapi(base: &str) -> Value {
    let mut paths = Map::new();
    for endpoint in ENDPOINTS {
        let mut parameters: Vec<Value> = path_parameters(endpoint.path)
            .map(|name| {
                json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
            })
            .collect();
        parameters.extend(endpoint.query.iter().map(|(name, description)| {
            json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } })
        }));
        let mut responses = Map::new();
        for (status, description) in endpoint.replies {
            responses.insert(
                status.to_string(),
                json!({ "description": description, "content": { "application/json": {} } }),
            );
        }
        let mut operation = json!({
            "summary": endpoint.summary,
            "parameters": parameters,
            "responses": responses,
        });
        if endpoint.method == "POST" {
            let properties: Map<String, Value> = endpoint
                .body
                .iter()
                .map(|(name, description)| {
                    (name.to_string(), json!({ "description": description }))
                })
                .collect();
            operation["requestBody"] = json!({
                "required": false,
                "description": "a JSON object (an empty body means every field at its default); `Content-Type: application/json` is required",
                "content": { "application/json": { "schema": { "type": "object", "properties": properties, "additionalProperties": false } } },
            });
            for (status, description) in [
                (403, "the authorization hook does not grant acting"),
                (415, "the request is not `Content-Type: application/json`"),
            ] {
                operation["responses"][status.to_string()] = json!({ "description": description });
            }
        } else {
            operation["responses"]["403"] =
                json!({ "description": "the authorization hook does not grant reading" });
        }
        let item = paths
            .entry(endpoint.path.to_owned())
            .or_insert_with(|| json!({}));
        item[endpoint.method.to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cronlease admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Read and act on a cronlease scheduler. Errors are `{error, parameter}` JSON objects. POSTs must be `Content-Type: application/json`, which a cross-site HTML form cannot send: that is the CSRF defence. Execution views never carry a lease token.",
        },
        "servers": [{ "url": base }],
        "paths": paths,
    })
}

fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

/// `GET /openapi.json`.
pub(crate) async fn document(Read(state): Read) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(openapi(&format!("{}/api", state.base))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_described_with_its_path_parameters() {
        let doc = openapi("/cronlease/api");
        for endpoint in ENDPOINTS {
            let operation = &doc["paths"][endpoint.path][endpoint.method.to_ascii_lowercase()];
            assert!(
                operation.is_object(),
                "{} {}",
                endpoint.method,
                endpoint.path
            );
            for name in path_parameters(endpoint.path) {
                assert!(
                    operation["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path"),
                    "{} lacks {name}",
                    endpoint.path
                );
            }
        }
    }
}
