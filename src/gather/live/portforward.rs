//! HTTP/1.1 to a pod's Envoy admin port over kube's WebSocket port-forward.
//!
//! The forwarded stream is used in-process by a hyper client connection: no local port is
//! opened, so nothing else on the user's machine can reach the admin API (which has mutating
//! endpoints). Only `GET` is ever sent. Dropping the connection tears the stream down.

use super::Deadline;
use super::kube::{error_chain, server_text};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Envoy's admin port in Istio proxies (bound to localhost inside the pod).
pub const ADMIN_PORT: u16 = 15000;

/// How long to wait for the kubelet's explanation after the stream breaks; it usually arrives
/// together with the end of the stream.
const ERROR_GRACE: Duration = Duration::from_millis(300);

/// Why talking to one proxy's admin API failed.
#[derive(Debug)]
pub enum AdminFailure {
    /// The port-forward could not be opened (RBAC, pod gone, not running).
    Open(String),
    /// The kubelet reported an error for the port (typically: nothing listens on 15000).
    Port(String),
    /// No answer within the limit.
    Timeout(Duration),
    /// The stream broke, or the response was malformed or too large.
    Transport(String),
}

/// One answer from the admin API.
pub struct AdminResponse {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

/// An HTTP/1.1 connection to one pod's admin port, carried by a port-forward stream.
pub struct AdminConnection {
    sender: SendRequest<Empty<Bytes>>,
    forwarder: kube::api::Portforwarder,
    driver: JoinHandle<()>,
    /// Resolves with the kubelet's message when the port fails; never resolves otherwise.
    port_error: Pin<Box<dyn Future<Output = String> + Send>>,
    limit: usize,
}

impl AdminConnection {
    /// Opens a port-forward to `pod`'s admin port and an HTTP/1.1 connection over it.
    /// Responses larger than `limit` bytes are refused.
    pub async fn open(pods: &Api<Pod>, pod: &str, limit: usize, timeout: Duration) -> Result<AdminConnection, AdminFailure> {
        let opened = tokio::time::timeout(timeout, pods.portforward(pod, &[ADMIN_PORT])).await.map_err(|_| AdminFailure::Timeout(timeout))?;
        let mut forwarder = opened.map_err(|e| AdminFailure::Open(open_failure(&e)))?;
        let stream = forwarder.take_stream(ADMIN_PORT).ok_or_else(|| AdminFailure::Open("the port-forward has no stream for port 15000".into()))?;
        let error = forwarder.take_error(ADMIN_PORT).ok_or_else(|| AdminFailure::Open("the port-forward has no error channel".into()))?;
        let port_error = Box::pin(async move {
            match error.await {
                Some(message) => message,
                // The channel closed without a message: the stream itself reports what happened.
                None => std::future::pending().await,
            }
        });
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| AdminFailure::Transport(error_chain(&e)))?;
        let driver = tokio::spawn(async move {
            // Errors surface on the request side; the driver only has to run.
            let _ = connection.await;
        });
        Ok(AdminConnection { sender, forwarder, driver, port_error, limit })
    }

    /// `GET path`, bounded by `timeout` (and the overall deadline).
    pub async fn get(&mut self, path: &str, timeout: Duration, deadline: &Deadline) -> Result<AdminResponse, AdminFailure> {
        let limit = deadline.cap(timeout);
        let request = hyper::Request::get(path)
            // The admin listener is bound to localhost in the pod; say so, as a local client would.
            .header(hyper::header::HOST, format!("localhost:{ADMIN_PORT}"))
            .body(Empty::<Bytes>::new())
            .map_err(|e| AdminFailure::Transport(e.to_string()))?;
        let max = self.limit;
        let sender = &mut self.sender;
        let exchange = async move {
            let broke = |e: hyper::Error| format!("the stream broke before the response headers ({})", error_chain(&e));
            sender.ready().await.map_err(broke)?;
            let response = sender.send_request(request).await.map_err(broke)?;
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("the stream broke after {} bytes of the body ({})", bytes.len(), error_chain(&e)))?;
                if let Some(data) = frame.data_ref() {
                    if bytes.len() + data.len() > max {
                        return Err(format!("the response is larger than {} MiB", max >> 20));
                    }
                    bytes.extend_from_slice(data);
                }
            }
            Ok(AdminResponse { status, body: bytes })
        };
        let outcome = tokio::time::timeout(limit, async {
            tokio::select! {
                result = exchange => result.map_err(AdminFailure::Transport),
                message = &mut self.port_error => Err(AdminFailure::Port(message)),
            }
        })
        .await;
        match outcome {
            Ok(Err(AdminFailure::Transport(cause))) => {
                // Prefer the kubelet's explanation ("connection refused") when it has one.
                match tokio::time::timeout(ERROR_GRACE, &mut self.port_error).await {
                    Ok(message) => Err(AdminFailure::Port(message)),
                    Err(_) => Err(AdminFailure::Transport(cause)),
                }
            }
            Ok(result) => result,
            Err(_) => Err(AdminFailure::Timeout(limit)),
        }
    }
}

impl Drop for AdminConnection {
    fn drop(&mut self) {
        // Close the WebSocket now rather than when the runtime shuts down.
        self.forwarder.abort();
        self.driver.abort();
    }
}

/// Explains a failed port-forward upgrade, naming the RBAC rule when it is a denial.
fn open_failure(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) if status.code == 403 => format!(
            "port-forward forbidden: {}. Grant it with rule `apiGroups: [\"\"], resources: [\"pods/portforward\"], verbs: [\"get\", \"create\"]`",
            server_text(&status.message)
        ),
        other => format!("port-forward failed: {}", error_chain(other)),
    }
}
