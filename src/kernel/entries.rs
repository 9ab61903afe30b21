//! Every entry of a BPF map in as few system calls as the kernel allows (BPF_MAP_LOOKUP_BATCH).
//!
//! libbpf-rs's `lookup_batch` iterator takes a short batch for the last one, but a hash map's
//! batch is short whenever the next bucket does not fit, and a bucket larger than the batch
//! fails with ENOSPC: either way it stopped early and entries went missing without an error.
use std::io;
use std::os::fd::AsRawFd;

use libbpf_rs::libbpf_sys;
use libbpf_rs::{MapCore, MapFlags};

/// Entries asked for per system call at first; doubled when a bucket needs more.
const FIRST_BATCH: u32 = 256;

/// (key, value) of every entry of `map`.
pub fn entries<M: MapCore>(map: &M) -> libbpf_rs::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let (key_size, value_size) = (map.key_size() as usize, map.value_size() as usize);
    let fd = map.as_fd().as_raw_fd();
    let opts = libbpf_sys::bpf_map_batch_opts {
        sz: size_of::<libbpf_sys::bpf_map_batch_opts>() as _,
        elem_flags: MapFlags::ANY.bits(),
        flags: 0,
    };
    let mut out = Vec::new();
    let mut batch = FIRST_BATCH;
    // The kernel's position: where the previous call stopped (none before the first call).
    let mut in_batch: Option<Vec<u8>> = None;
    let mut out_batch = vec![0u8; key_size.max(8)];
    loop {
        let mut keys = vec![0u8; key_size * batch as usize];
        let mut values = vec![0u8; value_size * batch as usize];
        let mut count = batch;
        // SAFETY: the buffers hold `batch` keys and values of the map's sizes, `out_batch` a
        // position (at least a key, and 8 bytes for hash maps' bucket index), `in_batch` the
        // previous call's position.
        let ret = unsafe {
            libbpf_sys::bpf_map_lookup_batch(
                fd,
                in_batch
                    .as_mut()
                    .map_or(std::ptr::null_mut(), |b| b.as_mut_ptr().cast()),
                out_batch.as_mut_ptr().cast(),
                keys.as_mut_ptr().cast(),
                values.as_mut_ptr().cast(),
                &mut count,
                &opts,
            )
        };
        let err = (ret < 0).then(|| io::Error::from_raw_os_error(-ret));
        match err.as_ref().and_then(io::Error::raw_os_error) {
            None | Some(libc::ENOENT) => {}
            Some(libc::EINTR) => continue,
            // One bucket holds more entries than a batch: ask for more at once.
            Some(libc::ENOSPC) if batch < 1 << 20 => {
                batch *= 2;
                continue;
            }
            _ => return Err(err.unwrap().into()),
        }
        let n = count as usize;
        out.extend(
            keys.chunks_exact(key_size)
                .zip(values.chunks_exact(value_size))
                .take(n)
                .map(|(k, v)| (k.to_vec(), v.to_vec())),
        );
        // ENOENT: the map has nothing past this batch.
        if err.is_some() {
            return Ok(out);
        }
        in_batch = Some(out_batch.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libbpf_rs::{MapHandle, MapType};

    /// A hash map read back whole: its batches come short wherever a bucket does not fit,
    /// which is where libbpf-rs's iterator stopped (a few hundred of 10000 read).
    #[test]
    fn reads_every_entry_of_a_full_hash_map() {
        let opts = libbpf_sys::bpf_map_create_opts {
            sz: size_of::<libbpf_sys::bpf_map_create_opts>() as _,
            ..Default::default()
        };
        let map = MapHandle::create(MapType::Hash, Some("entries_test"), 4, 8, 10_000, &opts)
            .expect("creating a BPF hash map (root)");
        for k in 0u32..10_000 {
            let v = u64::from(k) * 3;
            map.update(&k.to_ne_bytes(), &v.to_ne_bytes(), MapFlags::ANY)
                .unwrap();
        }
        let mut seen: Vec<(u32, u64)> = entries(&map)
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    u32::from_ne_bytes(k[..4].try_into().unwrap()),
                    u64::from_ne_bytes(v[..8].try_into().unwrap()),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(seen.len(), 10_000);
        assert!(seen.iter().all(|&(k, v)| v == u64::from(k) * 3));
        seen.dedup_by_key(|e| e.0);
        assert_eq!(seen.len(), 10_000, "no entry twice");
    }

    #[test]
    fn an_empty_map_has_no_entries() {
        let opts = libbpf_sys::bpf_map_create_opts {
            sz: size_of::<libbpf_sys::bpf_map_create_opts>() as _,
            ..Default::default()
        };
        let map = MapHandle::create(MapType::Hash, Some("entries_empty"), 4, 8, 16, &opts).unwrap();
        assert!(entries(&map).unwrap().is_empty());
    }
}
