//! `BatchCheckAccess` and `ListAccessibleResources` (SPEC section 13): each answer is
//! the one `CheckAccess` gives, over a generated mix of owners, direct permissions,
//! roles, SUSPENDED and TERMINATED customers, inactive memberships and accounts.

use std::collections::BTreeSet;

use tenancy_client::pb::{self, access_check, accessible_resource, check_access_request::Target};
use tonic::Code;

use super::roles::{add_account_member_with_roles, add_with_roles, create_role};
use crate::customers::{self, personal, set_status};
use crate::helpers::{Backend, TestApp, spawn_app, unique_email, violated_fields};

const PERMISSIONS: [&str; 6] = [
    "customer.read",
    "customer.write",
    "rooms.read",
    "rooms.write",
    "billing.read",
    "reports.read",
];

/// The mix: users, and every customer and account they might reach.
struct Mix {
    users: Vec<String>,
    customers: Vec<String>,
    accounts: Vec<String>,
}

/// A deterministic pseudo-random choice, so a failure can be replayed.
fn pick(seed: &mut u64, n: usize) -> usize {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    ((*seed >> 33) as usize) % n
}

async fn generate(app: &TestApp) -> Mix {
    let mut seed = 29u64;
    let users: Vec<String> = futures::future::join_all((0..4).map(|i| async move {
        crate::users::create(app, &unique_email(&format!("mix{i}")), "")
            .await
            .uuid
    }))
    .await;
    let mut customers_made = Vec::new();
    let mut accounts = Vec::new();
    let statuses = [
        None,
        Some(pb::CustomerStatus::Suspended),
        None,
        Some(pb::CustomerStatus::Terminated),
        None,
    ];
    for (c, status) in statuses.into_iter().enumerate() {
        // Some customers are owned by a mix user, the others by their own new owner.
        let mut customer = personal(&unique_email(&format!("mixc{c}")));
        if c % 2 == 0 {
            customer.email = crate::users::get(app, &users[c / 2]).await.unwrap().email;
        }
        let customer = customers::create(app, customer).await;
        let role_a = ["rooms.read", "rooms.write"];
        let role_b = ["billing.read", "customer.write"];
        create_role(app, &customer.uuid, "ops", &role_a).await;
        create_role(app, &customer.uuid, "finance", &role_b).await;
        let account = crate::accounts::create(app, &customer.uuid, "Main").await;
        let second = crate::accounts::create(app, &customer.uuid, "Second").await;
        for user in &users {
            if *user == customer.owner_user_id {
                continue;
            }
            let direct: Vec<&str> = PERMISSIONS
                .iter()
                .copied()
                .filter(|_| pick(&mut seed, 3) == 0)
                .collect();
            let roles: Vec<&str> = ["ops", "finance"]
                .into_iter()
                .filter(|_| pick(&mut seed, 2) == 0)
                .collect();
            match pick(&mut seed, 4) {
                0 => {}
                1 => {
                    add_with_roles(app, &customer.uuid, user, &direct, &roles)
                        .await
                        .unwrap();
                }
                2 => {
                    add_account_member_with_roles(app, &account.uuid, user, &direct, &roles)
                        .await
                        .unwrap();
                }
                _ => {
                    add_with_roles(app, &customer.uuid, user, &[], &roles)
                        .await
                        .unwrap();
                    add_account_member_with_roles(app, &second.uuid, user, &direct, &[])
                        .await
                        .unwrap();
                }
            }
        }
        if c == 2 {
            // A suspended account under an active customer.
            app.accounts
                .clone()
                .update_account(pb::UpdateAccountRequest {
                    account_id: second.uuid.clone(),
                    account: Some(pb::Account {
                        status: pb::AccountStatus::Suspended as i32,
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["status".into()],
                    }),
                    etag: String::new(),
                })
                .await
                .unwrap();
        }
        if let Some(status) = status {
            if status == pb::CustomerStatus::Terminated {
                // TERMINATED makes every membership inactive.
                set_status(app, &customer.uuid, pb::CustomerStatus::Suspended).await;
            }
            set_status(app, &customer.uuid, status).await;
        }
        customers_made.push(customer.uuid);
        accounts.push(account.uuid);
        accounts.push(second.uuid);
    }
    Mix {
        users,
        customers: customers_made,
        accounts,
    }
}

fn targets(mix: &Mix) -> Vec<Target> {
    mix.customers
        .iter()
        .map(|id| Target::CustomerId(id.clone()))
        .chain(mix.accounts.iter().map(|id| Target::AccountId(id.clone())))
        .collect()
}

async fn single(
    app: &TestApp,
    user: &str,
    target: &Target,
    permission: &str,
) -> pb::CheckAccessResponse {
    app.users
        .clone()
        .check_access(pb::CheckAccessRequest {
            user_id: user.into(),
            target: Some(target.clone()),
            permission: permission.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn as_check(target: &Target, permission: &str) -> pb::AccessCheck {
    pb::AccessCheck {
        target: Some(match target {
            Target::CustomerId(id) => access_check::Target::CustomerId(id.clone()),
            Target::AccountId(id) => access_check::Target::AccountId(id.clone()),
        }),
        permission: permission.into(),
    }
}

async fn batch_check_access_answers_as_check_access_over_a_generated_mix(backend: Backend) {
    let app = spawn_app(backend).await;
    let mix = generate(&app).await;
    let (mut allowed, mut denied) = (0, 0);
    for user in &mix.users {
        let mut questions = Vec::new();
        for target in targets(&mix) {
            for permission in PERMISSIONS {
                questions.push((target.clone(), permission));
            }
        }
        // Shuffled into batches of up to 100, so order matters.
        let mut seed = 7u64;
        for i in (1..questions.len()).rev() {
            questions.swap(i, pick(&mut seed, i + 1));
        }
        for chunk in questions.chunks(100) {
            let results = app
                .users
                .clone()
                .batch_check_access(pb::BatchCheckAccessRequest {
                    user_id: user.clone(),
                    checks: chunk.iter().map(|(t, p)| as_check(t, p)).collect(),
                })
                .await
                .unwrap()
                .into_inner()
                .results;
            assert_eq!(results.len(), chunk.len());
            for ((target, permission), result) in chunk.iter().zip(results) {
                let expected = single(&app, user, target, permission).await;
                assert_eq!(result, expected, "{user} {target:?} {permission}");
                if expected.allowed {
                    allowed += 1;
                } else {
                    denied += 1;
                }
            }
        }
    }
    assert!(
        allowed > 20 && denied > 20,
        "a mix worth the name: {allowed} / {denied}"
    );
}

async fn list_all(
    app: &TestApp,
    user: &str,
    permission: &str,
    resource_type: pb::ResourceType,
    page_size: i32,
) -> Vec<String> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .users
            .clone()
            .list_accessible_resources(pb::ListAccessibleResourcesRequest {
                user_id: user.into(),
                permission: permission.into(),
                resource_type: resource_type as i32,
                page_size,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.resources.len() <= page_size as usize);
        all.extend(page.resources.into_iter().map(|r| match r.resource {
            Some(accessible_resource::Resource::CustomerId(id))
            | Some(accessible_resource::Resource::AccountId(id)) => id,
            None => panic!("a resource without an id"),
        }));
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

/// Every listing of every user of `mix`, each kind and permission, against
/// `CheckAccess` on each candidate: the same set, each once, in id order.
async fn assert_listings_match_check_access(app: &TestApp, mix: &Mix) {
    let mut seen = 0;
    for user in &mix.users {
        for permission in PERMISSIONS {
            for (kind, ids) in [
                (pb::ResourceType::Customer, &mix.customers),
                (pb::ResourceType::Account, &mix.accounts),
            ] {
                let mut expected = BTreeSet::new();
                for id in ids {
                    let target = match kind {
                        pb::ResourceType::Customer => Target::CustomerId(id.clone()),
                        _ => Target::AccountId(id.clone()),
                    };
                    if single(app, user, &target, permission).await.allowed {
                        expected.insert(id.clone());
                    }
                }
                let listed = list_all(app, user, permission, kind, 2).await;
                let unique: BTreeSet<String> = listed.iter().cloned().collect();
                assert_eq!(unique.len(), listed.len(), "each once: {listed:?}");
                assert_eq!(unique, expected, "{user} {permission} {kind:?}");
                let mut sorted = listed.clone();
                sorted.sort();
                assert_eq!(sorted, listed, "in id order");
                seen += listed.len();
            }
        }
    }
    assert!(seen > 20, "the mix grants something: {seen}");
}

async fn accessible_resources_are_exactly_what_check_access_allows(backend: Backend) {
    let app = spawn_app(backend).await;
    let mix = generate(&app).await;
    assert_listings_match_check_access(&app, &mix).await;
}

/// With the caches off, candidates are read from the database a chunk at a time (the
/// path of a user with more candidates than a cache entry holds).
async fn uncached_listings_read_in_chunks_are_what_check_access_allows(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, |serve| serve.cache_capacity = 0).await;
    let mix = generate(&app).await;
    assert_listings_match_check_access(&app, &mix).await;
}

/// A listing's candidates are cached per user: every change that adds or removes one
/// (a membership added or removed, an account made in a customer the user owns) reaches
/// the listing, on this instance and, through the event log, on another.
async fn a_listing_follows_membership_and_account_changes_on_every_instance(backend: Backend) {
    use pb::ResourceType::{Account, Customer};
    use std::time::Instant;
    let crate::caching::TestApps { a, b } =
        crate::caching::TestApps::start(backend, crate::helpers::test_serve_args()).await;
    let owned = customers::create(&a, personal(&unique_email("owned"))).await;
    let owner = owned.owner_user_id.clone();
    let other = customers::create(&a, personal(&unique_email("other"))).await;
    let sorted = |ids: &[&String]| {
        let mut ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        ids.sort();
        ids
    };
    for app in [&a, &b] {
        assert_eq!(
            list_all(app, &owner, "rooms.read", Customer, 10).await,
            vec![owned.uuid.clone()]
        );
        assert!(
            list_all(app, &owner, "rooms.read", Account, 10)
                .await
                .is_empty()
        );
    }

    add_with_roles(&a, &other.uuid, &owner, &["rooms.read"], &[])
        .await
        .unwrap();
    let written = Instant::now();
    let both = sorted(&[&owned.uuid, &other.uuid]);
    assert_eq!(list_all(&a, &owner, "rooms.read", Customer, 10).await, both);
    crate::caching::seen_within_bound("B lists the new membership", written, || async {
        list_all(&b, &owner, "rooms.read", Customer, 10).await == both
    })
    .await;

    let account = crate::accounts::create(&a, &owned.uuid, "Main").await;
    let written = Instant::now();
    let accounts = vec![account.uuid.clone()];
    assert_eq!(
        list_all(&a, &owner, "rooms.read", Account, 10).await,
        accounts
    );
    crate::caching::seen_within_bound(
        "B lists the owned customer's new account",
        written,
        || async { list_all(&b, &owner, "rooms.read", Account, 10).await == accounts },
    )
    .await;

    a.customers
        .clone()
        .remove_customer_user(pb::RemoveCustomerUserRequest {
            customer_id: other.uuid.clone(),
            user_id: owner.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let written = Instant::now();
    let one = vec![owned.uuid.clone()];
    assert_eq!(list_all(&a, &owner, "rooms.read", Customer, 10).await, one);
    crate::caching::seen_within_bound("B drops the removed membership", written, || async {
        list_all(&b, &owner, "rooms.read", Customer, 10).await == one
    })
    .await;
}

async fn bad_batches_and_lists_name_every_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("badbatch"))).await;
    let user = customer.owner_user_id.clone();
    let good = as_check(&Target::CustomerId(customer.uuid.clone()), "rooms.read");
    let too_many = app
        .users
        .clone()
        .batch_check_access(pb::BatchCheckAccessRequest {
            user_id: user.clone(),
            checks: vec![good.clone(); 101],
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&too_many), ["checks"]);
    let hundred = app
        .users
        .clone()
        .batch_check_access(pb::BatchCheckAccessRequest {
            user_id: user.clone(),
            checks: vec![good.clone(); 100],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(hundred.results.iter().all(|r| r.allowed));
    let none = app
        .users
        .clone()
        .batch_check_access(pb::BatchCheckAccessRequest {
            user_id: user.clone(),
            checks: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&none), ["checks"]);
    let mut checks = vec![good.clone(); 5];
    checks[1].target = Some(access_check::Target::CustomerId("not-an-id".into()));
    checks[2].target = None;
    checks[3].permission = "rooms.fly".into();
    checks[4].target = Some(access_check::Target::AccountId("x".into()));
    let bad = app
        .users
        .clone()
        .batch_check_access(pb::BatchCheckAccessRequest {
            user_id: "nobody".into(),
            checks,
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&bad),
        [
            "user_id",
            "checks[1].customer_id",
            "checks[2].target",
            "checks[3].permission",
            "checks[4].account_id"
        ]
    );
    // A hostile string is refused before it reaches a query, named by its index.
    let mut hostile = vec![good.clone(); 3];
    hostile[2].target = Some(access_check::Target::CustomerId("nul\0".into()));
    let refused = app
        .users
        .clone()
        .batch_check_access(pb::BatchCheckAccessRequest {
            user_id: user.clone(),
            checks: hostile,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["checks[2].customer_id"]);
    let missing_target = app
        .users
        .clone()
        .batch_check_access(pb::BatchCheckAccessRequest {
            user_id: user.clone(),
            checks: vec![
                good.clone(),
                as_check(
                    &Target::CustomerId(uuid::Uuid::now_v7().to_string()),
                    "rooms.read",
                ),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(missing_target.results[0].allowed);
    assert!(!missing_target.results[1].allowed);

    let list = |resource_type: i32, permission: &str, user: &str| {
        let app = &app;
        let (permission, user) = (permission.to_string(), user.to_string());
        async move {
            app.users
                .clone()
                .list_accessible_resources(pb::ListAccessibleResourcesRequest {
                    user_id: user,
                    permission,
                    resource_type,
                    page_size: 0,
                    page_token: String::new(),
                })
                .await
        }
    };
    let bad = list(7, "rooms.fly", "nobody").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&bad);
    fields.sort();
    assert_eq!(fields, ["permission", "resource_type", "user_id"]);
    let unspecified = list(0, "rooms.read", &user).await.unwrap_err();
    assert_eq!(violated_fields(&unspecified), ["resource_type"]);
    let ghost = list(1, "rooms.read", &uuid::Uuid::now_v7().to_string())
        .await
        .unwrap_err();
    assert_eq!(ghost.code(), Code::NotFound);
}

crate::on_both_backends!(
    batch_check_access_answers_as_check_access_over_a_generated_mix,
    accessible_resources_are_exactly_what_check_access_allows,
    uncached_listings_read_in_chunks_are_what_check_access_allows,
    a_listing_follows_membership_and_account_changes_on_every_instance,
    bad_batches_and_lists_name_every_field,
);
