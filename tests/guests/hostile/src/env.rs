//! What the hostile guest knows about itself: its memory and where each of its
//! regions lies, the device tree facts it uses, and the command line
//! (`/chosen/bootargs`): `paprika.seed=N` replays a run, `paprika.off=a,b`
//! switches attack classes off, `paprika.calls=N` changes the call budget.
use paprika_guest_rt::*;

/// Each vCPU's own part of the scratch region (2 MiB, see [`Half`]).
pub const HALF: u64 = 2 << 20;
/// The region nothing writes to: it must read back as zero (demand-zero).
pub const ZERO_LEN: u64 = 4 << 20;
/// The top of memory the guest may let hcalls write into: the RTAS area
/// (`[mem - 64K, mem)`), which it does not use (it calls H_RTAS directly).
pub const TOP_LEN: u64 = 0x1_0000;

/// Attack classes (`paprika.off=<name>,...` switches one off).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Structured hcall fuzzing (every implemented call, one field mutated).
    Hcalls,
    /// Random opcodes with random arguments.
    Random,
    /// H_RTAS with random buffers.
    Rtas,
    /// TIMA / ESB accesses of every width.
    Mmio,
    /// Supervisor SPRs with random values (and checks they survive exits).
    Spr,
    /// Performance monitor SPRs, left with an alert pending when a vCPU stops.
    Pmu,
    /// DPDES / msgsndp, left pending when a vCPU stops.
    Dpdes,
    /// Hypervisor-privileged SPRs and facilities (TM, EBB): must trap.
    HvSpr,
    /// Watchpoints: H_SET_MODE DAWR0, H_SET_DABR / H_SET_XDABR.
    Dawr,
    /// Its own process table pointed at garbage, then MMU-on loads.
    Mmu,
    /// The second vCPU hammering at the same time.
    Smp,
    /// Bursts of console output (bounded).
    Console,
    /// After the attack, system-reboot: the second boot must find every byte
    /// it dirtied zero again and the interrupt controllers reset.
    Reboot,
    /// A console flood from both vCPUs (audit finding 4: the neighbour's own
    /// console calls must not wait for it).
    Flood,
    /// Exact codes where a hypervisor fix is pending (H_REGISTER_VPA flags and
    /// 4 KiB crossing, H_RPT_INVALIDATE types, H_REGISTER_PROC_TBL codes: audit
    /// findings 11-13). Off: those calls need only answer a PAPR status.
    Strict,
}

pub const CLASSES: &[(&str, Class)] = &[
    ("hcalls", Class::Hcalls),
    ("random", Class::Random),
    ("rtas", Class::Rtas),
    ("mmio", Class::Mmio),
    ("spr", Class::Spr),
    ("pmu", Class::Pmu),
    ("dpdes", Class::Dpdes),
    ("hvspr", Class::HvSpr),
    ("dawr", Class::Dawr),
    ("mmu", Class::Mmu),
    ("smp", Class::Smp),
    ("console", Class::Console),
    ("reboot", Class::Reboot),
    ("flood", Class::Flood),
    ("strict", Class::Strict),
];

/// A range of guest real addresses.
#[derive(Clone, Copy)]
pub struct Region {
    pub start: u64,
    pub end: u64,
}

impl Region {
    pub fn len(self) -> u64 {
        self.end - self.start
    }
    pub fn contains(self, a: u64, len: u64) -> bool {
        a >= self.start && a.checked_add(len).is_some_and(|e| e <= self.end)
    }
}

/// One vCPU's 2 MiB of scratch: what its valid writing hcalls may target.
#[derive(Clone, Copy)]
pub struct Half {
    /// RTAS argument buffers.
    pub rtas: Region,
    /// Only this vCPU's hcalls write here, and it checks what they wrote.
    pub quiet: Region,
    /// VPA / DTL / SLB areas, fake device tree headers, system parameter buffers.
    pub misc: Region,
    /// XIVE event queues (64 KiB aligned).
    pub queues: Region,
    /// Its own process and page tables (MMU attack).
    pub tables: Region,
}

impl Half {
    fn at(base: u64) -> Half {
        let r = |a: u64, b: u64| Region {
            start: base + a,
            end: base + b,
        };
        Half {
            rtas: r(0, 0x1_0000),
            quiet: r(0x1_0000, 0x2_0000),
            misc: r(0x2_0000, 0x4_0000),
            queues: r(0x4_0000, 0x10_0000),
            tables: r(0x10_0000, HALF),
        }
    }
}

/// The partition as the guest sees it.
pub struct Env {
    pub mem: u64,
    pub nvcpus: u32,
    pub vty: u64,
    pub tima_user: u64,
    pub tima_os: u64,
    pub fdt: Region,
    pub halves: [Half; 2],
    pub zero: Region,
    pub canary: Region,
    pub top: Region,
    /// End of the image as linked (`__stack_top`).
    pub image_end: u64,
    pub seed: u64,
    pub calls: u64,
    pub off: u32,
    /// RTAS tokens by name, looked up once (the fuzzer may overwrite the tree's
    /// copy? no: it never writes there, but lookups are slow).
    pub tokens: [(&'static str, u32); 24],
}

extern "C" {
    static __stack_top: u8;
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 8)?;
    Some(u64::from_be_bytes(s.try_into().ok()?))
}

/// `paprika.<key>=<value>` from the command line.
pub fn bootarg<'a>(args: &'a [u8], key: &str) -> Option<&'a [u8]> {
    args.split(|&c| c == b' ' || c == 0).find_map(|w| {
        let rest = w.strip_prefix(b"paprika.")?;
        let rest = rest.strip_prefix(key.as_bytes())?;
        rest.strip_prefix(b"=")
    })
}

/// Decimal, or hexadecimal with 0x.
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    let (digits, radix) = match v.strip_prefix(b"0x") {
        Some(h) => (h, 16),
        None => (v, 10),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in digits {
        let d = (c as char).to_digit(radix)?;
        n = n.checked_mul(u64::from(radix))?.checked_add(u64::from(d))?;
    }
    Some(n)
}

/// RTAS calls the fuzzer knows (and the ones it must never make with a valid
/// buffer are named in `rtas.rs`).
pub const TOKEN_NAMES: [&str; 24] = [
    "get-time-of-day",
    "set-time-of-day",
    "power-off",
    "system-reboot",
    "display-character",
    "start-cpu",
    "stop-self",
    "query-cpu-stopped-state",
    "ibm,get-system-parameter",
    "event-scan",
    "check-exception",
    "ibm,os-term",
    "ibm,nmi-register",
    "ibm,nmi-interlock",
    "ibm,int-on",
    "ibm,int-off",
    "ibm,set-xive",
    "ibm,get-xive",
    "ibm,set-system-parameter",
    "set-power-level",
    "get-power-level",
    "ibm,configure-kernel-dump",
    "ibm,suspend-me",
    "ibm,read-pci-config",
];

impl Env {
    pub fn new(fdt: &'static [u8]) -> Env {
        let mem = fdt_prop(fdt, "/memory", "reg")
            .and_then(|r| be64(r, 8))
            .unwrap_or(0);
        let args = fdt_prop(fdt, "/chosen", "bootargs").unwrap_or(&[]);
        let seed = bootarg(args, "seed")
            .and_then(parse_u64)
            .unwrap_or_else(|| mftb().wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16);
        let calls = bootarg(args, "calls")
            .and_then(parse_u64)
            .unwrap_or(1_000_000);
        let mut off = 0u32;
        if let Some(list) = bootarg(args, "off") {
            for name in list.split(|&c| c == b',') {
                for (i, (n, _)) in CLASSES.iter().enumerate() {
                    if n.as_bytes() == name {
                        off |= 1 << i;
                    }
                }
            }
        }
        let reg = fdt_prop(fdt, "/interrupt-controller", "reg").unwrap_or(&[]);
        let fdt_start = fdt.as_ptr() as u64;
        // SAFETY: a linker symbol; only its address is used.
        let img_end = (&raw const __stack_top) as u64;
        let free = (img_end + HALF - 1) & !(HALF - 1);
        let halves = [Half::at(free), Half::at(free + HALF)];
        let zero = Region {
            start: free + 2 * HALF,
            end: free + 2 * HALF + ZERO_LEN,
        };
        // The canary runs up to the last 2 MiB boundary below the device tree.
        let canary_end = (fdt_start & !(HALF - 1)).max(zero.end);
        let mut tokens = [("", 0u32); 24];
        for (t, name) in tokens.iter_mut().zip(TOKEN_NAMES) {
            *t = (name, rtas_token(name).unwrap_or(0));
        }
        Env {
            mem,
            nvcpus: fdt_count_cpus(fdt).max(1),
            vty: u64::from(fdt_u32(fdt, "/vdevice/vty", "reg").unwrap_or(0x7100_0000)),
            tima_user: be64(reg, 0).unwrap_or(0),
            tima_os: be64(reg, 16).unwrap_or(0),
            fdt: Region {
                start: fdt_start,
                end: fdt_start + fdt.len() as u64,
            },
            halves,
            zero,
            canary: Region {
                start: zero.end,
                end: canary_end,
            },
            top: Region {
                start: mem - TOP_LEN,
                end: mem,
            },
            image_end: img_end,
            seed,
            calls,
            off,
            tokens,
        }
    }

    pub fn on(&self, c: Class) -> bool {
        let i = CLASSES.iter().position(|(_, k)| *k == c).unwrap_or(0);
        self.off & (1 << i) == 0
    }

    pub fn token(&self, name: &str) -> u32 {
        self.tokens
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, t)| *t)
    }

    pub fn in_mem(&self, a: u64, len: u64) -> bool {
        a.checked_add(len).is_some_and(|e| e <= self.mem)
    }
}
