use pretty_assertions::assert_eq;

use super::*;

#[test]
fn the_program_is_whole_records_within_the_kernel_limit() {
    let program = program().unwrap();
    assert_eq!(program.len() % 8, 0);
    let records = program.len() / 8;
    // BPF_MAXINSNS.
    assert!(records > 10 && records <= 4096, "{records}");
    // Starts by loading the architecture.
    assert_eq!(u16::from_ne_bytes([program[0], program[1]]), BPF_LD_W_ABS);
    assert_eq!(
        u32::from_ne_bytes([program[4], program[5], program[6], program[7]]),
        OFFSET_ARCH
    );
}

#[test]
fn the_deny_list_names_what_a_test_suite_never_needs() {
    let denied = denied_syscalls();
    for name in [
        "ptrace",
        "mount",
        "kexec_load",
        "bpf",
        "keyctl",
        "unshare",
        "setns",
    ] {
        assert!(denied.contains(&name), "{name} is not denied");
    }
    // Every return is allow, an errno, or a kill; every jump lands inside the program.
    let program = program().unwrap();
    let records: Vec<_> = program.chunks(8).collect();
    for (at, record) in records.iter().enumerate() {
        let code = u16::from_ne_bytes([record[0], record[1]]);
        let k = u32::from_ne_bytes([record[4], record[5], record[6], record[7]]);
        match code {
            BPF_RET_K => assert!(
                k == RET_ALLOW || k == RET_KILL_PROCESS || k & 0xffff_0000 == RET_ERRNO,
                "{k:#x}"
            ),
            BPF_JEQ_K | BPF_JGE_K | BPF_JSET_K => {
                assert!(at + 1 + usize::from(record[2]) < records.len());
                assert!(at + 1 + usize::from(record[3]) < records.len());
            }
            other => assert_eq!(other, BPF_LD_W_ABS),
        }
    }
}
