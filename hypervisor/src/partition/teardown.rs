//! The one ordered teardown of a partition's devices and per-boot state, run
//! by system-reboot (before memory is scrubbed and the images loaded again)
//! and by a stop (once its last vCPU has left the guest): `Partition::tear_down`
//! performs each [`Step`] in [`ORDER`].
//!
//! Invariants:
//! - it runs with none of the partition's vCPUs in its run loop (a nested
//!   guest's tables, interrupt state and VPA copies are in use until then);
//! - devices that write guest memory stop first: passed-through functions
//!   (DMA), then the VIO devices (a vscsi request completing, a frame from the
//!   switch); only then the interrupt controllers, so that a device's last
//!   completion cannot leave an interrupt pending in the freshly reset XIVE or
//!   XICS;
//! - the registrations naming guest memory (nested guests' tables, VPA, DTL
//!   and SLB shadow) go last, once nothing writes there any more.

/// One step of the teardown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Passed-through functions: 64-bit windows closed, TCEs cleared, MSIs
    /// released, the function reset (`passthrough::Passthrough::reset_all`).
    Pci,
    /// VIO devices: the virtual LAN off the switch, TCE tables cleared, the
    /// VIO bus and vscsi reset (`partition::vio::reset`).
    Vio,
    /// The XIVE model and the XICS (sources, queues, presenters).
    Interrupts,
    /// Nested guests the partition created (H_GUEST_*/H_ENTER_NESTED state).
    Nested,
    /// Every vCPU's VPA, DTL and SLB shadow registration.
    Vpa,
}

/// The steps, in the order they run.
pub const ORDER: [Step; 5] = [
    Step::Pci,
    Step::Vio,
    Step::Interrupts,
    Step::Nested,
    Step::Vpa,
];

/// Runs `step` for each step of [`ORDER`], in order.
pub fn run(mut step: impl FnMut(Step)) {
    for s in ORDER {
        step(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn position(s: Step) -> usize {
        let mut seen = Vec::new();
        run(|x| seen.push(x));
        assert_eq!(seen, ORDER);
        seen.iter().position(|&x| x == s).expect("every step runs")
    }

    #[test]
    fn each_step_runs_once() {
        let mut seen = Vec::new();
        run(|s| seen.push(s));
        for s in [
            Step::Pci,
            Step::Vio,
            Step::Interrupts,
            Step::Nested,
            Step::Vpa,
        ] {
            assert_eq!(seen.iter().filter(|&&x| x == s).count(), 1, "{s:?}");
        }
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn devices_stop_before_interrupts_and_registrations() {
        // DMA first, then VIO, before the interrupt controllers are reset.
        assert_eq!(position(Step::Pci), 0);
        assert!(position(Step::Vio) < position(Step::Interrupts));
        // Registrations naming guest memory after every device writing it.
        for late in [Step::Nested, Step::Vpa] {
            assert!(position(Step::Pci) < position(late));
            assert!(position(Step::Vio) < position(late));
            assert!(position(Step::Interrupts) < position(late));
        }
    }
}
