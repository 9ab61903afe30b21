//! Where a function returns: every `ret` of its body, found by decoding it, so that returns are
//! taken by plain uprobes on those instructions instead of a uretprobe.
//!
//! A uretprobe hijacks the return address of each call it sees, and the kernel holds the probe
//! until that call returns: a thread parked forever inside a Python call (a queue get, an accept,
//! a sleep) kept pyprobe's detach, and every other uprobe user on the host, waiting in
//! `synchronize_srcu` for minutes. A uprobe on the `ret` itself changes nothing on the stack and
//! detaches at once. At the `ret` the stack pointer is the one the call began with (the return
//! address on top), so the kernel side pairs it with its entry exactly as before.
use iced_x86::{Decoder, DecoderOptions, Mnemonic};

/// The most return sites probed: CPython's eval loops have one each (3.6-3.15 builds here).
pub const MAX_EXITS: usize = 8;

/// Offsets (from the function's start) of the `ret` instructions of the function whose code is
/// `body`, loaded at `addr`; None when there is none, or more than `MAX_EXITS`, or the body
/// does not decode (data inside it): the caller then says returns cannot be timed.
pub fn returns(body: &[u8], addr: u64) -> Option<Vec<u64>> {
    let mut decoder = Decoder::with_ip(64, body, addr, DecoderOptions::NONE);
    let mut found = Vec::new();
    for insn in &mut decoder {
        if insn.is_invalid() {
            return None;
        }
        if insn.mnemonic() == Mnemonic::Ret {
            found.push(insn.ip() - addr);
        }
    }
    (!found.is_empty() && found.len() <= MAX_EXITS).then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn the_ret_after_an_epilogue_is_found() {
        // push %r15; push %r14; sub $0x18,%rsp; ... add $0x18,%rsp; pop %r14; pop %r15; ret
        let code = hex("41 57 41 56 48 83 ec 18 31 c0 48 83 c4 18 41 5e 41 5f c3");
        assert_eq!(returns(&code, 0x1000), Some(vec![18]));
    }

    #[test]
    fn a_c3_byte_inside_an_instruction_is_not_a_return() {
        // mov $0xc3c3c3c3,%eax; ret
        let code = hex("b8 c3 c3 c3 c3 c3");
        assert_eq!(returns(&code, 0), Some(vec![5]));
    }

    #[test]
    fn several_returns_and_rep_ret() {
        // test %edi,%edi; je +1; ret; xor %eax,%eax; rep ret
        let code = hex("85 ff 74 01 c3 31 c0 f3 c3");
        assert_eq!(returns(&code, 0), Some(vec![4, 7]));
    }

    #[test]
    fn no_return_or_undecodable_code_is_none() {
        assert_eq!(returns(&hex("90 90 eb fe"), 0), None);
        assert_eq!(returns(&hex("c3 0f 0b"), 0), Some(vec![0]));
        assert_eq!(returns(&hex("c3 0f ff"), 0), None);
    }
}
