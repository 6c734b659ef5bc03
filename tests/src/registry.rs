//! A real OCI registry for tests: Debian's `docker-registry`
//! (distribution 2.8) on a loopback port the system picks, with its own
//! configuration, storage in a temporary directory and htpasswd
//! authentication. `.ci/run` installs the package and `htpasswd`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The user every test registry admits.
pub const USERNAME: &str = "plugin-author";
/// That user's password.
pub const PASSWORD: &str = "registry-test-password";

/// A running registry; stopped when dropped.
pub struct TestRegistry {
    /// Where it listens.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
}

impl TestRegistry {
    /// Starts a registry that admits [`USERNAME`] with [`PASSWORD`] only.
    ///
    /// # Panics
    ///
    /// When `docker-registry` or `htpasswd` is not installed, or the
    /// registry does not start listening within 60 s.
    pub fn start() -> TestRegistry {
        TestRegistry::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`TestRegistry::start`], or why it could not start.
    ///
    /// # Errors
    ///
    /// When `docker-registry` or `htpasswd` is not installed, or the
    /// registry does not start listening within 60 s.
    pub fn try_start() -> Result<TestRegistry, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
        Self::start_in(dir, "")
    }

    /// A registry serving HTTPS with a certificate for 127.0.0.1 from a CA
    /// of its own, made by `openssl`; returns it with the CA's PEM.
    ///
    /// # Panics
    ///
    /// As [`TestRegistry::start`], and when `openssl` fails.
    pub fn start_tls() -> (TestRegistry, Vec<u8>) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(dir.path().join("leaf.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for args in [
            [&["req", "-x509"][..], &ec[..], &["-keyout", &path("ca.key"), "-out", &path("ca.pem"), "-days", "2", "-subj", "/CN=toolshed test CA"][..]].concat(),
            [&["req"][..], &ec[..], &["-keyout", &path("leaf.key"), "-out", &path("leaf.csr"), "-subj", "/CN=127.0.0.1"][..]].concat(),
            vec![
                "x509", "-req", "-in", &path("leaf.csr"), "-CA", &path("ca.pem"), "-CAkey", &path("ca.key"), "-CAcreateserial", "-out", &path("leaf.pem"), "-days", "2",
                "-extfile", &path("leaf.ext"),
            ],
        ] {
            let out = Command::new("openssl").args(&args).output().expect("openssl makes the test CA");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
        let tls = format!("  tls:\n    certificate: {}\n    key: {}\n", path("leaf.pem"), path("leaf.key"));
        (Self::start_in(dir, &tls).unwrap_or_else(|e| panic!("{e}")), ca)
    }

    fn start_in(dir: tempfile::TempDir, http_extra: &str) -> Result<TestRegistry, String> {
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", USERNAME, PASSWORD])
            .output()
            .map_err(|e| format!("htpasswd (Debian's apache2-utils, which .ci/run installs) makes the registry's password file: {e}"))?;
        if !htpasswd.status.success() {
            return Err(format!("htpasswd failed: {}", String::from_utf8_lossy(&htpasswd.stderr)));
        }
        std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).map_err(|e| e.to_string())?;
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n  secret: registry-test-secret\n{http_extra}auth:\n  htpasswd:\n    realm: toolshed-tests\n    path: {htpasswd}\n",
            storage = dir.path().join("storage").display(),
            htpasswd = dir.path().join("htpasswd").display(),
        );
        std::fs::write(dir.path().join("config.yml"), config).map_err(|e| e.to_string())?;
        let program = std::env::var("TOOLSHED_TEST_REGISTRY").unwrap_or_else(|_| "docker-registry".into());
        let mut child = Command::new(&program)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {program} (Debian's docker-registry, which .ci/run installs): {e}"))?;
        let stderr = child.stderr.take().unwrap();
        let (found, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on ").nth(1)
                    && let Some(found) = found.take()
                {
                    // "listening on 127.0.0.1:PORT", with ", tls" when it serves TLS.
                    let addr = rest.split(['"', ',']).next().unwrap_or(rest).trim().to_string();
                    let _ = found.send(addr);
                }
            }
        });
        let listening = listening.recv_timeout(Duration::from_secs(60)).map_err(|_| format!("{program} did not start listening within 60 s"));
        let addr = listening.and_then(|addr| addr.parse().map_err(|e| format!("the registry listens at {addr:?}: {e}")));
        match addr {
            Ok(addr) => Ok(TestRegistry { addr, dir, child }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// `127.0.0.1:PORT`, as references name it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The file the registry keeps blob `digest` in: a test changes it to
    /// play a registry that serves tampered content.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.dir.path().join("storage/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }

    /// The registry's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
