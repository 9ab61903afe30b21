//! The user a spawned command runs as (`--user`): pyprobe stays privileged to trace, the
//! command gets that user's uid, primary and supplementary groups, and home, like `sudo -u`.
use std::ffi::{CStr, CString};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
    pub home: String,
}

impl RunAs {
    /// Looks up a user by name, or by number (`#1000` or `1000`, which need not be in the
    /// password database: then its group is the same number and it has no others).
    pub fn lookup(user: &str) -> Result<RunAs> {
        let unknown = || Error::Usage(format!("--user {user}: no such user"));
        let numeric = user.strip_prefix('#').unwrap_or(user);
        let entry = match numeric.parse::<libc::uid_t>() {
            Ok(uid) => passwd_by_uid(uid).or(Some(RunAs {
                name: uid.to_string(),
                uid,
                gid: uid,
                groups: vec![uid],
                home: "/".into(),
            })),
            Err(_) => passwd_by_name(user),
        };
        entry.ok_or_else(unknown)
    }

    /// Becomes this user. Runs in the forked child before exec: only async-signal-safe calls,
    /// on memory allocated before the fork. Groups first: they need root.
    pub fn become_user(&self) -> std::io::Result<()> {
        // SAFETY: plain syscalls on values we own; the group list outlives the call.
        unsafe {
            if libc::setgroups(self.groups.len(), self.groups.as_ptr()) != 0
                || libc::setgid(self.gid) != 0
                || libc::setuid(self.uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

fn passwd_by_name(name: &str) -> Option<RunAs> {
    let cname = CString::new(name).ok()?;
    lookup_with(|pwd, buf: &mut [libc::c_char], result| {
        // SAFETY: getpwnam_r writes into `pwd` and `buf`, which we own, and sets `result`.
        unsafe { libc::getpwnam_r(cname.as_ptr(), pwd, buf.as_mut_ptr(), buf.len(), result) }
    })
}

fn passwd_by_uid(uid: libc::uid_t) -> Option<RunAs> {
    lookup_with(|pwd, buf: &mut [libc::c_char], result| {
        // SAFETY: as above, by uid.
        unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr(), buf.len(), result) }
    })
}

fn lookup_with(
    mut f: impl FnMut(*mut libc::passwd, &mut [libc::c_char], *mut *mut libc::passwd) -> i32,
) -> Option<RunAs> {
    let mut buf: Vec<libc::c_char> = vec![0; 16 << 10];
    // SAFETY: an all-zero passwd is a valid value for getpw*_r to overwrite.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    if f(&mut pwd, &mut buf, &mut result) != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success the fields point into `buf`, NUL-terminated.
    let (name, home) = unsafe {
        (
            CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned(),
            CStr::from_ptr(pwd.pw_dir).to_string_lossy().into_owned(),
        )
    };
    Some(RunAs {
        groups: group_list(&name, pwd.pw_gid),
        name,
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home,
    })
}

/// The user's supplementary groups, its primary group included (`getgrouplist`).
fn group_list(name: &str, gid: libc::gid_t) -> Vec<libc::gid_t> {
    let Ok(cname) = CString::new(name) else {
        return vec![gid];
    };
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let mut got = n;
        // SAFETY: writes at most `got` entries into `groups` and the real count into `got`.
        let rc = unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut got) };
        if rc >= 0 {
            groups.truncate(got.max(0) as usize);
            return groups;
        }
        if got <= n || n > 65536 {
            return vec![gid];
        }
        n = got;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_users_by_name_and_number() {
        let root = RunAs::lookup("root").unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        assert!(root.groups.contains(&0));
        let nobody = RunAs::lookup("nobody").unwrap();
        assert_eq!(RunAs::lookup(&nobody.uid.to_string()).unwrap(), nobody);
        assert_eq!(RunAs::lookup(&format!("#{}", nobody.uid)).unwrap(), nobody);
        // A number without an entry is still a user, as with `sudo -u '#4242'`.
        let bare = RunAs::lookup("#4242").unwrap();
        assert_eq!(
            (bare.uid, bare.gid, bare.groups.clone()),
            (4242, 4242, vec![4242])
        );
    }

    #[test]
    fn an_unknown_name_is_refused() {
        let e = RunAs::lookup("no-such-user-here").unwrap_err();
        assert_eq!(e.one_line(), "--user no-such-user-here: no such user");
    }
}
