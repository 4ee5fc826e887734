//! A demo script (`demo/*.sh`) run as a newcomer runs it: in the
//! foreground until SIGTERM (as Ctrl-C or a service manager stops it),
//! and, when dropped (also after a failed assertion), stopped and told
//! `down` so nothing it started is left behind.

use std::process::{Child, Command, Stdio};

pub struct Script {
    child: Child,
    path: String,
    env: Vec<(&'static str, String)>,
}

impl Script {
    /// Starts `demo/NAME` of this repository with `env`.
    pub fn start(name: &str, env: &[(&'static str, String)]) -> Script {
        let path = format!("{}/demo/{name}", env!("CARGO_MANIFEST_DIR"));
        let child = Command::new(&path)
            .envs(env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Script {
            child,
            path,
            env: env.to_vec(),
        }
    }

    /// `SCRIPT ARGS` beside the running one: its stdout, asserting success.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.path)
            .args(args)
            .envs(self.env.iter().cloned())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGTERM, then waits for the script to end.
    pub fn stop(&mut self) {
        // SAFETY: kill on a child's pid has no preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        self.stop();
        let _ = Command::new(&self.path)
            .arg("down")
            .envs(self.env.iter().cloned())
            .output();
    }
}
