//! A loaded skeleton that owns the memory libbpf-rs opens it in, so that a tracer is a plain
//! value, and the one open → configure → load sequence every tracer uses.
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{OpenMapMut, OpenObject};

use super::Probes;
use crate::error::{Error, Result};

/// A skeleton with its storage: the skeleton is dropped (closing the BPF object and every
/// program) before the storage it points into is freed.
pub struct Loaded<S> {
    skel: ManuallyDrop<S>,
    storage: NonNull<MaybeUninit<OpenObject>>,
}

impl<S> Deref for Loaded<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.skel
    }
}

impl<S> DerefMut for Loaded<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.skel
    }
}

impl<S: Skel<'static>> Loaded<S> {
    /// The probes of this object's programs: none attached yet, and disarmed.
    pub fn probes(&self) -> Result<Probes> {
        Probes::of(self.skel.object())
    }
}

impl<S> Drop for Loaded<S> {
    fn drop(&mut self) {
        // SAFETY: the skeleton is dropped once, here, and nothing uses it after; then the
        // storage it borrowed, which `load` leaked from a Box, is freed.
        unsafe {
            ManuallyDrop::drop(&mut self.skel);
            drop(Box::from_raw(self.storage.as_ptr()));
        }
    }
}

/// A skeleton's globals section (`rodata_data` before loading, `bss_data` after): libbpf-cargo
/// makes it optional, but a program that declares globals always has it.
pub fn globals<T>(section: Option<T>) -> T {
    section.expect("a BPF program that declares globals has its section")
}

/// Sizes a map before loading (`what` names it in the error): the map's entries, or its bytes
/// for a ring buffer.
pub fn size(map: &mut OpenMapMut, entries: u32, what: &str) -> Result<()> {
    map.set_max_entries(entries)
        .map_err(|e| Error::bpf(format!("sizing the {what}"), e))
}

/// Opens a skeleton, lets `configure` set its rodata and map sizes, and loads it into the
/// kernel (the verifier runs here).
pub fn load<B, O, S>(builder: B, configure: impl FnOnce(&mut O) -> Result<()>) -> Result<Loaded<S>>
where
    B: SkelBuilder<'static, Output = O>,
    O: OpenSkel<'static, Output = S>,
{
    let storage = NonNull::from(Box::leak(Box::new(MaybeUninit::uninit())));
    let free = || {
        // SAFETY: nothing borrows the storage any more (the open skeleton is gone).
        drop(unsafe { Box::from_raw(storage.as_ptr()) });
    };
    // SAFETY: the storage stays allocated until `Loaded::drop` has dropped the skeleton, or
    // until `free` runs after a failure, when the open skeleton is already gone.
    let place: &'static mut MaybeUninit<OpenObject> = unsafe { &mut *storage.as_ptr() };
    let loaded = (|| {
        let mut open = builder
            .open(place)
            .map_err(|e| Error::bpf("opening the BPF object", e))?;
        configure(&mut open)?;
        open.load()
            .map_err(|e| Error::bpf("loading the BPF programs", e))
    })();
    match loaded {
        Ok(skel) => Ok(Loaded {
            skel: ManuallyDrop::new(skel),
            storage,
        }),
        Err(e) => {
            free();
            Err(e)
        }
    }
}
