//! UserService tests: identifiers, profile CRUD, etags, request ids, events, secrets.
//! Listing is in `users/listing.rs`, passwords and sign-in in `users/sign_in.rs`.

mod batches;
mod listing;
mod recovery;
pub(crate) mod second_factor;
mod sign_in;

use futures::future::join_all;
use tenancy::domain::event::{Event, EventResource};
use tenancy_client::pb;
use tonic::{Code, Status};

use crate::helpers::{
    Backend, GOOD_PASSWORD, TestApp, error_reason, spawn_app, unique_email, violated_fields,
};

/// A valid profile with `email`.
pub fn new_user(email: &str) -> pb::User {
    pb::User {
        email: email.into(),
        first_name: "Ana".into(),
        last_name: "Silva".into(),
        ..Default::default()
    }
}

pub fn create_request(user: pb::User, password: &str, request_id: &str) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        user: Some(user),
        password: password.into(),
        request_id: request_id.into(),
    }
}

/// Creates a user through the API and returns it.
pub async fn create(app: &TestApp, email: &str, password: &str) -> pb::User {
    app.users
        .clone()
        .create_user(create_request(new_user(email), password, ""))
        .await
        .unwrap_or_else(|status| panic!("create {email}: {status:?}"))
        .into_inner()
        .user
        .expect("a created user")
}

pub async fn get(app: &TestApp, id: &str) -> Result<pb::User, Status> {
    get_by(app, pb::get_user_request::Lookup::UserId(id.into())).await
}

pub async fn get_by(
    app: &TestApp,
    lookup: pb::get_user_request::Lookup,
) -> Result<pb::User, Status> {
    Ok(app
        .users
        .clone()
        .get_user(pb::GetUserRequest {
            lookup: Some(lookup),
        })
        .await?
        .into_inner()
        .user
        .expect("a user"))
}

pub async fn update(
    app: &TestApp,
    id: &str,
    etag: &str,
    paths: &[&str],
    user: pb::User,
) -> Result<pb::User, Status> {
    Ok(app
        .users
        .clone()
        .update_user(pb::UpdateUserRequest {
            user_id: id.into(),
            user: Some(user),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
            etag: etag.into(),
        })
        .await?
        .into_inner()
        .user
        .expect("a user"))
}

pub async fn delete(app: &TestApp, id: &str, etag: &str) -> Result<(), Status> {
    app.users
        .clone()
        .delete_user(pb::DeleteUserRequest {
            user_id: id.into(),
            etag: etag.into(),
        })
        .await
        .map(|_| ())
}

/// Every event in the log, oldest first.
pub async fn events(app: &TestApp) -> Vec<Event> {
    app.log_after(0, 10_000).await.expect("events")
}

/// `(kind, resource uuid)` of every event.
pub async fn event_kinds(app: &TestApp) -> Vec<(String, String)> {
    events(app)
        .await
        .into_iter()
        .map(|e| (e.kind, e.resource_id.to_string()))
        .collect()
}

/// Every user, through `ListUsers` with the largest page.
pub async fn all_users(app: &TestApp) -> Vec<pb::User> {
    let response = app
        .users
        .clone()
        .list_users(pb::ListUsersRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list users")
        .into_inner();
    assert!(response.next_page_token.is_empty(), "more than one page");
    response.users
}

fn random_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Panics on a code that is never a valid answer to a caller's request.
pub fn assert_not_internal(status: &Status) {
    assert!(
        !matches!(status.code(), Code::Internal | Code::Unknown),
        "got {:?}: {status:?}",
        status.code()
    );
}

// ---------------------------------------------------------------------------------------
// CreateUser

async fn creating_a_user_returns_both_ids_and_hides_the_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("Ana.MixedCase");
    let created = create(&app, &email, GOOD_PASSWORD).await;

    let uuid = uuid::Uuid::parse_str(&created.uuid).expect("uuid is a UUID");
    assert_eq!(uuid.get_version_num(), 7, "ids are UUIDv7");
    assert_eq!(
        created.uuid,
        uuid.hyphenated().to_string(),
        "canonical form"
    );
    let ulid = ulid::Ulid::from_string(&created.ulid).expect("ulid is a ULID");
    assert_eq!(ulid.0, uuid.as_u128(), "the ULID is the same 128 bits");
    assert_eq!(created.ulid, ulid.to_string(), "canonical ULID spelling");

    assert_eq!(created.email, email.to_lowercase());
    assert_ne!(created.email, email, "the test email has upper case");
    assert_eq!(created.first_name, "Ana");
    assert_eq!(created.last_name, "Silva");
    assert_eq!(created.language, "en", "the default language");
    assert_eq!(created.status, pb::UserStatus::Active as i32);
    assert!(created.has_password);
    assert!(created.last_login_time.is_none());
    assert!(created.create_time.is_some());
    assert_eq!(created.create_time, created.update_time);
    assert!(!created.etag.is_empty());
    let shown = format!("{created:?}");
    assert!(!shown.contains(GOOD_PASSWORD) && !shown.contains("argon2"));

    for id in [&created.uuid, &created.ulid] {
        let read = get(&app, id).await.expect("get by either id");
        assert_eq!(read, created);
    }
}

async fn ids_of_successive_users_sort_by_creation_in_both_forms(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut users = Vec::new();
    for n in 0..5 {
        users.push(create(&app, &unique_email(&format!("order{n}")), "").await);
    }
    for pair in users.windows(2) {
        assert!(pair[0].uuid < pair[1].uuid, "uuids sort by creation");
        assert!(pair[0].ulid < pair[1].ulid, "ulids sort by creation");
    }
}

async fn a_language_is_stored_in_canonical_case(backend: Backend) {
    let app = spawn_app(backend).await;
    for (given, stored) in [
        ("pt-br", "pt-BR"),
        ("ZH-hant-tw", "zh-Hant-TW"),
        ("EN", "en"),
    ] {
        let mut user = new_user(&unique_email("lang"));
        user.language = given.into();
        let created = app
            .users
            .clone()
            .create_user(create_request(user, "", ""))
            .await
            .expect("create")
            .into_inner()
            .user
            .unwrap();
        assert_eq!(created.language, stored, "{given}");
    }
    for bad in ["en_US", "not a tag", "x"] {
        let mut user = new_user(&unique_email("lang"));
        user.language = bad.into();
        let status = app
            .users
            .clone()
            .create_user(create_request(user, "", ""))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(violated_fields(&status), ["user.language"], "{bad}");
    }
}

async fn every_invalid_field_is_reported(backend: Backend) {
    let app = spawn_app(backend).await;
    let status = app
        .users
        .clone()
        .create_user(create_request(
            pb::User {
                email: "nope".into(),
                language: "not a tag".into(),
                ..Default::default()
            },
            "password",
            "",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "password",
            "user.email",
            "user.first_name",
            "user.language",
            "user.last_name"
        ]
    );
    // A missing `user` message is every profile field missing, not a crash.
    let status = app
        .users
        .clone()
        .create_user(pb::CreateUserRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        ["user.email", "user.first_name", "user.last_name"]
    );
    assert!(all_users(&app).await.is_empty());
    assert!(events(&app).await.is_empty());
}

async fn emails_and_names_are_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    // A 64-character local part and labels of at most 63: only the total is too long.
    let email_of = |last_label: usize| {
        format!(
            "{}@{}.{}.{}.com",
            "a".repeat(64),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(last_label)
        )
    };
    let (longest_email, long_email) = (email_of(57), email_of(58));
    assert_eq!((longest_email.len(), long_email.len()), (254, 255));
    for (email, first, last, violated) in [
        (long_email.as_str(), "Ana", "Silva", vec!["user.email"]),
        ("Ana <ana@example.com>", "Ana", "Silva", vec!["user.email"]),
        ("a b@example.com", "Ana", "Silva", vec!["user.email"]),
        ("ana@example.com", "   ", "Silva", vec!["user.first_name"]),
        (
            "ana@example.com",
            "Ana",
            &"x".repeat(101),
            vec!["user.last_name"],
        ),
    ] {
        let status = app
            .users
            .clone()
            .create_user(create_request(
                pb::User {
                    email: email.into(),
                    first_name: first.into(),
                    last_name: last.into(),
                    ..Default::default()
                },
                "",
                "",
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{email}");
        assert_eq!(violated_fields(&status), violated, "{email}");
    }
    let created = app
        .users
        .clone()
        .create_user(create_request(
            pb::User {
                email: format!("  {}  ", longest_email.to_uppercase()),
                first_name: "  Ana  ".into(),
                last_name: "é".repeat(100),
                ..Default::default()
            },
            "",
            "",
        ))
        .await
        .expect("a 254-character email and trimmed names are fine")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(created.email, longest_email);
    assert_eq!(created.first_name, "Ana");
}

async fn a_duplicate_email_is_already_exists_and_writes_no_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("dup");
    let first = create(&app, &email, "").await;
    let before = events(&app).await.len();
    for other in [email.clone(), email.to_uppercase(), format!(" {email} ")] {
        let status = app
            .users
            .clone()
            .create_user(create_request(new_user(&other), GOOD_PASSWORD, ""))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{other}");
        assert_eq!(error_reason(&status).as_deref(), Some("EMAIL_TAKEN"));
    }
    assert_eq!(
        events(&app).await.len(),
        before,
        "a failed create writes no event"
    );
    let users = all_users(&app).await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0], first);
}

async fn concurrent_creates_with_one_email_yield_one_user_and_already_exists(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("race");
    let attempts = (0..16).map(|n| {
        let mut client = app.users.clone();
        // Some with their own request ids, some without, in mixed case.
        let request_id = if n % 2 == 0 {
            random_request_id()
        } else {
            String::new()
        };
        let email = if n % 3 == 0 {
            email.to_uppercase()
        } else {
            email.clone()
        };
        async move {
            client
                .create_user(create_request(new_user(&email), "", &request_id))
                .await
        }
    });
    let results = join_all(attempts).await;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(response) => created.push(response.into_inner().user.unwrap()),
            Err(status) => {
                assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
                assert_eq!(error_reason(&status).as_deref(), Some("EMAIL_TAKEN"));
            }
        }
    }
    assert_eq!(created.len(), 1, "exactly one create wins");
    assert_eq!(all_users(&app).await, created);
    let kinds = event_kinds(&app).await;
    assert_eq!(
        kinds,
        [("user.created".to_string(), created[0].uuid.clone())]
    );
}

// ---------------------------------------------------------------------------------------
// request_id

async fn a_retry_with_the_same_request_id_returns_the_first_user_and_creates_nothing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let request = create_request(
        new_user(&unique_email("retry")),
        GOOD_PASSWORD,
        &random_request_id(),
    );
    let first = app
        .users
        .clone()
        .create_user(request.clone())
        .await
        .expect("first")
        .into_inner()
        .user
        .unwrap();
    for _ in 0..2 {
        let again = app
            .users
            .clone()
            .create_user(request.clone())
            .await
            .expect("a retry succeeds")
            .into_inner()
            .user
            .unwrap();
        assert_eq!(again, first, "the retry returns the first result");
    }
    assert_eq!(all_users(&app).await, std::slice::from_ref(&first));
    assert_eq!(
        event_kinds(&app).await,
        [("user.created".to_string(), first.uuid.clone())]
    );
    // The same request id as a hyphen-less UUID names the same request.
    let mut simple = request.clone();
    simple.request_id = uuid::Uuid::parse_str(&request.request_id)
        .unwrap()
        .simple()
        .to_string();
    let again = app.users.clone().create_user(simple).await.unwrap();
    assert_eq!(again.into_inner().user.unwrap().uuid, first.uuid);
    assert_eq!(all_users(&app).await.len(), 1);
}

async fn a_request_id_reused_with_another_body_is_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    let request_id = random_request_id();
    let email = unique_email("reuse");
    let request = create_request(new_user(&email), GOOD_PASSWORD, &request_id);
    app.users
        .clone()
        .create_user(request.clone())
        .await
        .unwrap();

    let mut other_email = request.clone();
    other_email.user.as_mut().unwrap().email = unique_email("other");
    let mut other_name = request.clone();
    other_name.user.as_mut().unwrap().first_name = "Beatriz".into();
    // A password is not part of the body a request id is bound to (it never enters
    // the stored fingerprint): see hardening::secrets.
    for changed in [other_email, other_name] {
        let status = app.users.clone().create_user(changed).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["request_id"]);
    }
    assert_eq!(all_users(&app).await.len(), 1);
    assert_eq!(events(&app).await.len(), 1);
}

async fn a_malformed_request_id_is_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    for bad in ["not-a-uuid", "12345", "01ARZ3NDEKTSV4RRFFQ69G5FA!"] {
        let status = app
            .users
            .clone()
            .create_user(create_request(new_user(&unique_email("bad-rid")), "", bad))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(violated_fields(&status), ["request_id"], "{bad}");
    }
    assert!(all_users(&app).await.is_empty());
}

async fn concurrent_retries_with_one_request_id_create_one_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut expected_events = Vec::new();
    for round in 0..3 {
        // No password, so nothing queues the retries: they reach the store together.
        let request = create_request(
            new_user(&unique_email(&format!("retries{round}"))),
            "",
            &random_request_id(),
        );
        let results = join_all((0..20).map(|_| {
            let mut client = app.users.clone();
            let request = request.clone();
            async move { client.create_user(request).await }
        }))
        .await;
        let users: Vec<pb::User> = results
            .into_iter()
            .map(|r| r.expect("every retry succeeds").into_inner().user.unwrap())
            .collect();
        assert!(users.iter().all(|u| u == &users[0]), "one answer for all");
        expected_events.push(("user.created".to_string(), users[0].uuid.clone()));
    }
    assert_eq!(all_users(&app).await.len(), 3);
    assert_eq!(event_kinds(&app).await, expected_events);
}

// ---------------------------------------------------------------------------------------
// GetUser

async fn a_user_can_be_read_by_uuid_ulid_or_email_in_any_case(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("read");
    let created = create(&app, &email, "").await;
    let _other = create(&app, &unique_email("other"), "").await;
    let uuid = uuid::Uuid::parse_str(&created.uuid).unwrap();
    use pb::get_user_request::Lookup;
    for lookup in [
        Lookup::UserId(created.uuid.clone()),
        Lookup::UserId(created.uuid.to_uppercase()),
        Lookup::UserId(uuid.simple().to_string()),
        Lookup::UserId(created.ulid.clone()),
        Lookup::UserId(created.ulid.to_lowercase()),
        Lookup::Email(email.clone()),
        Lookup::Email(email.to_uppercase()),
        Lookup::Email(format!("  {email} ")),
    ] {
        let shown = format!("{lookup:?}");
        let read = get_by(&app, lookup).await.expect(&shown);
        assert_eq!(read, created, "{shown}");
    }
}

async fn reading_an_unknown_user_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    create(&app, &unique_email("someone"), "").await;
    let unknown = uuid::Uuid::now_v7();
    use pb::get_user_request::Lookup;
    for lookup in [
        Lookup::UserId(unknown.to_string()),
        Lookup::UserId(ulid::Ulid(unknown.as_u128()).to_string()),
        Lookup::Email(unique_email("nobody")),
    ] {
        let status = get_by(&app, lookup).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    }
}

async fn a_malformed_user_id_or_an_empty_lookup_is_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    use pb::get_user_request::Lookup;
    for (lookup, field) in [
        (Lookup::UserId("not-an-id".into()), "user_id"),
        (Lookup::UserId(String::new()), "user_id"),
        (
            Lookup::UserId("01ARZ3NDEKTSV4RRFFQ69G5FA!".into()),
            "user_id",
        ),
        (Lookup::Email("not-an-email".into()), "email"),
    ] {
        let status = get_by(&app, lookup).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), [field]);
    }
    let status = app
        .users
        .clone()
        .get_user(pb::GetUserRequest { lookup: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status).len(), 1);
}

// ---------------------------------------------------------------------------------------
// UpdateUser

async fn an_update_without_a_mask_is_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, &unique_email("mask"), "").await;
    let mut changed = created.clone();
    changed.first_name = "Changed".into();
    for mask in [None, Some(prost_types::FieldMask { paths: vec![] })] {
        let status = app
            .users
            .clone()
            .update_user(pb::UpdateUserRequest {
                user_id: created.uuid.clone(),
                user: Some(changed.clone()),
                update_mask: mask,
                etag: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["update_mask"]);
    }
    assert_eq!(get(&app, &created.uuid).await.unwrap(), created);
}

async fn an_unknown_mask_path_is_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, &unique_email("mask"), "").await;
    let mut changed = created.clone();
    changed.first_name = "Changed".into();
    for paths in [
        &["nickname"][..],
        &["first_name", "password_hash"],
        &["*", "first_name"],
    ] {
        let status = update(&app, &created.uuid, "", paths, changed.clone())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{paths:?}");
        assert_eq!(violated_fields(&status), ["update_mask"], "{paths:?}");
    }
    assert_eq!(get(&app, &created.uuid).await.unwrap(), created);
}

async fn a_partial_mask_changes_only_the_named_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, &unique_email("partial"), "").await;
    let everything_else = pb::User {
        uuid: uuid::Uuid::now_v7().to_string(),
        email: unique_email("ignored"),
        first_name: "Beatriz".into(),
        last_name: "Costa".into(),
        language: "de".into(),
        status: pb::UserStatus::Inactive as i32,
        has_password: true,
        etag: "W/\"99\"".into(),
        ..Default::default()
    };
    let updated = update(
        &app,
        &created.ulid,
        "",
        &["first_name", "create_time"],
        everything_else,
    )
    .await
    .expect("update");
    let mut expected = created.clone();
    expected.first_name = "Beatriz".into();
    expected.update_time = updated.update_time;
    expected.etag = updated.etag.clone();
    assert_eq!(updated, expected, "only first_name changed");
    assert_ne!(updated.etag, created.etag);
    let time = |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| (t.seconds, t.nanos));
    assert!(time(&updated.update_time) > time(&created.update_time));
    assert_eq!(get(&app, &created.uuid).await.unwrap(), updated);
}

async fn a_star_mask_replaces_every_mutable_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut original = new_user(&unique_email("star"));
    original.language = "fr".into();
    let created = app
        .users
        .clone()
        .create_user(create_request(original, GOOD_PASSWORD, ""))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    let new_email = unique_email("Replaced");
    let replacement = pb::User {
        email: new_email.clone(),
        first_name: "Carla".into(),
        last_name: "Souza".into(),
        language: String::new(),
        status: pb::UserStatus::Inactive as i32,
        ..Default::default()
    };
    let updated = update(&app, &created.uuid, &created.etag, &["*"], replacement)
        .await
        .expect("replace");
    assert_eq!(updated.uuid, created.uuid);
    assert_eq!(updated.ulid, created.ulid);
    assert_eq!(updated.email, new_email.to_lowercase());
    assert_eq!(updated.first_name, "Carla");
    assert_eq!(updated.last_name, "Souza");
    assert_eq!(updated.language, "en", "an empty language is the default");
    assert_eq!(updated.status, pb::UserStatus::Inactive as i32);
    assert!(updated.has_password, "the password is not a profile field");
    assert_eq!(updated.create_time, created.create_time);
    assert_eq!(get(&app, &created.uuid).await.unwrap(), updated);

    // `*` without a status would blank a required field.
    let mut no_status = updated.clone();
    no_status.status = pb::UserStatus::Unspecified as i32;
    let status = update(&app, &created.uuid, "", &["*"], no_status)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["user.status"]);
}

async fn the_etag_changes_on_every_update_and_a_stale_one_is_aborted(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, &unique_email("etag"), "").await;
    let mut etags = vec![created.etag.clone()];
    let mut current = created.clone();
    for name in ["B", "C", "C"] {
        let mut changed = current.clone();
        changed.first_name = name.into();
        current = update(&app, &current.uuid, &current.etag, &["first_name"], changed)
            .await
            .expect("update with the current etag");
        assert!(!etags.contains(&current.etag), "a new etag every update");
        etags.push(current.etag.clone());
    }
    for stale in &etags[..etags.len() - 1] {
        let mut changed = current.clone();
        changed.last_name = "Stale".into();
        let status = update(&app, &current.uuid, stale, &["last_name"], changed)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Aborted);
        assert_eq!(error_reason(&status).as_deref(), Some("ETAG_MISMATCH"));
    }
    assert_eq!(
        get(&app, &created.uuid).await.unwrap(),
        current,
        "unchanged"
    );
    let updates = events(&app)
        .await
        .into_iter()
        .filter(|e| e.kind == "user.updated")
        .count();
    assert_eq!(updates, 3, "an aborted update writes no event");
}

async fn concurrent_updates_with_one_etag_let_exactly_one_through(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, &unique_email("cas"), "").await;
    let results = join_all((0..8).map(|n| {
        let mut changed = created.clone();
        changed.first_name = format!("Writer{n}");
        let app = &app;
        let (id, etag) = (created.uuid.clone(), created.etag.clone());
        async move { update(app, &id, &etag, &["first_name"], changed).await }
    }))
    .await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for result in &results {
        if let Err(status) = result {
            assert_eq!(status.code(), Code::Aborted, "{status:?}");
        }
    }
    assert_eq!(&get(&app, &created.uuid).await.unwrap(), winners[0]);
}

async fn a_malformed_etag_is_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, &unique_email("badetag"), "").await;
    for bad in ["7", "\"1\"", "W/\"x\"", "garbage"] {
        let status = update(&app, &created.uuid, bad, &["first_name"], created.clone())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(violated_fields(&status), ["etag"], "{bad}");
        let status = delete(&app, &created.uuid, bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(violated_fields(&status), ["etag"], "{bad}");
    }
    assert_eq!(get(&app, &created.uuid).await.unwrap(), created);
}

async fn an_update_reports_every_invalid_field_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let bad = pb::User {
        email: "not-an-email".into(),
        first_name: String::new(),
        language: "en_US".into(),
        ..Default::default()
    };
    let status = update(
        &app,
        "not-an-id",
        "garbage",
        &["email", "first_name", "language", "status", "nickname"],
        bad,
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "etag",
            "update_mask",
            "user.email",
            "user.first_name",
            "user.language",
            "user.status",
            "user_id"
        ]
    );
}

async fn an_unspecified_status_in_the_mask_is_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, &unique_email("status"), "").await;
    let mut changed = created.clone();
    changed.status = pb::UserStatus::Unspecified as i32;
    let status = update(&app, &created.uuid, "", &["status"], changed.clone())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["user.status"]);
    changed.status = 42;
    let status = update(&app, &created.uuid, "", &["status"], changed)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["user.status"]);
    assert_eq!(get(&app, &created.uuid).await.unwrap(), created);
}

async fn changing_the_email_to_a_taken_one_is_already_exists(backend: Backend) {
    let app = spawn_app(backend).await;
    let taken = unique_email("taken");
    create(&app, &taken, "").await;
    let created = create(&app, &unique_email("mover"), "").await;
    let before = events(&app).await.len();
    let mut changed = created.clone();
    changed.email = taken.to_uppercase();
    let status = update(&app, &created.uuid, &created.etag, &["email"], changed)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(error_reason(&status).as_deref(), Some("EMAIL_TAKEN"));
    assert_eq!(get(&app, &created.uuid).await.unwrap(), created);
    assert_eq!(events(&app).await.len(), before);

    // Its own email in another case is not a conflict.
    let mut same = created.clone();
    same.email = created.email.to_uppercase();
    let updated = update(&app, &created.uuid, &created.etag, &["email"], same)
        .await
        .expect("own email");
    assert_eq!(updated.email, created.email);
}

async fn updating_or_deleting_an_unknown_user_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let status = update(
        &app,
        &unknown,
        "",
        &["first_name"],
        new_user("x@example.com"),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = delete(&app, &unknown, "").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(events(&app).await.is_empty());
}

// ---------------------------------------------------------------------------------------
// DeleteUser

async fn a_deleted_user_is_gone(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("gone");
    let kept = create(&app, &unique_email("kept"), "").await;
    let created = create(&app, &email, GOOD_PASSWORD).await;
    delete(&app, &created.ulid, &created.etag)
        .await
        .expect("delete");
    assert_eq!(
        get(&app, &created.uuid).await.unwrap_err().code(),
        Code::NotFound
    );
    let by_email = get_by(&app, pb::get_user_request::Lookup::Email(email.clone())).await;
    assert_eq!(by_email.unwrap_err().code(), Code::NotFound);
    assert_eq!(all_users(&app).await, [kept]);
    assert_eq!(
        delete(&app, &created.uuid, "").await.unwrap_err().code(),
        Code::NotFound
    );
    // The email is free again.
    let again = create(&app, &email, "").await;
    assert_ne!(again.uuid, created.uuid);
}

async fn deleting_with_a_stale_etag_is_aborted_and_keeps_the_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, &unique_email("keep"), "").await;
    let mut changed = created.clone();
    changed.first_name = "Newer".into();
    let updated = update(&app, &created.uuid, "", &["first_name"], changed)
        .await
        .unwrap();
    let status = delete(&app, &created.uuid, &created.etag)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(error_reason(&status).as_deref(), Some("ETAG_MISMATCH"));
    assert_eq!(get(&app, &created.uuid).await.unwrap(), updated);
    delete(&app, &created.uuid, &updated.etag)
        .await
        .expect("the current etag deletes");
}

// ---------------------------------------------------------------------------------------
// Events and secrets

async fn every_change_writes_its_event_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email("events");
    let created = create(&app, &email, GOOD_PASSWORD).await;
    let id = created.uuid.clone();
    // Failed changes write nothing.
    let _ = app
        .users
        .clone()
        .create_user(create_request(new_user(&email), "", ""))
        .await
        .unwrap_err();
    let _ = update(&app, &id, "W/\"999\"", &["first_name"], created.clone())
        .await
        .unwrap_err();

    let mut changed = created.clone();
    changed.first_name = "Eventful".into();
    update(&app, &id, "", &["first_name"], changed)
        .await
        .unwrap();
    let mut users = app.users.clone();
    users
        .set_password(pb::SetPasswordRequest {
            user_id: id.clone(),
            password: "operator reset passphrase 1".into(),
        })
        .await
        .unwrap();
    users
        .change_password(pb::ChangePasswordRequest {
            user_id: id.clone(),
            current_password: "operator reset passphrase 1".into(),
            new_password: "user chosen passphrase 2".into(),
        })
        .await
        .unwrap();
    let final_etag = get(&app, &id).await.unwrap().etag;
    delete(&app, &id, &final_etag).await.unwrap();

    let log = events(&app).await;
    let kinds: Vec<_> = log.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "user.created",
            "user.updated",
            "user.password_changed",
            "user.password_changed",
            "user.deleted"
        ]
    );
    for pair in log.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence + 1, "gap-free sequences");
    }
    for event in &log {
        assert_eq!(event.resource_id.to_string(), id);
        assert!(event.customer_id.is_none());
    }
    let EventResource::User(after_update) = &log[1].resource else {
        panic!("a user event carries the user");
    };
    assert_eq!(
        after_update.first_name, "Eventful",
        "the state after the change"
    );
    let EventResource::User(after_reset) = &log[2].resource else {
        panic!("a user event carries the user");
    };
    assert!(after_reset.revision > after_update.revision);
}

async fn no_response_or_event_ever_contains_a_password_or_its_hash(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = "first secret passphrase 11";
    let second = "second secret passphrase 22";
    let third = "third secret passphrase 33";
    let email = unique_email("secret");
    let mut users = app.users.clone();
    let mut responses = Vec::new();
    let created = users
        .create_user(create_request(
            new_user(&email),
            first,
            &random_request_id(),
        ))
        .await
        .unwrap()
        .into_inner();
    responses.push(format!("{created:?}"));
    let id = created.user.unwrap().uuid;
    responses.push(format!(
        "{:?}",
        users
            .get_user(pb::GetUserRequest {
                lookup: Some(pb::get_user_request::Lookup::UserId(id.clone())),
            })
            .await
            .unwrap()
    ));
    responses.push(format!(
        "{:?}",
        users
            .list_users(pb::ListUsersRequest::default())
            .await
            .unwrap()
    ));
    responses.push(format!(
        "{:?}",
        users
            .authenticate_user(pb::AuthenticateUserRequest {
                email: email.clone(),
                password: first.into(),
                totp_code: String::new(),
            })
            .await
            .unwrap()
    ));
    responses.push(format!(
        "{:?}",
        users
            .set_password(pb::SetPasswordRequest {
                user_id: id.clone(),
                password: second.into(),
            })
            .await
            .unwrap()
    ));
    responses.push(format!(
        "{:?}",
        users
            .change_password(pb::ChangePasswordRequest {
                user_id: id.clone(),
                current_password: second.into(),
                new_password: third.into(),
            })
            .await
            .unwrap()
    ));
    // Errors neither: a wrong password, a policy failure that quotes the email.
    responses.push(format!(
        "{:?}",
        users
            .authenticate_user(pb::AuthenticateUserRequest {
                email: email.clone(),
                password: first.into(),
                totp_code: String::new(),
            })
            .await
            .unwrap_err()
    ));
    responses.push(format!(
        "{:?}",
        users
            .change_password(pb::ChangePasswordRequest {
                user_id: id.clone(),
                current_password: first.into(),
                new_password: "fourth secret passphrase 44".into(),
            })
            .await
            .unwrap_err()
    ));
    responses.push(format!(
        "{:?}",
        users
            .set_password(pb::SetPasswordRequest {
                user_id: id.clone(),
                password: "1234567".into(),
            })
            .await
            .unwrap_err()
    ));
    let stored = app
        .store
        .credentials_by_email(&email)
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .expect("a stored hash");
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    let salt_and_hash = stored.rsplit('$').next().unwrap().to_string();
    let logged_events = format!("{:?}", events(&app).await);
    assert!(!logged_events.is_empty());
    for (name, text) in responses
        .iter()
        .map(|r| ("a response", r))
        .chain([("the event log", &logged_events)])
    {
        for secret in [
            first,
            second,
            third,
            "1234567",
            "argon2",
            &stored,
            &salt_and_hash,
        ] {
            assert!(!text.contains(secret), "{name} contains {secret}: {text}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Memberships and what comes later

async fn listing_memberships_needs_a_known_user_and_is_empty_for_now(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, &unique_email("member"), "").await;
    let mut users = app.users.clone();
    for id in [&created.uuid, &created.ulid] {
        let memberships = users
            .list_user_memberships(pb::ListUserMembershipsRequest {
                user_id: id.clone(),
            })
            .await
            .expect("list memberships")
            .into_inner()
            .memberships;
        assert!(memberships.is_empty());
    }
    let status = users
        .list_user_memberships(pb::ListUserMembershipsRequest {
            user_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = users
        .list_user_memberships(pb::ListUserMembershipsRequest {
            user_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["user_id"]);
}

crate::on_both_backends!(
    creating_a_user_returns_both_ids_and_hides_the_password,
    ids_of_successive_users_sort_by_creation_in_both_forms,
    a_language_is_stored_in_canonical_case,
    every_invalid_field_is_reported,
    emails_and_names_are_checked,
    a_duplicate_email_is_already_exists_and_writes_no_event,
    concurrent_creates_with_one_email_yield_one_user_and_already_exists,
    a_retry_with_the_same_request_id_returns_the_first_user_and_creates_nothing,
    a_request_id_reused_with_another_body_is_invalid_argument,
    a_malformed_request_id_is_invalid_argument,
    concurrent_retries_with_one_request_id_create_one_user,
    a_user_can_be_read_by_uuid_ulid_or_email_in_any_case,
    reading_an_unknown_user_is_not_found,
    a_malformed_user_id_or_an_empty_lookup_is_invalid_argument,
    an_update_without_a_mask_is_invalid_argument,
    an_unknown_mask_path_is_invalid_argument,
    a_partial_mask_changes_only_the_named_fields,
    a_star_mask_replaces_every_mutable_field,
    the_etag_changes_on_every_update_and_a_stale_one_is_aborted,
    concurrent_updates_with_one_etag_let_exactly_one_through,
    a_malformed_etag_is_invalid_argument,
    an_update_reports_every_invalid_field_at_once,
    an_unspecified_status_in_the_mask_is_invalid_argument,
    changing_the_email_to_a_taken_one_is_already_exists,
    updating_or_deleting_an_unknown_user_is_not_found,
    a_deleted_user_is_gone,
    deleting_with_a_stale_etag_is_aborted_and_keeps_the_user,
    every_change_writes_its_event_in_order,
    no_response_or_event_ever_contains_a_password_or_its_hash,
    listing_memberships_needs_a_known_user_and_is_empty_for_now,
);
