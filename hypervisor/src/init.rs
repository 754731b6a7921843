//! The boot thread's path from skiboot's hand-off to a running machine
//! (docs/boot.md): early console, OPAL_REINIT_CPUS, host device tree, frames and heap,
//! the hypervisor's page tables and MMU, every other thread, self-tests, and finally
//! power-off.
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::ppc64::percpu::{self, PerCpu};
use crate::arch::ppc64::{self as arch, fatal, instr, mmu, smp, spr, timer};
use crate::fault::StackRange;
use crate::fdt::host::{self, FdtError, HostInfo};
use crate::log;
use crate::mm::frame::{FrameError, PhysRange, PAGE_SIZE};
use crate::mm::radix::MapError;
use crate::mm::{self, LINEAR_BASE};
use crate::platform::opal::{self, OpalError};
use crate::{error, info, warn};

/// Why the boot could not complete.
#[derive(Debug)]
pub enum BootError {
    Fdt(FdtError),
    Frames(FrameError),
    Map(MapError),
    Opal(&'static str, OpalError),
    Bundle(&'static str),
    Manifest(crate::partition::manifest::ManifestError),
    NoPartitions,
    BootThreadNotInTree(u32),
    TooManyThreads(usize),
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::Fdt(e) => write!(f, "host device tree: {e}"),
            BootError::Frames(e) => write!(f, "frame allocator: {e:?}"),
            BootError::Map(e) => write!(f, "page tables: {e:?}"),
            BootError::Opal(what, e) => write!(f, "OPAL {what}: {e:?}"),
            BootError::BootThreadNotInTree(pir) => {
                write!(f, "boot thread PIR {pir:#x} is not in /cpus")
            }
            BootError::TooManyThreads(n) => write!(f, "{n} threads exceed the supported maximum"),
            BootError::Bundle(why) => write!(f, "boot bundle: {why}"),
            BootError::Manifest(e) => write!(f, "{e}"),
            BootError::NoPartitions => write!(f, "no partition could be created"),
        }
    }
}

impl From<FdtError> for BootError {
    fn from(e: FdtError) -> Self {
        BootError::Fdt(e)
    }
}
impl From<FrameError> for BootError {
    fn from(e: FrameError) -> Self {
        BootError::Frames(e)
    }
}
impl From<MapError> for BootError {
    fn from(e: MapError) -> Self {
        BootError::Map(e)
    }
}

/// Stack sizes per thread. Each stack has an unmapped 4 KiB guard page below it.
const MAIN_STACK: u64 = 64 * 1024;
const IRQ_STACK: u64 = 32 * 1024;
const FAULT_STACK: u64 = 32 * 1024;
/// Stacks used by the boot thread's interrupt entry before its real ones exist.
const EARLY_STACK: usize = 16 * 1024;

#[repr(C, align(4096))]
struct EarlyStack([u8; EARLY_STACK]);
static mut EARLY_IRQ_STACK: EarlyStack = EarlyStack([0; EARLY_STACK]);

/// The boot thread's per-CPU data until the real one (on the heap) is installed.
static mut EARLY_PERCPU: PerCpu = PerCpu::new(0, 0);

static LOG_BACKEND: log::Backend = log::Backend {
    write: crate::console::write,
    write_direct: |b| {
        crate::console::flush();
        opal::console_write(0, b)
    },
    settle: crate::console::settle,
    now_us: timer::uptime_us,
    context: || {
        let cpu = percpu::cpu_index();
        log::Context {
            cpu,
            lpid: crate::partition::vcpu::lpid_on(cpu),
        }
    },
};

extern "C" {
    static __boot_stack_bottom: u8;
    static __boot_stack_top: u8;
}

/// The boot thread's stack (from the linker script), for backtraces.
pub fn boot_stack_range() -> StackRange {
    // SAFETY: linker-defined symbols; only their addresses are used.
    unsafe {
        StackRange {
            lo: &__boot_stack_bottom as *const u8 as u64,
            hi: &__boot_stack_top as *const u8 as u64,
        }
    }
}

/// Rust entry of the boot thread, called by the stub in `boot/` in real mode,
/// little-endian, on the boot stack, with skiboot's registers.
#[no_mangle]
pub extern "C" fn paprika_boot_main(
    fdt: u64,
    opal_base: u64,
    opal_entry: u64,
    load_addr: u64,
) -> ! {
    let tb_entry = instr::mftb();
    timer::mark_entry(tb_entry);
    early_percpu();
    opal::call::set_entry(opal_base, opal_entry);
    log::set_backend(&LOG_BACKEND);
    info!(
        "Paprika {} starting: image loaded at {:#x}, now at 0; fdt {:#x}, OPAL base {:#x} entry {:#x}, timebase {}",
        env!("CARGO_PKG_VERSION"),
        load_addr,
        fdt,
        opal_base,
        opal_entry,
        tb_entry
    );
    match boot(fdt, tb_entry) {
        Ok(()) => {
            info!("PAPRIKA power-off: success");
            opal::power_down()
        }
        Err(e) => {
            error!("boot failed: {e}");
            fatal::fail_stop()
        }
    }
}

/// Gives the boot thread per-CPU data and an interrupt stack right away, so a fault
/// during early boot is reported rather than lost.
fn early_percpu() {
    let stack_top = (&raw const EARLY_IRQ_STACK) as u64 + EARLY_STACK as u64;
    // SAFETY: only the boot thread runs, and nothing has read EARLY_PERCPU yet; after
    // `install` it is only read (by this thread's interrupt entry).
    unsafe {
        let p = &raw mut EARLY_PERCPU;
        (*p).irq_stack_top = AtomicU64::new(stack_top - 64);
        (*p).fault_stack_top = AtomicU64::new(stack_top - 64);
        (*p).kernel_msr = AtomicU64::new(instr::mfmsr().bits());
        (*p).toc = arch::toc_pointer();
        (*p).exc_entry = arch::exception::translated_entry();
        (*p).guest_ret = arch::guest::return_address();
        (*p).pir = spr::pir::read() as u32;
        percpu::install(&*p);
    }
}

fn parse_host_fdt(fdt: u64) -> Result<HostInfo, BootError> {
    let base = (LINEAR_BASE | fdt) as *const u8;
    // SAFETY: skiboot passed a device tree at `fdt`; reading its 40-byte header is in
    // bounds of any valid tree, and `total_size` checks the magic before we trust
    // the size.
    let header = unsafe { core::slice::from_raw_parts(base, 40) };
    let size = host::total_size(header)?;
    if size > 16 * 1024 * 1024 {
        return Err(BootError::Fdt(FdtError::Read(
            crate::fdt::reader::ReadError::BadHeader,
        )));
    }
    // SAFETY: skiboot reserved `size` bytes for the tree (its own totalsize).
    let blob = unsafe { core::slice::from_raw_parts(base, size) };
    Ok(host::parse(blob, fdt)?)
}

fn banner(info: &HostInfo) {
    let machine = if info.compatible.contains("powernv10") {
        "powernv10"
    } else if info.compatible.contains("powernv9") {
        "powernv9"
    } else {
        info.compatible.as_str()
    };
    info!(
        "PAPRIKA banner: memory={} threads={} cores={} chips={} machine={} model=\"{}\" xive={} phbs={} ultravisor={}",
        info.memory_bytes(),
        info.threads.len(),
        info.cores,
        info.chips.len(),
        machine,
        info.model,
        if info.xive.is_some() { "yes" } else { "no" },
        info.phbs,
        if info.ultravisor { "yes" } else { "no" }
    );
    for r in &info.memory {
        info!(
            "  memory   {:#014x}-{:#014x} ({} MiB)",
            r.start,
            r.end,
            (r.end - r.start) >> 20
        );
    }
    for r in &info.reserved {
        info!("  reserved {:#014x}-{:#014x}", r.start, r.end);
    }
    info!(
        "  chips {:?}, boot PIR {:#x}, timebase {} Hz",
        info.chips.as_slice(),
        info.boot_pir,
        info.timebase_hz
    );
    for t in &info.threads {
        info!(
            "  thread pir {:#06x} chip {} core {} thread {}",
            t.pir, t.chip_id, t.core, t.thread
        );
    }
    info!(
        "  OPAL base {:#x} entry {:#x} size {:#x} heartbeat {} ms",
        info.opal.base, info.opal.entry, info.opal.size, info.opal.heartbeat_ms
    );
    if let Some(x) = &info.xive {
        info!("  XIVE {} with {} TIMA pages", x.compatible, x.tima.len());
    }
    if let Some(r) = info.initrd {
        info!(
            "  initrd {:#x}-{:#x} ({} bytes)",
            r.start,
            r.end,
            r.end - r.start
        );
    }
    if !info.bootargs.is_empty() {
        info!("  bootargs \"{}\"", info.bootargs);
    }
}

/// Per-thread stacks: [guard][main][guard][irq][guard][fault].
struct ThreadStacks {
    guards: [u64; 3],
    main: StackRange,
    irq: StackRange,
    fault: StackRange,
}

fn alloc_stacks() -> Result<ThreadStacks, BootError> {
    let total = 3 * PAGE_SIZE + MAIN_STACK + IRQ_STACK + FAULT_STACK;
    let base = mm::alloc_frames(total, PAGE_SIZE)?;
    let g0 = base;
    let main = StackRange {
        lo: LINEAR_BASE | (g0 + PAGE_SIZE),
        hi: LINEAR_BASE | (g0 + PAGE_SIZE + MAIN_STACK),
    };
    let g1 = g0 + PAGE_SIZE + MAIN_STACK;
    let irq = StackRange {
        lo: LINEAR_BASE | (g1 + PAGE_SIZE),
        hi: LINEAR_BASE | (g1 + PAGE_SIZE + IRQ_STACK),
    };
    let g2 = g1 + PAGE_SIZE + IRQ_STACK;
    let fault = StackRange {
        lo: LINEAR_BASE | (g2 + PAGE_SIZE),
        hi: LINEAR_BASE | (g2 + PAGE_SIZE + FAULT_STACK),
    };
    Ok(ThreadStacks {
        guards: [g0, g1, g2],
        main,
        irq,
        fault,
    })
}

fn boot(fdt: u64, tb_entry: u64) -> Result<(), BootError> {
    // Interrupts must arrive little-endian before anything can fault; OPAL requires
    // this while every other thread still sits in OPAL.
    if let Err(e) = opal::reinit_cpus(opal::REINIT_HILE_LE | opal::REINIT_MMU_RADIX) {
        warn!("OPAL_REINIT_CPUS(HILE_LE|RADIX) failed ({e:?}); retrying with HILE_LE");
        opal::reinit_cpus(opal::REINIT_HILE_LE).map_err(|e| BootError::Opal("REINIT_CPUS", e))?;
    }

    let info = parse_host_fdt(fdt)?;
    timer::set_frequency(info.timebase_hz);
    opal::set_heartbeat(timer::us_to_ticks(u64::from(info.opal.heartbeat_ms) * 1000));
    banner(&info);
    if info.threads.len() > smp::MAX_CPUS {
        return Err(BootError::TooManyThreads(info.threads.len()));
    }

    // Frames: all RAM except the image, firmware, the FDT and the initrd.
    let (_, _, image_end) = mmu::image_layout();
    {
        let mut frames = mm::FRAMES.lock();
        frames.reserve(PhysRange {
            start: 0,
            end: image_end,
        })?;
        for r in &info.reserved {
            frames.reserve(*r)?;
        }
        for r in &info.memory {
            frames.add_free(*r)?;
        }
        info!(
            "frames: {} MiB free after reservations",
            frames.free_bytes() >> 20
        );
    }
    let heap_size = (info.memory_bytes() / 64).clamp(4 << 20, 64 << 20);
    let heap = mm::alloc_frames(heap_size, 2 << 20)?;
    // SAFETY: the frames were just allocated for the heap and nothing else uses them.
    unsafe { mm::heap::init(LINEAR_BASE | heap, heap_size as usize) };
    info!("heap: {} MiB at {:#x}", heap_size >> 20, heap);
    crate::console::init((heap_size as usize / 4).min(4 << 20));
    // Log lines wait in the ring until every thread is online (boot time).
    crate::console::hold_output(true);

    // Per-thread data and stacks.
    let my_pir = spr::pir::read() as u32;
    let boot_thread = info
        .threads
        .iter()
        .position(|t| t.pir == my_pir)
        .ok_or(BootError::BootThreadNotInTree(my_pir))?;
    let mut guards: Vec<u64> = Vec::new();
    guards.push(mmu::boot_stack_guard());
    let mut cpus: Vec<&'static PerCpu> = Vec::new();
    // Logical index 0 is the boot thread; the rest follow device-tree order.
    let order =
        core::iter::once(boot_thread).chain((0..info.threads.len()).filter(|&i| i != boot_thread));
    for (index, ti) in order.enumerate() {
        let t = info.threads[ti];
        let st = alloc_stacks()?;
        guards.extend_from_slice(&st.guards);
        // Built completely before it is shared: the entry stub and the interrupt
        // path read it through HSPRG0.
        let mut pc = PerCpu::new(index as u32, t.pir);
        pc.core = t.core;
        pc.thread = t.thread;
        pc.toc = arch::toc_pointer();
        pc.exc_entry = arch::exception::translated_entry();
        pc.guest_ret = arch::guest::return_address();
        pc.stack_top = st.main.hi - 64;
        pc.stacks = [
            if index == 0 {
                boot_stack_range()
            } else {
                st.main
            },
            st.irq,
            st.fault,
        ];
        pc.irq_stack_top = AtomicU64::new(st.irq.hi - 64);
        pc.fault_stack_top = AtomicU64::new(st.fault.hi - 64);
        pc.kernel_msr = AtomicU64::new(instr::mfmsr().bits());
        let pc: &'static PerCpu = Box::leak(Box::new(pc));
        crate::debug!("percpu {} pir {:#x} at {:p}", pc.index, pc.pir, pc);
        cpus.push(pc);
    }

    // The hypervisor's address space.
    let firmware: Vec<PhysRange> = info
        .reserved
        .iter()
        .copied()
        .filter(|r| !(r.start >= info.fdt.start && r.end <= info.fdt.end))
        .filter(|r| {
            info.initrd
                .is_none_or(|i| !(r.start >= i.start && r.end <= i.end))
        })
        .collect();
    let mut read_only: Vec<PhysRange> = Vec::new();
    read_only.push(info.fdt);
    if let Some(i) = info.initrd {
        read_only.push(i);
    }
    // The virtio console's registers must be in the map: place its BAR now.
    let virtio_console = crate::platform::virtio_console::prepare(&info);
    let mut io: Vec<PhysRange> = virtio_console.iter().map(|p| p.regs).collect();
    // Pass-through MSIs: the host XIVE in exploitation mode, the MSI ESB pages
    // and the PHBs' 32-bit windows (MSI-X tables) mapped.
    // Only PHBs with a function some partition of the boot bundle owns.
    let pt_devices: Vec<crate::pci::PciAddress> = bundle_of(&info)
        .and_then(|b| {
            crate::bundle::find(b, crate::bundle::MANIFEST)
                .ok()
                .flatten()
        })
        .and_then(|blob| crate::partition::manifest::from_dtb(blob).ok())
        .map(|m| {
            m.partitions
                .iter()
                .flat_map(|p| p.devices.iter().copied())
                .collect()
        })
        .unwrap_or_default();
    let msi_io = crate::partition::passthrough::prepare_msi(&info, &io, &pt_devices);
    io.extend(msi_io);
    let plan = mmu::MapPlan {
        memory: &info.memory,
        firmware: &firmware,
        read_only: &read_only,
        guards: &guards,
        io: &io,
        tlb_sets: info.tlb_sets.unwrap_or(128),
    };
    // Before the tables: with an ultravisor, partition-table entries go through
    // it and PTCR is not written (docs/pef.md).
    crate::arch::ppc64::ucall::set_present(info.ultravisor);
    mmu::build(&plan)?;
    mmu::flush_all();
    // SAFETY: the boot thread's final per-CPU data, allocated above for ever.
    unsafe { percpu::install(cpus[0]) };
    mmu::enable_this_thread(cpus[0]);
    cpus[0].online.store(true, Ordering::Release);
    // H_TPM_COMM's host TPM (docs/pef.md).
    crate::partition::tpm::init(info.host_tpm());
    info!(
        "MMU on: radix, {} guard pages, PIDR {}",
        guards.len(),
        mmu::HV_PIDR
    );

    if let Some(p) = virtio_console {
        match crate::platform::virtio_console::start(&p) {
            Ok(con) => {
                info!("console output continues on the virtio console");
                crate::console::flush();
                crate::console::set_virtio(con);
                info!("PAPRIKA console: virtio at PHB {} {}", p.phb_id, p.bdf);
            }
            Err(e) => warn!("virtio console failed to start ({e:?}); console output stays on OPAL"),
        }
    }

    // Every other thread.
    smp::publish(cpus);
    let cpus = smp::cpus();
    let entry = smp::secondary_entry_real();
    for (slot, pc) in cpus.iter().enumerate().skip(1) {
        smp::register_boot_slot(slot, pc);
    }
    instr::sync();
    for pc in cpus.iter().skip(1) {
        // OPAL can answer WRONG_STATE while a thread is still settling in its
        // wait loop; retry briefly, then carry on without that thread.
        let mut rc = opal::start_cpu(pc.pir, entry);
        for _ in 0..20 {
            if rc.is_ok() {
                break;
            }
            let until = instr::mftb() + timer::us_to_ticks(5_000);
            while instr::mftb() < until {
                core::hint::spin_loop();
            }
            rc = opal::start_cpu(pc.pir, entry);
        }
        if let Err(e) = rc {
            error!(
                "OPAL_START_CPU(pir {:#x}) failed: {e:?}; continuing without it",
                pc.pir
            );
        }
    }
    let deadline = instr::mftb() + timer::us_to_ticks(20_000_000);
    while smp::online_count() < cpus.len() && instr::mftb() < deadline {
        opal::heartbeat();
        core::hint::spin_loop();
    }
    let tb_online = instr::mftb();
    crate::console::hold_output(false);
    let online = smp::online_count();
    info!("PAPRIKA smp: {}/{} threads online", online, cpus.len());
    let ticks = tb_online - tb_entry;
    info!(
        "PAPRIKA boot-time: ticks={} us={}",
        ticks,
        ticks / timer::ticks_per_us()
    );
    if online < cpus.len() {
        for pc in cpus.iter().filter(|c| !c.is_online()) {
            error!("thread pir {:#x} did not come online", pc.pir);
        }
    }

    selftests(cpus);

    #[cfg(feature = "fault-test")]
    {
        info!("fault-test build: dereferencing a null pointer");
        // SAFETY: deliberately unsound: this build exists to exercise the fault path.
        let v = unsafe { core::ptr::read_volatile(core::ptr::null::<u64>()) };
        info!("null dereference did not fault (read {v:#x})");
    }

    crate::partition::lpar::record_host_lpcr();
    match bundle_of(&info) {
        None => {
            info!("no boot bundle (initrd): no partitions to run");
            smp::begin_shutdown();
            Ok(())
        }
        Some(bundle) => run_partitions(&info, bundle),
    }
}

/// The initrd skiboot was given, if it is a boot bundle (a cpio archive with a
/// `manifest.dtb`).
fn bundle_of(info: &HostInfo) -> Option<&'static [u8]> {
    let r = info.initrd?;
    // SAFETY: the initrd range came from /chosen, is reserved from the frame
    // allocator and mapped read-only for the hypervisor's lifetime.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            (LINEAR_BASE | r.start) as *const u8,
            (r.end - r.start) as usize,
        )
    };
    matches!(
        crate::bundle::find(bytes, crate::bundle::MANIFEST),
        Ok(Some(_))
    )
    .then_some(bytes)
}

/// What an idle thread does when woken: run its vCPU, show the input partition's
/// unfinished console line once it is quiet, drain the console (and, on the
/// drainer, poll console input).
fn idle_work() {
    crate::partition::vcpu::thread_work();
    crate::partition::lpar::console_tick();
    crate::console::serve();
    crate::console::input::idle_poll();
}

/// Reads and checks the manifest (again: xtask checked it at build time), creates
/// the partitions and lets every thread run its vCPU. Does not return: the last
/// partition to stop powers the machine off.
fn run_partitions(info: &HostInfo, bundle: &'static [u8]) -> Result<(), BootError> {
    use crate::partition::{lpar, manifest, vcpu};
    let blob = crate::bundle::find(bundle, crate::bundle::MANIFEST)
        .map_err(|_| BootError::Bundle("corrupt cpio archive"))?
        .ok_or(BootError::Bundle("no manifest.dtb"))?;
    let m = manifest::from_dtb(blob).map_err(BootError::Manifest)?;
    let online = smp::online_count() as u32;
    manifest::check_against_machine(&m, info.memory_bytes(), online, |path| {
        matches!(crate::bundle::find(bundle, path), Ok(Some(_)))
    })
    .map_err(BootError::Manifest)?;
    // Each passed-through function against skiboot's device tree.
    manifest::check_devices(&m, |d| {
        crate::partition::passthrough::host_function(info, d)
    })
    .map_err(BootError::Manifest)?;
    info!("manifest: {} partition(s)", m.partitions.len());
    crate::partition::rtas_calls::prime_host_clock();
    smp::set_idle_work(idle_work);
    if lpar::create_all(&m, bundle, info) == 0 {
        return Err(BootError::NoPartitions);
    }
    // A thread that serves no vCPU drains the console, so guests' output never
    // waits for the UART.
    let drainer = smp::cpus()
        .iter()
        .find(|c| c.is_online() && vcpu::lpid_on(c.index).is_none());
    crate::console::set_drainer(drainer.map(|c| c.pir));
    smp::idle_loop()
}

/// Timer ticks on every thread and a doorbell ping-pong between two threads of one
/// core.
fn selftests(cpus: &[&'static PerCpu]) {
    let ok = timer::selftest(2_000_000);
    smp::record_timer_result(ok);
    let deadline = instr::mftb() + timer::us_to_ticks(20_000_000);
    while (smp::timer_results().0 as usize) < smp::online_count() && instr::mftb() < deadline {
        opal::heartbeat();
        core::hint::spin_loop();
    }
    let (done, passed) = smp::timer_results();
    let ticks_ok = cpus
        .iter()
        .filter(|c| {
            c.dec_ticks.load(Ordering::Relaxed) >= timer::SELFTEST_TICKS
                && c.hdec_ticks.load(Ordering::Relaxed) >= timer::SELFTEST_TICKS
        })
        .count();
    if passed as usize == cpus.len() && ticks_ok == cpus.len() {
        info!(
            "PAPRIKA timer: dec and hdec ticks on {}/{} threads",
            ticks_ok,
            cpus.len()
        );
    } else {
        error!(
            "timer self-test: {done} finished, {passed} passed, ticks on {ticks_ok}/{} threads",
            cpus.len()
        );
    }

    let me = cpus[0];
    match cpus
        .iter()
        .skip(1)
        .find(|c| c.core == me.core && c.is_online())
    {
        Some(peer) => {
            const ROUNDS: u64 = 100;
            let (done, ticks) = smp::doorbell_ping_pong(peer, ROUNDS, 100_000);
            if done == ROUNDS {
                info!(
                    "PAPRIKA doorbell: ping-pong ok: {} round trips between pir {:#x} and pir {:#x}, {} ns each",
                    done,
                    me.pir,
                    peer.pir,
                    ticks * 1000 / timer::ticks_per_us() / done
                );
            } else {
                error!(
                    "doorbell ping-pong: only {done}/{ROUNDS} round trips with pir {:#x}",
                    peer.pir
                );
            }
        }
        None => info!("doorbell ping-pong skipped: the boot thread's core has no other thread"),
    }
}
