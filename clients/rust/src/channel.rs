//! Connecting: an endpoint, the API key, and optional TLS.

use std::time::Duration;

use tonic::{
    service::interceptor::InterceptedService,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

use crate::{
    auth::{ApiKey, InvalidApiKey},
    pb::{
        account_service_client::AccountServiceClient,
        customer_service_client::CustomerServiceClient, event_service_client::EventServiceClient,
        session_service_client::SessionServiceClient, user_service_client::UserServiceClient,
    },
};

/// A channel whose every call carries the API key.
pub type AuthChannel = InterceptedService<Channel, ApiKey>;

/// Why [`Connector::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid endpoint {endpoint:?}: {source}")]
    InvalidEndpoint {
        endpoint: String,
        source: tonic::transport::Error,
    },
    #[error(transparent)]
    InvalidApiKey(#[from] InvalidApiKey),
    #[error("TLS configuration: {0}")]
    Tls(tonic::transport::Error),
    #[error("cannot connect: {0}")]
    Transport(tonic::transport::Error),
}

/// TLS for an `https://` endpoint (rustls with ring).
///
/// There are no built-in trust roots: the platform's services use a private CA, so
/// its certificate is given with [`Tls::ca_pem`].
#[derive(Clone, Debug, Default)]
pub struct Tls {
    ca_pem: Option<Vec<u8>>,
    domain: Option<String>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl Tls {
    /// Trusts the CA (PEM) that signed the server's certificate.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// The name the server's certificate must carry, when it differs from the
    /// endpoint's host (e.g. connecting by IP address).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// A client certificate and key (PEM), for a server that asks for one
    /// (`--tls-client-ca`).
    pub fn identity(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    fn config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new();
        if let Some(pem) = &self.ca_pem {
            config = config.ca_certificate(Certificate::from_pem(pem));
        }
        if let Some(domain) = &self.domain {
            config = config.domain_name(domain.clone());
        }
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        config
    }
}

/// Builds a [`Client`]: `Connector::new(endpoint, key)`, options, then
/// [`connect`](Connector::connect) (or [`connect_lazy`](Connector::connect_lazy)).
#[derive(Clone, Debug)]
pub struct Connector {
    endpoint: String,
    key: String,
    tls: Option<Tls>,
    connect_timeout: Duration,
    timeout: Option<Duration>,
}

impl Connector {
    /// `endpoint` is a URI such as `http://127.0.0.1:50051` or `https://tenancy:443`.
    pub fn new(endpoint: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            key: key.into(),
            tls: None,
            connect_timeout: Duration::from_secs(5),
            timeout: None,
        }
    }

    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How long to wait for the connection itself (5 s unless set).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// A deadline for every call (none unless set); the server sees it as
    /// `grpc-timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn endpoint(&self) -> Result<(Endpoint, ApiKey), ConnectError> {
        let key = ApiKey::new(&self.key)?;
        let mut endpoint = Endpoint::from_shared(self.endpoint.clone())
            .map_err(|source| ConnectError::InvalidEndpoint {
                endpoint: self.endpoint.clone(),
                source,
            })?
            .connect_timeout(self.connect_timeout);
        if let Some(timeout) = self.timeout {
            endpoint = endpoint.timeout(timeout);
        }
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.config())
                .map_err(ConnectError::Tls)?;
        }
        Ok((endpoint, key))
    }

    /// Connects now, so a wrong address or certificate fails here.
    pub async fn connect(self) -> Result<Client, ConnectError> {
        let (endpoint, key) = self.endpoint()?;
        let channel = endpoint.connect().await.map_err(ConnectError::Transport)?;
        Ok(Client::new(channel, key))
    }

    /// Connects on the first call (and reconnects after failures).
    pub fn connect_lazy(self) -> Result<Client, ConnectError> {
        let (endpoint, key) = self.endpoint()?;
        Ok(Client::new(endpoint.connect_lazy(), key))
    }
}

/// Connects to `endpoint` with `key` on every call: [`Connector::new`] with defaults.
pub async fn connect(
    endpoint: impl Into<String>,
    key: impl Into<String>,
) -> Result<Client, ConnectError> {
    Connector::new(endpoint, key).connect().await
}

/// One connection shared by the service clients; cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    key: ApiKey,
}

impl Client {
    /// A client over a channel made elsewhere (e.g. a custom `Endpoint`).
    pub fn new(channel: Channel, key: ApiKey) -> Self {
        Self { channel, key }
    }

    fn intercepted(&self) -> AuthChannel {
        InterceptedService::new(self.channel.clone(), self.key.clone())
    }

    pub fn users(&self) -> UserServiceClient<AuthChannel> {
        UserServiceClient::new(self.intercepted())
    }

    pub fn customers(&self) -> CustomerServiceClient<AuthChannel> {
        CustomerServiceClient::new(self.intercepted())
    }

    pub fn accounts(&self) -> AccountServiceClient<AuthChannel> {
        AccountServiceClient::new(self.intercepted())
    }

    pub fn events(&self) -> EventServiceClient<AuthChannel> {
        EventServiceClient::new(self.intercepted())
    }

    pub fn sessions(&self) -> SessionServiceClient<AuthChannel> {
        SessionServiceClient::new(self.intercepted())
    }

    /// The channel without the key, e.g. for `grpc.health.v1.Health`.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_endpoint_is_named_in_the_error() {
        let error = Connector::new("not a uri", "key")
            .connect_lazy()
            .unwrap_err();
        assert!(
            matches!(&error, ConnectError::InvalidEndpoint { endpoint, .. } if endpoint == "not a uri"),
            "{error:?}"
        );
    }

    #[test]
    fn a_bad_key_fails_before_any_connection() {
        let error = Connector::new("http://127.0.0.1:1", "bad key")
            .connect_lazy()
            .unwrap_err();
        assert!(matches!(error, ConnectError::InvalidApiKey(_)), "{error:?}");
    }
}
