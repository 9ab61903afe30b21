//! Where a uprobe goes in a function: on the first instruction the kernel emulates (a push,
//! branch, call or nop) before anything changes what the probe reads. The kernel runs every
//! other instruction out of line with a single step, a second trap: measured here about 0.7 us
//! per hit on an emulated instruction and 9-20 us on any other (endbr64 included).

/// A register a probe reads at its placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    Rdi,
    Rsi,
    Rdx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Offset from the function's start of the entry probe.
    pub entry: u64,
    /// What the prologue subtracted from rsp before `entry`.
    pub sp_adjust: u32,
    /// The kernel emulates the instruction at `entry`; if not, each hit is single-stepped.
    pub emulated: bool,
}

const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];

/// Where to probe a function whose first bytes are `code`, keeping `keep` readable.
pub fn place(code: &[u8], keep: &[Reg]) -> Placement {
    let start = if code.starts_with(&ENDBR64) { 4 } else { 0 };
    let mut off = start;
    let mut sp_adjust = 0u32;
    for _ in 0..8 {
        let b = &code[off.min(code.len())..];
        if emulated(b) {
            return Placement {
                entry: off as u64,
                sp_adjust,
                emulated: true,
            };
        }
        match harmless(b, keep) {
            Some((len, sub)) => {
                off += len;
                sp_adjust += sub;
            }
            None => break,
        }
    }
    Placement {
        entry: start as u64,
        sp_adjust: 0,
        emulated: false,
    }
}

/// push r64, jmp/jcc/call with a relative target, nop: what arch/x86/kernel/uprobes.c emulates.
fn emulated(b: &[u8]) -> bool {
    matches!(
        b,
        [0x50..=0x57, ..]
            | [0x41, 0x50..=0x57, ..]
            | [0x70..=0x7f | 0xeb | 0xe9 | 0xe8 | 0x90, ..]
            | [0x0f, 0x80..=0x8f, ..]
    )
}

/// The length of an instruction that changes none of `keep` and does not branch, and what it
/// subtracts from rsp; None for anything else (the search stops there).
fn harmless(b: &[u8], keep: &[Reg]) -> Option<(usize, u32)> {
    let clobbers = |r: Reg| keep.contains(&r);
    Some(match b {
        [0x48, 0x83, 0xec, imm, ..] => (4, u32::from(*imm)),
        [0x48, 0x81, 0xec, a, b2, c, d, ..] => (7, u32::from_le_bytes([*a, *b2, *c, *d])),
        // test of an argument register: flags only.
        [0x48, 0x85, 0xff | 0xf6 | 0xd2, ..] => (3, 0),
        // mov %rsp,%rbp
        [0x48, 0x89, 0xe5, ..] => (3, 0),
        // stores of argument registers to the stack
        [0x48, 0x89, 0x7c | 0x74, 0x24, _, ..] => (5, 0),
        [0x48, 0x89, 0x3c | 0x34, 0x24, ..] => (4, 0),
        [0x89, 0x54, 0x24, _, ..] => (4, 0),
        // xor of a register with itself clobbers it
        [0x31, 0xff, ..] if !clobbers(Reg::Rdi) => (2, 0),
        [0x31, 0xf6, ..] if !clobbers(Reg::Rsi) => (2, 0),
        [0x31, 0xd2, ..] if !clobbers(Reg::Rdx) => (2, 0),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARGS: &[Reg] = &[Reg::Rdi, Reg::Rsi, Reg::Rdx];

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn a_push_at_the_start_is_probed_there() {
        // pyenv 3.6-3.13, Debian 3.11: push %r15
        let p = place(&hex("41 57 41 56 41 55"), ARGS);
        assert_eq!(
            p,
            Placement {
                entry: 0,
                sp_adjust: 0,
                emulated: true
            }
        );
    }

    #[test]
    fn endbr64_is_stepped_over() {
        // sid 3.14 / 3.15: endbr64; push %rbp
        let p = place(&hex("f3 0f 1e fa 55 48 89 e5"), ARGS);
        assert_eq!(
            p,
            Placement {
                entry: 4,
                sp_adjust: 0,
                emulated: true
            }
        );
    }

    #[test]
    fn a_stack_frame_and_a_test_are_passed_to_the_branch() {
        // sid 3.13: endbr64; sub $0x1a8,%rsp; test %rdi,%rdi; je ...
        let p = place(
            &hex("f3 0f 1e fa 48 81 ec a8 01 00 00 48 85 ff 0f 84 7a dc e7 ff"),
            ARGS,
        );
        assert_eq!(
            p,
            Placement {
                entry: 14,
                sp_adjust: 0x1a8,
                emulated: true
            }
        );
    }

    #[test]
    fn an_unknown_instruction_falls_back_to_the_start() {
        let p = place(&hex("f3 0f 1e fa 48 8b 07 c3"), ARGS);
        assert_eq!(
            p,
            Placement {
                entry: 4,
                sp_adjust: 0,
                emulated: false
            }
        );
    }

    #[test]
    fn a_register_that_must_stay_is_not_skipped_past_when_cleared() {
        // pyenv 3.13 _PyType_NewManagedObject: sub $8,%rsp; xor %esi,%esi; call ...
        let code = hex("48 83 ec 08 31 f6 e8 00 00 00 00");
        assert_eq!(place(&code, &[Reg::Rdi]).entry, 6);
        assert!(!place(&code, ARGS).emulated);
    }
}
