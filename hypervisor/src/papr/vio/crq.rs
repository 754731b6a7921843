//! Command/Response Queues (CRQ, PAPR 17.2.3.1 "Reliable Command/Response
//! Transport"): the 16-byte message queue between a VIO client adapter and its
//! partner, as Linux's `ibmvscsi` (and `ibmvfc`, `ibmvnic`) drive it.
//!
//! A client registers a queue of `len` bytes at an I/O bus address of its own
//! device's TCE window (H_REG_CRQ); the partner appends 16-byte entries to it
//! and the client consumes them, zeroing byte 0 of each. The client sends to the
//! partner with H_SEND_CRQ (two registers, the 16 bytes big-endian).
//!
//! This module decides, the bindings (`partition/vio/vscsi.rs`) commit:
//! * [`Crq`]: one registered queue: the argument checks of H_REG_CRQ in QEMU's
//!   order (`hw/ppc/spapr_vio.c h_reg_crq`), and the enqueue (`spapr_vio_send_crq`:
//!   slot byte 0 non-zero means full, bytes 8-15 first, byte 0 last);
//! * [`CrqLink`]: the transport between the client and its partner: H_CLOSED
//!   while the partner is not ready, the INIT / INIT COMPLETE handshake
//!   (`viosrp.h`: valid 0xC0, format 0x01 / 0x02), transport events (valid 0xFF)
//!   when the partner goes away. The partner may be in the hypervisor (the SRP
//!   target of [`super::vscsi`]) or, later, a server partition's `v-scsi-host`.
//!
//! All device memory access goes through [`DmaWindow`], which the bindings
//! implement on the device's TCE table; nothing here sees a guest real address.

use crate::papr::hcall::HcallError;

/// Bytes per queue entry.
pub const CRQ_ENTRY_SIZE: u64 = 16;
/// Smallest queue H_REG_CRQ accepts (one 4 KiB page, QEMU `h_reg_crq`).
pub const CRQ_MIN_LEN: u64 = 0x1000;
/// Largest queue H_REG_CRQ accepts (QEMU `h_reg_crq`).
pub const CRQ_MAX_LEN: u64 = 0x1000_0000;

/// Byte 0 of an entry (`viosrp.h enum viosrp_crq_headers`).
pub const VALID_FREE: u8 = 0x00;
/// A command or response.
pub const VALID_CMD_RSP: u8 = 0x80;
/// An initialisation message (format [`FORMAT_INIT`] or [`FORMAT_INIT_COMPLETE`]).
pub const VALID_INIT: u8 = 0xC0;
/// A transport event from the platform.
pub const VALID_TRANSPORT_EVENT: u8 = 0xFF;

/// Byte 1 of a [`VALID_INIT`] entry: "I am here".
pub const FORMAT_INIT: u8 = 0x01;
/// Byte 1 of a [`VALID_INIT`] entry: the answer to [`FORMAT_INIT`].
pub const FORMAT_INIT_COMPLETE: u8 = 0x02;
/// Byte 1 of a transport event: the partner partition failed.
pub const EVENT_PARTNER_FAILED: u8 = 0x01;
/// Byte 1 of a transport event: the partner deregistered its queue.
pub const EVENT_PARTNER_DEREGISTERED: u8 = 0x02;

/// One 16-byte queue entry as it lies in memory (big-endian fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CrqEntry(pub [u8; 16]);

impl CrqEntry {
    /// The entry H_SEND_CRQ carries in two registers (r5 = bytes 0-7, r6 = 8-15,
    /// each big-endian: Linux `ibmvscsi_send_crq` passes `be64_to_cpu` words).
    pub fn from_words(hi: u64, lo: u64) -> Self {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&hi.to_be_bytes());
        b[8..].copy_from_slice(&lo.to_be_bytes());
        CrqEntry(b)
    }

    /// An INIT-type entry (valid 0xC0) of `format`.
    pub fn init(format: u8) -> Self {
        let mut b = [0u8; 16];
        b[0] = VALID_INIT;
        b[1] = format;
        CrqEntry(b)
    }

    /// A transport event (valid 0xFF) of `format`.
    pub fn transport_event(format: u8) -> Self {
        let mut b = [0u8; 16];
        b[0] = VALID_TRANSPORT_EVENT;
        b[1] = format;
        CrqEntry(b)
    }

    pub fn valid(&self) -> u8 {
        self.0[0]
    }

    pub fn format(&self) -> u8 {
        self.0[1]
    }

    pub fn status(&self) -> u8 {
        self.0[3]
    }

    /// Bytes 6-7, big-endian (`IU_length`).
    pub fn iu_length(&self) -> u16 {
        u16::from_be_bytes([self.0[6], self.0[7]])
    }

    /// Bytes 8-15, big-endian (`IU_data_ptr`: an I/O bus address in a request).
    pub fn iu_data_ptr(&self) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[8..]);
        u64::from_be_bytes(w)
    }
}

pub use super::tce::DmaError;

/// The memory a device reaches through its TCE window (I/O bus addresses).
/// Implemented by the bindings on the device's TCE table and the partition's
/// memory, and by a plain buffer in the host tests.
pub trait DmaWindow {
    /// Device read: copies `out.len()` bytes from `ioba` on.
    fn read(&mut self, ioba: u64, out: &mut [u8]) -> Result<(), DmaError>;
    /// Device write: copies `data` to `ioba` on.
    fn write(&mut self, ioba: u64, data: &[u8]) -> Result<(), DmaError>;
}

/// Why an entry could not be put on a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnqueueError {
    /// No queue is registered.
    Closed,
    /// The next slot is still in use (byte 0 non-zero): the consumer is behind.
    Full,
    /// The queue page is no longer mapped for device writes.
    Dma(DmaError),
}

impl EnqueueError {
    /// What H_SEND_CRQ returns when the partner's queue refused the entry
    /// (PowerVM pairing: H_CLOSED without a queue, H_DROPPED when full).
    pub fn hcall_error(self) -> HcallError {
        match self {
            EnqueueError::Closed => HcallError::Closed,
            EnqueueError::Full => HcallError::Dropped,
            EnqueueError::Dma(_) => HcallError::Dropped,
        }
    }
}

/// A registered queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Queue {
    ioba: u64,
    len: u64,
    /// Offset of the next slot the producer writes.
    next: u64,
}

/// One CRQ: unregistered, or a queue in the device's window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Crq {
    queue: Option<Queue>,
}

impl Crq {
    pub const fn new() -> Self {
        Crq { queue: None }
    }

    /// H_REG_CRQ's checks, in QEMU's order: `len` in
    /// [[`CRQ_MIN_LEN`], [`CRQ_MAX_LEN`]] (H_PARAMETER), `ioba` 4 KiB-aligned
    /// (H_PARAMETER), no queue registered yet (H_RESOURCE; Linux then frees
    /// and registers again, the kexec case). `len` must also be a whole number
    /// of entries (H_PARAMETER), so no entry straddles the end.
    pub fn register(&mut self, ioba: u64, len: u64) -> Result<(), HcallError> {
        if !(CRQ_MIN_LEN..=CRQ_MAX_LEN).contains(&len) || !len.is_multiple_of(CRQ_ENTRY_SIZE) {
            return Err(HcallError::Parameter);
        }
        if !ioba.is_multiple_of(0x1000) || ioba.checked_add(len).is_none() {
            return Err(HcallError::Parameter);
        }
        if self.queue.is_some() {
            return Err(HcallError::Resource);
        }
        self.queue = Some(Queue { ioba, len, next: 0 });
        Ok(())
    }

    /// H_FREE_CRQ, and a partition reset: forget the queue.
    pub fn free(&mut self) {
        self.queue = None;
    }

    pub fn is_registered(&self) -> bool {
        self.queue.is_some()
    }

    /// Entries the queue holds, 0 when none is registered.
    pub fn entries(&self) -> u64 {
        self.queue.map_or(0, |q| q.len / CRQ_ENTRY_SIZE)
    }

    /// Whether the next slot is free (byte 0 zero), without writing anything.
    pub fn has_room(&self, dma: &mut dyn DmaWindow) -> Result<(), EnqueueError> {
        let q = self.queue.ok_or(EnqueueError::Closed)?;
        let mut valid = [0u8; 1];
        dma.read(q.ioba + q.next, &mut valid)
            .map_err(EnqueueError::Dma)?;
        if valid[0] != VALID_FREE {
            return Err(EnqueueError::Full);
        }
        Ok(())
    }

    /// Appends `entry` (byte 0 must be non-zero): bytes 8-15 first, then 0-7, so
    /// a consumer that sees the valid byte sees the whole entry (the binding's
    /// [`DmaWindow::write`] keeps program order, and the hypervisor orders its
    /// stores before the interrupt it raises next).
    pub fn enqueue(
        &mut self,
        dma: &mut dyn DmaWindow,
        entry: &CrqEntry,
    ) -> Result<(), EnqueueError> {
        self.has_room(dma)?;
        let Some(q) = self.queue.as_mut() else {
            return Err(EnqueueError::Closed);
        };
        let slot = q.ioba + q.next;
        dma.write(slot + 8, &entry.0[8..])
            .map_err(EnqueueError::Dma)?;
        // The consumer (another thread) must see bytes 8-15, and whatever the
        // caller stored before (a response IU), before the valid byte: lwsync.
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        dma.write(slot, &entry.0[..8]).map_err(EnqueueError::Dma)?;
        q.next = (q.next + CRQ_ENTRY_SIZE) % q.len;
        Ok(())
    }
}

/// The transport state seen from the client side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// No client queue, or the partner is not ready.
    Down,
    /// Both ends are there; no INIT exchanged yet.
    Connected,
    /// INIT and INIT COMPLETE went across: requests may flow.
    Up,
}

/// What the partner does with an entry the client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The transport handled it (INIT answered, INIT COMPLETE noted): nothing
    /// for the partner's protocol layer.
    Handled,
    /// A command (valid 0x80) for the partner's protocol layer.
    Command,
    /// Not a message a client may send (free slot or transport event): ignored,
    /// H_SUCCESS as PowerVM does not check the payload.
    Ignored,
}

/// The transport between a client queue and its partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrqLink {
    /// The client's queue (what the partner writes to).
    pub client: Crq,
    partner_ready: bool,
    up: bool,
}

impl CrqLink {
    /// A link whose partner is ready or not (an in-hypervisor target always
    /// is; a server partition is once it registered its own queue).
    pub const fn new(partner_ready: bool) -> Self {
        CrqLink {
            client: Crq::new(),
            partner_ready,
            up: false,
        }
    }

    pub fn state(&self) -> LinkState {
        match (self.client.is_registered() && self.partner_ready, self.up) {
            (false, _) => LinkState::Down,
            (true, false) => LinkState::Connected,
            (true, true) => LinkState::Up,
        }
    }

    /// H_REG_CRQ: `Ok(())` for H_SUCCESS, `Err(Closed)` when the queue is
    /// registered but the partner is not ready (clients then wait for its
    /// INIT), other errors as [`Crq::register`].
    pub fn register(&mut self, ioba: u64, len: u64) -> Result<(), HcallError> {
        self.client.register(ioba, len)?;
        self.up = false;
        if self.partner_ready {
            Ok(())
        } else {
            Err(HcallError::Closed)
        }
    }

    /// H_FREE_CRQ (and partition reset): the queue goes, the link is down.
    /// The partner's protocol layer must forget its login too.
    pub fn free(&mut self) {
        self.client.free();
        self.up = false;
    }

    /// The partner became ready: if the client queue is there, it gets the
    /// partner's INIT (what a client that saw H_CLOSED waits for).
    pub fn partner_arrives(&mut self, dma: &mut dyn DmaWindow) -> Result<(), EnqueueError> {
        self.partner_ready = true;
        self.up = false;
        self.client.enqueue(dma, &CrqEntry::init(FORMAT_INIT))
    }

    /// The partner went away: the client gets a transport event of `format`
    /// ([`EVENT_PARTNER_FAILED`] or [`EVENT_PARTNER_DEREGISTERED`]) and must
    /// re-initialise once the partner is back.
    pub fn partner_leaves(&mut self, dma: &mut dyn DmaWindow, format: u8) {
        self.partner_ready = false;
        self.up = false;
        // A full or unmapped queue loses the event: the client then finds
        // out from H_SEND_CRQ's H_CLOSED.
        let _ = self.client.enqueue(dma, &CrqEntry::transport_event(format));
    }

    /// H_SEND_CRQ: checks the link and runs the transport part of the
    /// handshake. `Err(Closed)` when the partner is not ready or the client has
    /// no queue to receive the answer in; `Err(Dropped)` when the answer to an
    /// INIT found the client's queue full.
    pub fn send(
        &mut self,
        dma: &mut dyn DmaWindow,
        entry: &CrqEntry,
    ) -> Result<Delivery, HcallError> {
        if self.state() == LinkState::Down {
            return Err(HcallError::Closed);
        }
        match (entry.valid(), entry.format()) {
            (VALID_INIT, FORMAT_INIT) => {
                // The client (re)starts the handshake: answer INIT COMPLETE.
                self.client
                    .enqueue(dma, &CrqEntry::init(FORMAT_INIT_COMPLETE))
                    .map_err(EnqueueError::hcall_error)?;
                self.up = true;
                Ok(Delivery::Handled)
            }
            (VALID_INIT, FORMAT_INIT_COMPLETE) => {
                // The answer to the partner's INIT.
                self.up = true;
                Ok(Delivery::Handled)
            }
            (VALID_INIT, _) => Ok(Delivery::Ignored),
            (VALID_CMD_RSP, _) => Ok(Delivery::Command),
            _ => Ok(Delivery::Ignored),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// A device window for tests: `pages` 4 KiB pages from I/O bus address
    /// `base`, each mapped read/write unless marked otherwise.
    pub struct TestWindow {
        pub base: u64,
        pub mem: Vec<u8>,
        /// Per page: (device may read, device may write).
        pub perm: Vec<(bool, bool)>,
        /// Every write as (ioba, len), in order.
        pub writes: Vec<(u64, usize)>,
    }

    impl TestWindow {
        pub fn new(base: u64, pages: usize) -> Self {
            TestWindow {
                base,
                mem: vec![0; pages * 4096],
                perm: vec![(true, true); pages],
                writes: Vec::new(),
            }
        }

        fn check(&self, ioba: u64, len: usize, write: bool) -> Result<usize, DmaError> {
            let off = ioba.checked_sub(self.base).ok_or(DmaError::OutOfWindow)? as usize;
            let end = off.checked_add(len).ok_or(DmaError::OutOfWindow)?;
            if end > self.mem.len() {
                return Err(DmaError::OutOfWindow);
            }
            if len == 0 {
                return Ok(off);
            }
            for page in off / 4096..=(end - 1) / 4096 {
                let (r, w) = self.perm[page];
                if !r && !w {
                    return Err(DmaError::NoPermission);
                }
                if (write && !w) || (!write && !r) {
                    return Err(DmaError::NoPermission);
                }
            }
            Ok(off)
        }

        pub fn at(&self, ioba: u64, len: usize) -> &[u8] {
            let off = (ioba - self.base) as usize;
            &self.mem[off..off + len]
        }

        pub fn put(&mut self, ioba: u64, data: &[u8]) {
            let off = (ioba - self.base) as usize;
            self.mem[off..off + data.len()].copy_from_slice(data);
        }
    }

    impl DmaWindow for TestWindow {
        fn read(&mut self, ioba: u64, out: &mut [u8]) -> Result<(), DmaError> {
            let off = self.check(ioba, out.len(), false)?;
            out.copy_from_slice(&self.mem[off..off + out.len()]);
            Ok(())
        }

        fn write(&mut self, ioba: u64, data: &[u8]) -> Result<(), DmaError> {
            let off = self.check(ioba, data.len(), true)?;
            self.mem[off..off + data.len()].copy_from_slice(data);
            self.writes.push((ioba, data.len()));
            Ok(())
        }
    }

    const Q: u64 = 0x10_0000;

    fn entry(valid: u8, format: u8) -> CrqEntry {
        let mut e = CrqEntry::default();
        e.0[0] = valid;
        e.0[1] = format;
        e.0[15] = 0x5a;
        e
    }

    #[test]
    fn register_checks_in_qemu_order() {
        let mut c = Crq::new();
        assert_eq!(c.register(Q, 0xfff), Err(HcallError::Parameter));
        assert_eq!(c.register(Q, 0x1000_0010), Err(HcallError::Parameter));
        assert_eq!(c.register(Q + 8, 0x1000), Err(HcallError::Parameter));
        assert_eq!(c.register(Q, 0x1008), Err(HcallError::Parameter));
        assert_eq!(c.register(!0xfff, 0x2000), Err(HcallError::Parameter));
        assert_eq!(c.register(Q, 0x1000), Ok(()));
        assert_eq!(c.entries(), 256);
        // Twice: H_RESOURCE (Linux frees and registers again).
        assert_eq!(c.register(Q, 0x1000), Err(HcallError::Resource));
        c.free();
        assert_eq!(c.register(Q, 0x2000), Ok(()));
        assert_eq!(c.entries(), 512);
    }

    #[test]
    fn enqueue_writes_valid_byte_last_and_wraps() {
        let mut w = TestWindow::new(Q, 1);
        let mut c = Crq::new();
        assert_eq!(
            c.enqueue(&mut w, &entry(0x80, 1)),
            Err(EnqueueError::Closed)
        );
        c.register(Q, 0x1000).unwrap();
        c.enqueue(&mut w, &entry(0x80, 1)).unwrap();
        // Bytes 8-15 first, then 0-7.
        assert_eq!(w.writes, vec![(Q + 8, 8), (Q, 8)]);
        assert_eq!(w.at(Q, 16), &entry(0x80, 1).0);
        for _ in 1..256 {
            c.enqueue(&mut w, &entry(0x80, 2)).unwrap();
        }
        // The consumer has taken nothing: full.
        assert_eq!(c.enqueue(&mut w, &entry(0x80, 3)), Err(EnqueueError::Full));
        // It frees slot 0: the producer wraps there.
        w.put(Q, &[0]);
        c.enqueue(&mut w, &entry(0x80, 4)).unwrap();
        assert_eq!(w.at(Q, 2), &[0x80, 4]);
        assert_eq!(c.enqueue(&mut w, &entry(0x80, 5)), Err(EnqueueError::Full));
    }

    #[test]
    fn enqueue_honours_tce_permissions() {
        let mut w = TestWindow::new(Q, 1);
        let mut c = Crq::new();
        c.register(Q, 0x1000).unwrap();
        w.perm[0] = (true, false);
        assert_eq!(
            c.enqueue(&mut w, &entry(0x80, 1)),
            Err(EnqueueError::Dma(DmaError::NoPermission))
        );
        w.perm[0] = (false, false);
        assert_eq!(
            c.enqueue(&mut w, &entry(0x80, 1)),
            Err(EnqueueError::Dma(DmaError::NoPermission))
        );
        // Queue registered beyond the window: every access fails, nothing panics.
        let mut c = Crq::new();
        c.register(Q + 0x1000, 0x1000).unwrap();
        assert_eq!(
            c.enqueue(&mut w, &entry(0x80, 1)),
            Err(EnqueueError::Dma(DmaError::OutOfWindow))
        );
    }

    #[test]
    fn handshake_with_a_ready_partner() {
        let mut w = TestWindow::new(Q, 1);
        let mut l = CrqLink::new(true);
        assert_eq!(l.state(), LinkState::Down);
        assert_eq!(
            l.send(&mut w, &CrqEntry::init(FORMAT_INIT)),
            Err(HcallError::Closed)
        );
        assert_eq!(l.register(Q, 0x1000), Ok(()));
        assert_eq!(l.state(), LinkState::Connected);
        assert_eq!(
            l.send(&mut w, &CrqEntry::from_words(0xC001_0000_0000_0000, 0)),
            Ok(Delivery::Handled)
        );
        assert_eq!(w.at(Q, 2), &[VALID_INIT, FORMAT_INIT_COMPLETE]);
        assert_eq!(l.state(), LinkState::Up);
        assert_eq!(l.send(&mut w, &entry(0x80, 1)), Ok(Delivery::Command));
        assert_eq!(l.send(&mut w, &entry(0xFF, 1)), Ok(Delivery::Ignored));
        l.free();
        assert_eq!(l.state(), LinkState::Down);
        assert_eq!(l.send(&mut w, &entry(0x80, 1)), Err(HcallError::Closed));
    }

    #[test]
    fn closed_until_the_partner_is_ready() {
        let mut w = TestWindow::new(Q, 1);
        let mut l = CrqLink::new(false);
        // Registered all the same, but H_CLOSED.
        assert_eq!(l.register(Q, 0x1000), Err(HcallError::Closed));
        assert!(l.client.is_registered());
        assert_eq!(
            l.send(&mut w, &CrqEntry::init(FORMAT_INIT)),
            Err(HcallError::Closed)
        );
        // The partner arrives: the client gets its INIT and answers.
        l.partner_arrives(&mut w).unwrap();
        assert_eq!(w.at(Q, 2), &[VALID_INIT, FORMAT_INIT]);
        assert_eq!(l.state(), LinkState::Connected);
        assert_eq!(
            l.send(&mut w, &CrqEntry::init(FORMAT_INIT_COMPLETE)),
            Ok(Delivery::Handled)
        );
        assert_eq!(l.state(), LinkState::Up);
        // The partner goes: a transport event, then H_CLOSED.
        l.partner_leaves(&mut w, EVENT_PARTNER_DEREGISTERED);
        assert_eq!(w.at(Q + 16, 2), &[VALID_TRANSPORT_EVENT, 2]);
        assert_eq!(l.send(&mut w, &entry(0x80, 1)), Err(HcallError::Closed));
    }

    #[test]
    fn init_answer_to_a_full_queue_is_dropped() {
        let mut w = TestWindow::new(Q, 1);
        let mut l = CrqLink::new(true);
        l.register(Q, 0x1000).unwrap();
        w.mem.fill(0x80);
        assert_eq!(
            l.send(&mut w, &CrqEntry::init(FORMAT_INIT)),
            Err(HcallError::Dropped)
        );
        assert_eq!(l.state(), LinkState::Connected);
    }

    #[test]
    fn entry_fields() {
        let e = CrqEntry::from_words(0x8001_0000_0000_0100, 0x1234_5678_9abc_def0);
        assert_eq!(e.valid(), 0x80);
        assert_eq!(e.format(), 1);
        assert_eq!(e.iu_length(), 0x100);
        assert_eq!(e.iu_data_ptr(), 0x1234_5678_9abc_def0);
    }
}
