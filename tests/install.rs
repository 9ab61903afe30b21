//! What a user or packager installs: one binary that needs nothing but the C library, its shell
//! completions, and its man page, each checked by the program that will read it.
mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};

use clap::CommandFactory;
use common::{Pyprobe, TempDir, output_ok, pyprobe_bin};
use object::elf::{DT_NEEDED, FileHeader64};
use object::read::elf::FileHeader;
use object::{Endianness, Object};
use pyprobe::cli::Cli;

/// Libraries every x86-64 glibc system has: libelf and zlib must not be among them.
const SYSTEM_LIBRARIES: [&str; 4] = [
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
];

/// The binary's DT_NEEDED entries: the libraries the dynamic loader must find.
fn needed_libraries(path: &str) -> Vec<String> {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    assert_eq!(file.architecture(), object::Architecture::X86_64);
    let header = FileHeader64::<Endianness>::parse(&*data).unwrap();
    let endian = header.endian().unwrap();
    let sections = header.sections(endian, &*data).unwrap();
    let table = sections.dynamic_table(endian, &*data).unwrap();
    table
        .iter()
        .filter(|d| d.tag == DT_NEEDED)
        .map(|d| String::from_utf8(table.string(d).unwrap().to_vec()).unwrap())
        .collect()
}

#[test]
fn the_binary_needs_only_the_c_library() {
    let needed = needed_libraries(pyprobe_bin());
    assert!(needed.iter().any(|l| l == "libc.so.6"), "{needed:?}");
    for lib in &needed {
        assert!(
            SYSTEM_LIBRARIES.contains(&lib.as_str()),
            "pyprobe needs {lib} at run time (all: {needed:?})"
        );
    }
    // The loader's view, transitive dependencies included.
    let ldd = Command::new("ldd").arg(pyprobe_bin()).output().unwrap();
    let resolved = String::from_utf8(ldd.stdout).unwrap();
    let names: Vec<&str> = resolved
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "linux-vdso.so.1")
        .map(|n| n.rsplit('/').next().unwrap())
        .collect();
    assert!(names.contains(&"libc.so.6"), "{resolved}");
    for name in names {
        assert!(SYSTEM_LIBRARIES.contains(&name), "ldd: {resolved}");
    }
}

/// The commands a user sees (hidden ones and clap's `help` aside), from the definition itself.
fn visible_commands() -> Vec<String> {
    let names: Vec<String> = Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect();
    for known in [
        "probes",
        "count",
        "flow",
        "gc",
        "stacks",
        "completions",
        "man",
    ] {
        assert!(names.iter().any(|n| n == known), "{known} in {names:?}");
    }
    names
}

fn generated(args: &[&str]) -> String {
    let out = Pyprobe::new(args).run();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Asks bash's completion function for the candidates after `words` (the last one being typed).
fn bash_completes(script: &str, words: &[&str]) -> BTreeSet<String> {
    let program = format!(
        "source {script}\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_{} {} '{}' '{}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        words.len() - 1,
        words[0],
        words[0],
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = output_ok(Command::new("bash").args(["--norc", "-c", &program]));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_bash_completion_parses_and_completes_every_command() {
    let dir = TempDir::new("completion");
    let script = dir.write("pyprobe.bash", &generated(&["completions", "bash"]));
    let check = Command::new("bash").args(["-n", &script]).output().unwrap();
    assert!(
        check.status.success() && check.stderr.is_empty(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    let commands = bash_completes(&script, &["pyprobe", ""]);
    for name in visible_commands() {
        assert!(commands.contains(&name), "{name} not in {commands:?}");
    }
    assert!(!commands.contains("floor"), "a hidden command is offered");
    assert_eq!(
        bash_completes(&script, &["pyprobe", "count", "--la"]),
        BTreeSet::from(["--latency".to_string()])
    );
    // The links complete as the commands they run (issue 22), their own formats only.
    assert_eq!(
        bash_completes(&script, &["pycount", "--la"]),
        BTreeSet::from(["--latency".to_string()])
    );
    assert_eq!(
        bash_completes(&script, &["pycount", "--format", ""]),
        BTreeSet::from(["text".to_string(), "json".to_string()])
    );
    assert_eq!(
        bash_completes(&script, &["pygc", "--min"]),
        BTreeSet::from(["--min-pause".to_string()])
    );
    assert!(bash_completes(&script, &["pyflow", "--sub"]).contains("--subtree"));
    assert_eq!(
        bash_completes(&script, &["pyprobe", "completions", "z"]),
        BTreeSet::from(["zsh".to_string()])
    );
}

#[test]
fn every_shell_gets_a_script_that_names_every_command() {
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = generated(&["completions", shell]);
        for name in visible_commands() {
            assert!(script.contains(&name), "{shell}: no {name}");
        }
    }
    let out = Pyprobe::new(&["completions", "tcsh"]).run();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("pyprobe: error: invalid value 'tcsh'") && err.lines().count() == 1,
        "{err}"
    );
}

/// `man` renders the page as a reader sees it, with groff's warnings on stderr.
fn man(page: &str) -> Output {
    Command::new("man")
        .args(["--warnings", "-l", page])
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_man_page_renders_and_lists_every_command_and_option() {
    let dir = TempDir::new("man");
    let page = dir.write("pyprobe.1", &generated(&["man"]));
    let out = man(&page);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "man: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // man prints a minus for `\-`; either way the text must read as the option is typed.
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .replace(['\u{2212}', '\u{2010}'], "-");
    assert!(text.starts_with("pyprobe(1)"), "{}", &text[..200]);

    let headings: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("   pyprobe "))
        .collect();
    let cli = Cli::command();
    let commands = visible_commands();
    assert_eq!(headings, commands, "one subsection per command, in order");
    for name in &commands {
        let sub = cli.find_subcommand(name).unwrap();
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long().filter(|l| !["help", "verbose"].contains(l)) {
                assert!(
                    text.contains(&format!("--{long}")),
                    "pyprobe {name} --{long} missing"
                );
            }
        }
    }
    for section in [
        "NAME",
        "SYNOPSIS",
        "COMMANDS",
        "EXAMPLES",
        "WHAT ATTACHING CHANGES",
    ] {
        assert!(text.lines().any(|l| l == section), "no {section} section");
    }
    assert!(text.contains("pyprobe man | gzip > /usr/share/man/man1/pyprobe.1.gz"));
}

#[test]
fn the_deb_holds_the_binary_its_links_man_page_and_completions() {
    let dir = TempDir::new("deb");
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/deb"))
        .arg(dir.path().join("out"))
        .env("PYPROBE_BIN", pyprobe_bin())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scripts/deb: {stderr}");
    let deb = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        deb.ends_with(&format!("/pyprobe_{version}_amd64.deb")),
        "{deb}"
    );

    let field = |name: &str| {
        let o = Command::new("dpkg-deb")
            .args(["--field", &deb, name])
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    assert_eq!(field("Package"), "pyprobe");
    assert_eq!(field("Version"), version);
    assert!(
        field("Depends").starts_with("libc6 (>= 2."),
        "{}",
        field("Depends")
    );

    let root = dir.path().join("root");
    let x = Command::new("dpkg-deb")
        .args(["-x", &deb])
        .arg(&root)
        .status()
        .unwrap();
    assert!(x.success());
    let run = |name: &str, args: &[&str]| {
        let o = Command::new(root.join("usr/bin").join(name))
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{name} {args:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(
        run("pyprobe", &["--version"]),
        format!("pyprobe {version}\n")
    );
    // pycount is pyprobe count by its name.
    assert!(run("pycount", &["--help"]).contains("--latency"));
    let page = Command::new("gzip")
        .arg("-dc")
        .arg(root.join("usr/share/man/man1/pycount.1.gz"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(page.stdout).unwrap(), generated(&["man"]));
    for completion in [
        "usr/share/bash-completion/completions/pyprobe",
        "usr/share/zsh/vendor-completions/_pyprobe",
        "usr/share/fish/vendor_completions.d/pyprobe.fish",
    ] {
        let text = std::fs::read_to_string(root.join(completion)).unwrap();
        assert!(text.contains("completions"), "{completion}");
    }
}
