//! Refreshing a session (SPEC §11): a new access token and a new refresh token, the old
//! one dead; a refresh token presented again revokes the whole session; switching the
//! active customer; hostile tokens; lifetimes; concurrent refreshes and revocations.

use std::time::Duration;

use tenancy_client::pb;
use tonic::Code;

use super::{customer_with_owner, refresh, session_events, sign_in, user_with_password, verified};
use crate::helpers::{Backend, error_reason, spawn_app, spawn_app_with};
use crate::members::add;
use tenancy_client::pb::add_customer_user_request::Member;

async fn a_refresh_rotates_the_refresh_token_and_a_reused_one_revokes_the_session(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "rotate").await;
    let first = sign_in(&app, &user.email, "").await.expect("sign in");
    let second = refresh(&app, &first.refresh_token, "")
        .await
        .expect("refresh");
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    let session = second.session.clone().expect("session");
    assert_eq!(session.uuid, first.session.expect("session").uuid);
    let seconds = |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| (t.seconds, t.nanos));
    assert!(seconds(&session.last_refresh_time) >= seconds(&session.create_time));
    let claims = verified(&app, &second.access_token).await;
    assert_eq!(claims.sid.to_string(), session.uuid);

    // The first token again: reuse. The session ends, the newest token with it.
    let reused = refresh(&app, &first.refresh_token, "")
        .await
        .expect_err("reused");
    assert_eq!(reused.code(), Code::Unauthenticated);
    assert_eq!(
        error_reason(&reused).as_deref(),
        Some("REFRESH_TOKEN_REUSED")
    );
    let after = refresh(&app, &second.refresh_token, "")
        .await
        .expect_err("the session is revoked");
    assert_eq!(after.code(), Code::Unauthenticated);
    assert_eq!(error_reason(&after), None, "an ended session is not reuse");
    let events = session_events(&app).await;
    assert_eq!(
        events,
        vec![
            ("session.created".to_string(), session.uuid.clone(), None),
            (
                "session.revoked".to_string(),
                session.uuid.clone(),
                Some("refresh_token_reused".to_string())
            ),
        ],
        "a refresh is not an event"
    );
}

async fn malformed_truncated_oversized_and_foreign_refresh_tokens_are_unauthenticated(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "hostile").await;
    let token = sign_in(&app, &user.email, "")
        .await
        .expect("sign in")
        .refresh_token;
    let foreign = "A".repeat(43);
    let huge = "x".repeat(100_000);
    let padded = format!("{token}=");
    for bad in [
        "",
        &token[..20],
        &token[..42],
        &padded,
        &foreign,
        &huge,
        "with\0nul",
        "ünïcödé",
        "' OR 1=1 --",
    ] {
        let status = refresh(&app, bad, "").await.expect_err("refused");
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{:?}: {status:?}",
            &bad[..bad.len().min(20)]
        );
        assert_eq!(error_reason(&status), None);
    }
    assert!(
        refresh(&app, &token, "").await.is_ok(),
        "hostile tokens revoked nothing"
    );
}

async fn a_refresh_switches_the_active_customer_under_the_membership_rule(backend: Backend) {
    let app = spawn_app(backend).await;
    let (first, _) = customer_with_owner(&app, "first").await;
    let (second, _) = customer_with_owner(&app, "second").await;
    let (third, _) = customer_with_owner(&app, "third").await;
    let user = user_with_password(&app, "switch").await;
    add(
        &app,
        &first.uuid,
        Member::UserId(user.uuid.clone()),
        &["rooms.read"],
    )
    .await
    .expect("add member");
    add(
        &app,
        &second.uuid,
        Member::UserId(user.uuid.clone()),
        &["billing.write"],
    )
    .await
    .expect("add member");

    let signed_in = sign_in(&app, &user.email, &first.uuid)
        .await
        .expect("sign in");
    let refused = refresh(&app, &signed_in.refresh_token, &third.uuid)
        .await
        .expect_err("not a member of the third");
    assert_eq!(refused.code(), Code::PermissionDenied);
    // Refused, nothing changed: the same token still redeems.
    let switched = refresh(&app, &signed_in.refresh_token, &second.uuid)
        .await
        .expect("switch");
    assert_eq!(switched.session.expect("session").customer_id, second.uuid);
    let claims = verified(&app, &switched.access_token).await;
    assert_eq!(claims.customer_id.map(|c| c.to_string()), Some(second.uuid));
    assert_eq!(claims.permissions, vec!["billing.write"]);
    let kept = refresh(&app, &switched.refresh_token, "")
        .await
        .expect("keep");
    let kept_claims = verified(&app, &kept.access_token).await;
    assert_eq!(
        kept_claims.permissions,
        vec!["billing.write"],
        "empty keeps"
    );
}

async fn sixteen_concurrent_refreshes_of_one_token_give_one_success_and_revoke_the_session(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "race").await;
    let token = sign_in(&app, &user.email, "")
        .await
        .expect("sign in")
        .refresh_token;
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let mut sessions = app.sessions.clone();
            let token = token.clone();
            tokio::spawn(async move {
                sessions
                    .refresh_session(pb::RefreshSessionRequest {
                        refresh_token: token,
                        customer_id: String::new(),
                    })
                    .await
                    .map(|r| r.into_inner())
            })
        })
        .collect();
    let mut won = Vec::new();
    let mut reused = 0;
    for call in calls {
        match call.await.expect("call") {
            Ok(answer) => won.push(answer),
            Err(status) => {
                assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
                // The first to find the token used revokes the session and hears
                // REFRESH_TOKEN_REUSED; those after it find the session revoked.
                if error_reason(&status).as_deref() == Some("REFRESH_TOKEN_REUSED") {
                    reused += 1;
                }
            }
        }
    }
    assert_eq!(won.len(), 1, "exactly one refresh succeeds");
    assert!(reused >= 1, "the reuse was detected");
    let winner = refresh(&app, &won[0].refresh_token, "")
        .await
        .expect_err("the session was revoked as reused");
    assert_eq!(winner.code(), Code::Unauthenticated);
}

async fn after_a_revoke_answered_no_refresh_of_its_session_succeeds(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "revoke-race").await;
    for _ in 0..10 {
        let signed_in = sign_in(&app, &user.email, "").await.expect("sign in");
        let session_id = signed_in.session.expect("session").uuid;
        let refresher = tokio::spawn({
            let app_sessions = app.sessions.clone();
            let mut token = signed_in.refresh_token.clone();
            async move {
                let mut sessions = app_sessions;
                let mut answers = Vec::new();
                for _ in 0..20 {
                    let started = tokio::time::Instant::now();
                    let answer = sessions
                        .refresh_session(pb::RefreshSessionRequest {
                            refresh_token: token.clone(),
                            customer_id: String::new(),
                        })
                        .await;
                    match answer {
                        Ok(answer) => {
                            token = answer.into_inner().refresh_token;
                            answers.push((started, true));
                        }
                        Err(_) => {
                            answers.push((started, false));
                            break;
                        }
                    }
                }
                answers
            }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        app.sessions
            .clone()
            .revoke_session(pb::RevokeSessionRequest {
                session_id: session_id.clone(),
            })
            .await
            .expect("revoke");
        let revoked_at = tokio::time::Instant::now();
        for (started, ok) in refresher.await.expect("refresher") {
            // A refresh sent after the revoke was answered can only be refused (one sent
            // before may still have taken the session's row first).
            assert!(
                !(ok && started > revoked_at),
                "a refresh sent after the revoke was answered succeeded"
            );
        }
        let listed = app
            .sessions
            .clone()
            .list_sessions(pb::ListSessionsRequest {
                user_id: user.uuid.clone(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner()
            .sessions;
        let status = listed
            .iter()
            .find(|s| s.uuid == session_id)
            .expect("listed")
            .status;
        assert_eq!(status, pb::SessionStatus::Revoked as i32);
    }
}

async fn a_session_ends_when_idle_too_long_and_at_its_absolute_lifetime(backend: Backend) {
    let app = spawn_app_with(backend, |serve| {
        serve.session_idle_seconds = 2;
        serve.session_lifetime_seconds = 3;
    })
    .await;
    let user = user_with_password(&app, "lifetimes").await;
    let idle = sign_in(&app, &user.email, "").await.expect("sign in");
    let busy = sign_in(&app, &user.email, "").await.expect("sign in");
    let mut busy_token = busy.refresh_token;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        busy_token = refresh(&app, &busy_token, "")
            .await
            .expect("refreshed within the idle lifetime")
            .refresh_token;
    }
    let idle_refused = refresh(&app, &idle.refresh_token, "")
        .await
        .expect_err("idle past 2 s");
    assert_eq!(idle_refused.code(), Code::Unauthenticated);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let absolute = refresh(&app, &busy_token, "")
        .await
        .expect_err("past the absolute lifetime");
    assert_eq!(absolute.code(), Code::Unauthenticated);
    let listed = app
        .sessions
        .clone()
        .list_sessions(pb::ListSessionsRequest {
            user_id: user.uuid.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .sessions;
    assert!(
        listed
            .iter()
            .all(|s| s.status == pb::SessionStatus::Expired as i32),
        "{listed:?}"
    );
}

async fn sessions_are_listed_newest_first_in_pages_that_return_each_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "pages").await;
    let other = user_with_password(&app, "other").await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(
            sign_in(&app, &user.email, "")
                .await
                .expect("sign in")
                .session
                .expect("session")
                .uuid,
        );
    }
    let _ = sign_in(&app, &other.email, "").await.expect("sign in");
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .sessions
            .clone()
            .list_sessions(pb::ListSessionsRequest {
                user_id: user.uuid.clone(),
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .expect("list")
            .into_inner();
        listed.extend(page.sessions.into_iter().map(|s| s.uuid));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        // A token of this list is refused for another user's.
        let foreign = app
            .sessions
            .clone()
            .list_sessions(pb::ListSessionsRequest {
                user_id: other.uuid.clone(),
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .expect_err("foreign token");
        assert_eq!(foreign.code(), Code::InvalidArgument);
    }
    created.reverse();
    assert_eq!(listed, created, "newest first, each once");
    let missing = app
        .sessions
        .clone()
        .list_sessions(pb::ListSessionsRequest {
            user_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .await
        .expect_err("no such user");
    assert_eq!(missing.code(), Code::NotFound);
}

/// A refresh is one statement on PostgreSQL, past its commit gate once sent; it must not
/// wait there for a session row another transaction holds (it would outlive its
/// caller's deadline, then rotate the token the caller was told was not redeemed).
async fn a_refresh_that_times_out_on_a_locked_session_redeems_nothing(backend: Backend) {
    use sea_orm::{ConnectionTrait as _, Database, TransactionTrait as _};
    let Backend::Postgres(_) = backend else {
        return; // The fault is a row lock PostgreSQL holds for another session.
    };
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "locked").await;
    let signed_in = sign_in(&app, &user.email, "").await.expect("sign in");
    let session_id = signed_in.session.expect("session").uuid;
    let db = Database::connect(&app.database.url).await.expect("connect");
    let side = db.begin().await.expect("begin");
    side.execute_unprepared(&format!(
        "SELECT id FROM sessions WHERE id = '{session_id}' FOR UPDATE"
    ))
    .await
    .expect("hold the session's row");

    let mut request = tonic::Request::new(pb::RefreshSessionRequest {
        refresh_token: signed_in.refresh_token.clone(),
        customer_id: String::new(),
    });
    request.set_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let answer = app.sessions.clone().refresh_session(request).await;
    let took = started.elapsed();
    let status = answer.expect_err("the session's row is held");
    // tonic's client reports its own deadline as CANCELLED when it fires first.
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    side.rollback().await.expect("release the row");
    // Anything still waiting would rotate the token now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    refresh(&app, &signed_in.refresh_token, "")
        .await
        .expect("the timed-out refresh redeemed nothing: its token is still the current one");
}

crate::on_both_backends!(
    a_refresh_rotates_the_refresh_token_and_a_reused_one_revokes_the_session,
    malformed_truncated_oversized_and_foreign_refresh_tokens_are_unauthenticated,
    a_refresh_switches_the_active_customer_under_the_membership_rule,
    sixteen_concurrent_refreshes_of_one_token_give_one_success_and_revoke_the_session,
    after_a_revoke_answered_no_refresh_of_its_session_succeeds,
    a_session_ends_when_idle_too_long_and_at_its_absolute_lifetime,
    sessions_are_listed_newest_first_in_pages_that_return_each_once,
    a_refresh_that_times_out_on_a_locked_session_redeems_nothing,
);
