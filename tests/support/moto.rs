//! A moto server on a free loopback port, started for one test and stopped when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::{Credentials, SharedCredentialsProvider};
use vpc_mirror_controller::aws::config::{self, AwsSettings};

/// A running moto server.
pub struct MotoServer {
    child: Mutex<Child>,
    pub endpoint: String,
}

/// Returns the Python interpreter that has moto: `VPCMIRROR_MOTO_PYTHON`, or the project's
/// virtualenv that `make venv` creates.
fn python() -> PathBuf {
    if let Ok(path) = std::env::var("VPCMIRROR_MOTO_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "moto is not installed: run `make venv` (or set VPCMIRROR_MOTO_PYTHON to a Python with moto[server]==5.2.5)"
    );
    venv
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("binding a loopback port succeeds").local_addr().unwrap().port()
}

static SHARED: OnceLock<MotoServer> = OnceLock::new();

impl MotoServer {
    /// Returns one server shared by every test of this test binary. Tests sharing it must keep
    /// apart by their own VPC and cluster name. The server stops when the test binary exits.
    pub fn shared() -> &'static MotoServer {
        SHARED.get_or_init(MotoServer::start)
    }

    /// Starts moto with AWS-shaped target and filter ids and waits until it accepts connections.
    pub fn start() -> Self {
        let port = free_port();
        let launcher = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/moto_server.py");
        let child = Command::new(python())
            .arg(launcher)
            .arg("--port")
            .arg(port.to_string())
            .arg("--exit-with-parent")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the moto launcher succeeds");
        let server = MotoServer { child: Mutex::new(child), endpoint: format!("http://127.0.0.1:{port}") };
        server.wait_until_ready(Duration::from_secs(30));
        server
    }

    fn wait_until_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let address = self.endpoint.trim_start_matches("http://").to_string();
        loop {
            if std::net::TcpStream::connect(&address).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "moto did not listen on {address} within {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Returns SDK configuration for this server: test credentials, us-east-1, and a single
    /// attempt per call so that moto's HTTP 500 responses fail fast.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let settings = AwsSettings {
            endpoint_url: Some(self.endpoint.clone()),
            region: Some("us-east-1".to_string()),
            max_attempts: 1,
        };
        let loaded = config::load(&settings).await;
        // Credentials are replaced before any request, so the standard chain never resolves.
        let credentials = Credentials::new("testing", "testing", None, None, "moto");
        loaded.to_builder().credentials_provider(SharedCredentialsProvider::new(credentials)).build()
    }

    pub async fn ec2_client(&self) -> aws_sdk_ec2::Client {
        config::ec2_client(&self.sdk_config().await)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let child = self.child.get_mut().expect("moto child lock is not poisoned");
        let _ = child.kill();
        let _ = child.wait();
    }
}
