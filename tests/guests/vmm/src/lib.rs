//! The portable half of `paprika-vmm`, the minimal KVM-HV VMM that runs a test
//! guest as an L2 inside a Linux partition (tests/guests/README.md): the
//! device tree it gives the L2, the ELF loader, the RTAS argument buffer, the
//! console line assembly and the ioctl numbers. No system calls here; the
//! program (src/main.rs, POWER only) does those. `cargo test -p paprika-vmm`
//! runs the tests below on the host.
#![no_std]

#[cfg(test)]
extern crate std;

/// Where the L2's image goes, as pSeries firmware loads a client (kernel-addr);
/// the test guests' runtime copies itself down to 0 from there.
pub const KERNEL_ADDR: u64 = 0x40_0000;
/// L2 memory.
pub const RAM_SIZE: u64 = 32 << 20;
/// The L2's device tree, in the last 64 KiB of its memory.
pub const FDT_ADDR: u64 = RAM_SIZE - 0x1_0000;
pub const FDT_MAX: usize = 0x1_0000;
/// The L2's (empty) radix process table, 64 KiB below the device tree: the L2
/// runs in real mode, where a radix guest's accesses go through partition-scoped
/// translation only, but KVM_PPC_CONFIGURE_V3_MMU wants one.
pub const PROCESS_TABLE_ADDR: u64 = RAM_SIZE - 0x2_0000;
/// Time base frequency of POWER9 and Power10 (and of QEMU's powernv).
pub const TIMEBASE_HZ: u32 = 512_000_000;
/// The vty's unit address, as QEMU's pseries and Paprika give it.
pub const VTY_REG: u32 = 0x7100_0000;

/// RTAS tokens the L2's device tree names (its /rtas node).
pub const RTAS_POWER_OFF: u32 = 1;
pub const RTAS_OS_TERM: u32 = 2;

// Hypervisor calls the VMM answers (Linux hvcall.h).
pub const H_PUT_TERM_CHAR: u64 = 0x58;
pub const H_SET_MODE: u64 = 0x31c;
pub const H_RTAS: u64 = 0xf000;
pub const H_SUCCESS: i64 = 0;
pub const H_FUNCTION: i64 = -2;
pub const H_PARAMETER: i64 = -4;
pub const H_P2: i64 = -55;
pub const H_P3: i64 = -56;
pub const H_P4: i64 = -57;
pub const H_UNSUPPORTED_FLAG: i64 = -256;
/// H_SET_MODE resource 4: interrupt endianness (LPCR[ILE]).
pub const H_SET_MODE_RESOURCE_LE: u64 = 4;
/// LPCR[ILE] (Power ISA 3.0 LPCR bit 38).
pub const LPCR_ILE: u64 = 1 << (63 - 38);

// ---- ioctl numbers ----

/// `_IOC(dir, 'KVMIO', nr, size)` with powerpc's encoding (asm/ioctl.h): 13
/// size bits, 3 direction bits, `_IOC_NONE` = 1, `_IOC_READ` = 2,
/// `_IOC_WRITE` = 4.
pub const fn kvm_ioc(dir: u64, nr: u64, size: u64) -> u64 {
    (dir << 29) | (size << 16) | (0xae << 8) | nr
}
const IO: u64 = 1;
const IOR: u64 = 2;
const IOW: u64 = 4;
pub const KVM_GET_API_VERSION: u64 = kvm_ioc(IO, 0x00, 0);
pub const KVM_CREATE_VM: u64 = kvm_ioc(IO, 0x01, 0);
pub const KVM_CHECK_EXTENSION: u64 = kvm_ioc(IO, 0x03, 0);
pub const KVM_GET_VCPU_MMAP_SIZE: u64 = kvm_ioc(IO, 0x04, 0);
pub const KVM_CREATE_VCPU: u64 = kvm_ioc(IO, 0x41, 0);
/// struct kvm_userspace_memory_region: 32 bytes.
pub const KVM_SET_USER_MEMORY_REGION: u64 = kvm_ioc(IOW, 0x46, 32);
pub const KVM_RUN: u64 = kvm_ioc(IO, 0x80, 0);
/// struct kvm_regs (powerpc): 49 u64.
pub const KVM_REGS_SIZE: usize = 49 * 8;
pub const KVM_GET_REGS: u64 = kvm_ioc(IOR, 0x81, KVM_REGS_SIZE as u64);
pub const KVM_SET_REGS: u64 = kvm_ioc(IOW, 0x82, KVM_REGS_SIZE as u64);
/// struct kvm_enable_cap: 104 bytes.
pub const KVM_ENABLE_CAP: u64 = kvm_ioc(IOW, 0xa3, 104);
/// struct kvm_one_reg: 16 bytes.
pub const KVM_GET_ONE_REG: u64 = kvm_ioc(IOW, 0xab, 16);
pub const KVM_SET_ONE_REG: u64 = kvm_ioc(IOW, 0xac, 16);
/// struct kvm_ppc_mmuv3_cfg: 16 bytes.
pub const KVM_PPC_CONFIGURE_V3_MMU: u64 = kvm_ioc(IOW, 0xaf, 16);

/// `KVM_CREATE_VM` type of a KVM-HV guest.
pub const KVM_VM_PPC_HV: u64 = 1;
pub const KVM_CAP_PPC_PAPR: u32 = 68;
pub const KVM_CAP_PPC_MMU_RADIX: u64 = 134;
pub const KVM_PPC_MMUV3_RADIX: u64 = 1;
pub const KVM_PPC_MMUV3_GTSE: u64 = 2;
/// Partition table dw1 GR: the guest is radix.
pub const PATB_GR: u64 = 1 << 63;
/// ONE_REG id of the 64-bit LPCR (arch/powerpc/include/uapi/asm/kvm.h).
pub const KVM_REG_PPC_LPCR_64: u64 = 0x1000_0000_0000_0000 | 0x0030_0000_0000_0000 | 0xb5;

// struct kvm_run: exit_reason at 8, the exit's union at 32.
pub const KVM_RUN_EXIT_REASON: usize = 8;
pub const KVM_RUN_UNION: usize = 32;
pub const KVM_EXIT_UNKNOWN: u32 = 0;
pub const KVM_EXIT_DEBUG: u32 = 4;
pub const KVM_EXIT_MMIO: u32 = 6;
pub const KVM_EXIT_SHUTDOWN: u32 = 8;
pub const KVM_EXIT_FAIL_ENTRY: u32 = 9;
pub const KVM_EXIT_INTR: u32 = 10;
pub const KVM_EXIT_INTERNAL_ERROR: u32 = 17;
pub const KVM_EXIT_PAPR_HCALL: u32 = 19;

/// MSR at entry, as pSeries firmware enters a client: SF | ME, big-endian.
pub const ENTRY_MSR: u64 = (1 << 63) | (1 << 12);

// ---- the device tree ----

/// A flattened device tree (version 17) written into a caller's buffer.
pub struct FdtWriter<'a> {
    buf: &'a mut [u8],
    /// Structure block bytes, built from offset 0x40 (after the header and the
    /// empty reservation map).
    at: usize,
    strings: [u8; 512],
    nstrings: usize,
    ok: bool,
}

const FDT_HEADER: usize = 40;
const FDT_RSVMAP: usize = FDT_HEADER;
const FDT_STRUCT: usize = FDT_RSVMAP + 16;

impl<'a> FdtWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        let ok = buf.len() >= FDT_STRUCT;
        if ok {
            buf[..FDT_STRUCT].fill(0);
        }
        FdtWriter {
            buf,
            at: FDT_STRUCT,
            strings: [0; 512],
            nstrings: 0,
            ok,
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        let end = self.at + bytes.len();
        let padded = (end + 3) & !3;
        if !self.ok || padded > self.buf.len() {
            self.ok = false;
            return;
        }
        self.buf[self.at..end].copy_from_slice(bytes);
        self.buf[end..padded].fill(0);
        self.at = padded;
    }

    fn token(&mut self, t: u32) {
        self.put(&t.to_be_bytes());
    }

    pub fn begin(&mut self, name: &str) {
        self.token(1);
        self.put_name(name.as_bytes());
    }

    fn put_name(&mut self, name: &[u8]) {
        let end = self.at + name.len() + 1;
        let padded = (end + 3) & !3;
        if !self.ok || padded > self.buf.len() {
            self.ok = false;
            return;
        }
        self.buf[self.at..end - 1].copy_from_slice(name);
        self.buf[end - 1..padded].fill(0);
        self.at = padded;
    }

    pub fn end(&mut self) {
        self.token(2);
    }

    fn string_offset(&mut self, name: &str) -> u32 {
        let n = name.len();
        // Reuse an earlier copy.
        let mut i = 0;
        while i < self.nstrings {
            let len = self.strings[i..self.nstrings]
                .iter()
                .position(|&c| c == 0)
                .unwrap_or(0);
            if &self.strings[i..i + len] == name.as_bytes() {
                return i as u32;
            }
            i += len + 1;
        }
        if self.nstrings + n + 1 > self.strings.len() {
            self.ok = false;
            return 0;
        }
        let off = self.nstrings;
        self.strings[off..off + n].copy_from_slice(name.as_bytes());
        self.strings[off + n] = 0;
        self.nstrings += n + 1;
        off as u32
    }

    pub fn prop(&mut self, name: &str, value: &[u8]) {
        let off = self.string_offset(name);
        self.token(3);
        self.put(&(value.len() as u32).to_be_bytes());
        self.put(&off.to_be_bytes());
        self.put(value);
    }

    pub fn prop_u32(&mut self, name: &str, v: u32) {
        self.prop(name, &v.to_be_bytes());
    }

    /// A string property (NUL-terminated).
    pub fn prop_str(&mut self, name: &str, s: &str) {
        let mut b = [0u8; 256];
        let n = s.len().min(255);
        b[..n].copy_from_slice(&s.as_bytes()[..n]);
        self.prop(name, &b[..n + 1]);
    }

    /// Ends the structure block, appends the strings and writes the header;
    /// the total size, or `None` when it did not fit.
    pub fn finish(mut self) -> Option<usize> {
        self.token(9);
        let struct_size = self.at - FDT_STRUCT;
        let strings_at = self.at;
        let total = strings_at + self.nstrings;
        if !self.ok || total > self.buf.len() {
            return None;
        }
        self.buf[strings_at..total].copy_from_slice(&self.strings[..self.nstrings]);
        let header: [u32; 10] = [
            0xd00d_feed,
            total as u32,
            FDT_STRUCT as u32,
            strings_at as u32,
            FDT_RSVMAP as u32,
            17,
            16,
            0,
            self.nstrings as u32,
            struct_size as u32,
        ];
        for (i, w) in header.iter().enumerate() {
            self.buf[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
        }
        Some(total)
    }
}

/// The L2's device tree: what the test guests' runtime reads (the vty's
/// `reg`, `/cpus/*` `timebase-frequency`, the `/rtas` tokens of power-off and
/// ibm,os-term) plus the usual memory and chosen nodes. Returns its size.
pub fn guest_tree(buf: &mut [u8], bootargs: &str) -> Option<usize> {
    let mut w = FdtWriter::new(buf);
    w.begin("");
    w.prop_u32("#address-cells", 2);
    w.prop_u32("#size-cells", 2);
    w.prop_str("compatible", "qemu,pseries");
    w.prop_str("model", "paprika-vmm L2");
    w.begin("chosen");
    w.prop_str("bootargs", bootargs);
    w.prop_str("stdout-path", "/vdevice/vty@71000000");
    w.end();
    w.begin("memory@0");
    w.prop_str("device_type", "memory");
    let mut reg = [0u8; 16];
    reg[8..].copy_from_slice(&RAM_SIZE.to_be_bytes());
    w.prop("reg", &reg);
    w.end();
    w.begin("cpus");
    w.prop_u32("#address-cells", 1);
    w.prop_u32("#size-cells", 0);
    w.begin("PowerPC,POWER@0");
    w.prop_str("device_type", "cpu");
    w.prop_u32("reg", 0);
    w.prop_u32("ibm,ppc-interrupt-server#s", 0);
    w.prop_u32("timebase-frequency", TIMEBASE_HZ);
    w.end();
    w.end();
    w.begin("rtas");
    w.prop_u32("power-off", RTAS_POWER_OFF);
    w.prop_u32("ibm,os-term", RTAS_OS_TERM);
    w.end();
    w.begin("vdevice");
    w.prop_u32("#address-cells", 1);
    w.prop_u32("#size-cells", 0);
    w.begin("vty@71000000");
    w.prop_str("name", "vty");
    w.prop_str("device_type", "serial");
    w.prop_str("compatible", "hvterm1");
    w.prop_u32("reg", VTY_REG);
    w.end();
    w.end();
    w.end();
    w.finish()
}

// ---- the ELF loader ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    NotElf64,
    NotPpc64,
    BadHeaders,
    /// A segment lies outside the file or does not fit guest memory.
    OutOfBounds,
    NoLoadSegment,
}

impl ElfError {
    pub fn describe(self) -> &'static str {
        match self {
            ElfError::NotElf64 => "not a 64-bit ELF",
            ElfError::NotPpc64 => "not a POWER (EM_PPC64) ELF",
            ElfError::BadHeaders => "program headers outside the file",
            ElfError::OutOfBounds => "a segment lies outside the file or the L2's memory",
            ElfError::NoLoadSegment => "no PT_LOAD segment",
        }
    }
}

/// What [`load_elf`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Guest real address to start at: `base` + `e_entry`.
    pub entry: u64,
    /// The image's end (guest real), exclusive.
    pub end: u64,
    pub big_endian: bool,
}

fn rd(file: &[u8], at: usize, n: usize, be: bool) -> Option<u64> {
    let s = file.get(at..at.checked_add(n)?)?;
    let mut v = 0u64;
    for i in 0..n {
        let b = if be { s[i] } else { s[n - 1 - i] };
        v = (v << 8) | u64::from(b);
    }
    Some(v)
}

/// Copies the PT_LOAD segments of `file` (either byte order) into `ram` at
/// `base` + their physical address and zeroes their BSS; the guests are linked
/// at 0 and started at `base` + `e_entry`, as pSeries firmware does.
pub fn load_elf(file: &[u8], ram: &mut [u8], base: u64) -> Result<Loaded, ElfError> {
    if file.len() < 64 || file[..4] != *b"\x7fELF" || file[4] != 2 {
        return Err(ElfError::NotElf64);
    }
    let be = match file[5] {
        1 => false,
        2 => true,
        _ => return Err(ElfError::NotElf64),
    };
    let r = |at: usize, n: usize| rd(file, at, n, be).ok_or(ElfError::BadHeaders);
    if r(18, 2)? != 21 {
        return Err(ElfError::NotPpc64);
    }
    let entry = r(24, 8)?;
    let phoff = r(32, 8)? as usize;
    let phentsize = r(54, 2)? as usize;
    let phnum = r(56, 2)? as usize;
    if phentsize < 56 {
        return Err(ElfError::BadHeaders);
    }
    let mut end = 0u64;
    let mut loaded = false;
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i.checked_mul(phentsize).ok_or(ElfError::BadHeaders)?)
            .ok_or(ElfError::BadHeaders)?;
        if r(ph, 4)? != 1 {
            continue;
        }
        let offset = r(ph + 8, 8)?;
        let paddr = r(ph + 24, 8)?;
        let filesz = r(ph + 32, 8)?;
        let memsz = r(ph + 40, 8)?;
        if filesz > memsz {
            return Err(ElfError::OutOfBounds);
        }
        let src_end = offset.checked_add(filesz).ok_or(ElfError::OutOfBounds)?;
        let dst = base.checked_add(paddr).ok_or(ElfError::OutOfBounds)?;
        let dst_end = dst.checked_add(memsz).ok_or(ElfError::OutOfBounds)?;
        if src_end > file.len() as u64 || dst_end > ram.len() as u64 {
            return Err(ElfError::OutOfBounds);
        }
        let (dst, fill, dst_end) = (dst as usize, (dst + filesz) as usize, dst_end as usize);
        ram[dst..fill].copy_from_slice(&file[offset as usize..src_end as usize]);
        ram[fill..dst_end].fill(0);
        end = end.max(dst_end as u64);
        loaded = true;
    }
    if !loaded {
        return Err(ElfError::NoLoadSegment);
    }
    let entry = base.checked_add(entry).ok_or(ElfError::OutOfBounds)?;
    if entry >= end {
        return Err(ElfError::OutOfBounds);
    }
    Ok(Loaded {
        entry,
        end,
        big_endian: be,
    })
}

// ---- RTAS ----

/// An RTAS call read from the L2's argument buffer (big-endian words: token,
/// nargs, nret, args..., rets...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtasCall {
    pub token: u32,
    pub nargs: u32,
    pub nret: u32,
    /// Guest real address of the buffer.
    pub addr: u64,
}

impl RtasCall {
    /// The call at `addr`, when the whole buffer lies in `ram`.
    pub fn read(ram: &[u8], addr: u64) -> Option<RtasCall> {
        let w = |i: u64| -> Option<u32> {
            let at = usize::try_from(addr.checked_add(i * 4)?).ok()?;
            let s = ram.get(at..at.checked_add(4)?)?;
            Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        };
        let call = RtasCall {
            token: w(0)?,
            nargs: w(1)?,
            nret: w(2)?,
            addr,
        };
        if call.nargs > 16 || call.nret > 16 {
            return None;
        }
        // The last word must be inside too.
        let words = 3 + u64::from(call.nargs) + u64::from(call.nret);
        if words > 3 {
            w(words - 1)?;
        }
        Some(call)
    }

    pub fn arg(&self, ram: &[u8], i: u32) -> Option<u32> {
        if i >= self.nargs {
            return None;
        }
        let at = usize::try_from(self.addr + 12 + u64::from(i) * 4).ok()?;
        let s = ram.get(at..at + 4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// Writes return word `i` (0 = the status); false when there is none.
    pub fn set_ret(&self, ram: &mut [u8], i: u32, v: i32) -> bool {
        if i >= self.nret {
            return false;
        }
        let Ok(at) = usize::try_from(self.addr + 12 + u64::from(self.nargs + i) * 4) else {
            return false;
        };
        match ram.get_mut(at..at + 4) {
            Some(s) => {
                s.copy_from_slice(&v.to_be_bytes());
                true
            }
            None => false,
        }
    }
}

/// A NUL-terminated string of the L2 at `addr` (at most `max` bytes), for
/// ibm,os-term's message.
pub fn guest_cstr(ram: &[u8], addr: u64, max: usize) -> &[u8] {
    let Some(rest) = usize::try_from(addr).ok().and_then(|a| ram.get(a..)) else {
        return &[];
    };
    let rest = &rest[..rest.len().min(max)];
    let n = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
    &rest[..n]
}

// ---- where the vCPU runs ----

/// Affinity masks: up to 1024 CPUs.
pub const CPU_WORDS: usize = 16;

/// Moves the L2's vCPU thread round the L1's CPUs: before each `KVM_RUN` the
/// VMM pins itself to [`CpuHop::advance`], so the one L2 vCPU runs on every L1
/// vCPU in turn (KVM then flushes the L2's translations on the CPU it left,
/// through the L0), and records where it ran.
pub struct CpuHop {
    allowed: [u64; CPU_WORDS],
    seen: [u64; CPU_WORDS],
    last: Option<usize>,
}

impl CpuHop {
    /// From the affinity mask the process started with.
    pub fn new(allowed: [u64; CPU_WORDS]) -> Self {
        CpuHop {
            allowed,
            seen: [0; CPU_WORDS],
            last: None,
        }
    }

    fn bit(mask: &[u64; CPU_WORDS], cpu: usize) -> bool {
        cpu < CPU_WORDS * 64 && mask[cpu / 64] & (1 << (cpu % 64)) != 0
    }

    /// How many CPUs the thread may run on.
    pub fn allowed(&self) -> u32 {
        self.allowed.iter().map(|w| w.count_ones()).sum()
    }

    /// The allowed CPU after the last one (cyclic); `None` with none allowed.
    pub fn advance(&mut self) -> Option<usize> {
        let n = CPU_WORDS * 64;
        let start = self.last.map_or(0, |c| c + 1);
        let cpu = (0..n)
            .map(|i| (start + i) % n)
            .find(|&c| Self::bit(&self.allowed, c))?;
        self.last = Some(cpu);
        Some(cpu)
    }

    /// The mask naming `cpu` alone.
    pub fn only(cpu: usize) -> [u64; CPU_WORDS] {
        let mut m = [0; CPU_WORDS];
        if cpu < CPU_WORDS * 64 {
            m[cpu / 64] = 1 << (cpu % 64);
        }
        m
    }

    /// Records that the vCPU ran on `cpu`.
    pub fn ran_on(&mut self, cpu: usize) {
        if cpu < CPU_WORDS * 64 {
            self.seen[cpu / 64] |= 1 << (cpu % 64);
        }
    }

    /// On how many distinct CPUs it ran.
    pub fn ran_on_count(&self) -> u32 {
        self.seen.iter().map(|w| w.count_ones()).sum()
    }
}

// ---- console ----

/// The bytes of one H_PUT_TERM_CHAR: r5 = count (at most 16), r6 and r7 the
/// characters, first one in r6's most significant byte.
pub fn term_chars(len: u64, hi: u64, lo: u64) -> Option<([u8; 16], usize)> {
    if len > 16 {
        return None;
    }
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    Some((b, len as usize))
}

/// Collects the L2's console output into lines.
pub struct LineBuffer {
    buf: [u8; 240],
    n: usize,
}

impl Default for LineBuffer {
    fn default() -> Self {
        LineBuffer {
            buf: [0; 240],
            n: 0,
        }
    }
}

impl LineBuffer {
    /// Adds one byte; `Some(line)` (without the newline) when a line is
    /// complete (or the buffer full). Control characters other than tab become
    /// `.`, so the L2 cannot drive the terminal.
    pub fn push(&mut self, c: u8) -> Option<&[u8]> {
        match c {
            b'\n' => {
                let n = core::mem::take(&mut self.n);
                return Some(&self.buf[..n]);
            }
            b'\r' => return None,
            _ => {}
        }
        if self.n == self.buf.len() {
            self.n = 0;
        }
        self.buf[self.n] = if c == b'\t' || (0x20..0x7f).contains(&c) {
            c
        } else {
            b'.'
        };
        self.n += 1;
        if self.n == self.buf.len() {
            return Some(&self.buf[..]);
        }
        None
    }

    /// What is left without a newline.
    pub fn rest(&mut self) -> &[u8] {
        let n = core::mem::take(&mut self.n);
        &self.buf[..n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn ioctl_numbers_use_powerpc_encoding() {
        // Values a ppc64le build of the uapi headers gives.
        assert_eq!(KVM_CREATE_VM, 0x2000_ae01);
        assert_eq!(KVM_RUN, 0x2000_ae80);
        assert_eq!(KVM_SET_USER_MEMORY_REGION, 0x8020_ae46);
        assert_eq!(KVM_SET_REGS, 0x8188_ae82);
        assert_eq!(KVM_GET_REGS, 0x4188_ae81);
        assert_eq!(KVM_ENABLE_CAP, 0x8068_aea3);
        assert_eq!(KVM_SET_ONE_REG, 0x8010_aeac);
        assert_eq!(KVM_PPC_CONFIGURE_V3_MMU, 0x8010_aeaf);
        assert_eq!(KVM_REG_PPC_LPCR_64, 0x1030_0000_0000_00b5);
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// Property `prop` of the node at `path` (exact names), by a plain walk.
    fn lookup<'a>(fdt: &'a [u8], path: &[&str], prop: &str) -> Option<&'a [u8]> {
        let (st, strs) = (be32(fdt, 8) as usize, be32(fdt, 12) as usize);
        let mut stack: Vec<&str> = Vec::new();
        let mut at = st;
        loop {
            let tok = be32(fdt, at);
            at += 4;
            match tok {
                1 => {
                    let len = fdt[at..].iter().position(|&c| c == 0)?;
                    stack.push(core::str::from_utf8(&fdt[at..at + len]).ok()?);
                    at = (at + len + 4) & !3;
                }
                2 => {
                    stack.pop();
                }
                3 => {
                    let len = be32(fdt, at) as usize;
                    let off = be32(fdt, at + 4) as usize;
                    let n = fdt[strs + off..].iter().position(|&c| c == 0)?;
                    if &fdt[strs + off..strs + off + n] == prop.as_bytes()
                        && stack.len() == path.len() + 1
                        && stack[1..] == *path
                    {
                        return Some(&fdt[at + 8..at + 8 + len]);
                    }
                    at = (at + 8 + len + 3) & !3;
                }
                9 => return None,
                _ => panic!("bad token {tok}"),
            }
        }
    }

    #[test]
    fn device_tree_has_what_the_guest_runtime_reads() {
        let mut buf = vec![0u8; FDT_MAX];
        let n = guest_tree(&mut buf, "role=x").unwrap();
        let fdt = &buf[..n];
        assert_eq!(be32(fdt, 0), 0xd00d_feed);
        assert_eq!(be32(fdt, 4) as usize, n);
        assert_eq!(be32(fdt, 20), 17);
        let u = |p: &[&str], name| be32(lookup(fdt, p, name).unwrap(), 0);
        assert_eq!(u(&["rtas"], "power-off"), RTAS_POWER_OFF);
        assert_eq!(u(&["rtas"], "ibm,os-term"), RTAS_OS_TERM);
        assert_eq!(
            u(&["cpus", "PowerPC,POWER@0"], "timebase-frequency"),
            512_000_000
        );
        assert_eq!(u(&["vdevice", "vty@71000000"], "reg"), VTY_REG);
        assert_eq!(lookup(fdt, &["chosen"], "bootargs").unwrap(), b"role=x\0");
        let reg = lookup(fdt, &["memory@0"], "reg").unwrap();
        assert_eq!(&reg[8..], &RAM_SIZE.to_be_bytes());
        // Too small a buffer: None, no panic.
        let mut small = [0u8; 100];
        assert_eq!(guest_tree(&mut small, ""), None);
    }

    /// A one-segment ELF like the test guests'.
    fn elf(be: bool, entry: u64, paddr: u64, data: &[u8], memsz: u64) -> Vec<u8> {
        let mut f = vec![0u8; 120];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = if be { 2 } else { 1 };
        let put = |f: &mut Vec<u8>, at: usize, n: usize, v: u64| {
            for i in 0..n {
                let shift = if be { 8 * (n - 1 - i) } else { 8 * i };
                f[at + i] = (v >> shift) as u8;
            }
        };
        put(&mut f, 18, 2, 21);
        put(&mut f, 24, 8, entry);
        put(&mut f, 32, 8, 64);
        put(&mut f, 54, 2, 56);
        put(&mut f, 56, 2, 1);
        put(&mut f, 64, 4, 1);
        put(&mut f, 64 + 8, 8, 120);
        put(&mut f, 64 + 16, 8, paddr);
        put(&mut f, 64 + 24, 8, paddr);
        put(&mut f, 64 + 32, 8, data.len() as u64);
        put(&mut f, 64 + 40, 8, memsz);
        f.extend_from_slice(data);
        f
    }

    #[test]
    fn elf_loads_at_kernel_addr_in_both_orders() {
        for be in [false, true] {
            let mut ram = vec![0xaau8; 0x1000];
            let file = elf(be, 0x10, 0x100, &[1, 2, 3, 4], 8);
            let l = load_elf(&file, &mut ram, 0x400).unwrap();
            assert_eq!(
                l,
                Loaded {
                    entry: 0x410,
                    end: 0x508,
                    big_endian: be
                }
            );
            assert_eq!(&ram[0x500..0x508], &[1, 2, 3, 4, 0, 0, 0, 0]);
            assert_eq!(ram[0x4ff], 0xaa);
            assert_eq!(ram[0x508], 0xaa);
        }
    }

    #[test]
    fn elf_errors() {
        let mut ram = vec![0u8; 0x1000];
        assert_eq!(load_elf(b"hello", &mut ram, 0), Err(ElfError::NotElf64));
        // Past the end of memory.
        let file = elf(false, 0, 0xff0, &[0; 4], 0x20);
        assert_eq!(load_elf(&file, &mut ram, 0), Err(ElfError::OutOfBounds));
        // Huge addresses do not wrap.
        let file = elf(false, 0, u64::MAX - 2, &[0; 4], 4);
        assert_eq!(load_elf(&file, &mut ram, 0), Err(ElfError::OutOfBounds));
        // filesz beyond the file.
        let mut file = elf(false, 0, 0, &[0; 4], 4);
        file.truncate(121);
        assert_eq!(load_elf(&file, &mut ram, 0), Err(ElfError::OutOfBounds));
        // Entry outside the image.
        let file = elf(false, 0x100, 0, &[0; 4], 4);
        assert_eq!(load_elf(&file, &mut ram, 0), Err(ElfError::OutOfBounds));
        let mut file = elf(false, 0, 0, &[0; 4], 4);
        file[18] = 20;
        assert_eq!(load_elf(&file, &mut ram, 0), Err(ElfError::NotPpc64));
    }

    #[test]
    fn rtas_buffer() {
        let mut ram = vec![0u8; 0x100];
        let words: [u32; 6] = [RTAS_OS_TERM, 1, 1, 0x80, 0xdead_beef, 7];
        for (i, w) in words.iter().enumerate() {
            ram[0x10 + i * 4..0x14 + i * 4].copy_from_slice(&w.to_be_bytes());
        }
        ram[0x80..0x84].copy_from_slice(b"bye\0");
        let c = RtasCall::read(&ram, 0x10).unwrap();
        assert_eq!((c.token, c.nargs, c.nret), (RTAS_OS_TERM, 1, 1));
        assert_eq!(c.arg(&ram, 0), Some(0x80));
        assert_eq!(c.arg(&ram, 1), None);
        assert!(c.set_ret(&mut ram, 0, -3));
        assert!(!c.set_ret(&mut ram, 1, 0));
        assert_eq!(be32(&ram, 0x10 + 16), (-3i32) as u32);
        assert_eq!(be32(&ram, 0x10 + 20), 7);
        assert_eq!(guest_cstr(&ram, 0x80, 64), b"bye");
        assert_eq!(guest_cstr(&ram, 0x1000, 64), b"");
        // A buffer running past memory, or absurd counts.
        assert_eq!(RtasCall::read(&ram, 0xfc), None);
        ram[0xe4..0xe8].copy_from_slice(&4u32.to_be_bytes());
        ram[0xe8..0xec].copy_from_slice(&4u32.to_be_bytes());
        assert_eq!(RtasCall::read(&ram, 0xe0), None);
        ram[0x14..0x18].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(RtasCall::read(&ram, 0x10), None);
        assert_eq!(RtasCall::read(&ram, u64::MAX - 3), None);
    }

    #[test]
    fn cpu_hops_cycle_over_the_allowed_cpus() {
        let mut allowed = [0u64; CPU_WORDS];
        allowed[0] = 0b1010;
        allowed[1] = 1; // CPU 64
        let mut h = CpuHop::new(allowed);
        assert_eq!(h.allowed(), 3);
        let order: Vec<usize> = (0..7).filter_map(|_| h.advance()).collect();
        assert_eq!(order, [1, 3, 64, 1, 3, 64, 1]);
        for c in order {
            h.ran_on(c);
        }
        assert_eq!(h.ran_on_count(), 3);
        assert_eq!(CpuHop::only(65)[1], 2);
        assert_eq!(CpuHop::only(5000), [0; CPU_WORDS]);
        let mut none = CpuHop::new([0; CPU_WORDS]);
        assert_eq!(none.advance(), None);
        none.ran_on(5000);
        assert_eq!(none.ran_on_count(), 0);
    }

    #[test]
    fn console_lines() {
        let (b, n) = term_chars(5, u64::from_be_bytes(*b"ab\ncd\x1b[2"), 0).unwrap();
        assert_eq!(&b[..n], b"ab\ncd");
        assert_eq!(term_chars(17, 0, 0), None);
        let mut l = LineBuffer::default();
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for &c in b"GUEST-PASS x\r\n\x1b[2Jz\n" {
            if let Some(line) = l.push(c) {
                lines.push(line.to_vec());
            }
        }
        assert_eq!(lines, [b"GUEST-PASS x".to_vec(), b".[2Jz".to_vec()]);
        l.push(b'q');
        assert_eq!(l.rest(), b"q");
        assert_eq!(l.rest(), b"");
    }
}
