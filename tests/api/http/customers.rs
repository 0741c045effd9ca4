//! Customers, their members and invitations over HTTP/JSON: the proto3 JSON mapping
//! both ways (lowerCamelCase out, both spellings in, enums by name, Timestamps,
//! `Struct` metadata) and the resource paths of SPEC §14.

use serde_json::{Value, json};

use super::{Http, create_customer};
use crate::helpers::{Backend, spawn_app, unique_email};

async fn a_customer_round_trips_through_create_get_list_update_and_delete(backend: Backend) {
    let app = spawn_app(backend).await;
    let http = Http::new(&app);
    let email = unique_email("http-customer");

    let created = create_customer(&http, &email).await;
    let id = created["uuid"].as_str().expect("a uuid").to_string();
    // Out: lowerCamelCase, enums by name, Timestamps in RFC 3339, Struct as JSON.
    assert_eq!(created["email"], email.as_str());
    assert_eq!(created["firstName"], "João");
    assert_eq!(created["lastName"], "Araújo");
    assert_eq!(created["customerType"], "CUSTOMER_TYPE_PERSONAL");
    assert_eq!(created["status"], "CUSTOMER_STATUS_ACTIVE");
    assert!(created.get("first_name").is_none());
    let create_time = created["createTime"].as_str().expect("a createTime");
    assert!(
        chrono::DateTime::parse_from_rfc3339(create_time).is_ok(),
        "{create_time}"
    );
    assert_eq!(
        created["customerMetadata"],
        json!({"plan": "pro", "seats": 3.0, "tags": ["a", "b"], "nested": {"on": true}})
    );

    // The same customer over gRPC.
    let over_grpc = crate::customers::get_by(
        &app,
        tenancy_client::pb::get_customer_request::Lookup::CustomerId(id.clone()),
    )
    .await
    .expect("get over gRPC");
    assert_eq!(over_grpc.email, email);

    let got = http.get(&format!("/v1/customers/{id}")).await.ok("get");
    assert_eq!(got["customer"], created);
    // The ULID names it too, and the lookup binding finds it by email.
    let by_ulid = http
        .get(&format!(
            "/v1/customers/{}",
            created["ulid"].as_str().unwrap()
        ))
        .await
        .ok("get by ulid");
    assert_eq!(by_ulid["customer"]["uuid"], id.as_str());
    let by_email = http
        .get(&format!("/v1/customers:lookup?email={}", urlencode(&email)))
        .await
        .ok("lookup by email");
    assert_eq!(by_email["customer"]["uuid"], id.as_str());

    let listed = http
        .get("/v1/customers?status=CUSTOMER_STATUS_ACTIVE&pageSize=10")
        .await
        .ok("list");
    let ids: Vec<&str> = listed["customers"]
        .as_array()
        .expect("customers")
        .iter()
        .map(|c| c["uuid"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&id.as_str()), "{listed}");

    let updated = http
        .patch(
            &format!("/v1/customers/{id}"),
            json!({
                "customer": {"firstName": "Joana", "customerMetadata": {"plan": "team"}},
                "updateMask": "firstName,customerMetadata",
                "etag": created["etag"],
            }),
        )
        .await
        .ok("update")["customer"]
        .clone();
    assert_eq!(updated["firstName"], "Joana");
    assert_eq!(updated["customerMetadata"], json!({"plan": "team"}));
    assert_ne!(updated["etag"], created["etag"]);

    // A stale etag: ABORTED, HTTP's 412, nothing changed.
    let stale = http
        .patch(
            &format!("/v1/customers/{id}"),
            json!({"customer": {"firstName": "X"}, "updateMask": "firstName", "etag": created["etag"]}),
        )
        .await;
    assert_eq!(stale.status, 412, "{stale:?}");
    assert_eq!(stale.error_status(), "ABORTED");
    assert_eq!(stale.reason().as_deref(), Some("ETAG_MISMATCH"));
    let unchanged = http.get(&format!("/v1/customers/{id}")).await.ok("get");
    assert_eq!(unchanged["customer"]["firstName"], "Joana");

    // Deleting an active customer is a failed precondition: 400.
    let refused = http.delete(&format!("/v1/customers/{id}")).await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(refused.error_status(), "FAILED_PRECONDITION");
}

async fn members_and_invitations_have_their_paths(backend: Backend) {
    let app = spawn_app(backend).await;
    let http = Http::new(&app);
    let customer = create_customer(&http, &unique_email("http-members")).await;
    let id = customer["uuid"].as_str().unwrap();
    let user = http
        .post(
            "/v1/users",
            json!({"user": {"email": unique_email("http-member"), "firstName": "Ana", "lastName": "Silva"}}),
        )
        .await
        .ok("create user")["user"]
        .clone();
    let user_id = user["uuid"].as_str().unwrap();

    let added = http
        .post(
            &format!("/v1/customers/{id}/users"),
            json!({"userId": user_id, "permissions": ["billing.read"]}),
        )
        .await
        .ok("add member");
    assert_eq!(added["membership"]["userId"], user_id, "{added}");

    let members = http
        .get(&format!("/v1/customers/{id}/users"))
        .await
        .ok("list members");
    assert!(members.to_string().contains(user_id), "{members}");

    let updated = http
        .patch(
            &format!("/v1/customers/{id}/users/{user_id}"),
            json!({"permissions": ["billing.read", "billing.write"]}),
        )
        .await
        .ok("update member");
    assert_eq!(
        updated["membership"]["permissions"],
        json!(["billing.read", "billing.write"])
    );

    let memberships = http
        .get(&format!("/v1/users/{user_id}/memberships"))
        .await
        .ok("memberships");
    assert!(memberships.to_string().contains(id), "{memberships}");

    let access = http
        .post(
            &format!("/v1/users/{user_id}:checkAccess"),
            json!({"customerId": id, "permission": "billing.write"}),
        )
        .await
        .ok("check access");
    assert_eq!(access["allowed"], true, "{access}");

    let removed = http
        .delete(&format!("/v1/customers/{id}/users/{user_id}"))
        .await;
    assert_eq!(removed.status, 200, "{removed:?}");

    let invited = http
        .post(
            &format!("/v1/customers/{id}/invitations"),
            json!({"email": unique_email("http-invitee"), "permissions": ["billing.read"]}),
        )
        .await
        .ok("invite");
    let invitation_id = invitation_id(&invited);
    let listed = http
        .get(&format!(
            "/v1/customers/{id}/invitations?status=INVITATION_STATUS_PENDING"
        ))
        .await
        .ok("list invitations");
    assert!(listed.to_string().contains(&invitation_id), "{listed}");
    let resent = http
        .post(
            &format!("/v1/customers/{id}/invitations/{invitation_id}:resend"),
            json!({}),
        )
        .await;
    assert_eq!(resent.status, 200, "{resent:?}");
    let revoked = http
        .post(
            &format!("/v1/customers/{id}/invitations/{invitation_id}:revoke"),
            json!({}),
        )
        .await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
}

fn invitation_id(answer: &Value) -> String {
    let invitation = &answer["invitation"];
    invitation["uuid"]
        .as_str()
        .or_else(|| invitation["id"].as_str())
        .unwrap_or_else(|| panic!("an invitation id in {answer}"))
        .to_string()
}

pub fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

crate::on_both_backends!(
    a_customer_round_trips_through_create_get_list_update_and_delete,
    members_and_invitations_have_their_paths,
);
