//! CPython 3.13 runs the `__init__` of a plain class it instantiates without calling
//! _PyEval_EvalFrameDefault: the specialized CALL_ALLOC_AND_ENTER_INIT instruction pushes that
//! frame itself, even with the perf trampoline on (3.14 checks first). Each such
//! instantiation makes one call of an allocator, with the class in rdi: a uprobe there counts
//! them. This finds that call.
use super::prologue::{Reg, place};
use crate::target::Target;

/// CALL_ALLOC_AND_ENTER_INIT's opcode in 3.13 (`dis._all_opmap`).
const OPCODE: usize = 162;
/// How much of the instruction's code is searched for its allocation call.
const HANDLER_LEN: usize = 1024;

/// The file offset of a uprobe that fires once per such `__init__` frame, with the class in
/// rdi; None where this build's code was not recognised.
pub fn allocation_probe(target: &Target) -> Option<u64> {
    // Builds that keep their symbols (pyenv, python.org, uv): the allocator has one caller.
    if let Some(sym) = target.elf.symbol_info("_PyType_NewManagedObject") {
        let p = place(&sym.head, &[Reg::Rdi]);
        return target.elf.file_offset(sym.addr + p.entry);
    }
    let handler = opcode_targets(target)?.get(OPCODE).copied()?;
    let code = target.file_bytes(handler, HANDLER_LEN).ok()?;
    let text = target.elf.section(".text")?;
    // The instruction's first call: guards jump away, the allocation is the one call made.
    let call = (0..code.len().saturating_sub(5)).find(|&i| {
        code[i] == 0xe8 && {
            let rel = i32::from_le_bytes(code[i + 1..i + 5].try_into().unwrap());
            let to = (handler + i as u64 + 5).wrapping_add(rel as i64 as u64);
            (text.addr..text.addr + text.size).contains(&to) && starts_a_function(target, to)
        }
    })?;
    target.elf.file_offset(handler + call as u64)
}

/// Whether code at `addr` looks like a function's first instruction (endbr64 or a push).
fn starts_a_function(target: &Target, addr: u64) -> bool {
    target.file_bytes(addr, 4).is_ok_and(|b| {
        b.starts_with(&[0xf3, 0x0f, 0x1e, 0xfa])
            || matches!(b[..], [0x50..=0x57, ..] | [0x41, 0x50..=0x57, ..])
    })
}

/// The interpreter's computed-goto table: 256 pointers into .text, one per opcode, among them
/// many to the one handler of unknown opcodes.
fn opcode_targets(target: &Target) -> Option<Vec<u64>> {
    let text = target.elf.section(".text")?;
    let in_text = |a: u64| (text.addr..text.addr + text.size).contains(&a);
    for name in [".data.rel.ro", ".rodata"] {
        let Some(sec) = target.elf.section(name) else {
            continue;
        };
        let bytes = target.file_bytes(sec.addr, sec.size as usize).ok()?;
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let mut i = 0;
        while i + 256 <= words.len() {
            let table = &words[i..i + 256];
            match table.iter().position(|&w| !in_text(w)) {
                Some(bad) => i += bad + 1,
                None => {
                    let unknown = table
                        .iter()
                        .map(|a| table.iter().filter(|&b| b == a).count())
                        .max()
                        .unwrap_or(0);
                    if unknown >= 16 {
                        return Some(table.to_vec());
                    }
                    i += 256;
                }
            }
        }
    }
    None
}
