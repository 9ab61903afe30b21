//! Where a function returns, found by decoding its code, so that returns are taken by plain
//! uprobes on instructions the kernel emulates instead of by a uretprobe.
//!
//! A uretprobe hijacks the return address of each call it sees, and the kernel holds the probe
//! until that call returns: a command whose threads kept calls open for good (its main loop, a
//! worker parked in a queue get) held pyprobe's detach, and every other uprobe user of the host,
//! in `synchronize_srcu` for as long as it ran. A uprobe changes nothing on the stack and
//! detaches at once. On the `ret` itself it is single-stepped (measured on this VM: 15 us a
//! call against 1.8 us with a uretprobe), so where it can the probe goes one step earlier, on the emulated
//! instructions (jumps, branches, calls) that lead into the epilogue: a `call` that falls into
//! it, a `jmp` or a taken `jcc` that enters it, from the function or from its cold blocks. At
//! each, the stack pointer the call began with is a constant away from rsp (what the epilogue
//! pops) or from rbp (an epilogue that ends in `leave`); the kernel side adds it and, on a
//! conditional branch, checks the flags.
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// The most return sites probed.
pub const MAX_SITES: usize = 16;
/// The longest epilogue followed back from a `ret`.
const MAX_EPILOGUE: usize = 64;

/// A place where the function returns, as the kernel side reads it (its cookie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site {
    /// Link-time address of the probed instruction.
    pub addr: u64,
    /// What to add to rsp (or rbp) for the stack pointer the call began with.
    pub offset: i32,
    pub from_rbp: bool,
    /// The x86 condition (0-15) under which passing here returns; None: always.
    pub condition: Option<u8>,
}

impl Site {
    /// The BPF cookie: offset in bits 0-31, rbp in bit 32, condition + 1 in bits 40-44
    /// (bpf/functions.bpf.h `eval_return_sp`).
    pub fn cookie(&self) -> u64 {
        u64::from(self.offset as u32)
            | (u64::from(self.from_rbp) << 32)
            | (self.condition.map_or(0, |c| u64::from(c) + 1) << 40)
    }
}

/// Code decoded at a link-time address.
pub struct Code<'a> {
    pub addr: u64,
    pub bytes: &'a [u8],
}

fn decode(code: &Code<'_>) -> Vec<Instruction> {
    Decoder::with_ip(64, code.bytes, code.addr, DecoderOptions::NONE)
        .into_iter()
        .collect()
}

/// Ends a straight run of code: nothing after it runs next.
fn ends_block(i: &Instruction) -> bool {
    matches!(
        i.mnemonic(),
        Mnemonic::Jmp | Mnemonic::Ret | Mnemonic::Ud2 | Mnemonic::Int3
    ) || i.is_invalid()
}

/// A jump or conditional branch with a target in the code (not through a register).
fn direct_branch(i: &Instruction) -> Option<(u64, Option<u8>)> {
    if !matches!(i.op0_kind(), OpKind::NearBranch64) {
        return None;
    }
    let target = i.near_branch_target();
    match i.mnemonic() {
        Mnemonic::Jmp => Some((target, None)),
        m => condition(m).map(|c| (target, Some(c))),
    }
}

fn condition(m: Mnemonic) -> Option<u8> {
    Some(match m {
        Mnemonic::Jo => 0,
        Mnemonic::Jno => 1,
        Mnemonic::Jb => 2,
        Mnemonic::Jae => 3,
        Mnemonic::Je => 4,
        Mnemonic::Jne => 5,
        Mnemonic::Jbe => 6,
        Mnemonic::Ja => 7,
        Mnemonic::Js => 8,
        Mnemonic::Jns => 9,
        Mnemonic::Jp => 10,
        Mnemonic::Jnp => 11,
        Mnemonic::Jl => 12,
        Mnemonic::Jge => 13,
        Mnemonic::Jle => 14,
        Mnemonic::Jg => 15,
        _ => return None,
    })
}

/// Targets outside `body` of the direct branches in `code` (up to the end of its first block
/// when `first_block`): where the function's cold blocks are.
pub fn branches_out(code: &Code<'_>, body: std::ops::Range<u64>, first_block: bool) -> Vec<u64> {
    let mut out = Vec::new();
    for i in decode(code) {
        if let Some((t, _)) = direct_branch(&i)
            && !body.contains(&t)
        {
            out.push(t);
        }
        if first_block && ends_block(&i) {
            break;
        }
    }
    out
}

/// How the stack pointer the call began with is found before an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Rsp(i64),
    Rbp(i64),
}

/// `before` from `after`, across `i`; None for what cannot be followed.
fn step_back(i: &Instruction, after: Base) -> Option<Base> {
    let writes = |r: Register| i.op0_kind() == OpKind::Register && i.op0_register() == r;
    let imm = || match i.op1_kind() {
        OpKind::Immediate8to64 | OpKind::Immediate32to64 => Some(i.immediate64() as i64),
        OpKind::Immediate8 | OpKind::Immediate32 => Some(i64::from(i.immediate32() as i32)),
        _ => None,
    };
    Some(match (i.mnemonic(), after) {
        (Mnemonic::Ret | Mnemonic::Jmp | Mnemonic::Call, _) => after,
        (Mnemonic::Leave, Base::Rsp(k)) => Base::Rbp(8 + k),
        (Mnemonic::Pop, Base::Rsp(k)) if !writes(Register::RSP) => Base::Rsp(k + 8),
        (Mnemonic::Push, Base::Rsp(k)) => Base::Rsp(k - 8),
        (Mnemonic::Add, Base::Rsp(k)) if writes(Register::RSP) => Base::Rsp(k + imm()?),
        (Mnemonic::Sub, Base::Rsp(k)) if writes(Register::RSP) => Base::Rsp(k - imm()?),
        (Mnemonic::Lea, Base::Rsp(k))
            if writes(Register::RSP) && i.memory_base() == Register::RSP =>
        {
            Base::Rsp(k + i.memory_displacement64() as i64)
        }
        (Mnemonic::Mov, Base::Rsp(k))
            if writes(Register::RSP)
                && i.op1_kind() == OpKind::Register
                && i.op1_register() == Register::RBP =>
        {
            Base::Rbp(k)
        }
        (Mnemonic::Pop | Mnemonic::Push | Mnemonic::Leave | Mnemonic::Enter, Base::Rbp(_)) => {
            return None;
        }
        _ if writes(Register::RSP) || writes(Register::ESP) => return None,
        (_, Base::Rbp(_)) if writes(Register::RBP) || writes(Register::EBP) => return None,
        _ => after,
    })
}

/// Emulated by the kernel and falls through into what follows (a call returns there).
fn emulated_fallthrough(i: &Instruction) -> bool {
    matches!(
        i.mnemonic(),
        Mnemonic::Call | Mnemonic::Nop | Mnemonic::Push
    ) && (i.mnemonic() != Mnemonic::Call || i.op0_kind() == OpKind::NearBranch64)
        && (i.mnemonic() != Mnemonic::Push || i.op0_kind() == OpKind::Register)
}

fn site(addr: u64, base: Base, condition: Option<u8>) -> Option<Site> {
    let (offset, from_rbp) = match base {
        Base::Rsp(k) => (k, false),
        Base::Rbp(k) => (k, true),
    };
    Some(Site {
        addr,
        offset: i32::try_from(offset).ok()?,
        from_rbp,
        condition,
    })
}

/// The return sites of the function `body`, whose cold blocks (code outside it that its
/// branches reach) are `islands`; None where there is no `ret` or too many sites. With
/// `follow_epilogues`, the emulated instructions that lead into each epilogue; else, and
/// where an epilogue cannot be followed, the `ret` itself (single-stepped, but exact).
///
/// Only a function whose epilogues are entered by direct branches and fall-throughs alone can
/// be followed: CPython 3.6-3.10's `_PyEval_EvalFrameDefault`. From 3.11 on, the common exit is
/// an opcode's handler (INTERPRETER_EXIT, a RETURN of the entry frame) reached by the computed
/// `goto` of the dispatch, which no branch in the code names: probes before the epilogue
/// missed nearly every return (3.12, 3.14), and only the `ret` sees them all.
pub fn sites(body: &Code<'_>, islands: &[Code<'_>], follow_epilogues: bool) -> Option<Vec<Site>> {
    let insns = decode(body);
    if insns.iter().any(|i| i.is_invalid()) {
        return None;
    }
    let range = body.addr..body.addr + body.bytes.len() as u64;
    // Every direct branch of the function and of its cold blocks (each to its block's end).
    let mut branches: Vec<(u64, u64, Option<u8>)> = insns
        .iter()
        .filter_map(|i| direct_branch(i).map(|(t, c)| (i.ip(), t, c)))
        .collect();
    for island in islands {
        for i in decode(island) {
            if let Some((t, c)) = direct_branch(&i) {
                branches.push((i.ip(), t, c));
            }
            if ends_block(&i) {
                break;
            }
        }
    }
    let mut found: Vec<Site> = Vec::new();
    for (r, ret) in insns
        .iter()
        .enumerate()
        .filter(|(_, i)| i.mnemonic() == Mnemonic::Ret)
    {
        let epilogue = if follow_epilogues {
            epilogue_sites(&insns, r, &branches, &range)
        } else {
            None
        };
        match epilogue {
            Some(s) => found.extend(s),
            None => found.push(site(ret.ip(), Base::Rsp(0), None)?),
        }
    }
    // A branch whose both ways lead to a return is one unconditional site.
    found.sort_by_key(|s| (s.addr, s.condition));
    let mut merged: Vec<Site> = Vec::new();
    for s in found {
        match merged.last_mut() {
            Some(last) if last.addr == s.addr => {
                if (last.offset, last.from_rbp) != (s.offset, s.from_rbp) {
                    return None;
                }
                last.condition = None;
            }
            _ => merged.push(s),
        }
    }
    (!merged.is_empty() && merged.len() <= MAX_SITES).then_some(merged)
}

/// The emulated instructions that lead into the epilogue ending at `insns[r]` (a `ret`), or
/// None where it cannot be followed.
fn epilogue_sites(
    insns: &[Instruction],
    r: usize,
    branches: &[(u64, u64, Option<u8>)],
    body: &std::ops::Range<u64>,
) -> Option<Vec<Site>> {
    // The epilogue: the run of instructions before the `ret` that only fall into it, each with
    // how the stack pointer the call began with is found before it.
    let mut region: Vec<(u64, Base)> = vec![(insns[r].ip(), Base::Rsp(0))];
    let mut base = Base::Rsp(0);
    let mut sites = Vec::new();
    let mut i = r;
    loop {
        if i == 0 || region.len() > MAX_EPILOGUE {
            return None;
        }
        let prev = &insns[i - 1];
        if ends_block(prev) {
            break;
        }
        if emulated_fallthrough(prev) {
            sites.push(site(prev.ip(), step_back(prev, base)?, None)?);
            break;
        }
        if let Some((target, Some(c))) = direct_branch(prev) {
            // Passing a conditional branch falls into the epilogue when it is not taken.
            sites.push(site(prev.ip(), base, Some(c ^ 1))?);
            if region.iter().any(|(a, _)| *a == target) {
                return None;
            }
            break;
        }
        base = step_back(prev, base)?;
        region.push((prev.ip(), base));
        i -= 1;
    }
    for &(from, target, cond) in branches {
        if let Some((_, b)) = region.iter().find(|(a, _)| *a == target) {
            // A branch from inside the epilogue would loop in it: not an epilogue.
            if body.contains(&from) && region.iter().any(|(a, _)| *a == from) {
                return None;
            }
            sites.push(site(from, *b, cond)?);
        }
    }
    Some(sites)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn at(addr: u64, bytes: &[u8]) -> Code<'_> {
        Code { addr, bytes }
    }

    /// The site these tests expect.
    fn want(addr: u64, offset: i32, from_rbp: bool, condition: Option<u8>) -> Site {
        Site {
            addr,
            offset,
            from_rbp,
            condition,
        }
    }

    #[test]
    fn a_call_falling_into_the_epilogue_and_a_jump_to_it_are_the_sites() {
        // 0: jmp 7 ; 2: call +0 ; 7: add $0x18,%rsp ; b: pop %rbx ; c: pop %rbp ; d: ret
        let code = hex("eb 05 e8 00 00 00 00 48 83 c4 18 5b 5d c3");
        let s = sites(&at(0x1000, &code), &[], true).unwrap();
        let k = 0x18 + 16;
        assert_eq!(
            s,
            vec![want(0x1000, k, false, None), want(0x1002, k, false, None)]
        );
    }

    #[test]
    fn a_branch_not_taken_into_a_leave_epilogue_counts_from_rbp() {
        // 0: cmp $1,%rdi ; 4: jne a ; 6: xor %eax,%eax ; 8: leave ; 9: ret ; a: ud2
        let code = hex("48 83 ff 01 75 04 31 c0 c9 c3 0f 0b");
        let s = sites(&at(0x2000, &code), &[], true).unwrap();
        // jne (5) not taken: je (4).
        assert_eq!(s, vec![want(0x2004, 8, true, Some(4))]);
    }

    #[test]
    fn a_cold_block_jumping_back_into_the_epilogue_is_a_site() {
        // body: 0: jne cold ; 6: xor %eax,%eax ; 8: add $8,%rsp ; c: ret
        let body = hex("0f 85 f4 0f 00 00 31 c0 48 83 c4 08 c3");
        // cold at 0x3000: mov %rax,%rdx ; jmp back to 0x1008 (the add)
        let cold = hex("48 89 c2 e9 06 f0 ff ff");
        let b = at(0x2000, &body);
        assert_eq!(branches_out(&b, 0x2000..0x200d, false), vec![0x2ffa]);
        let c = at(0x2ffa, &cold);
        let s = sites(&b, &[c], true).unwrap();
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0], want(0x2000, 8, false, Some(4)));
        assert_eq!(s[1].addr, 0x2ffd);
        assert_eq!((s[1].offset, s[1].condition), (8, None));
    }

    #[test]
    fn no_return_or_undecodable_code_is_none() {
        assert_eq!(sites(&at(0, &hex("90 90 eb fe")), &[], true), None);
        assert_eq!(sites(&at(0, &hex("c3 0f")), &[], true), None);
    }

    #[test]
    fn an_epilogue_not_followed_is_probed_on_its_ret() {
        // One that cannot be followed. 0: jmp 2 ; 2: mov %rax,%rsp ; 5: ret
        let code = hex("eb 00 48 89 c4 c3");
        let s = sites(&at(0, &code), &[], true);
        assert_eq!(s, Some(vec![want(5, 0, false, None)]));
        // Epilogues not to be followed: the first test's code.
        let code = hex("eb 05 e8 00 00 00 00 48 83 c4 18 5b 5d c3");
        let s = sites(&at(0x1000, &code), &[], false);
        assert_eq!(s, Some(vec![want(0x100d, 0, false, None)]));
    }

    #[test]
    fn the_cookie_packs_offset_base_and_condition() {
        let s = want(0, -8, true, Some(4));
        assert_eq!(s.cookie(), 0xffff_fff8 | 1 << 32 | 5 << 40);
    }
}
