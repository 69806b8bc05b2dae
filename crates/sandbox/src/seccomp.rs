//! The seccomp filter every sandboxed command runs under, as a classic BPF program that
//! bubblewrap loads (`--seccomp FD`) right before it executes the command.
//!
//! It is a deny list: a test suite needs almost every system call, and the ones refused here
//! are those it never needs and that widen the kernel surface or reach outside the sandbox:
//! debugging other processes (`ptrace`, `process_vm_*`, `pidfd_getfd`), mounts and new
//! namespaces (`mount`, the new mount API, `unshare`, `setns`, `clone` with any `CLONE_NEW*`
//! flag), kernel loading and rebooting (`kexec_*`, `*_module`, `reboot`), `bpf`,
//! `perf_event_open`, the kernel keyring (`keyctl`, `add_key`, `request_key`),
//! `userfaultfd`, file handles (`open_by_handle_at`), clocks, swap, accounting, quotas and
//! `syslog`, and the terminal-injection ioctls (`TIOCSTI`, `TIOCLINUX`). Refused calls fail
//! with `EPERM` (so a test sees an ordinary error, not a crash); `clone3` fails with `ENOSYS`
//! because its flags live in memory the filter cannot read, and libc then falls back to
//! `clone`, whose flags it can. A call from another architecture's ABI (32-bit `int 0x80`,
//! x32) kills the process: its numbers mean other calls, which a deny list cannot vouch for.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// `struct seccomp_data` offsets: the syscall number, the audit architecture, argument `n`
/// (its low 32 bits on a little-endian machine).
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const fn offset_arg_low(n: u32) -> u32 {
    16 + 8 * n
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
/// CLONE_NEWPID | CLONE_NEWNET`.
const CLONE_NEW_ANY: u32 = 0x7E02_0000;
const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541C;

/// The architecture's numbers.
#[cfg(target_arch = "x86_64")]
mod arch {
    /// `AUDIT_ARCH_X86_64`.
    pub(super) const AUDIT_ARCH: u32 = 0xC000_003E;
    /// x32 calls carry this bit in their number.
    pub(super) const FOREIGN_NR_BIT: Option<u32> = Some(0x4000_0000);
    pub(super) const CLONE: u32 = 56;
    pub(super) const CLONE3: u32 = 435;
    pub(super) const IOCTL: u32 = 16;
    /// Refused with `EPERM`, by name for the reader and the tests.
    pub(super) const DENIED: &[(&str, u32)] = &[
        ("ptrace", 101),
        ("process_vm_readv", 310),
        ("process_vm_writev", 311),
        ("pidfd_getfd", 438),
        ("kcmp", 312),
        ("mount", 165),
        ("umount2", 166),
        ("pivot_root", 155),
        ("chroot", 161),
        ("open_tree", 428),
        ("move_mount", 429),
        ("fsopen", 430),
        ("fsconfig", 431),
        ("fsmount", 432),
        ("fspick", 433),
        ("mount_setattr", 442),
        ("unshare", 272),
        ("setns", 308),
        ("kexec_load", 246),
        ("kexec_file_load", 320),
        ("init_module", 175),
        ("finit_module", 313),
        ("delete_module", 176),
        ("reboot", 169),
        ("bpf", 321),
        ("perf_event_open", 298),
        ("keyctl", 250),
        ("add_key", 248),
        ("request_key", 249),
        ("userfaultfd", 323),
        ("open_by_handle_at", 304),
        ("name_to_handle_at", 303),
        ("iopl", 172),
        ("ioperm", 173),
        ("swapon", 167),
        ("swapoff", 168),
        ("acct", 163),
        ("quotactl", 179),
        ("syslog", 103),
        ("settimeofday", 164),
        ("clock_settime", 227),
        ("clock_adjtime", 305),
        ("adjtimex", 159),
        ("vhangup", 153),
        ("lookup_dcookie", 212),
        ("fanotify_init", 300),
        ("personality", 135),
    ];
}

/// The architecture's numbers.
#[cfg(target_arch = "aarch64")]
mod arch {
    /// `AUDIT_ARCH_AARCH64`.
    pub(super) const AUDIT_ARCH: u32 = 0xC000_00B7;
    pub(super) const FOREIGN_NR_BIT: Option<u32> = None;
    pub(super) const CLONE: u32 = 220;
    pub(super) const CLONE3: u32 = 435;
    pub(super) const IOCTL: u32 = 29;
    /// Refused with `EPERM`, by name for the reader and the tests.
    pub(super) const DENIED: &[(&str, u32)] = &[
        ("ptrace", 117),
        ("process_vm_readv", 270),
        ("process_vm_writev", 271),
        ("pidfd_getfd", 438),
        ("kcmp", 272),
        ("mount", 40),
        ("umount2", 39),
        ("pivot_root", 41),
        ("chroot", 51),
        ("open_tree", 428),
        ("move_mount", 429),
        ("fsopen", 430),
        ("fsconfig", 431),
        ("fsmount", 432),
        ("fspick", 433),
        ("mount_setattr", 442),
        ("unshare", 97),
        ("setns", 268),
        ("kexec_load", 104),
        ("kexec_file_load", 294),
        ("init_module", 105),
        ("finit_module", 273),
        ("delete_module", 106),
        ("reboot", 142),
        ("bpf", 280),
        ("perf_event_open", 241),
        ("keyctl", 219),
        ("add_key", 217),
        ("request_key", 218),
        ("userfaultfd", 282),
        ("open_by_handle_at", 265),
        ("name_to_handle_at", 264),
        ("swapon", 224),
        ("swapoff", 225),
        ("acct", 89),
        ("quotactl", 60),
        ("syslog", 116),
        ("settimeofday", 170),
        ("clock_settime", 112),
        ("clock_adjtime", 266),
        ("adjtimex", 171),
        ("vhangup", 58),
        ("lookup_dcookie", 18),
        ("fanotify_init", 262),
        ("personality", 92),
    ];
}

/// The names of the system calls refused outright (for documentation and tests).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn denied_syscalls() -> Vec<&'static str> {
    arch::DENIED.iter().map(|(name, _)| *name).collect()
}

/// The names of the system calls refused outright (for documentation and tests).
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn denied_syscalls() -> Vec<&'static str> {
    Vec::new()
}

/// Where a jump goes, resolved when the program is assembled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Next,
    Deny,
    NoSys,
    Allow,
    Kill,
    CloneCheck,
    IoctlCheck,
}

/// One instruction before its jumps are resolved.
enum Insn {
    Load(u32),
    Jump {
        op: u16,
        k: u32,
        jt: Label,
        jf: Label,
    },
    Ret(u32),
    /// Marks where a label points; emits nothing.
    Mark(Label),
}

/// The filter as bubblewrap reads it: `struct sock_filter` records in native byte order.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn program() -> Result<Vec<u8>> {
    use Label::{Allow, CloneCheck, Deny, IoctlCheck, Kill, Next, NoSys};
    let jeq = |k, jt| Insn::Jump {
        op: BPF_JEQ_K,
        k,
        jt,
        jf: Next,
    };
    let mut insns = vec![
        Insn::Load(OFFSET_ARCH),
        Insn::Jump {
            op: BPF_JEQ_K,
            k: arch::AUDIT_ARCH,
            jt: Next,
            jf: Kill,
        },
        Insn::Load(OFFSET_NR),
    ];
    if let Some(bit) = arch::FOREIGN_NR_BIT {
        insns.push(Insn::Jump {
            op: BPF_JGE_K,
            k: bit,
            jt: Kill,
            jf: Next,
        });
    }
    insns.push(jeq(arch::CLONE, CloneCheck));
    insns.push(jeq(arch::CLONE3, NoSys));
    insns.push(jeq(arch::IOCTL, IoctlCheck));
    for (_, nr) in arch::DENIED {
        insns.push(jeq(*nr, Deny));
    }
    // Classic BPF jumps only forward: every target comes after the checks that use it.
    insns.extend([
        Insn::Ret(RET_ALLOW),
        Insn::Mark(CloneCheck),
        Insn::Load(offset_arg_low(0)),
        Insn::Jump {
            op: BPF_JSET_K,
            k: CLONE_NEW_ANY,
            jt: Deny,
            jf: Allow,
        },
        Insn::Mark(IoctlCheck),
        Insn::Load(offset_arg_low(1)),
        jeq(TIOCSTI, Deny),
        Insn::Jump {
            op: BPF_JEQ_K,
            k: TIOCLINUX,
            jt: Deny,
            jf: Allow,
        },
        Insn::Mark(Allow),
        Insn::Ret(RET_ALLOW),
        Insn::Mark(NoSys),
        Insn::Ret(RET_ERRNO | ENOSYS),
        Insn::Mark(Deny),
        Insn::Ret(RET_ERRNO | EPERM),
        Insn::Mark(Kill),
        Insn::Ret(RET_KILL_PROCESS),
    ]);
    assemble(&insns)
}

/// The filter as bubblewrap reads it (unsupported architecture).
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn program() -> Result<Vec<u8>> {
    Err(Error::InvalidConfig(format!(
        "no seccomp filter is defined for the {} architecture",
        std::env::consts::ARCH
    )))
}

/// Writes [`program`] to `<dir>/.seccomp-<hash of the program>.bpf`, read-only and replaced
/// atomically, and returns its path: each sandbox's launcher opens its own descriptor on it,
/// and no sandbox sees the directory.
pub(crate) fn write_program(dir: &Path) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let program = program()?;
    let path = dir.join(format!(".seccomp-{}.bpf", crate::checkout::key(&program)));
    let temporary = dir.join(format!(".seccomp-{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&temporary)
        .and_then(|mut file| file.write_all(&program))
        .and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(Error::Io {
            action: "write the seccomp filter",
            path,
            source,
        });
    }
    Ok(path)
}

/// Resolves labels to forward jump offsets and encodes the instructions.
fn assemble(insns: &[Insn]) -> Result<Vec<u8>> {
    // Index of every real instruction and of every label.
    let mut index = 0usize;
    let mut positions = Vec::with_capacity(insns.len());
    let mut labels: Vec<(Label, usize)> = Vec::new();
    for insn in insns {
        positions.push(index);
        match insn {
            Insn::Mark(label) => labels.push((*label, index)),
            _ => index += 1,
        }
    }
    let target = |label: Label, at: usize| -> Result<u8> {
        let to = match label {
            Label::Next => at + 1,
            other => labels
                .iter()
                .find(|(l, _)| *l == other)
                .map(|(_, pos)| *pos)
                .ok_or_else(|| Error::InvalidConfig("seccomp label without a target".into()))?,
        };
        let offset = to
            .checked_sub(at + 1)
            .ok_or_else(|| Error::InvalidConfig("seccomp filter jumps backwards".into()))?;
        u8::try_from(offset)
            .map_err(|_| Error::InvalidConfig("seccomp filter jump too long".into()))
    };
    let mut bytes = Vec::with_capacity(index * 8);
    let mut emit = |code: u16, jt: u8, jf: u8, k: u32| {
        bytes.extend_from_slice(&code.to_ne_bytes());
        bytes.push(jt);
        bytes.push(jf);
        bytes.extend_from_slice(&k.to_ne_bytes());
    };
    for (insn, &at) in insns.iter().zip(&positions) {
        match insn {
            Insn::Load(offset) => emit(BPF_LD_W_ABS, 0, 0, *offset),
            Insn::Jump { op, k, jt, jf } => emit(*op, target(*jt, at)?, target(*jf, at)?, *k),
            Insn::Ret(value) => emit(BPF_RET_K, 0, 0, *value),
            Insn::Mark(_) => {}
        }
    }
    Ok(bytes)
}

#[cfg(test)]
#[path = "seccomp_tests.rs"]
mod tests;
