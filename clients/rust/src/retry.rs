//! Idempotent retry of creates: one `request_id` for every attempt.

use std::{future::Future, time::Duration};

use tonic::{Code, Response, Status};
use tonic_types::StatusExt as _;

use crate::pb;

/// A create request with a `request_id` idempotency key.
///
/// The server answers a repeat of the same `request_id` and body with the first
/// result and creates nothing, so such a request may be sent again whenever the
/// outcome of an attempt is unknown.
pub trait IdempotentCreate {
    fn request_id(&self) -> &str;
    fn set_request_id(&mut self, request_id: String);
}

macro_rules! idempotent_create {
    ($($request:ident),* $(,)?) => {$(
        impl IdempotentCreate for pb::$request {
            fn request_id(&self) -> &str {
                &self.request_id
            }
            fn set_request_id(&mut self, request_id: String) {
                self.request_id = request_id;
            }
        }
    )*};
}

idempotent_create!(
    CreateUserRequest,
    CreateCustomerRequest,
    CreateCustomerInvitationRequest,
    CreateAccountRequest,
    CreateAccountInvitationRequest,
    AcceptInvitationRequest,
);

/// How often and how patiently [`retry_create`] retries.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait before the first retry; each later wait doubles, up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): exponential, with jitter
    /// between half and all of it so that clients failed by the same blip do not
    /// return together, and never shorter than the server's `RetryInfo` delay.
    fn backoff(&self, attempt: u32, status: &Status) -> Duration {
        let doubled = self
            .initial_backoff
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_backoff);
        // A v4 UUID is 122 random bits: enough randomness for jitter without a
        // dependency on `rand`.
        let fraction = (uuid::Uuid::new_v4().as_u128() & 0xffff) as f64 / 65_536.0;
        let jittered = doubled.mul_f64(0.5 + fraction / 2.0);
        let asked = status
            .get_error_details()
            .retry_info()
            .and_then(|info| info.retry_delay)
            .unwrap_or_default()
            .min(self.max_backoff);
        jittered.max(asked)
    }
}

/// Whether a failed create may have been applied or may succeed if sent again:
/// the connection or server failed (UNAVAILABLE), a transaction lost a race
/// (ABORTED), or the answer did not arrive in time (DEADLINE_EXCEEDED).
pub fn is_retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::Aborted | Code::DeadlineExceeded
    )
}

/// Sends a create, retrying it with the same `request_id` while it fails with a
/// [retryable](is_retryable) code, up to `policy.max_attempts`.
///
/// A `request_id` already set on `request` is kept; otherwise a fresh UUID is set
/// once, before the first attempt. `call` sends one attempt; clone the client into
/// it, since each attempt's future owns its client:
///
/// ```no_run
/// # async fn run(client: tenancy_client::Client, request: tenancy_client::pb::CreateAccountRequest)
/// # -> Result<(), tonic::Status> {
/// use tenancy_client::{RetryPolicy, retry_create};
///
/// let accounts = client.accounts();
/// let created = retry_create(&RetryPolicy::default(), request, |request| {
///     let mut accounts = accounts.clone();
///     async move { accounts.create_account(request).await }
/// })
/// .await?;
/// # Ok(())
/// # }
/// ```
pub async fn retry_create<Req, Resp, F, Fut>(
    policy: &RetryPolicy,
    mut request: Req,
    mut call: F,
) -> Result<Resp, Status>
where
    Req: IdempotentCreate + Clone,
    F: FnMut(Req) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
{
    if request.request_id().is_empty() {
        request.set_request_id(uuid::Uuid::new_v4().to_string());
    }
    let mut attempt = 1;
    loop {
        match call(request.clone()).await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status) if is_retryable(status.code()) && attempt < policy.max_attempts => {
                tokio::time::sleep(policy.backoff(attempt, &status)).await;
                attempt += 1;
            }
            Err(status) => return Err(status),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tonic_types::ErrorDetails;

    use super::*;

    fn request() -> pb::CreateAccountRequest {
        pb::CreateAccountRequest {
            customer_id: "c".into(),
            ..Default::default()
        }
    }

    type Answer = std::future::Ready<Result<Response<u32>, Status>>;

    /// A fake server: answers attempt `i` with `answers[i]` (OK past the end) and
    /// records the request id of each attempt.
    fn server(
        answers: Vec<Status>,
    ) -> (
        Arc<Mutex<Vec<String>>>,
        impl FnMut(pb::CreateAccountRequest) -> Answer,
    ) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let mut answers = answers.into_iter();
        let call = move |request: pb::CreateAccountRequest| {
            let mut seen = record.lock().unwrap();
            seen.push(request.request_id);
            let attempt = seen.len() as u32;
            std::future::ready(match answers.next() {
                Some(status) => Err(status),
                None => Ok(Response::new(attempt)),
            })
        };
        (seen, call)
    }

    #[tokio::test(start_paused = true)]
    async fn retries_with_one_generated_uuid_until_success() {
        let (seen, call) = server(vec![
            Status::unavailable("down"),
            Status::aborted("race"),
            Status::deadline_exceeded("slow"),
        ]);
        let answered = retry_create(&RetryPolicy::default(), request(), call).await;
        assert_eq!(answered.unwrap(), 4, "the fourth attempt succeeds");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        assert!(uuid::Uuid::parse_str(&seen[0]).is_ok(), "{:?}", seen[0]);
        assert!(seen.iter().all(|id| id == &seen[0]), "{seen:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_id_set_by_the_caller_is_kept() {
        let (seen, call) = server(vec![Status::unavailable("down")]);
        let mut preset = request();
        preset.request_id = "0190c4e0-0000-7000-8000-000000000001".into();
        retry_create(&RetryPolicy::default(), preset, call)
            .await
            .unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            ["0190c4e0-0000-7000-8000-000000000001"; 2]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn other_codes_are_returned_at_once() {
        for code in [Code::InvalidArgument, Code::AlreadyExists, Code::Internal] {
            let (seen, call) = server(vec![Status::new(code, "no")]);
            let error = retry_create(&RetryPolicy::default(), request(), call)
                .await
                .unwrap_err();
            assert_eq!(error.code(), code);
            assert_eq!(seen.lock().unwrap().len(), 1, "{code:?} was retried");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_the_last_error() {
        let (seen, call) = server(vec![Status::unavailable("down"); 10]);
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let error = retry_create(&policy, request(), call).await.unwrap_err();
        assert_eq!(error.code(), Code::Unavailable);
        assert_eq!(seen.lock().unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_back_off_exponentially() {
        let (_, call) = server(vec![Status::unavailable("down"); 3]);
        let policy = RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        };
        let start = tokio::time::Instant::now();
        retry_create(&policy, request(), call).await.unwrap();
        // 100 + 200 + 400 ms, each jittered to between half and all of it.
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(350) && waited <= Duration::from_millis(700),
            "{waited:?}"
        );
    }

    #[test]
    fn the_servers_retry_delay_is_a_floor_and_max_backoff_a_ceiling() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(2),
        };
        let asked = Status::with_error_details(
            Code::Unavailable,
            "database down",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
        );
        assert!(policy.backoff(1, &asked) >= Duration::from_secs(1));
        assert!(policy.backoff(30, &Status::unavailable("x")) <= Duration::from_secs(2));
        let too_long = Status::with_error_details(
            Code::Unavailable,
            "later",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(60))),
        );
        assert_eq!(policy.backoff(1, &too_long), Duration::from_secs(2));
    }
}
