//! A real OpenSSH server on 127.0.0.1 for the remote-agent tests and benchmarks: a throwaway
//! host key and user key under the caller's directory, an sshd_config pointing only there
//! (`StrictModes no`, `UsePAM no`: it runs as whoever runs the tests, root in CI), `sshd -D` as
//! a child killed on drop. Sessions get their PATH from `SetEnv` (ssh forwards none of ours),
//! with the caller's programs linked into a directory at its front.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_until;

pub const SSHD: &str = "/usr/sbin/sshd";

/// One sshd on 127.0.0.1 with its keys; killed on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    /// Keys, config and the sessions' bin directory.
    pub dir: PathBuf,
    /// The user key the server accepts.
    pub key: PathBuf,
}

pub fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
}

impl Sshd {
    /// Starts sshd for the files under `root`; `links` become the programs on the sessions'
    /// PATH, `set_env` more `NAME=value` words for them (sshd's `SetEnv`).
    pub fn start(root: &Path, links: &[(&str, PathBuf)], set_env: &str) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} missing: apt-get install -y openssh-server (.ci/run does)"
        );
        // Privilege separation needs this directory; a fresh container lacks it.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = root.join("sshd");
        let rbin = dir.join("rbin");
        std::fs::create_dir_all(&rbin).unwrap();
        for (name, target) in links {
            std::os::unix::fs::symlink(target, rbin.join(name)).unwrap();
        }
        let (host_key, key) = (dir.join("host_key"), dir.join("user_key"));
        keygen(&host_key);
        keygen(&key);
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let python = Command::new("sh")
            .args(["-c", "command -v python3"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let python_dir = Path::new(&python)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/usr/bin".to_string());
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                 PidFile {pid}\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel ERROR\n\
                 SetEnv PATH={rbin}:{python_dir}:/usr/local/bin:/usr/bin:/bin {set_env}\n",
                hk = host_key.display(),
                ak = dir.join("authorized_keys").display(),
                pid = dir.join("sshd.pid").display(),
                rbin = rbin.display(),
            ),
        )
        .unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd");
        let sshd = Sshd {
            child,
            port,
            dir,
            key,
        };
        assert!(
            wait_until(Duration::from_secs(30), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "sshd did not listen on {port}"
        );
        sshd
    }

    /// The ssh command line for `settings.ssh_command`, with `key` as the identity.
    pub fn ssh_command_with(&self, key: &Path, port: u16) -> String {
        format!(
            "ssh -F /dev/null -i {} -p {port} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            key.display()
        )
    }

    pub fn ssh_command(&self) -> String {
        self.ssh_command_with(&self.key, self.port)
    }
}

impl Drop for Sshd {
    /// Stops the server and every session it started: per-connection sshd processes outlive
    /// the listener, and a client's ControlMaster would keep one alive for another minute.
    fn drop(&mut self) {
        let sessions = descendants(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in sessions {
            // SAFETY: kill(2) on a pid we just found below our own child; no memory effects.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}

/// Every process below `root`, from the parent pids in /proc.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| {
                let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let ppid = stat
                    .rsplit(')')
                    .next()?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?;
                Some((pid, ppid))
            })
            .collect()
        })
        .unwrap_or_default();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}
