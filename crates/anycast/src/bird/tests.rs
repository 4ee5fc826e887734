use std::process::Command;

use super::*;

#[tokio::test]
async fn replies_are_read_line_by_line_with_continuations() {
    let text = b"1002-dev1     Device     ---        up     12:00:00.000\n 1002 continued\n0000 \n";
    let mut r = BufReader::new(&text[..]);
    let reply = read_reply(&mut r, "test").await.unwrap();
    assert_eq!(reply.code, 0);
    assert_eq!(reply.lines.len(), 3);
    assert_eq!(reply.lines[1], (1002, "1002 continued".to_string()));
    let mut r = BufReader::new(&b"9001 syntax error, unexpected CF_SYM_UNDEFINED\n"[..]);
    assert_eq!(read_reply(&mut r, "t").await.unwrap().code, 9001);
    for bad in [&b"hello\n"[..], b"0001-banner\n", b"12x4 nope\n"] {
        let mut r = BufReader::new(bad);
        assert!(read_reply(&mut r, "t").await.is_err(), "{bad:?}");
    }
}

/// A real BIRD with one static protocol, disabled, and no protocol that
/// talks to a network or the kernel's tables: killed (by its pid file)
/// when dropped.
struct RealBird {
    dir: tempfile::TempDir,
}

impl RealBird {
    fn start() -> Option<RealBird> {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root || Command::new("bird").arg("--version").output().is_err() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("bird.conf");
        std::fs::write(
            &conf,
            "router id 10.255.0.1;\n\
             protocol device {}\n\
             protocol static anycast_dns { ipv4; route 192.0.2.53/32 blackhole; disabled yes; }\n",
        )
        .unwrap();
        let ok = Command::new("bird")
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(dir.path().join("bird.ctl"))
            .arg("-P")
            .arg(dir.path().join("bird.pid"))
            .status()
            .unwrap()
            .success();
        assert!(ok, "bird did not start");
        let b = RealBird { dir };
        // It daemonizes: wait for its socket.
        for _ in 0..100 {
            if b.socket().exists() {
                return Some(b);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("bird made no control socket");
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("bird.ctl")
    }
}

impl Drop for RealBird {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("bird.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

#[tokio::test]
async fn a_real_bird_enables_and_disables_a_static_protocol() {
    let Some(real) = RealBird::start() else {
        eprintln!("skipped: needs root and BIRD 2 (apt-get install bird2; .ci/run installs it)");
        return;
    };
    let bird = Bird::new(real.socket());
    let state = |ps: &[Protocol]| {
        ps.iter()
            .find(|p| p.name == "anycast_dns")
            .map(|p| (p.kind.clone(), p.state.clone()))
    };
    let ps = bird.protocols().await.unwrap();
    assert_eq!(state(&ps), Some(("Static".into(), "down".into())), "{ps:?}");
    assert!(bird.enable("anycast_dns").await.unwrap(), "was disabled");
    assert!(
        !bird.enable("anycast_dns").await.unwrap(),
        "already enabled"
    );
    assert_eq!(
        state(&bird.protocols().await.unwrap()),
        Some(("Static".into(), "up".into()))
    );
    assert!(bird.disable("anycast_dns").await.unwrap());
    assert!(!bird.disable("anycast_dns").await.unwrap());
    // An unknown name is refused, with BIRD's code and words.
    match bird.enable("no_such_proto").await {
        Err(BirdError::Refused { code, .. }) => assert_eq!(code, 9001),
        other => panic!("{other:?}"),
    }
    // A command is one line, whatever it carries.
    assert!(bird
        .enable("anycast_dns\ndisable anycast_dns")
        .await
        .is_err());
    // Gone: unreachable, not a hang.
    drop(real);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(
        bird.protocols().await,
        Err(BirdError::Unreachable(..))
    ));
}
