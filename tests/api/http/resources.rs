//! Accounts, users and sessions over HTTP/JSON, and the JWKS at `/v1/jwks`.

use serde_json::json;

use super::{Http, create_customer, customers::urlencode};
use crate::helpers::{Backend, GOOD_PASSWORD, spawn_app, unique_email};

async fn accounts_have_their_paths(backend: Backend) {
    let app = spawn_app(backend).await;
    let http = Http::new(&app);
    let customer = create_customer(&http, &unique_email("http-accounts")).await;
    let customer_id = customer["uuid"].as_str().unwrap();

    let account = http
        .post(
            &format!("/v1/customers/{customer_id}/accounts"),
            json!({"account": {"name": "Main", "serviceType": "SERVICE_TYPE_WEB_MEETING",
                               "accountMetadata": {"region": "eu"}}}),
        )
        .await
        .ok("create account")["account"]
        .clone();
    let id = account["uuid"].as_str().unwrap();
    assert_eq!(account["customerId"], customer_id);
    assert_eq!(account["serviceType"], "SERVICE_TYPE_WEB_MEETING");
    assert_eq!(account["accountMetadata"], json!({"region": "eu"}));
    assert_eq!(account["ownerUserId"], customer["ownerUserId"]);

    let got = http.get(&format!("/v1/accounts/{id}")).await.ok("get");
    assert_eq!(got["account"], account);
    let listed = http
        .get(&format!("/v1/accounts?customerId={customer_id}"))
        .await
        .ok("list");
    assert_eq!(listed["accounts"][0]["uuid"], id);
    let limits = http
        .get(&format!("/v1/accounts/{id}/effectiveLimits"))
        .await;
    assert_eq!(limits.status, 200, "{limits:?}");
    let renamed = http
        .patch(
            &format!("/v1/accounts/{id}"),
            json!({"account": {"name": "Renamed"}, "updateMask": "name"}),
        )
        .await
        .ok("update")["account"]
        .clone();
    assert_eq!(renamed["name"], "Renamed");
    let members = http
        .get(&format!("/v1/accounts/{id}/users"))
        .await
        .ok("members");
    assert!(
        members
            .to_string()
            .contains(customer["ownerUserId"].as_str().unwrap())
    );
    let invited = http
        .post(
            &format!("/v1/accounts/{id}/invitations"),
            json!({"email": unique_email("acct-invitee"), "permissions": []}),
        )
        .await;
    assert_eq!(invited.status, 200, "{invited:?}");
    let invitations = http.get(&format!("/v1/accounts/{id}/invitations")).await;
    assert_eq!(invitations.status, 200, "{invitations:?}");
}

async fn users_sign_in_and_sessions_have_their_paths(backend: Backend) {
    let app = spawn_app(backend).await;
    let http = Http::new(&app);
    let email = unique_email("http-user");
    let user = http
        .post(
            "/v1/users",
            json!({"user": {"email": email, "first_name": "Ana", "lastName": "Silva"},
                   "password": GOOD_PASSWORD}),
        )
        .await
        .ok("create user")["user"]
        .clone();
    let user_id = user["uuid"].as_str().unwrap();
    assert_eq!(user["firstName"], "Ana", "both spellings in: {user}");
    assert_eq!(user["hasPassword"], true);

    let by_email = http
        .get(&format!("/v1/users:lookup?email={}", urlencode(&email)))
        .await
        .ok("lookup");
    assert_eq!(by_email["user"]["uuid"], user_id);
    let listed = http
        .get(&format!("/v1/users?query={}", urlencode(&email)))
        .await
        .ok("list");
    assert_eq!(listed["users"][0]["uuid"], user_id);

    let authenticated = http
        .post(
            "/v1/users:authenticate",
            json!({"email": email, "password": GOOD_PASSWORD}),
        )
        .await
        .ok("authenticate");
    assert_eq!(authenticated["user"]["uuid"], user_id, "{authenticated}");
    let wrong = http
        .post(
            "/v1/users:authenticate",
            json!({"email": email, "password": "wrong password"}),
        )
        .await;
    assert_eq!(wrong.status, 401, "{wrong:?}");

    let session = http
        .post(
            "/v1/sessions",
            json!({"email": email, "password": GOOD_PASSWORD}),
        )
        .await
        .ok("sign in");
    let access_token = session["accessToken"].as_str().expect("an access token");
    let session_id = session["session"]["uuid"].as_str().unwrap();
    let refreshed = http
        .post(
            "/v1/sessions:refresh",
            json!({"refreshToken": session["refreshToken"]}),
        )
        .await
        .ok("refresh");
    assert_ne!(refreshed["refreshToken"], session["refreshToken"]);
    let sessions = http
        .get(&format!("/v1/users/{user_id}/sessions"))
        .await
        .ok("list sessions");
    assert_eq!(sessions["sessions"][0]["uuid"], session_id);

    // The JWKS over the API verifies the token, and matches the well-known document.
    let jwks = http.with_key(None).get("/v1/jwks").await.ok("jwks");
    let well_known = http
        .with_key(None)
        .get("/.well-known/jwks.json")
        .await
        .ok("well-known");
    assert_eq!(jwks["keys"], well_known["keys"]);
    let keys: tenancy::signing::Jwks = serde_json::from_value(well_known).expect("a JWKS");
    assert!(crate::sessions::verify_now(&keys, access_token).is_ok());

    let revoked = http.delete(&format!("/v1/sessions/{session_id}")).await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    let deleted = http.delete(&format!("/v1/users/{user_id}")).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    let gone = http.get(&format!("/v1/users/{user_id}")).await;
    assert_eq!(gone.status, 404, "{gone:?}");
}

crate::on_both_backends!(
    accounts_have_their_paths,
    users_sign_in_and_sessions_have_their_paths,
);
