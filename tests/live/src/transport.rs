//! How the harness reaches Graph: any HTTP client that turns a
//! [`wats::OutgoingRequest`] into a [`wats::Response`].

use wats::{OutgoingRequest, Response};

pub trait Transport {
    /// A response of any status; Err only when none arrived (never holds
    /// the URL: it may be signed).
    fn send(&self, request: OutgoingRequest) -> Result<Response, &'static str>;
}

/// reqwest on a single-threaded runtime; no redirects, 30 s per call.
pub struct Http {
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Http {
    pub fn new() -> Http {
        Http {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
        }
    }
}

impl Default for Http {
    fn default() -> Http {
        Http::new()
    }
}

impl Transport for Http {
    fn send(&self, request: OutgoingRequest) -> Result<Response, &'static str> {
        self.runtime.block_on(async {
            let method =
                reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| "bad method")?;
            let mut builder = self.client.request(method, &request.url).body(request.body);
            for (name, value) in &request.headers {
                builder = builder.header(name, value);
            }
            let response = builder.send().await.map_err(|error| {
                if error.is_timeout() {
                    "timeout"
                } else {
                    "unreachable"
                }
            })?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                .collect();
            let body = response
                .bytes()
                .await
                .map_err(|_| "body interrupted")?
                .to_vec();
            Ok(Response {
                status,
                headers,
                body,
            })
        })
    }
}
