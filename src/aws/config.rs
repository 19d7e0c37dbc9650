//! Loading AWS configuration from the standard chain, with one rustls HTTP client.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::Builder;
use aws_smithy_http_client::tls;

/// Settings that override the standard AWS chain.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// An endpoint such as http://127.0.0.1:5000 for an emulator; `AWS_ENDPOINT_URL` also works.
    pub endpoint_url: Option<String>,
    /// The region; otherwise `AWS_REGION`, the profile, or instance metadata decide.
    pub region: Option<String>,
    /// Attempts per SQS call, including the first; the SDK backs off between them. EC2 calls
    /// get one SDK attempt, see `ec2_client`.
    pub max_attempts: u32,
}

/// Loads the shared AWS configuration: credentials and region from the standard chain
/// (environment, profile, web identity for IRSA, container and instance metadata).
pub async fn load(settings: &AwsSettings) -> aws_config::SdkConfig {
    let http_client =
        Builder::new().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)).build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts.max(1)));
    if let Some(endpoint) = &settings.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader.load().await
}

/// Builds the EC2 client of a loaded configuration, with one attempt per call: the
/// controller retries EC2 calls itself (`retry::Retrying`), so that each attempt passes the
/// client-side write bucket and is counted.
pub fn ec2_client(config: &aws_config::SdkConfig) -> aws_sdk_ec2::Client {
    let single_attempt =
        aws_sdk_ec2::config::Builder::from(config).retry_config(RetryConfig::standard().with_max_attempts(1));
    aws_sdk_ec2::Client::from_conf(single_attempt.build())
}
