//! /proc/PID/maps: which files a process has mapped, and where.
/// One line of /proc/PID/maps that maps a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    /// The device of the mapped file (`st_dev` encoding) and its inode.
    pub dev: u64,
    pub inode: u64,
    pub path: String,
}

/// Parses /proc/PID/maps text, keeping file-backed mappings.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let range = f.next()?;
            let _perms = f.next()?;
            let offset = u64::from_str_radix(f.next()?, 16).ok()?;
            let (major, minor) = f.next()?.split_once(':')?;
            let dev = libc::makedev(
                u32::from_str_radix(major, 16).ok()?,
                u32::from_str_radix(minor, 16).ok()?,
            );
            let inode = f.next()?.parse().ok()?;
            let path: Vec<&str> = f.collect();
            let path = path.join(" ");
            if !path.starts_with('/') {
                return None;
            }
            let (s, e) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(s, 16).ok()?,
                end: u64::from_str_radix(e, 16).ok()?,
                offset,
                dev,
                inode,
                path: path.trim_end_matches(" (deleted)").to_string(),
            })
        })
        .collect()
}

/// Whether a file name is a libpython shared library (`libpython3.11.so.1.0`).
pub fn is_libpython(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("libpython") && name.contains(".so")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
00400000-0041f000 r--p 00000000 fe:00 1234  /usr/bin/python3.11
0041f000-006d2000 r-xp 0001f000 fe:00 1234  /usr/bin/python3.11
7f0000000000-7f0000001000 r--p 00000000 fe:00 99  /usr/lib/x86_64-linux-gnu/libpython3.9.so.1.0
7f0000100000-7f0000200000 rw-p 00000000 00:00 0  [heap]
7f0000300000-7f0000301000 rw-p 00000000 00:00 0
7f0000400000-7f0000401000 r--p 00002000 fe:00 77  /tmp/a file (deleted)
";

    #[test]
    fn parses_file_backed_mappings() {
        let m = parse_maps(MAPS);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].start, 0x400000);
        assert_eq!(m[1].offset, 0x1f000);
        assert_eq!(m[1].dev, libc::makedev(0xfe, 0));
        assert_eq!(m[2].path, "/usr/lib/x86_64-linux-gnu/libpython3.9.so.1.0");
        assert_eq!(m[3].path, "/tmp/a file");
    }

    #[test]
    fn recognises_libpython() {
        assert!(is_libpython("/usr/lib/libpython3.11.so.1.0"));
        assert!(is_libpython("libpython3.9d.so"));
        assert!(!is_libpython("/usr/bin/python3.11"));
        assert!(!is_libpython("/usr/lib/libpythonish.a"));
    }
}
