//! `paprika-vmm GUEST.ELF [BOOTARGS]`: a minimal KVM-HV VMM, a static ppc64el
//! Linux program without libc (raw `sc` system calls), that runs one test guest
//! as an L2 of the Linux partition it runs in (nested virtualization,
//! docs/partitions.md). It opens /dev/kvm, creates a KVM-HV VM (radix, process
//! table registered with KVM_PPC_CONFIGURE_V3_MMU), gives it 32 MiB with the
//! guest's ELF at 0x400000 and a small device tree (src/lib.rs), one vCPU
//! entered as pSeries firmware enters a client (MSR = SF|ME, r3 = the device
//! tree), and runs it, answering the hcalls KVM passes up: H_PUT_TERM_CHAR
//! (printed as `[l2] <line>`), H_SET_MODE interrupt endianness (LPCR[ILE]) and
//! H_RTAS power-off and ibm,os-term. It exits 0 when the L2 powers off, 1 after
//! ibm,os-term, 2 on any setup or run failure (with a `paprika-vmm:` line),
//! and is ended by SIGALRM (status 142) after 60 s. Before each `KVM_RUN` it
//! pins itself to the next CPU it may run on, so on an SMP L1 the L2's vCPU
//! runs on every L1 vCPU in turn; at the end it says on how many it ran.
#![cfg_attr(target_arch = "powerpc64", no_std, no_main)]

#[cfg(target_arch = "powerpc64")]
mod vmm {
    use core::arch::{asm, global_asm};
    use core::fmt::{self, Write};
    use paprika_vmm::*;

    // The kernel enters `_start` with r1 = the initial stack (argc, argv...);
    // set up the TOC and call `vmm_main(sp)`.
    global_asm!(
        r#"
        .text
        .globl _start
    _start:
        bcl 20, 31, 1f
    1:  mflr 11
        ld 2, 2f - 1b(11)
        mr 3, 1
        clrrdi 1, 1, 4
        li 0, 0
        stdu 0, -64(1)
        bl vmm_main
        nop
        b .
        .balign 8
    2:  .quad .TOC.
    "#
    );

    // ---- system calls (arch/powerpc/kernel/syscalls/syscall.tbl) ----

    const SYS_EXIT_GROUP: u64 = 234;
    const SYS_READ: u64 = 3;
    const SYS_WRITE: u64 = 4;
    const SYS_OPEN: u64 = 5;
    const SYS_IOCTL: u64 = 54;
    const SYS_MMAP: u64 = 90;
    const SYS_ALARM: u64 = 27;
    const SYS_SCHED_SETAFFINITY: u64 = 222;
    const SYS_SCHED_GETAFFINITY: u64 = 223;
    const SYS_GETCPU: u64 = 302;
    /// SIGALRM (default action: end the process) after this long: an L2 that
    /// never powers off fails the test in time, with exit status 142.
    const WATCHDOG_SECS: u64 = 60;
    const O_RDONLY: u64 = 0;
    const O_RDWR: u64 = 2;
    const O_CLOEXEC: u64 = 0o2000000;
    const PROT_RW: u64 = 3;
    const MAP_SHARED: u64 = 1;
    const MAP_PRIVATE: u64 = 2;
    const MAP_ANONYMOUS: u64 = 0x20;
    const EINTR: i64 = 4;
    const EAGAIN: i64 = 11;

    /// `sc` with r0 = number, r3..r8 = arguments; -errno on failure (CR0[SO]).
    fn syscall(nr: u64, a: [u64; 6]) -> i64 {
        let r3: u64;
        // SAFETY: a Linux system call; the arguments are checked by the kernel,
        // and every register the system call ABI lets it change is declared
        // clobbered. Memory the call writes is the caller's to pass correctly.
        unsafe {
            asm!(
                "sc",
                "bns 1f",
                "neg 3, 3",
                "1:",
                inlateout("r0") nr => _,
                inlateout("r3") a[0] => r3,
                inlateout("r4") a[1] => _,
                inlateout("r5") a[2] => _,
                inlateout("r6") a[3] => _,
                inlateout("r7") a[4] => _,
                inlateout("r8") a[5] => _,
                out("r9") _, out("r10") _, out("r11") _, out("r12") _,
                out("ctr") _, out("xer") _, out("cr0") _, out("cr1") _,
                out("cr5") _, out("cr6") _, out("cr7") _,
                options(nostack)
            );
        }
        r3 as i64
    }

    fn write_all(fd: u64, mut b: &[u8]) {
        while !b.is_empty() {
            let n = syscall(SYS_WRITE, [fd, b.as_ptr() as u64, b.len() as u64, 0, 0, 0]);
            if n == -EINTR || n == -EAGAIN {
                continue;
            }
            if n <= 0 {
                return;
            }
            b = &b[n as usize..];
        }
    }

    fn exit(code: u64) -> ! {
        loop {
            syscall(SYS_EXIT_GROUP, [code, 0, 0, 0, 0, 0]);
        }
    }

    /// A line on stdout, formatted into a buffer first so it goes out in one
    /// write.
    fn say(args: fmt::Arguments) {
        struct Buf {
            b: [u8; 400],
            n: usize,
        }
        impl Write for Buf {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for &c in s.as_bytes() {
                    if self.n < self.b.len() {
                        self.b[self.n] = c;
                        self.n += 1;
                    }
                }
                Ok(())
            }
        }
        let mut b = Buf { b: [0; 400], n: 0 };
        let _ = b.write_fmt(args);
        let _ = b.write_str("\n");
        write_all(1, &b.b[..b.n]);
    }

    macro_rules! say {
        ($($arg:tt)*) => { say(format_args!("paprika-vmm: {}", format_args!($($arg)*))) };
    }

    fn fail(what: &str, rc: i64) -> ! {
        say!("{what} failed (errno {})", -rc);
        exit(2)
    }

    fn ioctl(fd: u64, req: u64, arg: u64) -> i64 {
        syscall(SYS_IOCTL, [fd, req, arg, 0, 0, 0])
    }

    /// An ioctl that must succeed; its result.
    fn ioctl_ok(fd: u64, req: u64, arg: u64, what: &str) -> u64 {
        let rc = ioctl(fd, req, arg);
        if rc < 0 {
            fail(what, rc);
        }
        rc as u64
    }

    fn mmap(len: u64, flags: u64, fd: u64, what: &str) -> *mut u8 {
        let rc = syscall(SYS_MMAP, [0, len, PROT_RW, flags, fd, 0]);
        if rc < 0 && rc > -4096 {
            fail(what, rc);
        }
        rc as u64 as *mut u8
    }

    fn open(path: *const u8, flags: u64, what: &str) -> u64 {
        let rc = syscall(SYS_OPEN, [path as u64, flags | O_CLOEXEC, 0, 0, 0, 0]);
        if rc < 0 {
            fail(what, rc);
        }
        rc as u64
    }

    /// argv[i] of the initial stack, as bytes without the NUL.
    ///
    /// # Safety
    /// `sp` is the stack pointer the kernel started the process with.
    unsafe fn arg(sp: *const u64, i: u64) -> Option<&'static [u8]> {
        // SAFETY: the kernel's initial stack: argc, then argc pointers to
        // NUL-terminated strings, which live as long as the process.
        unsafe {
            if i >= *sp {
                return None;
            }
            let p = *sp.add(1 + i as usize) as *const u8;
            let mut n = 0;
            while *p.add(n) != 0 {
                n += 1;
            }
            Some(core::slice::from_raw_parts(p, n))
        }
    }

    /// Reads the file `path` (NUL-terminated) into `buf`; its length.
    fn read_file(path: &[u8], buf: &mut [u8]) -> usize {
        let mut name = [0u8; 256];
        let n = path.len().min(255);
        name[..n].copy_from_slice(&path[..n]);
        let fd = open(name.as_ptr(), O_RDONLY, "open of the guest ELF");
        let mut len = 0;
        loop {
            let rest = &mut buf[len..];
            if rest.is_empty() {
                say!("the guest ELF is larger than {} bytes", buf.len());
                exit(2);
            }
            let rc = syscall(
                SYS_READ,
                [fd, rest.as_mut_ptr() as u64, rest.len() as u64, 0, 0, 0],
            );
            match rc {
                0 => return len,
                r if r == -EINTR => continue,
                r if r < 0 => fail("read of the guest ELF", r),
                r => len += r as usize,
            }
        }
    }

    /// Scratch space for the ELF file (anonymous, touched only as far as read).
    const FILE_MAX: u64 = 16 << 20;

    struct Vcpu {
        fd: u64,
        run: *mut u8,
    }

    impl Vcpu {
        fn run_u32(&self, at: usize) -> u32 {
            // SAFETY: `run` maps the vCPU's struct kvm_run (at least a page);
            // `at` is a field offset inside it, aligned for its size.
            unsafe { core::ptr::read_volatile(self.run.add(at).cast::<u32>()) }
        }
        fn run_u64(&self, at: usize) -> u64 {
            // SAFETY: as in `run_u32`.
            unsafe { core::ptr::read_volatile(self.run.add(at).cast::<u64>()) }
        }
        fn set_run_u64(&self, at: usize, v: u64) {
            // SAFETY: as in `run_u32`; KVM reads these fields at the next KVM_RUN.
            unsafe { core::ptr::write_volatile(self.run.add(at).cast::<u64>(), v) }
        }
        fn one_reg(&self, req: u64, id: u64, value: &mut u64, what: &str) {
            let reg: [u64; 2] = [id, value as *mut u64 as u64];
            ioctl_ok(self.fd, req, reg.as_ptr() as u64, what);
        }
    }

    /// An unimplemented hcall, reported once per number (the first 16).
    fn report_unknown(seen: &mut [u64; 16], nr: u64) {
        if seen.contains(&nr) {
            return;
        }
        if let Some(slot) = seen.iter_mut().find(|s| **s == 0) {
            *slot = nr;
            say!("L2 hcall {nr:#x} not implemented here: H_FUNCTION");
        }
    }

    #[no_mangle]
    extern "C" fn vmm_main(sp: *const u64) -> ! {
        // SAFETY: `_start` passes the kernel's initial stack pointer.
        let (elf_path, bootargs) = unsafe { (arg(sp, 1), arg(sp, 2)) };
        let Some(elf_path) = elf_path else {
            say!("usage: paprika-vmm GUEST.ELF [BOOTARGS]");
            exit(2)
        };
        let bootargs = bootargs
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("");

        syscall(SYS_ALARM, [WATCHDOG_SECS, 0, 0, 0, 0, 0]);
        let mut allowed = [0u64; CPU_WORDS];
        let rc = syscall(
            SYS_SCHED_GETAFFINITY,
            [
                0,
                8 * CPU_WORDS as u64,
                allowed.as_mut_ptr() as u64,
                0,
                0,
                0,
            ],
        );
        if rc < 0 {
            fail("sched_getaffinity", rc);
        }
        let mut hop = CpuHop::new(allowed);

        let kvm = open(c"/dev/kvm".as_ptr().cast(), O_RDWR, "open of /dev/kvm");
        let api = ioctl_ok(kvm, KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION");
        // A nested KVM-HV (an L1 under Paprika) runs radix guests only.
        let radix = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_PPC_MMU_RADIX);
        if radix != 1 {
            say!("KVM_CAP_PPC_MMU_RADIX is {radix}: no radix KVM-HV (is kvm-hv loaded?)");
            exit(2)
        }
        let vm = ioctl_ok(
            kvm,
            KVM_CREATE_VM,
            KVM_VM_PPC_HV,
            "KVM_CREATE_VM (KVM_VM_PPC_HV)",
        );
        say!("KVM API {api}, radix KVM-HV VM created");

        // Guest memory, and the guest in it.
        let ram_ptr = mmap(
            RAM_SIZE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            u64::MAX,
            "mmap of L2 memory",
        );
        // SAFETY: a fresh private anonymous mapping of RAM_SIZE bytes, only
        // accessed through this slice (and by KVM on the L2's behalf).
        let ram = unsafe { core::slice::from_raw_parts_mut(ram_ptr, RAM_SIZE as usize) };
        let file_ptr = mmap(
            FILE_MAX,
            MAP_PRIVATE | MAP_ANONYMOUS,
            u64::MAX,
            "mmap of a file buffer",
        );
        // SAFETY: as above, FILE_MAX bytes used only here.
        let file_buf = unsafe { core::slice::from_raw_parts_mut(file_ptr, FILE_MAX as usize) };
        let len = read_file(elf_path, file_buf);
        let loaded = match load_elf(&file_buf[..len], ram, KERNEL_ADDR) {
            Ok(l) => l,
            Err(e) => {
                say!("cannot load the guest ELF: {}", e.describe());
                exit(2)
            }
        };
        let Some(fdt_len) = guest_tree(&mut ram[FDT_ADDR as usize..][..FDT_MAX], bootargs) else {
            say!("the device tree does not fit");
            exit(2)
        };
        say!(
            "L2: {} ({} bytes, {}-endian) at {:#x}, entry {:#x}, {} MiB, device tree {:#x} ({} bytes)",
            core::str::from_utf8(elf_path).unwrap_or("?"),
            len,
            if loaded.big_endian { "big" } else { "little" },
            KERNEL_ADDR,
            loaded.entry,
            RAM_SIZE >> 20,
            FDT_ADDR,
            fdt_len
        );
        let region: [u64; 4] = [0, 0, RAM_SIZE, ram_ptr as u64]; // slot 0, flags 0
        ioctl_ok(
            vm,
            KVM_SET_USER_MEMORY_REGION,
            region.as_ptr() as u64,
            "KVM_SET_USER_MEMORY_REGION",
        );

        // Radix, with GTSE, and a process table (PRTS 0: 4 KiB, empty).
        let mmu: [u64; 2] = [
            KVM_PPC_MMUV3_RADIX | KVM_PPC_MMUV3_GTSE,
            PATB_GR | PROCESS_TABLE_ADDR,
        ];
        ioctl_ok(
            vm,
            KVM_PPC_CONFIGURE_V3_MMU,
            mmu.as_ptr() as u64,
            "KVM_PPC_CONFIGURE_V3_MMU",
        );

        let vcpu_fd = ioctl_ok(vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
        let run_size = ioctl_ok(kvm, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
        let vcpu = Vcpu {
            fd: vcpu_fd,
            run: mmap(run_size, MAP_SHARED, vcpu_fd, "mmap of kvm_run"),
        };
        let mut cap = [0u64; 13]; // struct kvm_enable_cap, 104 bytes
        cap[0] = u64::from(KVM_CAP_PPC_PAPR); // cap (first u32, little-endian), flags 0
        ioctl_ok(
            vcpu.fd,
            KVM_ENABLE_CAP,
            cap.as_ptr() as u64,
            "KVM_ENABLE_CAP(PPC_PAPR)",
        );

        // struct kvm_regs: pc, cr, ctr, lr, xer, msr, srr0, srr1, pid,
        // sprg0-7, gpr[32].
        let mut regs = [0u64; KVM_REGS_SIZE / 8];
        ioctl_ok(
            vcpu.fd,
            KVM_GET_REGS,
            regs.as_mut_ptr() as u64,
            "KVM_GET_REGS",
        );
        regs[0] = loaded.entry;
        regs[5] = ENTRY_MSR;
        let gpr = 17;
        regs[gpr + 1] = 0;
        regs[gpr + 3] = FDT_ADDR;
        regs[gpr + 4] = 0;
        regs[gpr + 5] = 0;
        ioctl_ok(vcpu.fd, KVM_SET_REGS, regs.as_ptr() as u64, "KVM_SET_REGS");
        let mut lpcr = 0u64;
        vcpu.one_reg(
            KVM_GET_ONE_REG,
            KVM_REG_PPC_LPCR_64,
            &mut lpcr,
            "KVM_GET_ONE_REG(LPCR)",
        );
        say!(
            "L2 vCPU 0: pc {:#x} msr {:#x} lpcr {:#x}",
            regs[0],
            regs[5],
            lpcr
        );

        let mut line = LineBuffer::default();
        let mut unknown = [0u64; 16];
        let mut exits: u64 = 0;
        loop {
            // The next L1 CPU, and where the thread now really is.
            if let Some(cpu) = hop.advance().filter(|_| hop.allowed() > 1) {
                let mask = CpuHop::only(cpu);
                let rc = syscall(
                    SYS_SCHED_SETAFFINITY,
                    [0, 8 * CPU_WORDS as u64, mask.as_ptr() as u64, 0, 0, 0],
                );
                if rc < 0 {
                    fail("sched_setaffinity", rc);
                }
            }
            let mut cpu: u32 = u32::MAX;
            if syscall(SYS_GETCPU, [&mut cpu as *mut u32 as u64, 0, 0, 0, 0, 0]) == 0 {
                hop.ran_on(cpu as usize);
            }
            let rc = ioctl(vcpu.fd, KVM_RUN, 0);
            if rc == -EINTR || rc == -EAGAIN {
                continue;
            }
            if rc < 0 {
                fail("KVM_RUN", rc);
            }
            exits += 1;
            let reason = vcpu.run_u32(KVM_RUN_EXIT_REASON);
            if reason != KVM_EXIT_PAPR_HCALL {
                match reason {
                    KVM_EXIT_INTR => continue,
                    KVM_EXIT_MMIO => say!(
                        "L2 MMIO at {:#x}: no devices here",
                        vcpu.run_u64(KVM_RUN_UNION)
                    ),
                    _ => say!(
                        "KVM_RUN exit reason {reason} (data {:#x} {:#x})",
                        vcpu.run_u64(KVM_RUN_UNION),
                        vcpu.run_u64(KVM_RUN_UNION + 8)
                    ),
                }
                exit(2)
            }
            // struct kvm_run papr_hcall: nr, ret, args[9].
            let nr = vcpu.run_u64(KVM_RUN_UNION);
            let a = |i: usize| vcpu.run_u64(KVM_RUN_UNION + 16 + 8 * i);
            let ret = match nr {
                H_PUT_TERM_CHAR => match term_chars(a(1), a(2), a(3)) {
                    Some((b, n)) => {
                        for &c in &b[..n] {
                            if let Some(l) = line.push(c) {
                                write_all(1, b"[l2] ");
                                write_all(1, l);
                                write_all(1, b"\n");
                            }
                        }
                        H_SUCCESS
                    }
                    None => H_PARAMETER,
                },
                H_SET_MODE if a(1) == H_SET_MODE_RESOURCE_LE => {
                    if a(2) != 0 {
                        H_P3
                    } else if a(3) != 0 {
                        H_P4
                    } else if a(0) > 1 {
                        H_UNSUPPORTED_FLAG
                    } else {
                        let mut v = 0u64;
                        vcpu.one_reg(
                            KVM_GET_ONE_REG,
                            KVM_REG_PPC_LPCR_64,
                            &mut v,
                            "KVM_GET_ONE_REG(LPCR)",
                        );
                        v = if a(0) == 1 {
                            v | LPCR_ILE
                        } else {
                            v & !LPCR_ILE
                        };
                        vcpu.one_reg(
                            KVM_SET_ONE_REG,
                            KVM_REG_PPC_LPCR_64,
                            &mut v,
                            "KVM_SET_ONE_REG(LPCR)",
                        );
                        H_SUCCESS
                    }
                }
                H_SET_MODE => H_P2,
                H_RTAS => match RtasCall::read(ram, a(0)) {
                    None => H_PARAMETER,
                    Some(call) => match call.token {
                        RTAS_POWER_OFF => {
                            let rest = line.rest();
                            if !rest.is_empty() {
                                write_all(1, b"[l2] ");
                                write_all(1, rest);
                                write_all(1, b"\n");
                            }
                            say!(
                                "the L2's vCPU ran on {} of {} L1 CPUs",
                                hop.ran_on_count(),
                                hop.allowed()
                            );
                            say!("L2 power-off after {exits} exits: exit status 0");
                            exit(0)
                        }
                        RTAS_OS_TERM => {
                            let msg = call
                                .arg(ram, 0)
                                .map(|p| guest_cstr(ram, u64::from(p), 200))
                                .unwrap_or(b"");
                            let msg = core::str::from_utf8(msg).unwrap_or("(not UTF-8)");
                            say!("L2 ibm,os-term `{msg}` after {exits} exits: exit status 1");
                            exit(1)
                        }
                        _ => {
                            call.set_ret(ram, 0, -3);
                            H_SUCCESS
                        }
                    },
                },
                _ => {
                    report_unknown(&mut unknown, nr);
                    H_FUNCTION
                }
            };
            vcpu.set_run_u64(KVM_RUN_UNION + 8, ret as u64);
        }
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        say!("panic: {}", info.message());
        exit(2)
    }
}

#[cfg(not(target_arch = "powerpc64"))]
fn main() {}
