//! A network home (DESIGN.md): two machines use one store at once, where `flock` does not reach
//! from one to the other. Stood for by two sshfs (FUSE) mounts of one directory through a real
//! sshd on 127.0.0.1: a lock taken through one mount is not seen through the other, as between
//! two NFS clients. Writers through both mounts at once must keep every distinct item, and
//! searches must find them all (on a network filesystem the journal and the index are not used:
//! docs/FORMAT.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use keyringrs_tests::pam::*;
use keyringrs_tests::sshd::Sshd;
use keyringrs_tests::*;
use libkeyring::mapping::Identity;
use libkeyring::Store;

const PASSWORD: &str = "Net-home-4711";

/// An sshfs mount of `remote` (a path in the user's home) at `at`, files shown as root's;
/// unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn new(sshd: &Sshd, user: &ThrowawayUser, remote: &str, at: &Path) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let mut c = Command::new("sshfs");
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .arg(format!("{}@127.0.0.1:{remote}", user.name))
            .arg(at)
            .args(["-p", &sshd.port.to_string()])
            .args([
                "-o",
                "password_stdin,uid=0,gid=0,dir_cache=no,entry_timeout=0,attr_timeout=0,\
                 negative_timeout=0,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,\
                 PreferredAuthentications=password",
            ]);
        let o = run(c, format!("{PASSWORD}\n").as_bytes());
        assert!(
            o.status.success(),
            "sshfs (installed by make test): {o:?}\nsshd: {}",
            sshd.log.lock().unwrap()
        );
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-u").arg(&self.0).status();
    }
}

fn app_attrs(id: &str) -> BTreeMap<String, String> {
    [
        ("xdg:schema".to_string(), "org.example.Net".to_string()),
        ("id".to_string(), id.to_string()),
    ]
    .into()
}

/// One "machine" writing: plain entries and app items, interleaved.
fn write_items(store: &Path, tag: &str) {
    let s = Store::open(store).unwrap();
    for i in 0..30 {
        s.set(tag, &format!("u{i}"), format!("{tag}-{i}").as_bytes())
            .unwrap();
        let a = app_attrs(&format!("{tag}{i}"));
        let id = Identity::synthetic(&a);
        s.set_entry(&id.service, &id.username, b"app", None, Some(&a))
            .unwrap();
    }
}

#[test]
fn two_machines_writing_one_store_at_once_keep_every_item() {
    require_root!("creates a user and /etc/pam.d services, runs sshd and mounts sshfs");
    let user = login_user("nethome", PASSWORD);
    let sshd = Sshd::start(
        "nethome",
        "auth required pam_unix.so\naccount required pam_unix.so\nsession required pam_unix.so\n",
    );
    let share = user.home.join("share");
    std::fs::create_dir(&share).unwrap();
    chown_tree(&share, user.uid, user.gid);
    let dir = TempDir::new("nethome-mounts");
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let _m1 = Mount::new(&sshd, &user, "share", &one);
    let _m2 = Mount::new(&sshd, &user, "share", &two);
    fresh_session();
    Store::init(one.join("store"), PASSWORD.as_bytes(), &test_opts()).unwrap();
    // No journal on a network filesystem.
    assert!(!share.join("store/journal").exists());
    let (p1, p2) = (one.join("store"), two.join("store"));
    std::thread::scope(|t| {
        t.spawn(|| write_items(&p1, "a"));
        t.spawn(|| write_items(&p2, "b"));
    });
    for store in [&p1, &p2] {
        let s = Store::open(store).unwrap();
        let (listed, bad) = s.list_report().unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(listed.len(), 120, "every item of both writers");
        for tag in ["a", "b"] {
            for i in 0..30 {
                assert_eq!(
                    &**s.get(tag, &format!("u{i}")).unwrap(),
                    format!("{tag}-{i}").as_bytes()
                );
                assert_eq!(s.search(&app_attrs(&format!("{tag}{i}"))).unwrap().len(), 1);
            }
        }
        let schema: BTreeMap<String, String> =
            [("xdg:schema".to_string(), "org.example.Net".to_string())].into();
        assert_eq!(s.search(&schema).unwrap().len(), 60);
    }
    // The same item written from both ends as one of the written values.
    std::thread::scope(|t| {
        t.spawn(|| {
            Store::open(&p1)
                .unwrap()
                .set("same", "u", b"from one")
                .unwrap()
        });
        t.spawn(|| {
            Store::open(&p2)
                .unwrap()
                .set("same", "u", b"from two")
                .unwrap()
        });
    });
    let v = Store::open(&p1).unwrap().get("same", "u").unwrap();
    assert!(&**v == b"from one" || &**v == b"from two");
    assert!(!share.join("store/journal").exists());
    assert!(!share.join("store/index").exists(), "no index kept");
    // check reads a store there; repair refuses (the writer lock may not reach another
    // machine) and moves nothing.
    std::fs::write(share.join("store/planted"), b"x").unwrap();
    let o = keyringrs(&p1, &["check"], b"");
    assert_eq!(code(&o), 7, "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("planted: is not a file"),
        "{o:?}"
    );
    let o = keyringrs(&p1, &["repair"], b"");
    assert_exit(&o, 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is on a network filesystem"), "{err}");
    assert!(share.join("store/planted").exists());
    assert!(!share.join("store/damaged").exists());
}
