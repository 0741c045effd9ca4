//! The service's listener: accepts TCP connections (TLS when configured), serves
//! HTTP/2 and HTTP/1.1 on them, and sends each request to the gRPC stack when its
//! content type is gRPC's, to the plain HTTP routes otherwise.
//!
//! Built on hyper here rather than with tonic's `Server` for two reasons. tonic's
//! server enforces a caller's `grpc-timeout` itself, outside every layer, by dropping
//! the call: a write whose COMMIT was already sent would then commit after its caller
//! was told DEADLINE_EXCEEDED. Here the one timeout is `request_limits`, which knows
//! whether a commit began (see `crate::deadline`). And plain HTTP (the JWKS document,
//! later the HTTP/JSON API) shares the gRPC port, told apart by content type.

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{
        conn::auto,
        graceful::{GracefulShutdown, Watcher},
    },
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        RootCertStore, ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
        server::WebPkiClientVerifier,
    },
};
use tonic::body::Body;
use tower::{Service, ServiceExt as _, util::BoxCloneService};

pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// A request as every layer sees it, and its answer.
pub type HttpService = BoxCloneService<Request<Body>, Response<Body>, Infallible>;

/// How the listener treats connections.
#[derive(Debug, Clone)]
pub struct ListenSettings {
    /// HTTP/2 pings on an idle connection, and how long an answer may take: a peer that
    /// vanished (no FIN, no RST) is dropped with its streams.
    pub http2_keepalive_interval: Duration,
    pub http2_keepalive_timeout: Duration,
    /// Streams one HTTP/2 connection may have open at once.
    pub max_concurrent_streams: u32,
    /// How long an HTTP/1.1 client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// TCP keepalive probes on accepted connections.
    pub tcp_keepalive: Duration,
}

/// TLS for the listener: the server's identity, and the CA that client certificates
/// must chain to (mutual TLS) when given.
pub struct TlsSettings {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
    /// A client that does not finish its handshake within this is dropped.
    pub handshake_timeout: Duration,
}

impl TlsSettings {
    fn acceptor(&self) -> Result<TlsAcceptor, StartError> {
        let certs = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the TLS certificate is not valid PEM: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| format!("the TLS key is not a valid PEM private key: {e}"))?;
        let builder = ServerConfig::builder();
        let builder = match &self.client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca) {
                    let cert = cert.map_err(|e| format!("the client CA is not valid PEM: {e}"))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("the client CA certificate is refused: {e}"))?;
                }
                builder.with_client_cert_verifier(
                    WebPkiClientVerifier::builder(roots.into())
                        .build()
                        .map_err(|e| format!("the client CA cannot verify clients: {e}"))?,
                )
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("the TLS certificate and key do not make an identity: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// The protocol a request came in by, in its extensions (for the request log, metrics
/// and traces); none means gRPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    GrpcWeb,
    /// The HTTP/JSON API (`crate::http`), sent on as gRPC in-process.
    Http,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::GrpcWeb => "grpc-web",
            Protocol::Http => "http",
        }
    }

    /// The protocol `request` carries in its extensions.
    pub fn of<B>(request: &Request<B>) -> Protocol {
        request
            .extensions()
            .get::<Protocol>()
            .copied()
            .unwrap_or(Protocol::Grpc)
    }
}

/// Sends gRPC and gRPC-Web requests (`content-type: application/grpc…`) to `grpc`,
/// everything else to `http`.
pub fn by_content_type(grpc: HttpService, http: HttpService) -> HttpService {
    BoxCloneService::new(tower::service_fn(move |mut request: Request<Body>| {
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let is_grpc = content_type.starts_with("application/grpc");
        if content_type.starts_with("application/grpc-web") {
            request.extensions_mut().insert(Protocol::GrpcWeb);
        }
        let service = if is_grpc { grpc.clone() } else { http.clone() };
        service.oneshot(request)
    }))
}

/// Serves `service` on `listener` until `shutdown` resolves; then stops accepting, lets
/// each connection finish the requests it has (HTTP/2 GOAWAY, HTTP/1.1 close after the
/// current one) and returns once every connection closed. The caller bounds that wait.
pub async fn serve(
    listener: TcpListener,
    settings: ListenSettings,
    tls: Option<TlsSettings>,
    service: HttpService,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let tls = match &tls {
        Some(tls) => Some((tls.acceptor()?, tls.handshake_timeout)),
        None => None,
    };
    let graceful = GracefulShutdown::new();
    let (stopping, stopping_rx) = watch::channel(false);
    let settings = Arc::new(settings);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: the listener itself is fine.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let connection = Connection {
            settings: settings.clone(),
            service: service.clone(),
            watcher: graceful.watcher(),
            stopping: stopping_rx.clone(),
            peer,
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.run(tcp, tls).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    graceful.shutdown().await;
    Ok(())
}

/// One accepted connection, served until it closes or the server stops.
struct Connection {
    settings: Arc<ListenSettings>,
    service: HttpService,
    watcher: Watcher,
    /// Turns true when the server stops: a connection still in its TLS handshake then
    /// closes instead of serving.
    stopping: watch::Receiver<bool>,
    peer: SocketAddr,
}

impl Connection {
    async fn run(
        self,
        tcp: TcpStream,
        tls: Option<(TlsAcceptor, Duration)>,
    ) -> Result<(), StartError> {
        // Without TCP_NODELAY, small responses wait out the peer's delayed ACK (~40 ms).
        tcp.set_nodelay(true)?;
        let keepalive = socket2::TcpKeepalive::new().with_time(self.settings.tcp_keepalive);
        socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive)?;
        match tls {
            None => self.serve_http(tcp).await,
            Some((acceptor, timeout)) => {
                let stream = tokio::time::timeout(timeout, acceptor.accept(tcp))
                    .await
                    .map_err(|_| format!("TLS handshake not finished within {timeout:?}"))??;
                if *self.stopping.borrow() {
                    return Ok(());
                }
                self.serve_http(stream).await
            }
        }
    }

    async fn serve_http<IO>(self, io: IO) -> Result<(), StartError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.settings.header_read_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(self.settings.http2_keepalive_interval)
            .keep_alive_timeout(self.settings.http2_keepalive_timeout)
            .max_concurrent_streams(self.settings.max_concurrent_streams);
        let peer = self.peer;
        let service = self.service.map_request(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(PeerAddress(peer));
            request
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
        self.watcher.watch(connection.into_owned()).await
    }
}

/// The address a request came from, in its extensions.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddress(pub SocketAddr);

/// Names what `Service` the listener takes, for callers that build one from layers.
pub fn boxed<S>(service: S) -> HttpService
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    BoxCloneService::new(service)
}
