//! Reads what pyprobe needs from an interpreter's ELF file: USDT notes, symbols, segments.
use std::path::Path;

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, Object, ObjectSymbol, ReadRef};

use super::files::TargetFile;
use crate::abi::types::ArgReg;
use crate::error::Error;

/// One USDT probe site from `.note.stapsdt`, with addresses already rebased like libbpf does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSite {
    pub provider: String,
    pub name: String,
    /// Virtual address of the probe instruction in the file.
    pub pc: u64,
    /// Virtual address of the semaphore (0 when the probe has none).
    pub semaphore: u64,
    /// File offset of the semaphore, as the kernel's `ref_ctr_offset` wants it.
    pub semaphore_offset: u64,
    /// Argument locations in the `-4@%eax 8@(%rbp)` notation of the note.
    pub args: String,
}

/// A loadable segment: how virtual addresses map to file offsets.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
}

/// A symbol pyprobe looks up, with the first bytes of what it names in the file: a function's
/// first instructions (where a uprobe may go, what an accessor reads) or a variable's initial
/// value (`_PyRuntime` begins with the build's `_Py_DebugOffsets` from 3.13 on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    /// Up to `HEAD_LEN` bytes from its start, when they are in the file (not .bss).
    pub head: Vec<u8>,
}

/// A section pyprobe may scan (code and read-only data), where it is in memory and in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
}

/// The last: where CPython 3.14+ keeps `_Py_AsyncioModuleDebugOffsets` (data, read not scanned).
const WANTED_SECTIONS: &[&str] = &[".text", ".rodata", ".data.rel.ro", ".AsyncioDebug"];

/// How much of each wanted symbol's content is kept.
pub const HEAD_LEN: usize = 8192;

/// The parts of an ELF file pyprobe uses.
#[derive(Debug, Clone, Default)]
pub struct ElfInfo {
    pub probes: Vec<ProbeSite>,
    pub segments: Vec<Segment>,
    /// Dynamic and static symbols pyprobe looks up.
    pub symbols: Vec<Symbol>,
    pub sections: Vec<Section>,
    /// DT_NEEDED entries, to find a libpython that is not mapped yet.
    pub needed: Vec<String>,
    /// Value of the exported `Py_Version` (3.11+): PY_VERSION_HEX.
    pub py_version_hex: Option<u32>,
    /// ELF entry point (virtual address); 0 in a shared library.
    pub entry: u64,
    /// Start of `.init` (virtual address): run once when a library is loaded.
    pub init: u64,
}

/// The symbols pyprobe reads (`.dynsym` in every build; `.symtab` where the build kept it).
const WANTED_SYMBOLS: &[&str] = &[
    "_PyRuntime",
    "Py_Version",
    // The C function that evaluates each Python frame: the eval-frame event source.
    "_PyEval_EvalFrameDefault",
    // Reads `interp->eval_frame`: its first instruction gives the field's offset.
    "_PyInterpreterState_GetEvalFrameFunc",
    // The allocation of 3.13's CALL_ALLOC_AND_ENTER_INIT (a local symbol, in .symtab only).
    "_PyType_NewManagedObject",
    // Reads the thread-local current thread state (3.12+): its code gives the TLS offset.
    "_PyThreadState_GetCurrent",
    // Called once per Python frame an exception passes: pyprobe exceptions' probe.
    "PyTraceBack_Here",
];

impl ElfInfo {
    /// Parses a file of pyprobe's own (no traced process chose it): tests, tools.
    pub fn read(path: &Path) -> Result<ElfInfo, Error> {
        let file = TargetFile::open_local(path).map_err(|why| Error::UnsafeFile {
            path: path.display().to_string(),
            why: why.to_string(),
        })?;
        Self::read_file(&file, path)
    }

    /// Parses an opened and checked interpreter file; `path` names it in errors.
    pub fn read_file(file: &TargetFile, path: &Path) -> Result<ElfInfo, Error> {
        let reader = file.reader().map_err(|e| Error::io(path, e))?;
        // Only the parts parsed are read (headers, notes, symbol tables, a few symbols' heads),
        // and no more than MAX_READ_BYTES of them: an interpreter with debug symbols is 30 MB,
        // of which pyprobe needs a few hundred KiB.
        let cache = object::ReadCache::new(reader);
        Self::parse(&cache).map_err(|why| Error::BadElf {
            path: path.to_owned(),
            why,
        })
    }

    pub fn parse<'d, R: ReadRef<'d>>(data: R) -> Result<ElfInfo, String> {
        let header = elf::FileHeader64::<Endianness>::parse(data).map_err(|e| e.to_string())?;
        let endian = header.endian().map_err(|e| e.to_string())?;
        let sections = header.sections(endian, data).map_err(|e| e.to_string())?;
        let mut info = ElfInfo {
            entry: header.e_entry(endian),
            ..ElfInfo::default()
        };

        for ph in header
            .program_headers(endian, data)
            .map_err(|e| e.to_string())?
        {
            if ph.p_type(endian) == elf::PT_LOAD {
                info.segments.push(Segment {
                    vaddr: ph.p_vaddr(endian),
                    offset: ph.p_offset(endian),
                    filesz: ph.p_filesz(endian),
                });
            }
        }

        // Probe addresses are relative to .stapsdt.base as linked; prelink may have moved it.
        let mut stapsdt_base = None;
        for s in sections.iter() {
            match sections.section_name(endian, s).ok() {
                Some(b".stapsdt.base") => stapsdt_base = Some(s.sh_addr(endian)),
                Some(b".init") => info.init = s.sh_addr(endian),
                Some(name) if WANTED_SECTIONS.contains(&&*String::from_utf8_lossy(name)) => {
                    info.sections.push(Section {
                        name: String::from_utf8_lossy(name).into_owned(),
                        addr: s.sh_addr(endian),
                        offset: s.sh_offset(endian),
                        size: s.sh_size(endian),
                    })
                }
                _ => {}
            }
        }
        for s in sections.iter() {
            let Some(notes) = s.notes(endian, data).map_err(|e| e.to_string())? else {
                continue;
            };
            for note in notes {
                let note = note.map_err(|e| e.to_string())?;
                if note.name() != b"stapsdt" || note.n_type(endian) != elf::NoteType(3) {
                    continue;
                }
                if let Some(mut site) = parse_stapsdt(note.desc()) {
                    if let Some(actual) = stapsdt_base {
                        let linked = u64::from_le_bytes(note.desc()[8..16].try_into().unwrap());
                        site.pc = site.pc.wrapping_add(actual).wrapping_sub(linked);
                    }
                    site.semaphore_offset =
                        vaddr_to_offset(&info.segments, site.semaphore).unwrap_or(0);
                    info.probes.push(site);
                }
            }
        }

        let file = object::read::elf::ElfFile64::<Endianness, R>::parse(data)
            .map_err(|e| e.to_string())?;
        for sym in file.dynamic_symbols().chain(file.symbols()) {
            // Debian versions dynamic symbols (`name@@Base`).
            let Ok(name) = sym.name().map(|n| n.split('@').next().unwrap_or(n)) else {
                continue;
            };
            if WANTED_SYMBOLS.contains(&name) && info.symbol(name).is_none() {
                let head = vaddr_to_offset(&info.segments, sym.address())
                    .and_then(|off| {
                        let len = data.len().ok()?.saturating_sub(off).min(HEAD_LEN as u64);
                        data.read_bytes_at(off, len).ok()
                    })
                    .unwrap_or_default()
                    .to_vec();
                info.symbols.push(Symbol {
                    name: name.to_string(),
                    addr: sym.address(),
                    size: sym.size(),
                    head,
                });
            }
        }
        if let Some(addr) = info.symbol("Py_Version")
            && let Some(off) = vaddr_to_offset(&info.segments, addr)
            && let Ok(b) = data.read_bytes_at(off, 4)
        {
            info.py_version_hex = Some(u32::from_le_bytes(b.try_into().unwrap()));
        }
        info.needed = needed_libs(&sections, endian, data);
        Ok(info)
    }

    /// The link-time address of a wanted symbol.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbol_info(name).map(|s| s.addr)
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    pub fn symbol_info(&self, name: &str) -> Option<&Symbol> {
        self.symbols.iter().find(|s| s.name == name)
    }

    /// The file offset of a link-time address (what a uprobe at that address is attached by).
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        vaddr_to_offset(&self.segments, vaddr)
    }

    pub fn python_probes(&self) -> impl Iterator<Item = &ProbeSite> {
        self.probes.iter().filter(|p| p.provider == "python")
    }

    pub fn has_python_probes(&self) -> bool {
        self.python_probes().next().is_some()
    }

    /// The first site of a probe (all sites of one probe share its semaphore).
    pub fn probe(&self, name: &str) -> Option<&ProbeSite> {
        self.python_probes().find(|p| p.name == name)
    }

    /// File offset of code that runs once at start and never again: the entry point of an
    /// executable, `.init` of a library (whose entry is 0, the ELF header). A place for a uprobe
    /// that must never fire in a running interpreter.
    pub fn run_once_offset(&self) -> Option<u64> {
        let addr = if self.entry != 0 {
            self.entry
        } else {
            self.init
        };
        if addr == 0 {
            return None;
        }
        vaddr_to_offset(&self.segments, addr)
    }

    /// Difference between run-time and link-time addresses for a mapping of this file.
    pub fn load_bias(&self, mapped_start_of_offset_zero: u64) -> u64 {
        let first = self
            .segments
            .iter()
            .map(|s| s.vaddr - s.offset)
            .min()
            .unwrap_or(0);
        mapped_start_of_offset_zero.wrapping_sub(first & !0xfff)
    }
}

/// DT_NEEDED entries of the dynamic section (the libraries the loader will map).
fn needed_libs<'d, R: ReadRef<'d>>(
    sections: &object::read::elf::SectionTable<'d, elf::FileHeader64<Endianness>, R>,
    endian: Endianness,
    data: R,
) -> Vec<String> {
    let Ok(Some((dynamic, strtab))) = sections.dynamic(endian, data) else {
        return Vec::new();
    };
    let Ok(strings) = sections.strings(endian, data, strtab) else {
        return Vec::new();
    };
    dynamic
        .iter()
        .filter(|d| d.d_tag(endian) == elf::DT_NEEDED as _)
        .filter_map(|d| d.string(endian, strings).ok())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// The `enum arg_reg` value of an argument that is a whole 64-bit register (`8@%r12`), if it is.
pub fn plain_register(arg: &str) -> Option<u32> {
    let (size, loc) = arg.split_once('@')?;
    if !matches!(size, "8" | "-8") {
        return None;
    }
    let reg = match loc.strip_prefix('%')? {
        "rax" => ArgReg::ARG_REG_RAX,
        "rbx" => ArgReg::ARG_REG_RBX,
        "rcx" => ArgReg::ARG_REG_RCX,
        "rdx" => ArgReg::ARG_REG_RDX,
        "rsi" => ArgReg::ARG_REG_RSI,
        "rdi" => ArgReg::ARG_REG_RDI,
        "rbp" => ArgReg::ARG_REG_RBP,
        "r8" => ArgReg::ARG_REG_R8,
        "r9" => ArgReg::ARG_REG_R9,
        "r10" => ArgReg::ARG_REG_R10,
        "r11" => ArgReg::ARG_REG_R11,
        "r12" => ArgReg::ARG_REG_R12,
        "r13" => ArgReg::ARG_REG_R13,
        "r14" => ArgReg::ARG_REG_R14,
        "r15" => ArgReg::ARG_REG_R15,
        _ => return None,
    };
    Some(reg.0)
}

impl ElfInfo {
    /// The register that holds argument `index` at every site of `probe`, as an `enum arg_reg`
    /// value; 0 (ask libbpf) when sites differ or the argument is not a plain register.
    pub fn arg_register(&self, probe: &str, index: usize) -> u32 {
        let mut regs = self.python_probes().filter(|p| p.name == probe).map(|p| {
            p.args
                .split_whitespace()
                .nth(index)
                .and_then(plain_register)
        });
        let Some(Some(first)) = regs.next() else {
            return 0;
        };
        if regs.all(|r| r == Some(first)) {
            first
        } else {
            0
        }
    }
}

/// Maps a virtual address to its offset in the file, through the loadable segments.
pub fn vaddr_to_offset(segments: &[Segment], vaddr: u64) -> Option<u64> {
    segments
        .iter()
        .find(|s| vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz)
        .map(|s| vaddr - s.vaddr + s.offset)
}

/// Parses the descriptor of one stapsdt note: pc, base, semaphore, then three C strings.
fn parse_stapsdt(desc: &[u8]) -> Option<ProbeSite> {
    if desc.len() < 24 {
        return None;
    }
    let word = |i: usize| u64::from_le_bytes(desc[i * 8..i * 8 + 8].try_into().unwrap());
    let mut strings = desc[24..]
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned());
    Some(ProbeSite {
        pc: word(0),
        semaphore: word(2),
        provider: strings.next()?,
        name: strings.next()?,
        args: strings.next().unwrap_or_default(),
        semaphore_offset: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note_desc(pc: u64, base: u64, sem: u64, provider: &str, name: &str, args: &str) -> Vec<u8> {
        let mut d = Vec::new();
        for w in [pc, base, sem] {
            d.extend_from_slice(&w.to_le_bytes());
        }
        for s in [provider, name, args] {
            d.extend_from_slice(s.as_bytes());
            d.push(0);
        }
        d
    }

    #[test]
    fn parses_a_stapsdt_descriptor() {
        let d = note_desc(
            0x4f20d4,
            0x8cc5a0,
            0xa84262,
            "python",
            "function__return",
            "8@%rbp 8@%r12 -4@%eax",
        );
        let p = parse_stapsdt(&d).unwrap();
        assert_eq!(p.provider, "python");
        assert_eq!(p.name, "function__return");
        assert_eq!(p.pc, 0x4f20d4);
        assert_eq!(p.semaphore, 0xa84262);
        assert_eq!(p.args, "8@%rbp 8@%r12 -4@%eax");
    }

    #[test]
    fn names_plain_register_arguments() {
        assert_eq!(plain_register("8@%r12"), Some(ArgReg::ARG_REG_R12.0));
        assert_eq!(plain_register("8@%rbp"), Some(ArgReg::ARG_REG_RBP.0));
        assert_eq!(plain_register("-8@%rax"), Some(ArgReg::ARG_REG_RAX.0));
        assert_eq!(plain_register("-4@%eax"), None);
        assert_eq!(plain_register("8@-292(%rbp)"), None);
        assert_eq!(plain_register("8@%xmm0"), None);
    }

    #[test]
    fn a_register_counts_only_when_every_site_agrees() {
        let site = |args: &str| ProbeSite {
            provider: "python".into(),
            name: "function__return".into(),
            pc: 0,
            semaphore: 0,
            semaphore_offset: 0,
            args: args.into(),
        };
        let mut info = ElfInfo {
            probes: vec![site("8@%rbp 8@%r12 -4@%eax")],
            ..Default::default()
        };
        assert_eq!(
            info.arg_register("function__return", 1),
            ArgReg::ARG_REG_R12.0
        );
        info.probes.push(site("8@%rbx 8@%r13 -4@%eax"));
        assert_eq!(info.arg_register("function__return", 1), 0);
        assert_eq!(info.arg_register("function__entry", 1), 0);
    }

    #[test]
    fn rejects_a_short_descriptor() {
        assert!(parse_stapsdt(&[0; 10]).is_none());
    }

    #[test]
    fn maps_addresses_through_segments() {
        let segs = [
            Segment {
                vaddr: 0x400000,
                offset: 0,
                filesz: 0x1000,
            },
            Segment {
                vaddr: 0x945dc8,
                offset: 0x544dc8,
                filesz: 0x13e4b0,
            },
        ];
        assert_eq!(vaddr_to_offset(&segs, 0xa84260), Some(0x683260));
        assert_eq!(vaddr_to_offset(&segs, 0x300000), None);
    }
}
