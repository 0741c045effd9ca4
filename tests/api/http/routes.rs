//! The route table against the contract: every RPC of `proto/` carries a
//! `google.api.http` annotation, every annotated binding has a route and every route an
//! RPC; the OpenAPI document served at `/openapi.json` lists every route.

use std::collections::BTreeSet;

use prost_reflect::{DescriptorPool, Value as Reflected};
use tenancy::http::routes::ROUTES;

use super::Http;
use crate::helpers::{Backend, spawn_app};

/// (method, path template, gRPC path) of every annotated binding in `proto/`, read from
/// the descriptor set the server embeds (extension options kept), not from build.rs.
fn annotated_bindings() -> (BTreeSet<(String, String, String)>, Vec<String>) {
    let pool = DescriptorPool::decode(tenancy::pb::FILE_DESCRIPTOR_SET).expect("descriptors");
    let http = pool
        .get_extension_by_name("google.api.http")
        .expect("google.api.http is imported");
    let mut bindings = BTreeSet::new();
    let mut unannotated = Vec::new();
    for service in pool.services().filter(|s| s.package_name() == "tenancy.v1") {
        for method in service.methods() {
            let rpc = format!("/{}/{}", service.full_name(), method.name());
            let options = method.options();
            if !options.has_extension(&http) {
                unannotated.push(rpc);
                continue;
            }
            let Reflected::Message(rule) = options.get_extension(&http).into_owned() else {
                panic!("{rpc}: not a message");
            };
            let mut rules = vec![rule.clone()];
            if let Some(Reflected::List(extra)) = rule
                .get_field_by_name("additional_bindings")
                .map(|v| v.into_owned())
            {
                rules.extend(extra.into_iter().filter_map(|v| match v {
                    Reflected::Message(m) => Some(m),
                    _ => None,
                }));
            }
            for rule in rules {
                let (verb, path) = ["get", "put", "post", "delete", "patch"]
                    .into_iter()
                    .find(|verb| rule.has_field_by_name(verb))
                    .map(|verb| {
                        let path = rule.get_field_by_name(verb).unwrap();
                        (verb.to_uppercase(), path.as_str().unwrap().to_string())
                    })
                    .unwrap_or_else(|| panic!("{rpc}: a rule without a pattern"));
                bindings.insert((verb, path, rpc.clone()));
            }
        }
    }
    (bindings, unannotated)
}

#[test]
fn every_rpc_is_annotated_and_every_binding_has_exactly_one_route() {
    let (annotated, unannotated) = annotated_bindings();
    assert!(
        unannotated.is_empty(),
        "RPCs without a google.api.http annotation: {unannotated:?}"
    );
    let routes: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.template.to_string(),
                r.rpc.to_string(),
            )
        })
        .collect();
    assert_eq!(routes.len(), ROUTES.len(), "a route is listed twice");
    let without_route: Vec<_> = annotated.difference(&routes).collect();
    let without_rpc: Vec<_> = routes.difference(&annotated).collect();
    assert!(
        without_route.is_empty(),
        "annotated RPCs without a route: {without_route:?}"
    );
    assert!(
        without_rpc.is_empty(),
        "routes without an annotated RPC: {without_rpc:?}"
    );
    // Templates live under /v1; no two routes share a method and a template.
    let mut seen = BTreeSet::new();
    for route in ROUTES {
        assert!(route.template.starts_with("/v1/"), "{route:?}");
        assert!(
            seen.insert((route.method, route.template)),
            "two RPCs on {} {}",
            route.method,
            route.template
        );
    }
}

async fn the_openapi_document_lists_every_route(backend: Backend) {
    let app = spawn_app(backend).await;
    // No key needed, like the JWKS.
    let answer = Http::new(&app).with_key(None).get("/openapi.json").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let document = answer.body;
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");
    let mut operations = BTreeSet::new();
    for route in ROUTES {
        let operation = &paths
            .get(route.template)
            .unwrap_or_else(|| panic!("{} is not in the document", route.template))
            [route.method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{} {} is not in the document",
            route.method,
            route.template
        );
        operations.insert(operation["operationId"].as_str().unwrap().to_string());
    }
    let listed: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        listed,
        ROUTES.len(),
        "the document lists operations no route serves"
    );
    assert_eq!(operations.len(), ROUTES.len(), "operation ids are unique");
    // Every $ref resolves.
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let name = reference
            .split('"')
            .next()
            .unwrap()
            .trim_start_matches("#/components/schemas/");
        assert!(
            document["components"]["schemas"].get(name).is_some(),
            "{name} is referenced, not defined"
        );
    }
}

crate::on_both_backends!(the_openapi_document_lists_every_route);
